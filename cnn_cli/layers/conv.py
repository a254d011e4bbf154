"""Conv2D and explicit Padding layers (notes 000 §2.1–2.6)."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnn_cli.errors import ModelBuildError
from cnn_cli.init import INIT_SCHEMES, init_weight
from cnn_cli.layers.base import Layer, Shape
from cnn_cli.layers.options import Option
from cnn_cli.nn.conv import ConvCache, conv2d_backward, conv2d_forward
from cnn_cli.nn.padding import pad2d_backward, pad2d_forward
from cnn_cli.nn.shapes import conv_output_size, pair


def require_image_input(input_shape: Shape, where: str) -> tuple[int, int, int]:
    """The (C, H, W) of an input, or an error naming the layer when it is not an image."""
    if len(input_shape) != 3:
        raise ModelBuildError(f"{where}: needs (C, H, W) input, got shape {input_shape}")
    return input_shape  # type: ignore[return-value]


class Conv2D(Layer):
    """2-D cross-correlation layer, PyTorch's layout and semantics.

    forward: (N, C_in, H, W) -> (N, C_out, H_out, W_out)
    params: ``weight`` (C_out, C_in/groups, kH, kW), ``bias`` (C_out,) unless bias is off.
    """

    type_name = "conv2d"
    options = {
        "out_channels": Option("int", required=True, minimum=1),
        "kernel_size": Option("pair", required=True, minimum=1),
        "stride": Option("pair", 1, minimum=1),
        "padding": Option("pair", 0, minimum=0),
        "dilation": Option("pair", 1, minimum=1),
        "groups": Option("int", 1, minimum=1),
        "bias": Option("bool", True),
        "init": Option("str", None, choices=INIT_SCHEMES, nullable=True),
    }

    def __init__(
        self,
        name: str,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        rng: np.random.Generator | None = None,
        dtype: np.dtype | type = np.float32,
        init: str = "kaiming",
    ) -> None:
        super().__init__(name)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = pair(kernel_size)
        self.stride = pair(stride)
        self.padding = pair(padding)
        self.dilation = pair(dilation)
        self.groups = groups
        self.init = init
        self.need_input_grad = True
        rng = rng if rng is not None else np.random.default_rng(0)
        k_h, k_w = self.kernel_size
        shape = (out_channels, in_channels // groups, k_h, k_w)
        fan_in = shape[1] * k_h * k_w
        fan_out = out_channels * k_h * k_w  # as PyTorch counts it
        self.params["weight"] = init_weight(init, shape, fan_in, fan_out, rng, np.dtype(dtype))
        if bias:
            self.params["bias"] = np.zeros(out_channels, dtype=dtype)
        self._cache: ConvCache | None = None

    @classmethod
    def build(cls, name: str, opts: dict[str, Any], input_shape: Shape, rng, dtype, default_init: str, where: str):
        """Infer in_channels from ``input_shape`` and check that the geometry works."""
        c, h, w = require_image_input(input_shape, where)
        groups = opts["groups"]
        if c % groups or opts["out_channels"] % groups:
            raise ModelBuildError(f"{where}: groups={groups} must divide in_channels={c} and out_channels={opts['out_channels']}")
        k_h, k_w = pair(opts["kernel_size"])
        p_h, p_w = pair(opts["padding"])
        d_h, d_w = pair(opts["dilation"])
        s_h, s_w = pair(opts["stride"])
        out_h = conv_output_size(h, k_h, s_h, p_h, d_h)
        out_w = conv_output_size(w, k_w, s_w, p_w, d_w)
        if out_h < 1 or out_w < 1:
            raise ModelBuildError(
                f"{where}: kernel {k_h}x{k_w} (dilation {d_h}x{d_w}) is larger than its padded input "
                f"{h + 2 * p_h}x{w + 2 * p_w} (input {c}x{h}x{w}, padding {p_h}x{p_w})"
            )
        layer = cls(
            name,
            c,
            opts["out_channels"],
            (k_h, k_w),
            (s_h, s_w),
            (p_h, p_w),
            (d_h, d_w),
            groups,
            opts["bias"],
            rng,
            dtype,
            opts["init"] or default_init,
        )
        layer.input_shape, layer.output_shape = input_shape, (opts["out_channels"], out_h, out_w)
        return layer

    def forward(self, x: np.ndarray) -> np.ndarray:
        """(N, C_in, H, W) -> (N, C_out, H_out, W_out)."""
        out, cache = conv2d_forward(
            x, self.params["weight"], self.params.get("bias"), self.stride, self.padding, self.dilation, self.groups
        )
        self._cache = cache if self.keep_cache else None  # the im2col matrix is the largest array of a step
        return out

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """(N, C_out, H_out, W_out) -> (N, C_in, H, W); fills grads['weight'] and grads['bias']."""
        if self._cache is None:
            raise RuntimeError(f"{self.name}: backward called before forward")
        grad_x, grad_w, grad_b = conv2d_backward(grad_out, self._cache, need_input_grad)
        self.grads["weight"] = grad_w
        if grad_b is not None:
            self.grads["bias"] = grad_b
        return grad_x

    def config(self) -> dict[str, Any]:
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": list(self.padding),
            "dilation": list(self.dilation),
            "groups": self.groups,
            "bias": "bias" in self.params,
        }

    def flops(self) -> int:
        out_pixels = int(np.prod(self.output_shape))
        return 2 * out_pixels * self.params["weight"][0].size


class Padding(Layer):
    """Explicit zero padding of the spatial axes (notes 000 §2.6).

    forward: (N, C, H, W) -> (N, C, H + 2pH, W + 2pW); no parameters.
    """

    type_name = "padding"
    options = {"padding": Option("pair", required=True, minimum=0)}

    def __init__(self, name: str, padding: int | tuple[int, int]) -> None:
        super().__init__(name)
        self.padding = pair(padding)

    @classmethod
    def build(cls, name, opts, input_shape, rng, dtype, default_init, where):
        c, h, w = require_image_input(input_shape, where)
        layer = cls(name, opts["padding"])
        p_h, p_w = layer.padding
        layer.input_shape, layer.output_shape = input_shape, (c, h + 2 * p_h, w + 2 * p_w)
        return layer

    def forward(self, x: np.ndarray) -> np.ndarray:
        """(N, C, H, W) -> (N, C, H + 2pH, W + 2pW)."""
        return pad2d_forward(x, self.padding)

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """(N, C, H + 2pH, W + 2pW) -> (N, C, H, W)."""
        return pad2d_backward(grad_out, self.padding)

    def config(self) -> dict[str, Any]:
        return {"padding": list(self.padding)}
