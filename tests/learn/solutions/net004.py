"""A correct solution of the net004 exercise: the skeleton of `cnn exercise start net004`, filled in.

The tests hold it to passing every stage of `cnn exercise check`, and derive the typical wrong
solutions from it (tests/learn/test_exercise_solutions.py).
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
    w2 = params["fc1.weight"]
    dz2 = (a2 - targets) / n  # (N, 1)
    grads["fc1.weight"] = dz2.T @ f  # notes 004's (A2 − Y)Fᵀ
    grads["fc1.bias"] = dz2.sum(axis=0)
    df = dz2 @ w2  # (N, 4)
    dp1 = df.reshape(n, 1, 2, 2)
    da1 = np.zeros_like(a1)
    for i in range(2):
        for j in range(2):
            window = a1[:, 0, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].reshape(n, 4)
            a, b = np.divmod(window.argmax(axis=1), 2)  # the first maximum wins a tie
            da1[np.arange(n), 0, 2 * i + a, 2 * j + b] += dp1[:, 0, i, j]
    dz1 = da1 * (z1 > 0)
    for i in range(4):
        for j in range(4):
            grads["conv1.weight"][0, 0] += np.tensordot(dz1[:, 0, i, j], x[:, 0, i : i + 3, j : j + 3], axes=(0, 0))
    grads["conv1.bias"] = dz1.sum(axis=(0, 2, 3))
    grads.update({"dZ2": dz2, "dF": df, "dP1": dp1, "dA1": da1, "dZ1": dz1})
    return grads
