"""Elementwise activation layers: ReLU, LeakyReLU, Sigmoid, Tanh. Any shape in, same shape out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Self

import numpy as np

from cnn_cli.layers.base import BuildContext, Layer, LayerSpec, Shape, SpecT
from cnn_cli.nn import activations as act
from cnn_cli.schema.markers import Range


@dataclass(frozen=True, kw_only=True)
class ReLUSpec(LayerSpec):
    """A ``relu`` layer (no options)."""

    type: str = "relu"


@dataclass(frozen=True, kw_only=True)
class LeakyReLUSpec(LayerSpec):
    """Options of a ``leaky_relu`` layer."""

    type: str = "leaky_relu"
    negative_slope: Annotated[float, Range(minimum=0.0)] = 0.01


@dataclass(frozen=True, kw_only=True)
class SigmoidSpec(LayerSpec):
    """A ``sigmoid`` layer (no options)."""

    type: str = "sigmoid"


@dataclass(frozen=True, kw_only=True)
class TanhSpec(LayerSpec):
    """A ``tanh`` layer (no options)."""

    type: str = "tanh"


class _Elementwise(Layer[SpecT]):
    """An activation: output shape = input shape, no parameters, one cached array (kept only if ``keep_cache``)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._cache: np.ndarray | None = None

    @classmethod
    def build(cls, spec: SpecT, input_shape: Shape, ctx: BuildContext) -> Self:
        return cls(spec.name or cls.type_name)._placed(input_shape, spec)

    def _keep(self, out: np.ndarray, cache: np.ndarray) -> np.ndarray:
        self._cache = cache if self.keep_cache else None
        return out

    def _checked_cache(self) -> np.ndarray:
        if self._cache is None:
            raise self._missing_cache()
        return self._cache


class ReLU(_Elementwise[ReLUSpec]):
    """y = max(0, x); dL/dx = dL/dy where x > 0 (notes 000 §2.8, ``cnn docs relu``)."""

    type_name = "relu"
    spec_class = ReLUSpec

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Any shape (N, ...) in, the same shape out."""
        if not self.keep_cache:  # evaluation: no backward will need the mask, so skip computing it
            self._cache = None
            return act.relu(x)
        return self._keep(*act.relu_forward(x))

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """dL/dy (N, ...) -> dL/dx of the same shape."""
        return act.relu_backward(grad_out, self._checked_cache())


class LeakyReLU(_Elementwise[LeakyReLUSpec]):
    """y = x for x > 0, negative_slope · x otherwise."""

    type_name = "leaky_relu"
    spec_class = LeakyReLUSpec

    def __init__(self, name: str, negative_slope: float = 0.01) -> None:
        super().__init__(name)
        self.negative_slope = negative_slope

    @classmethod
    def build(cls, spec: LeakyReLUSpec, input_shape: Shape, ctx: BuildContext) -> Self:
        return cls(spec.name or cls.type_name, spec.negative_slope)._placed(input_shape, spec)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Any shape (N, ...) in, the same shape out."""
        return self._keep(*act.leaky_relu_forward(x, self.negative_slope))

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """dL/dy (N, ...) -> dL/dx of the same shape."""
        return act.leaky_relu_backward(grad_out, self._checked_cache(), self.negative_slope)

    def config(self) -> dict[str, Any]:
        return {"negative_slope": self.negative_slope}


class Sigmoid(_Elementwise[SigmoidSpec]):
    """y = σ(x); dL/dx = dL/dy · y(1 − y) (notes 001, 003, 004; ``cnn docs sigmoid``)."""

    type_name = "sigmoid"
    spec_class = SigmoidSpec

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Any shape (N, ...) in, the same shape out."""
        return self._keep(*act.sigmoid_forward(x))

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """dL/dy (N, ...) -> dL/dx of the same shape."""
        return act.sigmoid_backward(grad_out, self._checked_cache())


class Tanh(_Elementwise[TanhSpec]):
    """y = tanh(x); dL/dx = dL/dy · (1 − tanh²(x))."""

    type_name = "tanh"
    spec_class = TanhSpec

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Any shape (N, ...) in, the same shape out."""
        return self._keep(*act.tanh_forward(x))

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """dL/dy (N, ...) -> dL/dx of the same shape."""
        return act.tanh_backward(grad_out, self._checked_cache())
