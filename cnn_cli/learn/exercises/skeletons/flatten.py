"""Exercise flatten: the backward pass of a flatten layer.

Written by `cnn exercise start flatten`. The forward pass is given; fill in
flatten_backward, then check your work with

    cnn exercise check flatten_exercise.py

The check runs five stages and stops at the first that fails: shapes; a
(1, 2, 2, 2) example to redo by hand; random tensors against cnn's own backward;
edge cases (a batch of 1, one channel, a 1x1 map); central differences of your
own forward. Keep the names and signatures: the checker calls them.

Shapes (as cnn's flatten):
    x         (N, C, H, W)
    out       (N, C·H·W, 1, 1)   still an image, of C·H·W channels of 1x1, so a 1x1 conv can follow
    grad_out  like out
    dx        like x

The derivation (in full: `cnn docs flatten`; notes 003's reshape layer, notes
004's F = flatten(P1)). Flattening moves values, it changes none:

    out[n, c·H·W + h·W + w, 0, 0] = x[n, c, h, w]

so ∂L/∂x[n, c, h, w] is the gradient of the output entry that value went to:
put grad_out back into x's shape, reading it in the same (C, H, W) order the
forward wrote it.
"""

import numpy as np


def flatten_forward(x):
    """out = x reshaped to (N, C·H·W, 1, 1), in (C, H, W) order."""
    out = x.reshape(x.shape[0], -1, 1, 1)
    cache = x.shape
    return out, cache


def flatten_backward(grad_out, cache):
    """Return dx: grad_out put back into the input's shape."""
    x_shape = cache
    dx = np.zeros(x_shape, dtype=grad_out.dtype)
    # TODO
    raise NotImplementedError("flatten_backward: fill me in")
    return dx
