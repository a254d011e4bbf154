"""Elementwise activation layers: ReLU, LeakyReLU, Sigmoid, Tanh. Any shape in, same shape out."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnn_cli.layers.base import Layer
from cnn_cli.layers.options import Option
from cnn_cli.nn import activations as act


class _Elementwise(Layer):
    """An activation: output shape = input shape, no parameters, one cached array."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._cache: np.ndarray | None = None

    @classmethod
    def build(cls, name, opts, input_shape, rng, dtype, default_init, where):
        layer = cls(name, **opts)
        layer.input_shape = layer.output_shape = input_shape
        return layer

    def _checked_cache(self) -> np.ndarray:
        if self._cache is None:
            raise RuntimeError(f"{self.name}: backward called before forward")
        return self._cache


class ReLU(_Elementwise):
    """y = max(0, x); dL/dx = dL/dy where x > 0 (notes 000 §2.8)."""

    type_name = "relu"

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Any shape (N, ...) in, the same shape out."""
        if not self.keep_cache:  # evaluation: no backward will need the mask
            self._cache = None
            return act.relu(x)
        out, self._cache = act.relu_forward(x)
        return out

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """dL/dy (N, ...) -> dL/dx of the same shape."""
        return act.relu_backward(grad_out, self._checked_cache())


class LeakyReLU(_Elementwise):
    """y = x for x > 0, negative_slope · x otherwise."""

    type_name = "leaky_relu"
    options = {"negative_slope": Option("float", 0.01, minimum=0.0)}

    def __init__(self, name: str, negative_slope: float = 0.01) -> None:
        super().__init__(name)
        self.negative_slope = negative_slope

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Any shape (N, ...) in, the same shape out."""
        out, self._cache = act.leaky_relu_forward(x, self.negative_slope)
        return out

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """dL/dy (N, ...) -> dL/dx of the same shape."""
        return act.leaky_relu_backward(grad_out, self._checked_cache(), self.negative_slope)

    def config(self) -> dict[str, Any]:
        return {"negative_slope": self.negative_slope}


class Sigmoid(_Elementwise):
    """y = σ(x); dL/dx = dL/dy · y(1 − y) (notes 001, 003, 004)."""

    type_name = "sigmoid"

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Any shape (N, ...) in, the same shape out."""
        out, self._cache = act.sigmoid_forward(x)
        return out

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """dL/dy (N, ...) -> dL/dx of the same shape."""
        return act.sigmoid_backward(grad_out, self._checked_cache())


class Tanh(_Elementwise):
    """y = tanh(x); dL/dx = dL/dy · (1 − y²)."""

    type_name = "tanh"

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Any shape (N, ...) in, the same shape out."""
        out, self._cache = act.tanh_forward(x)
        return out

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """dL/dy (N, ...) -> dL/dx of the same shape."""
        return act.tanh_backward(grad_out, self._checked_cache())
