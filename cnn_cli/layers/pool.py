"""MaxPool2D and AvgPool2D layers (notes 000 §2.7, notes 001)."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnn_cli.errors import ModelBuildError
from cnn_cli.layers.base import Layer
from cnn_cli.layers.conv import require_image_input
from cnn_cli.layers.options import Option
from cnn_cli.nn.pool import (
    PoolCache,
    avgpool2d_backward,
    avgpool2d_forward,
    maxpool2d_backward,
    maxpool2d_forward,
)
from cnn_cli.nn.shapes import conv_output_size, pair


class _Pool2D(Layer):
    """Shared geometry of the pooling layers: kernel, stride (default = kernel), padding."""

    options = {
        "kernel_size": Option("pair", required=True, minimum=1),
        "stride": Option("pair", None, minimum=1, nullable=True),
        "padding": Option("pair", 0, minimum=0),
    }
    _forward = staticmethod(maxpool2d_forward)
    _backward = staticmethod(maxpool2d_backward)

    def __init__(self, name: str, kernel_size, stride=None, padding=0) -> None:
        super().__init__(name)
        self.kernel_size = pair(kernel_size)
        self.stride = pair(stride) if stride is not None else self.kernel_size
        self.padding = pair(padding)
        self._cache: PoolCache | None = None

    @classmethod
    def build(cls, name, opts, input_shape, rng, dtype, default_init, where):
        c, h, w = require_image_input(input_shape, where)
        layer = cls(name, opts["kernel_size"], opts["stride"], opts["padding"])
        k_h, k_w = layer.kernel_size
        p_h, p_w = layer.padding
        if p_h > k_h // 2 or p_w > k_w // 2:
            raise ModelBuildError(f"{where}: padding {p_h}x{p_w} must be at most half the kernel {k_h}x{k_w}")
        out_h = conv_output_size(h, k_h, layer.stride[0], p_h)
        out_w = conv_output_size(w, k_w, layer.stride[1], p_w)
        if out_h < 1 or out_w < 1:
            raise ModelBuildError(f"{where}: kernel {k_h}x{k_w} is larger than its padded input {h + 2 * p_h}x{w + 2 * p_w}")
        layer.input_shape, layer.output_shape = input_shape, (c, out_h, out_w)
        return layer

    def forward(self, x: np.ndarray) -> np.ndarray:
        """(N, C, H, W) -> (N, C, H_out, W_out)."""
        out, self._cache = type(self)._forward(x, self.kernel_size, self.stride, self.padding)
        return out

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """(N, C, H_out, W_out) -> (N, C, H, W)."""
        if self._cache is None:
            raise RuntimeError(f"{self.name}: backward called before forward")
        return type(self)._backward(grad_out, self._cache)

    def config(self) -> dict[str, Any]:
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride), "padding": list(self.padding)}


class MaxPool2D(_Pool2D):
    """Max over each window; the gradient goes to the (first) maximum only."""

    type_name = "maxpool2d"


class AvgPool2D(_Pool2D):
    """Mean over each window (zero padding counted); the gradient is shared equally."""

    type_name = "avgpool2d"
    _forward = staticmethod(avgpool2d_forward)
    _backward = staticmethod(avgpool2d_backward)
