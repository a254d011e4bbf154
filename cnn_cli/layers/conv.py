"""Conv2D and explicit Padding layers (notes 000 §2.1–2.6; ``cnn docs conv2d``, ``cnn docs padding``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Self

import numpy as np

from cnn_cli.layers.base import BuildContext, Layer, LayerSpec, NonNegativePair, PositivePair, Shape, Size, elements
from cnn_cli.nn.conv import ConvCache, conv2d_backward, conv2d_forward
from cnn_cli.nn.init import INIT_SCHEMES
from cnn_cli.nn.padding import pad2d_backward, pad2d_forward
from cnn_cli.nn.shapes import GeometryError, ReceptiveField, image_shape, pair, window_output_hw
from cnn_cli.schema.markers import OneOf

InitName = Annotated[str, OneOf(INIT_SCHEMES)]


@dataclass(frozen=True, kw_only=True)
class Conv2DSpec(LayerSpec):
    """Options of a ``conv2d`` layer; in_channels comes from the previous layer."""

    type: str = "conv2d"
    name_prefix = "conv"
    out_channels: Size
    kernel_size: PositivePair
    stride: PositivePair = (1, 1)
    padding: NonNegativePair = (0, 0)
    dilation: PositivePair = (1, 1)
    groups: Size = 1
    bias: bool = True
    init: InitName | None = None  # None: the model's default init

    def output_shape(self, input_shape: Shape) -> Shape:
        c, h, w = image_shape(input_shape)
        if c % self.groups or self.out_channels % self.groups:
            raise GeometryError(f"groups={self.groups} must divide in_channels={c} and out_channels={self.out_channels}")
        try:
            out_h, out_w = window_output_hw((h, w), self.kernel_size, self.stride, self.padding, self.dilation)
        except GeometryError as exc:
            raise GeometryError(f"{exc} (input {c}x{h}x{w}, padding {self.padding[0]}x{self.padding[1]})") from None
        return (self.out_channels, out_h, out_w)

    def num_params(self, input_shape: Shape) -> int:
        per_filter = input_shape[0] // self.groups * self.kernel_size[0] * self.kernel_size[1]
        return self.out_channels * per_filter + (self.out_channels if self.bias else 0)

    def workspace(self, input_shape: Shape) -> int:
        _, out_h, out_w = self.output_shape(input_shape)
        return out_h * out_w * self.kernel_size[0] * self.kernel_size[1] * input_shape[0]  # im2col rows x columns


class Conv2D(Layer[Conv2DSpec]):
    """2-D cross-correlation layer, PyTorch's layout and semantics.

    forward: (N, C_in, H, W) -> (N, C_out, H_out, W_out)
    params: ``weight`` (C_out, C_in/groups, kH, kW), ``bias`` (C_out,) unless bias is off.
    """

    type_name = "conv2d"
    spec_class = Conv2DSpec

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
        k_h, k_w = self.kernel_size
        shape = (out_channels, in_channels // groups, k_h, k_w)
        fan_out = out_channels * k_h * k_w  # as PyTorch counts it
        self._init_weights(init, shape, shape[1] * k_h * k_w, fan_out, bias, rng, dtype)
        self._cache: ConvCache | None = None

    @classmethod
    def build(cls, spec: Conv2DSpec, input_shape: Shape, ctx: BuildContext) -> Self:
        """in_channels from ``input_shape``; the spec's own or the model's default init."""
        layer = cls(
            spec.name or cls.type_name,
            input_shape[0],
            spec.out_channels,
            spec.kernel_size,
            spec.stride,
            spec.padding,
            spec.dilation,
            spec.groups,
            **ctx.weight_options(spec),
        )
        return layer._placed(input_shape, spec)

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
            raise self._missing_cache()
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
        return 2 * elements(self.output_shape) * self.params["weight"][0].size

    def receptive_field(self, field: ReceptiveField) -> ReceptiveField:
        """r_out = r_in + (k - 1)·d·j_in, j_out = j_in·s. After a flatten the channels are the map's positions,
        so a unit sees all of them (for groups > 1 that is an upper bound: a group sees a block of them)."""
        if field.grid is not None:
            return field.across(field.grid)
        return field.through_window(self.kernel_size, self.stride, self.dilation)


@dataclass(frozen=True, kw_only=True)
class PaddingSpec(LayerSpec):
    """Options of an explicit ``padding`` layer."""

    type: str = "padding"
    padding: NonNegativePair

    def output_shape(self, input_shape: Shape) -> Shape:
        c, h, w = image_shape(input_shape)
        return (c, h + 2 * self.padding[0], w + 2 * self.padding[1])


class Padding(Layer[PaddingSpec]):
    """Explicit zero padding of the spatial axes (notes 000 §2.6, ``cnn docs padding``).

    forward: (N, C, H, W) -> (N, C, H + 2pH, W + 2pW); no parameters.
    """

    type_name = "padding"
    spec_class = PaddingSpec

    def __init__(self, name: str, padding: int | tuple[int, int]) -> None:
        super().__init__(name)
        self.padding = pair(padding)

    @classmethod
    def build(cls, spec: PaddingSpec, input_shape: Shape, ctx: BuildContext) -> Self:
        return cls(spec.name or cls.type_name, spec.padding)._placed(input_shape, spec)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """(N, C, H, W) -> (N, C, H + 2pH, W + 2pW)."""
        return pad2d_forward(x, self.padding)

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """(N, C, H + 2pH, W + 2pW) -> (N, C, H, W)."""
        return pad2d_backward(grad_out, self.padding)

    def config(self) -> dict[str, Any]:
        return {"padding": list(self.padding)}
