"""Sliding-window views shared by convolution and pooling.

Both ops work on a channels-last view ``(N, H, W, C)`` of the activations: the
public layout stays PyTorch's ``(N, C, H, W)``, but channels-last memory lets one
window ``(kH, kW, C)`` be copied as contiguous runs of channels, which is what
im2col spends its time on.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from cnn_cli.nn.threads import for_each_slice


def pad_channels_last(x_nhwc: np.ndarray, pad_h: int, pad_w: int, value: float = 0.0) -> np.ndarray:
    """Pad the two spatial axes of ``(N, H, W, C)`` with ``value``.

    Returns a new C-contiguous ``(N, H + 2 pad_h, W + 2 pad_w, C)`` array.
    """
    n, h, w, c = x_nhwc.shape
    padded = np.empty((n, h + 2 * pad_h, w + 2 * pad_w, c), dtype=x_nhwc.dtype)

    def fill(batch: slice) -> None:
        part = padded[batch]
        part[:, :pad_h] = value
        part[:, pad_h + h :] = value
        part[:, pad_h : pad_h + h, :pad_w] = value
        part[:, pad_h : pad_h + h, pad_w + w :] = value
        part[:, pad_h : pad_h + h, pad_w : pad_w + w, :] = x_nhwc[batch]

    for_each_slice(fill, n, padded.size)
    return padded


def sliding_windows(
    x_nhwc: np.ndarray,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    out_hw: tuple[int, int],
) -> np.ndarray:
    """Read-only view ``(N, H_out, W_out, kH, kW, C)`` of every window of ``x_nhwc``.

    ``view[n, i, j, a, b, c] == x_nhwc[n, i*sH + a*dH, j*sW + b*dW, c]``: the input
    pixel that kernel tap ``(a, b)`` sees at output position ``(i, j)``. No copy.
    """
    n, _, _, c = x_nhwc.shape
    s_n, s_h, s_w, s_c = x_nhwc.strides
    return as_strided(
        x_nhwc,
        shape=(n, out_hw[0], out_hw[1], kernel[0], kernel[1], c),
        strides=(s_n, s_h * stride[0], s_w * stride[1], s_h * dilation[0], s_w * dilation[1], s_c),
        writeable=False,
    )


def tap_slice(tap: int, dilation: int, stride: int, out_size: int) -> slice:
    """Input positions that kernel tap ``tap`` touches along one axis, as a slice.

    Used by every backward that scatters a window gradient back to the input
    (col2im): one slice-add per kernel tap instead of a Python loop per pixel.
    """
    start = tap * dilation
    return slice(start, start + stride * (out_size - 1) + 1, stride)
