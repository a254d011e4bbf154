"""Exercise net004: notes 004's whole network, every gradient by the chain rule (`cnn docs exercises`).

Written by `cnn exercise start net004`. The forward pass is given, layer by layer;
fill in net004_backward, then check your work with

    cnn exercise check net004_exercise.py

The check runs five stages and stops at the first that fails: shapes; notes 004's
net with fixed small weights on one 6x6 image (`cnn explain seed004-net` prints
every factor of it); random weights and images against cnn's own model (the
seed004 config); edge cases (a blank image, where every pool window ties; every
ReLU off; a batch mixing y = 0 and y = 1); central differences of your own
forward. Keep the names and signatures: the checker calls them (`cnn docs relu`).

The network (notes 004, `cnn docs seed004`) and its shapes, on 6x6 images, 15 trainable parameters:

    Z1 = Conv(X, W1) + b1       X (N, 1, 6, 6), W1 (1, 1, 3, 3), b1 (1,)   ->  Z1 (N, 1, 4, 4)
    A1 = relu(Z1)                                                         ->  A1 (N, 1, 4, 4)
    P1 = maxpool(A1), 2x2                                                 ->  P1 (N, 1, 2, 2)
    F  = flatten(P1)                                                      ->  F  (N, 4)
    Z2 = F W2ᵀ + b2             W2 (1, 4), b2 (1,)                         ->  Z2 (N, 1)
    A2 = σ(Z2)
    L  = mean over the batch of −y log A2 − (1 − y) log(1 − A2)

params holds W1, b1, W2, b2 under cnn's names: "conv1.weight", "conv1.bias",
"fc1.weight", "fc1.bias".

The chain rule, from the loss down (in full: `cnn docs trace`, and each layer's
own section: `cnn docs binary_cross_entropy`, `dense`, `flatten`, `maxpool2d`,
`relu`, `conv2d`):

    ∂L/∂Z2 = (A2 − Y) / N              ∂L/∂A2 · ∂A2/∂Z2: the a(1 − a) cancels; the mean gives the 1/N
    ∂L/∂W2 = (∂L/∂Z2)ᵀ F               notes 004's (A2 − Y)Fᵀ;   ∂L/∂b2 = Σ over the batch of ∂L/∂Z2
    ∂L/∂F  = ∂L/∂Z2 · W2               (N, 1) @ (1, 4)
    ∂L/∂P1 = ∂L/∂F reshaped to P1's shape
    ∂L/∂A1 = each ∂L/∂P1 entry sent to the one input that won its window (the first, on a tie)
    ∂L/∂Z1 = ∂L/∂A1 where Z1 > 0, else 0
    ∂L/∂W1 = Σ over the batch and the 4x4 positions of ∂L/∂Z1[i, j] · X[i:i+3, j:j+3]
    ∂L/∂b1 = Σ of ∂L/∂Z1 (`cnn docs seed004`)
"""

import numpy as np


def net004_forward(x, y, params):
    """Return (loss, cache) for images x (N, 1, 6, 6) and labels y (N,) of 0 and 1."""
    w1, b1 = params["conv1.weight"], params["conv1.bias"]  # (1, 1, 3, 3), (1,)
    w2, b2 = params["fc1.weight"], params["fc1.bias"]  # (1, 4), (1,)
    n = x.shape[0]
    z1 = np.zeros((n, 1, 4, 4))
    for i in range(4):
        for j in range(4):
            z1[:, 0, i, j] = np.sum(x[:, 0, i : i + 3, j : j + 3] * w1[0, 0], axis=(1, 2)) + b1[0]
    a1 = np.maximum(z1, 0)
    p1 = np.zeros((n, 1, 2, 2))
    for i in range(2):
        for j in range(2):
            p1[:, 0, i, j] = a1[:, 0, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].max(axis=(1, 2))
    f = p1.reshape(n, 4)
    z2 = f @ w2.T + b2  # (N, 1)
    e = np.exp(-np.abs(z2))
    a2 = np.where(z2 >= 0, 1 / (1 + e), e / (1 + e))  # σ(Z2), without overflow
    targets = y.reshape(n, 1).astype(z2.dtype)
    # −y log A2 − (1 − y) log(1 − A2), written so that no log sees 0:
    loss = np.mean(np.maximum(z2, 0) - z2 * targets + np.log1p(e))
    cache = (x, targets, params, z1, a1, p1, f, z2, a2)
    return loss, cache


def net004_backward(cache):
    """Return a dict with every parameter's gradient, shaped like the parameter:
    {"conv1.weight": ∂L/∂W1, "conv1.bias": ∂L/∂b1, "fc1.weight": ∂L/∂W2, "fc1.bias": ∂L/∂b2}.

    You may add the intermediate gradients under "dZ2" (N, 1), "dF" (N, 4), "dP1" (N, 1, 2, 2),
    "dA1" (N, 1, 4, 4) and "dZ1" (N, 1, 4, 4): the check compares each one it finds, so a
    wrong answer shows where the chain first goes wrong.
    """
    x, targets, params, z1, a1, p1, f, z2, a2 = cache
    n = x.shape[0]
    grads = {name: np.zeros_like(value) for name, value in params.items()}
    # TODO: from the loss down, one factor at a time.
    raise NotImplementedError("net004_backward: fill me in")
    return grads
