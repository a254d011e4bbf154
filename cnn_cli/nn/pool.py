"""Max and average pooling, forward and hand-written backward.

Notes 000 §2.7 and notes 001 ("gradient of pooling layer"; ``cnn docs maxpool2d``): a max-pool output is
a copy of the largest input in its window, so its gradient flows to that one
input and every other input of the window gets 0. Ties go to the first maximum
in row-major window order (PyTorch does the same), never to every tied input.
An average-pool output is the window mean, so each input of the window gets
1/(kH*kW) of the output's gradient. Overlapping windows (stride < kernel) add.

Shapes: x (N, C, H, W) -> (N, C, H_out, W_out), H_out from :func:`cnn_cli.nn.shapes.window_output_hw`
with dilation 1. Max-pool pads with -inf and average-pool with 0 (counted in the
divisor, PyTorch's ``count_include_pad=True``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnn_cli.nn.shapes import IntPair, window_output_hw
from cnn_cli.nn.windows import pad_channels_last, sliding_windows, tap_slice

NO_DILATION = (1, 1)


@dataclass
class PoolCache:
    """What a pooling backward needs: the geometry, and for max-pool the winners."""

    input_shape: tuple[int, int, int, int]
    kernel: IntPair
    stride: IntPair
    padding: IntPair
    argmax: np.ndarray | None = None  # (N, H_out, W_out, C): flat window index a*kW + b of the max


def _pool_windows(x: np.ndarray, kernel: IntPair, stride: IntPair, padding: IntPair, pad_value: float) -> tuple[np.ndarray, IntPair]:
    """The (N, H_out, W_out, kH, kW, C) window view of x padded with ``pad_value``, and (H_out, W_out)."""
    out_hw = window_output_hw((x.shape[2], x.shape[3]), kernel, stride, padding)
    x_nhwc = x.transpose(0, 2, 3, 1)
    if padding != (0, 0):
        x_nhwc = pad_channels_last(x_nhwc, padding[0], padding[1], value=pad_value)
    return sliding_windows(x_nhwc, kernel, stride, NO_DILATION, out_hw), out_hw


def maxpool2d_forward(x: np.ndarray, kernel: IntPair, stride: IntPair, padding: IntPair = (0, 0)) -> tuple[np.ndarray, PoolCache]:
    """y[n, c, i, j] = max_{a, b} x_pad[n, c, i*sH + a, j*sW + b]. Returns (y, cache)."""
    n, c, h, w = x.shape
    windows, (out_h, out_w) = _pool_windows(x, kernel, stride, padding, pad_value=-np.inf)
    # (N, H_out, W_out, C, kH*kW): the window of each output as its last axis.
    flat = windows.transpose(0, 1, 2, 5, 3, 4).reshape(n, out_h, out_w, c, -1)
    argmax = flat.argmax(axis=-1)  # first maximum on ties
    out = np.take_along_axis(flat, argmax[..., None], axis=-1)[..., 0]
    cache = PoolCache((n, c, h, w), kernel, stride, padding, argmax=argmax)
    return out.transpose(0, 3, 1, 2), cache


def maxpool2d_backward(grad_out: np.ndarray, cache: PoolCache) -> np.ndarray:
    """dL/dx: each output's gradient goes to the one input that won its window.

    grad_out (N, C, H_out, W_out) -> (N, C, H, W).
    """
    grad_nhwc = grad_out.transpose(0, 2, 3, 1)
    return _scatter_to_windows(cache, lambda tap: np.where(cache.argmax == tap, grad_nhwc, 0))


def avgpool2d_forward(x: np.ndarray, kernel: IntPair, stride: IntPair, padding: IntPair = (0, 0)) -> tuple[np.ndarray, PoolCache]:
    """y[n, c, i, j] = (1 / (kH*kW)) sum_{a, b} x_pad[n, c, i*sH + a, j*sW + b]. Returns (y, cache)."""
    n, c, h, w = x.shape
    windows, _ = _pool_windows(x, kernel, stride, padding, pad_value=0.0)
    out = windows.mean(axis=(3, 4))
    return out.transpose(0, 3, 1, 2), PoolCache((n, c, h, w), kernel, stride, padding)


def avgpool2d_backward(grad_out: np.ndarray, cache: PoolCache) -> np.ndarray:
    """dL/dx: each output's gradient is shared equally by the kH*kW inputs of its window.

    grad_out (N, C, H_out, W_out) -> (N, C, H, W).
    """
    share = grad_out.transpose(0, 2, 3, 1) / (cache.kernel[0] * cache.kernel[1])
    return _scatter_to_windows(cache, lambda tap: share)


def _scatter_to_windows(cache: PoolCache, grad_for_tap) -> np.ndarray:
    """col2im for pooling: add ``grad_for_tap(a*kW + b)`` (N, H_out, W_out, C) at each tap's inputs."""
    n, c, h, w = cache.input_shape
    pad_h, pad_w = cache.padding
    out_h, out_w = window_output_hw((h, w), cache.kernel, cache.stride, cache.padding)
    grad_padded: np.ndarray | None = None
    for a in range(cache.kernel[0]):
        rows = tap_slice(a, 1, cache.stride[0], out_h)
        for b in range(cache.kernel[1]):
            cols = tap_slice(b, 1, cache.stride[1], out_w)
            contribution = grad_for_tap(a * cache.kernel[1] + b)
            if grad_padded is None:
                grad_padded = np.zeros((n, h + 2 * pad_h, w + 2 * pad_w, c), dtype=contribution.dtype)
            grad_padded[:, rows, cols, :] += contribution
    if grad_padded is None:  # pragma: no cover - a kernel has at least one tap
        raise ValueError(f"empty pooling kernel {cache.kernel}")
    return grad_padded[:, pad_h : pad_h + h, pad_w : pad_w + w, :].transpose(0, 3, 1, 2)


def global_avgpool_forward(x: np.ndarray) -> np.ndarray:
    """y[n, c] = (1 / (H·W)) Σ_{i, j} x[n, c, i, j]: one mean per feature map.

    x (N, C, H, W) -> y (N, C). An average pool whose window is the whole map, with
    the spatial axes dropped: what follows is a dense layer on C features.
    """
    return x.mean(axis=(2, 3))


def global_avgpool_backward(grad_out: np.ndarray, input_hw: IntPair) -> np.ndarray:
    """dL/dx[n, c, i, j] = dL/dy[n, c] / (H·W): every input of a map shares its mean's gradient equally.

    grad_out (N, C) -> (N, C, H, W) for ``input_hw`` = (H, W).
    """
    n, c = grad_out.shape
    share = grad_out / (input_hw[0] * input_hw[1])
    return np.broadcast_to(share[:, :, None, None], (n, c, *input_hw)).copy()
