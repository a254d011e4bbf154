"""Exercise relu: the backward pass of a ReLU.

Written by `cnn exercise start relu`. The forward pass is given; fill in
relu_backward, then check your work with

    cnn exercise check relu_exercise.py

The check runs five stages and stops at the first that fails: shapes; notes 000
§2.8's 4x4 example (as `cnn explain relu` works it); random tensors against cnn's
own backward; edge cases (inputs exactly 0, all negative, a batch of 1); central
differences of your own forward. Keep the names and signatures: the checker calls them (`cnn docs relu`).

Shapes: any. x, out, grad_out and dx all have the same shape, e.g. (N, C, H, W)
after a convolution or (N, F) after a dense layer.

The derivation (in full: `cnn docs relu`). out = max(0, x) is x where x > 0 and
the constant 0 elsewhere, so ∂out/∂x is 1 where x > 0 and 0 where x < 0:

    ∂L/∂x = ∂L/∂out · [x > 0]

At exactly 0 the derivative does not exist. cnn, like PyTorch, takes it as 0 there:
the mask is x > 0, not x >= 0 (exact zeros are common, e.g. on MNIST's blank pixels).
"""

import numpy as np


def relu_forward(x):
    """out = max(0, x)."""
    out = np.maximum(x, 0)
    cache = x
    return out, cache


def relu_backward(grad_out, cache):
    """Return dx: grad_out where the input was positive, 0 elsewhere."""
    x = cache
    dx = np.zeros_like(x)
    # TODO
    raise NotImplementedError("relu_backward: fill me in")
    return dx
