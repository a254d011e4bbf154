"""Exercise leaky_relu: the backward pass of a leaky ReLU.

Written by `cnn exercise start leaky_relu`. The forward pass is given; fill in
leaky_relu_backward, then check your work with

    cnn exercise check leaky_relu_exercise.py

The check runs five stages and stops at the first that fails: shapes; a 2x2
example to redo by hand; random tensors against cnn's own backward; edge cases
(inputs exactly 0, slope 0, the default slope, a batch of 1); central differences
of your own forward. Keep the names and signatures: the checker calls them.

Shapes: any. x, out, grad_out and dx all have the same shape.

The derivation (in full: `cnn docs leaky_relu`). out = x where x > 0 and
slope · x elsewhere; both pieces are straight lines, so

    ∂L/∂x = ∂L/∂out        where x > 0
    ∂L/∂x = slope · ∂L/∂out where x <= 0

The negative side is not blocked, only scaled down (that is the point of the
leak). cnn, like PyTorch, puts x = 0 on the negative side.
"""

import numpy as np


def leaky_relu_forward(x, slope=0.01):
    """out = x where x > 0, slope · x elsewhere."""
    out = np.where(x > 0, x, slope * x)
    cache = (x, slope)
    return out, cache


def leaky_relu_backward(grad_out, cache):
    """Return dx: grad_out where the input was positive, slope · grad_out elsewhere."""
    x, slope = cache
    dx = np.zeros_like(x)
    # TODO
    raise NotImplementedError("leaky_relu_backward: fill me in")
    return dx
