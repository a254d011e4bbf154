"""Exercise residual: the backward pass of a residual block.

Written by `cnn exercise start residual`. The forward pass is given; fill in
residual_backward, then check your work with

    cnn exercise check residual_exercise.py

The check runs five stages and stops at the first that fails: shapes; the block
`cnn explain residual` works by hand; random tensors against cnn's own backward;
edge cases (every hidden unit off, w2 = 0, hidden units exactly at 0, a batch of 1);
central differences of your own forward. Keep the names and signatures: the checker
calls them (`cnn docs residual`).

Shapes (a block of two dense layers; cnn's dense layout, as PyTorch's nn.Linear):
    x         (N, F)
    w1, b1    (H, F), (H,)      the first dense layer: F -> H hidden units
    w2, b2    (F, H), (F,)      the second: back to F, so that the skip's x fits
    out       (N, F)
    grad_out  like out: ∂L/∂out
    dx, dw1, db1, dw2, db2: like x, w1, b1, w2, b2

The derivation (in full: `cnn docs residual`). The forward is

    z   = x w1ᵀ + b1            (N, H)
    h   = max(0, z)             (N, H)
    out = h w2ᵀ + b2  +  x      (N, F)   the inner layers F(x), plus the skip

The add passes ∂L/∂out unchanged to both of its terms. Through the layers, one
layer at a time from the top (`cnn docs dense`, `cnn docs relu`):

    dw2 = grad_outᵀ h,   db2 = grad_out summed over the batch,   ∂L/∂h = grad_out w2
    ∂L/∂z = ∂L/∂h · [z > 0]
    dw1 = (∂L/∂z)ᵀ x,    db1 = ∂L/∂z summed over the batch,      through = ∂L/∂z w1

And x was used twice, by the layers and by the skip, so its gradient is the sum of
the two gradients that come back:

    dx = through + grad_out
"""

import numpy as np


def residual_forward(x, w1, b1, w2, b2):
    """out = relu(x w1ᵀ + b1) w2ᵀ + b2 + x."""
    z = x @ w1.T + b1
    h = np.maximum(z, 0)
    out = h @ w2.T + b2 + x
    cache = (x, z, h, w1, w2)
    return out, cache


def residual_backward(grad_out, cache):
    """Return (dx, dw1, db1, dw2, db2) for grad_out = ∂L/∂out, shaped (N, F)."""
    x, z, h, w1, w2 = cache
    dx = np.zeros_like(x)
    dw1, db1 = np.zeros_like(w1), np.zeros(w1.shape[0])
    dw2, db2 = np.zeros_like(w2), np.zeros(w2.shape[0])
    # TODO: fill in dx, dw1, db1, dw2 and db2.
    raise NotImplementedError("residual_backward: fill me in")
    return dx, dw1, db1, dw2, db2
