"""MaxPool2D, AvgPool2D and GlobalAvgPool layers (notes 000 §2.7, notes 001; ``cnn docs maxpool2d``, ``cnn docs avgpool2d``,
``cnn docs global_avg_pool``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

import numpy as np

from cnn_cli.layers.base import BuildContext, Layer, LayerSpec, NonNegativePair, PositivePair, Shape, elements
from cnn_cli.nn.pool import (
    PoolCache,
    avgpool2d_backward,
    avgpool2d_forward,
    global_avgpool_backward,
    global_avgpool_forward,
    maxpool2d_backward,
    maxpool2d_forward,
)
from cnn_cli.nn.shapes import GeometryError, ReceptiveField, image_shape, pair, window_output_hw


@dataclass(frozen=True, kw_only=True)
class Pool2DSpec(LayerSpec):
    """Options of a pooling layer: kernel, stride (default = kernel), padding (at most half the kernel)."""

    kernel_size: PositivePair
    stride: PositivePair | None = None
    padding: NonNegativePair = (0, 0)

    def output_shape(self, input_shape: Shape) -> Shape:
        c, h, w = image_shape(input_shape)
        (k_h, k_w), (p_h, p_w) = self.kernel_size, self.padding
        if p_h > k_h // 2 or p_w > k_w // 2:
            raise GeometryError(f"padding {p_h}x{p_w} must be at most half the kernel {k_h}x{k_w}")
        return (c, *window_output_hw((h, w), self.kernel_size, self.stride or self.kernel_size, self.padding))


@dataclass(frozen=True, kw_only=True)
class MaxPool2DSpec(Pool2DSpec):
    """Options of a ``maxpool2d`` layer."""

    type: str = "maxpool2d"


@dataclass(frozen=True, kw_only=True)
class GlobalAvgPoolSpec(LayerSpec):
    """A ``global_avg_pool`` layer (no options): (C, H, W) -> (C,), the features a dense layer takes."""

    type: str = "global_avg_pool"
    name_prefix = "gap"

    def output_shape(self, input_shape: Shape) -> Shape:
        c, _, _ = image_shape(input_shape)
        return (c,)


@dataclass(frozen=True, kw_only=True)
class AvgPool2DSpec(Pool2DSpec):
    """Options of an ``avgpool2d`` layer."""

    type: str = "avgpool2d"


class _Pool2D(Layer[Pool2DSpec]):
    """Shared geometry of the pooling layers: kernel, stride (default = kernel), padding."""

    _forward = staticmethod(maxpool2d_forward)
    _backward = staticmethod(maxpool2d_backward)

    def __init__(
        self, name: str, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] | None = None, padding: int | tuple[int, int] = 0
    ) -> None:
        super().__init__(name)
        self.kernel_size = pair(kernel_size)
        self.stride = pair(stride) if stride is not None else self.kernel_size
        self.padding = pair(padding)
        self._cache: PoolCache | None = None

    @classmethod
    def build(cls, spec: Pool2DSpec, input_shape: Shape, ctx: BuildContext) -> Self:
        return cls(spec.name or cls.type_name, spec.kernel_size, spec.stride, spec.padding)._placed(input_shape, spec)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """(N, C, H, W) -> (N, C, H_out, W_out)."""
        out, cache = type(self)._forward(x, self.kernel_size, self.stride, self.padding)
        self._cache = cache if self.keep_cache else None
        return out

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """(N, C, H_out, W_out) -> (N, C, H, W)."""
        if self._cache is None:
            raise self._missing_cache()
        return type(self)._backward(grad_out, self._cache)

    def config(self) -> dict[str, Any]:
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride), "padding": list(self.padding)}

    def receptive_field(self, field: ReceptiveField) -> ReceptiveField:
        """r_out = r_in + (k - 1)·j_in, j_out = j_in·s; pooling never mixes channels, so a flattened map stays as it is."""
        return field if field.flat else field.through_window(self.kernel_size, self.stride)


class MaxPool2D(_Pool2D):
    """Max over each window; the gradient goes to the (first) maximum only."""

    type_name = "maxpool2d"
    spec_class = MaxPool2DSpec


class AvgPool2D(_Pool2D):
    """Mean over each window (zero padding counted); the gradient is shared equally."""

    type_name = "avgpool2d"
    spec_class = AvgPool2DSpec
    _forward = staticmethod(avgpool2d_forward)
    _backward = staticmethod(avgpool2d_backward)


class GlobalAvgPool(Layer[GlobalAvgPoolSpec]):
    """The mean of each feature map: (N, C, H, W) -> (N, C); each input gets dy/(H·W) back.

    It replaces the flatten-then-dense head: the dense layer after it takes C features,
    not C·H·W, whatever the image size. Like a dense layer's output, the result has no
    spatial axes, so a dense or batchnorm1d layer follows, not a convolution.
    """

    type_name = "global_avg_pool"
    spec_class = GlobalAvgPoolSpec

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._input_hw: tuple[int, int] | None = None

    @classmethod
    def build(cls, spec: GlobalAvgPoolSpec, input_shape: Shape, ctx: BuildContext) -> Self:
        return cls(spec.name or cls.type_name)._placed(input_shape, spec)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """(N, C, H, W) -> (N, C)."""
        self._input_hw = (x.shape[2], x.shape[3]) if self.keep_cache else None
        return global_avgpool_forward(x)

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """(N, C) -> (N, C, H, W)."""
        if self._input_hw is None:
            raise self._missing_cache()
        return global_avgpool_backward(grad_out, self._input_hw)

    def flops(self) -> int:
        """One addition per input value."""
        return elements(self.input_shape)

    def receptive_field(self, field: ReceptiveField) -> ReceptiveField:
        """Each output sees its whole map; no spatial layout is left after it."""
        if field.grid is not None:
            return field.across(field.grid)
        return field.across((self.input_shape[1], self.input_shape[2]))
