"""Flatten, Dense and Dropout layers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Self

import numpy as np

from cnn_cli.layers.base import BuildContext, Layer, LayerSpec, Shape, Size, elements
from cnn_cli.layers.conv import InitName
from cnn_cli.nn.shapes import ReceptiveField
from cnn_cli.schema.markers import Range


@dataclass(frozen=True, kw_only=True)
class FlattenSpec(LayerSpec):
    """A ``flatten`` layer (no options)."""

    type: str = "flatten"

    def output_shape(self, input_shape: Shape) -> Shape:
        return (elements(input_shape), 1, 1)


@dataclass(frozen=True, kw_only=True)
class DenseSpec(LayerSpec):
    """Options of a ``dense`` layer; in_features is the previous layer's output size."""

    type: str = "dense"
    name_prefix = "fc"
    out_features: Size
    bias: bool = True
    init: InitName | None = None  # None: the model's default init

    def output_shape(self, input_shape: Shape) -> Shape:
        return (self.out_features,)

    def num_params(self, input_shape: Shape) -> int:
        return self.out_features * elements(input_shape) + (self.out_features if self.bias else 0)


@dataclass(frozen=True, kw_only=True)
class DropoutSpec(LayerSpec):
    """Options of a ``dropout`` layer."""

    type: str = "dropout"
    p: Annotated[float, Range(minimum=0.0, below=1.0)] = 0.5


class Flatten(Layer[FlattenSpec]):
    """(N, C, H, W) -> (N, C·H·W, 1, 1), in PyTorch's (C, H, W) order.

    The 1×1 spatial shape lets 1×1 convolutions act as fully connected layers,
    as notes 000's model does after its Flatten (its slide lists a Conv2D on
    64*10*10 inputs with kernel 1; our mnist.yaml uses 6400 -> 128 -> 10). Notes 003's reshape layer:
    the backward reshapes the gradient back to the input's shape (``cnn docs flatten``).
    """

    type_name = "flatten"
    spec_class = FlattenSpec

    @classmethod
    def build(cls, spec: FlattenSpec, input_shape: Shape, ctx: BuildContext) -> Self:
        return cls(spec.name or cls.type_name)._placed(input_shape, spec)

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._input_shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """(N, C, H, W) -> (N, C·H·W, 1, 1)."""
        self._input_shape = x.shape if self.keep_cache else None
        return x.reshape(x.shape[0], -1, 1, 1)

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """(N, C·H·W, 1, 1) -> (N, C, H, W)."""
        if self._input_shape is None:
            raise self._missing_cache()
        return grad_out.reshape(self._input_shape)

    def receptive_field(self, field: ReceptiveField) -> ReceptiveField:
        """Each output value is one input value; the (H, W) map it came from is kept for the layers that mix it."""
        return field.flattened((self.input_shape[1], self.input_shape[2]) if len(self.input_shape) == 3 else (1, 1))


class Dense(Layer[DenseSpec]):
    """Fully connected layer: y = x Wᵀ + b, PyTorch's ``nn.Linear`` layout.

    forward: (N, ...) flattened to (N, F_in) -> (N, F_out).
    params: ``weight`` (F_out, F_in), ``bias`` (F_out,).
    backward (notes 004, ``cnn docs dense``): dL/dW = (dL/dy)ᵀ x, i.e. (A2 − Y) Fᵀ for
    notes 004's output layer; dL/db = Σ_n dL/dy; dL/dx = dL/dy W.
    """

    type_name = "dense"
    spec_class = DenseSpec

    def __init__(
        self,
        name: str,
        in_features: int,
        out_features: int,
        bias: bool = True,
        rng: np.random.Generator | None = None,
        dtype: np.dtype | type = np.float32,
        init: str = "kaiming",
    ) -> None:
        super().__init__(name)
        self.in_features, self.out_features = in_features, out_features
        self._init_weights(init, (out_features, in_features), in_features, out_features, bias, rng, dtype)
        self._input: np.ndarray | None = None
        self._input_shape: tuple[int, ...] = ()

    @classmethod
    def build(cls, spec: DenseSpec, input_shape: Shape, ctx: BuildContext) -> Self:
        """in_features = the flattened size of ``input_shape``."""
        layer = cls(spec.name or cls.type_name, elements(input_shape), spec.out_features, **ctx.weight_options(spec))
        return layer._placed(input_shape, spec)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """(N, ...) -> (N, F_out)."""
        flat = x.reshape(x.shape[0], -1)
        self._input_shape = x.shape
        self._input = flat if self.keep_cache else None
        out = flat @ self.params["weight"].T
        if "bias" in self.params:
            out += self.params["bias"]
        return out

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """(N, F_out) -> input's shape; fills grads['weight'] (F_out, F_in) and grads['bias']."""
        if self._input is None:
            raise self._missing_cache()
        self.grads["weight"] = grad_out.T @ self._input
        if "bias" in self.params:
            self.grads["bias"] = grad_out.sum(axis=0)
        if not need_input_grad:
            return None
        return (grad_out @ self.params["weight"]).reshape(self._input_shape)

    def config(self) -> dict[str, Any]:
        return {"in_features": self.in_features, "out_features": self.out_features, "bias": "bias" in self.params}

    def flops(self) -> int:
        return 2 * self.params["weight"].size

    def receptive_field(self, field: ReceptiveField) -> ReceptiveField:
        """Every output sees every input value, so the whole (H, W) map of its input (or the map a flatten kept)."""
        if field.grid is not None:
            return field.across(field.grid)
        return field.across((self.input_shape[1], self.input_shape[2]) if len(self.input_shape) == 3 else (1, 1))


class Dropout(Layer[DropoutSpec]):
    """Inverted dropout: in training, zero each value with probability p and scale the rest by 1/(1 − p).

    In evaluation it is the identity, so no rescaling is needed at test time.
    The mask comes from the layer's own seeded generator (saved in checkpoints).
    """

    type_name = "dropout"
    spec_class = DropoutSpec

    def __init__(self, name: str, p: float = 0.5, rng: np.random.Generator | None = None) -> None:
        super().__init__(name)
        self.p = p
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self._scale_mask: np.ndarray | None = None
        self._identity: bool | None = None  # the latest forward passed x through unchanged (None: no forward kept)

    @classmethod
    def build(cls, spec: DropoutSpec, input_shape: Shape, ctx: BuildContext) -> Self:
        """The mask generator is seeded from the model's generator, so the same seed gives the same masks."""
        return cls(spec.name or cls.type_name, spec.p, np.random.default_rng(ctx.rng.integers(2**63)))._placed(input_shape, spec)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Any shape (N, ...) in, the same shape out; a fresh mask each training call."""
        self._scale_mask = None
        if not self.training or self.p == 0.0:
            self._identity = True
            return x
        keep = self.rng.random(x.shape) >= self.p
        scale_mask = keep.astype(x.dtype) / x.dtype.type(1.0 - self.p)
        if self.keep_cache:
            self._identity, self._scale_mask = False, scale_mask
        else:
            self._identity = None
        return x * scale_mask

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """dL/dx = dL/dy · mask / (1 − p) in training, dL/dy in evaluation."""
        if self._identity:
            return grad_out
        if self._scale_mask is None:
            raise self._missing_cache()
        return grad_out * self._scale_mask

    def config(self) -> dict[str, Any]:
        return {"p": self.p}
