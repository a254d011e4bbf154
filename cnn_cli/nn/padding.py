"""Explicit zero padding (notes 000 §2.6, ``cnn docs padding``).

Forward places the input in the middle of a zero border. Each output pixel is
either a copy of one input pixel (dy/dx = 1 when the positions match) or a
constant 0, so the backward is the interior of the upstream gradient.
"""

from __future__ import annotations

import numpy as np

from cnn_cli.nn.shapes import IntPair


def pad2d_forward(x: np.ndarray, padding: IntPair) -> np.ndarray:
    """(N, C, H, W) -> (N, C, H + 2pH, W + 2pW), zeros around the border."""
    pad_h, pad_w = padding
    return np.pad(x, ((0, 0), (0, 0), (pad_h, pad_h), (pad_w, pad_w)))


def pad2d_backward(grad_out: np.ndarray, padding: IntPair) -> np.ndarray:
    """(N, C, H + 2pH, W + 2pW) -> (N, C, H, W): dL/dx is dL/dy on the interior."""
    pad_h, pad_w = padding
    h = grad_out.shape[2] - 2 * pad_h
    w = grad_out.shape[3] - 2 * pad_w
    return grad_out[:, :, pad_h : pad_h + h, pad_w : pad_w + w]
