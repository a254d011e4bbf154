"""Exercise: write the backward passes of a convolution, a ReLU and a 2x2 max-pool.

Written by ``cnn explain --exercise conv``. The forward passes are given, as
plain loops. Fill in every function marked TODO, then check your work:

    cnn gradcheck --impl conv_exercise.py

which compares each gradient you return with central differences of your own
forward pass and with cnn's hand-written backward, tensor by tensor
(``dx``, ``dw``, ``db``), and prints the relative error
|a − n| / max(|a| + |n|, floor). Below ~1e-7 is right; ~1e-2 to 1 is a bug.

Shapes (PyTorch's layout, as in cnn):
    x (N, C_in, H, W), w (C_out, C_in, kH, kW), b (C_out,), out (N, C_out, H_out, W_out)
    H_out = (H + 2·pad − kH) // stride + 1

Read first: ``cnn docs conv2d``, ``cnn docs relu``, ``cnn docs maxpool2d``, and
``cnn explain conv-backward`` for ∂L/∂X worked out on notes 003's numbers.
Keep the names and signatures: the checker calls them.
"""

import numpy as np


def conv2d_forward(x, w, b, stride=1, pad=0):
    """Cross-correlation: out[n, o, i, j] = b[o] + Σ_{c,a,b'} x_pad[n, c, i·s + a, j·s + b'] · w[o, c, a, b']."""
    n, c_in, h, width = x.shape
    c_out, _, k_h, k_w = w.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out_h = (h + 2 * pad - k_h) // stride + 1
    out_w = (width + 2 * pad - k_w) // stride + 1
    out = np.zeros((n, c_out, out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            window = x_pad[:, :, i * stride : i * stride + k_h, j * stride : j * stride + k_w]  # (N, C_in, kH, kW)
            out[:, :, i, j] = np.tensordot(window, w, axes=([1, 2, 3], [1, 2, 3])) + b
    cache = (x, w, b, stride, pad)
    return out, cache


def conv2d_backward(grad_out, cache):
    """Return (dx, dw, db) for grad_out = ∂L/∂out of shape (N, C_out, H_out, W_out).

    Hints (notes 000 §2.3–§2.5, ``cnn docs conv2d``): dw collects window × grad_out over every output position;
    db sums grad_out over the batch and every position; dx gets grad_out · w added back onto
    each window, with += because windows overlap (and stride says where each window starts).
    Compute dx on the padded input, then crop the padding off.
    """
    x, w, b, stride, pad = cache
    dx = np.zeros_like(x)
    dw = np.zeros_like(w)
    db = np.zeros_like(b)
    # TODO: fill in dx, dw and db.
    raise NotImplementedError("conv2d_backward: fill me in")
    return dx, dw, db


def relu_forward(x):
    """out = max(0, x)."""
    out = np.maximum(x, 0)
    cache = x
    return out, cache


def relu_backward(grad_out, cache):
    """Return dx: grad_out where the input was positive, 0 elsewhere (notes 000 §2.8, ``cnn docs relu``)."""
    x = cache
    dx = np.zeros_like(x)
    # TODO
    raise NotImplementedError("relu_backward: fill me in")
    return dx


def maxpool2d_forward(x, size=2, stride=2):
    """out[n, c, i, j] = max of the size × size window starting at (i·stride, j·stride)."""
    n, c, h, width = x.shape
    out_h = (h - size) // stride + 1
    out_w = (width - size) // stride + 1
    out = np.zeros((n, c, out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            out[:, :, i, j] = x[:, :, i * stride : i * stride + size, j * stride : j * stride + size].max(axis=(2, 3))
    cache = (x, size, stride)
    return out, cache


def maxpool2d_backward(grad_out, cache):
    """Return dx: each grad_out entry goes to the one input that won its window, the rest get 0 (notes 000 §2.7,
    ``cnn docs maxpool2d``)."""
    x, size, stride = cache
    dx = np.zeros_like(x)
    # TODO
    raise NotImplementedError("maxpool2d_backward: fill me in")
    return dx
