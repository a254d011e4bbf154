"""Exercise conv2d: the backward pass of a convolution layer.

Written by `cnn exercise start conv2d`. The forward pass is given, written out as
loops; fill in conv2d_backward, then check your work with

    cnn exercise check conv2d_exercise.py

The check runs five stages and stops at the first that fails: shapes; notes 003's
worked example (numbers you can redo by hand, as `cnn explain conv-backward`
does); random tensors against cnn's own backward; edge cases (stride, padding,
dilation, groups, a batch of 1, a 1x1 kernel); central differences of your own
forward. Keep the names and signatures: the checker calls them (`cnn docs conv2d`).

Shapes (PyTorch's layout, as everywhere in cnn):
    x         (N, C_in, H, W)
    w         (C_out, C_in / groups, kH, kW)
    b         (C_out,)
    out       (N, C_out, H_out, W_out),  H_out = (H + 2·pad − dilation·(kH − 1) − 1) // stride + 1
    grad_out  like out: ∂L/∂out, what the layer above sends down
    dx, dw, db: like x, w, b

The derivation (in full: `cnn docs conv2d`). Output channel o belongs to group
g = o // (C_out / groups) and reads input channels g·C_in_g ... (g + 1)·C_in_g − 1.
With x_pad the zero-padded input, every output is a sum of products:

    out[n, o, i, j] = b[o] + Σ_{c, a, β} x_pad[n, g·C_in_g + c, i·stride + a·dilation, j·stride + β·dilation] · w[o, c, a, β]

Each term is one weight times one input, so the chain rule gives each gradient as
a sum over the outputs that term took part in:

    ∂L/∂w[o, c, a, β] = Σ_{n, i, j} ∂L/∂out[n, o, i, j] · (the input that tap (a, β) read for out[n, o, i, j])
    ∂L/∂b[o]          = Σ_{n, i, j} ∂L/∂out[n, o, i, j]           (the bias is in every output of every sample)
    ∂L/∂x_pad[that input] += ∂L/∂out[n, o, i, j] · w[o, c, a, β]    (one term per window that read it)

Windows overlap whenever stride < the kernel's extent, so an input pixel collects
from several windows: `+=`, never `=`. Window (i, j) starts at (i·stride, j·stride).
Work on the padded input and crop the border off at the end (the padding's own
gradient is just the interior). For stride 1 and no padding, ∂L/∂x is the full
correlation of ∂L/∂out with the kernel turned by 180° (notes 003), not with the
kernel itself and not with its transpose (`cnn docs conv2d`).
"""

import numpy as np


def conv2d_forward(x, w, b, stride=1, pad=0, dilation=1, groups=1):
    """out[n, o, i, j] = b[o] + Σ x_pad[n, g·C_in_g + c, i·stride + a·dilation, j·stride + β·dilation] · w[o, c, a, β]."""
    n, c_in, h, width = x.shape
    c_out, c_in_group, k_h, k_w = w.shape
    out_h = (h + 2 * pad - dilation * (k_h - 1) - 1) // stride + 1
    out_w = (width + 2 * pad - dilation * (k_w - 1) - 1) // stride + 1
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    c_out_group = c_out // groups
    out = np.zeros((n, c_out, out_h, out_w), dtype=x.dtype)
    for o in range(c_out):
        g = o // c_out_group
        x_group = x_pad[:, g * c_in_group : (g + 1) * c_in_group]  # the input channels output channel o reads
        for i in range(out_h):
            for j in range(out_w):
                rows = slice(i * stride, i * stride + dilation * (k_h - 1) + 1, dilation)
                cols = slice(j * stride, j * stride + dilation * (k_w - 1) + 1, dilation)
                window = x_group[:, :, rows, cols]  # (N, C_in_g, kH, kW)
                out[:, o, i, j] = np.sum(window * w[o], axis=(1, 2, 3)) + b[o]
    cache = (x, w, b, stride, pad, dilation, groups)
    return out, cache


def conv2d_backward(grad_out, cache):
    """Return (dx, dw, db) for grad_out = ∂L/∂out, shaped (N, C_out, H_out, W_out).

    Hint: walk the same loops as the forward. For each output (o, i, j), its window
    of x_pad times grad_out[:, o, i, j] adds to dw[o]; w[o] times grad_out[:, o, i, j]
    adds to that window of dx_pad. Then crop dx_pad to dx.
    """
    x, w, b, stride, pad, dilation, groups = cache
    dx = np.zeros_like(x)
    dw = np.zeros_like(w)
    db = np.zeros_like(b)
    # TODO: fill in dx, dw and db.
    raise NotImplementedError("conv2d_backward: fill me in")
    return dx, dw, db
