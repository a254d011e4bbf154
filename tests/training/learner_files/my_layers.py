"""A learner's file, as ``cnn train --impl`` takes it: CS231n-style pairs, written the way a learner would.

Correct, and fast enough for tests: the convolution loops over the kernel taps
(k² slice operations, each over the whole batch), not over output pixels. The tests
make the two classic mistakes in it by replacing one marked line each.
"""

import numpy as np


def _taps(k_h, k_w, stride, out_h, out_w):
    """For each kernel tap (a, b): the rows and columns of the padded input it reads, one per output pixel."""
    for a in range(k_h):
        for b in range(k_w):
            yield a, b, slice(a, a + stride * out_h, stride), slice(b, b + stride * out_w, stride)


def conv2d_forward(x, w, b, stride=1, pad=0):
    n, c_in, h, width = x.shape
    c_out, _, k_h, k_w = w.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out_h = (h + 2 * pad - k_h) // stride + 1
    out_w = (width + 2 * pad - k_w) // stride + 1
    out = np.zeros((n, c_out, out_h, out_w), dtype=x.dtype)
    for a, b_, rows, cols in _taps(k_h, k_w, stride, out_h, out_w):
        out += np.einsum("nchw,oc->nohw", x_pad[:, :, rows, cols], w[:, :, a, b_])
    out += b[None, :, None, None]
    return out, (x_pad, w, stride, pad, x.shape)


def conv2d_backward(grad_out, cache):
    x_pad, w, stride, pad, x_shape = cache
    _, _, k_h, k_w = w.shape
    _, _, out_h, out_w = grad_out.shape
    dx_pad = np.zeros_like(x_pad)
    dw = np.zeros_like(w)
    for a, b_, rows, cols in _taps(k_h, k_w, stride, out_h, out_w):
        dw[:, :, a, b_] = np.einsum("nohw,nchw->oc", grad_out, x_pad[:, :, rows, cols])
        dx_pad[:, :, rows, cols] += np.einsum("nohw,oc->nchw", grad_out, w[:, :, a, b_])  # col2im: windows overlap
    db = grad_out.sum(axis=(0, 2, 3))
    dx = dx_pad[:, :, pad : pad + x_shape[2], pad : pad + x_shape[3]]
    return dx, dw, db


def relu_forward(x):
    return np.maximum(x, 0), x


def relu_backward(grad_out, cache):
    return grad_out * (cache > 0)


def maxpool2d_forward(x, size=2, stride=2):
    n, c, h, width = x.shape
    out_h = (h - size) // stride + 1
    out_w = (width - size) // stride + 1
    windows = np.stack([x[:, :, rows, cols] for _, _, rows, cols in _taps(size, size, stride, out_h, out_w)], axis=-1)
    return windows.max(axis=-1), (x.shape, windows, size, stride)


def maxpool2d_backward(grad_out, cache):
    x_shape, windows, size, stride = cache
    _, _, out_h, out_w = grad_out.shape
    winner = np.arange(windows.shape[-1]) == windows.argmax(axis=-1)[..., None]  # the first maximum only
    dx = np.zeros(x_shape, dtype=grad_out.dtype)
    for tap, (_, _, rows, cols) in enumerate(_taps(size, size, stride, out_h, out_w)):
        dx[:, :, rows, cols] += grad_out * winner[..., tap]
    return dx


def flatten_forward(x):
    return x.reshape(x.shape[0], -1), x.shape


def flatten_backward(grad_out, cache):
    return grad_out.reshape(cache)


def dense_forward(x, w, b):
    return x @ w.T + b, (x, w)


def dense_backward(grad_out, cache):
    x, w = cache
    return grad_out @ w, grad_out.T @ x, grad_out.sum(axis=0)


def dropout_forward(x, keep, p):
    mask = keep / (1.0 - p)
    return x * mask, mask


def dropout_backward(grad_out, cache):
    return grad_out * cache


def softmax_cross_entropy(logits, labels):
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_p[np.arange(n), labels].mean()
    grad = np.exp(log_p)
    grad[np.arange(n), labels] -= 1
    return loss, grad / n
