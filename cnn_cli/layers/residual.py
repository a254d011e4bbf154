"""The residual block: ``out = F(x) + S(x)``, F its inner layers, S the skip (``cnn docs residual``).

The skip is the identity when F keeps the shape. When F changes it (more channels, a
stride), the config must say ``projection: true``: the skip is then a 1x1 convolution
without bias, whose stride makes the map sizes meet. The projection is declared, never
added behind the user's back, so that every parameter a model trains is visible in its
config; a block whose shapes differ without it is refused with that remedy in the message.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Any, Self

import numpy as np

from cnn_cli.layers.base import BuildContext, Layer, LayerSpec, Shape, elements
from cnn_cli.layers.conv import Conv2D, Conv2DSpec
from cnn_cli.layers.registry import LAYER_SPECS, LAYER_TYPES
from cnn_cli.nn import residual as nn_residual
from cnn_cli.nn.shapes import GeometryError, ReceptiveField, conv_output_size
from cnn_cli.schema.markers import Length, Tagged

PROJECTION_NAME = "proj"  # the skip's 1x1 convolution, inside the block: res1.proj.weight

InnerLayers = Annotated[
    list[Annotated[LayerSpec, Tagged(LAYER_SPECS, noun="layer type")]],
    Length(min_items=1, words="a non-empty list of layers"),
]


@dataclass(frozen=True, kw_only=True)
class ResidualSpec(LayerSpec):
    """Options of a ``residual`` block: its inner layers F, and whether the skip is a 1x1 projection."""

    type: str = "residual"
    name_prefix = "res"
    layers: InnerLayers
    projection: bool = False  # true: the skip is a 1x1 conv (no bias) to F's output shape; false: the identity

    def inner_shapes(self, input_shape: Shape) -> list[Shape]:
        """One sample's shape at the block's input and after each inner layer."""
        shapes = [input_shape]
        for index, spec in enumerate(self.layers):
            try:
                shapes.append(spec.output_shape(shapes[-1]))
            except GeometryError as exc:
                raise GeometryError(f"layers[{index}] ({spec.type}): {exc}") from None
        return shapes

    def projection_spec(self, input_shape: Shape) -> Conv2DSpec | None:
        """The skip's 1x1 convolution (stride chosen so its output is F's), None for the identity; GeometryError
        when the two paths cannot meet."""
        out_shape = self.inner_shapes(input_shape)[-1]
        if not self.projection:
            if out_shape != input_shape:
                raise GeometryError(
                    f"the inner layers give {out_shape} but the skip carries the input {input_shape}, and a residual "
                    "block adds the two; keep the shape (padding, same channels) or set projection: true for a 1x1 "
                    "convolution on the skip"
                )
            return None
        if len(input_shape) != 3 or len(out_shape) != 3:
            raise GeometryError(f"projection: a 1x1 convolution needs (C, H, W) on both paths, got {input_shape} -> {out_shape}")
        stride = _jump(self.layers)  # the skip samples the input on the same grid as the inner layers' output
        meets = (conv_output_size(input_shape[1], 1, stride[0]), conv_output_size(input_shape[2], 1, stride[1]))
        if meets != out_shape[1:]:
            raise GeometryError(
                f"projection: a 1x1 convolution with the inner layers' stride {stride[0]}x{stride[1]} takes the input's "
                f"{input_shape[1]}x{input_shape[2]} map to {meets[0]}x{meets[1]}, not to the inner layers' "
                f"{out_shape[1]}x{out_shape[2]}; pad the inner convolutions (padding k//2) so that only their stride shrinks the map"
            )
        return Conv2DSpec(name=PROJECTION_NAME, out_channels=out_shape[0], kernel_size=(1, 1), stride=stride, bias=False)

    def output_shape(self, input_shape: Shape) -> Shape:
        self.projection_spec(input_shape)  # the two paths must meet
        return self.inner_shapes(input_shape)[-1]

    def num_params(self, input_shape: Shape) -> int:
        shapes = self.inner_shapes(input_shape)
        projection = self.projection_spec(input_shape)
        own = sum(spec.num_params(shape) for spec, shape in zip(self.layers, shapes, strict=False))
        return own + (projection.num_params(input_shape) if projection else 0)

    def workspace(self, input_shape: Shape) -> int:
        """Every inner output and workspace, and the projection's (the block's own output is counted by the caller)."""
        shapes = self.inner_shapes(input_shape)
        inner = sum(elements(out) + spec.workspace(shape) for spec, shape, out in zip(self.layers, shapes, shapes[1:], strict=False))
        projection = self.projection_spec(input_shape)
        if projection is not None:
            inner += elements(shapes[-1]) + projection.workspace(input_shape)
        return inner


def _jump(specs: list[LayerSpec]) -> tuple[int, int]:
    """How many input pixels apart neighbouring output units of these layers are: the product of their strides."""
    jump_h, jump_w = 1, 1
    for spec in specs:
        inner_h, inner_w = _jump(spec.layers) if isinstance(spec, ResidualSpec) else getattr(spec, "stride", (1, 1))
        jump_h, jump_w = jump_h * inner_h, jump_w * inner_w
    return jump_h, jump_w


class Residual(Layer[ResidualSpec]):
    """A residual block: forward (N, *input_shape) -> (N, *output_shape), out = F(x) + S(x).

    ``params``, ``grads`` and ``buffers`` hold the inner layers' arrays (the same objects)
    under ``<inner name>.<key>`` (``conv1.weight``), so the model names them
    ``res1.conv1.weight``; the inner layers themselves are named ``res1.conv1``.
    """

    type_name = "residual"
    spec_class = ResidualSpec

    def __init__(self, name: str, inner: list[Layer[Any]], projection: Layer[Any] | None = None) -> None:
        super().__init__(name)
        self.inner = inner
        self.projection = projection
        self._collect("params")
        self._collect("buffers")  # running statistics of an inner layer (batch norm): the model's and checkpoints' too

    @classmethod
    def build(cls, spec: ResidualSpec, input_shape: Shape, ctx: BuildContext) -> Self:
        """The inner layers one after another from ``input_shape``, and the projection if the spec declares it."""
        name = spec.name or cls.type_name
        inner: list[Layer[Any]] = []
        shape = input_shape
        for inner_spec in spec.layers:
            qualified = dataclasses.replace(inner_spec, name=f"{name}.{inner_spec.name or inner_spec.type}")
            inner.append(LAYER_TYPES[inner_spec.type].build(qualified, shape, ctx))
            shape = inner[-1].output_shape
        projection_spec = spec.projection_spec(input_shape)
        projection = None
        if projection_spec is not None:
            projection = Conv2D.build(dataclasses.replace(projection_spec, name=f"{name}.{PROJECTION_NAME}"), input_shape, ctx)
        return cls(name, inner, projection)._placed(input_shape, spec)

    def with_children(self, inner: list[Layer[Any]], projection: Layer[Any] | None) -> Residual:
        """The same block around other layer objects holding the same arrays (e.g. a learner's code around them)."""
        block = Residual(self.name, inner, projection)
        block.input_shape, block.output_shape = self.input_shape, self.output_shape
        return block

    def children(self) -> list[Layer[Any]]:
        return [*self.inner, *([self.projection] if self.projection is not None else [])]

    def collect_children(self) -> None:
        """Read ``params``, ``grads`` and ``buffers`` from the children again, after a child's arrays were replaced (a dtype copy)."""
        for kind in ("params", "grads", "buffers"):
            self._collect(kind)

    def _collect(self, kind: str) -> None:
        """This block's ``params``/``grads``/``buffers``: its children's arrays, the same objects, under local names."""
        collected = getattr(self, kind)
        collected.clear()
        for child in self.children():
            local = child.name.removeprefix(f"{self.name}.")
            collected.update({f"{local}.{key}": value for key, value in getattr(child, kind).items()})

    def forward(self, x: np.ndarray) -> np.ndarray:
        """(N, *input_shape) -> (N, *output_shape): the inner layers F, plus the skip S (identity or projection)."""
        through_layers = x
        for layer in self.children():
            layer.training, layer.keep_cache = self.training, self.keep_cache
        for layer in self.inner:
            through_layers = layer.forward(through_layers)
        along_skip = self.projection.forward(x) if self.projection is not None else x
        self._collect("buffers")  # a running statistic an inner layer replaced is the one a checkpoint saves
        return nn_residual.residual_add(through_layers, along_skip)

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """dL/dout (N, *output_shape) -> dL/dx (N, *input_shape): the gradient through the inner layers plus the
        gradient along the skip. Fills ``grads`` with every inner layer's (and the projection's)."""
        return self._backward(grad_out, need_input_grad, None)

    def backward_steps(self, grad_out: np.ndarray) -> tuple[np.ndarray, list[tuple[Layer[Any], np.ndarray, np.ndarray]]]:
        """:meth:`backward`, also giving each inner layer's (layer, dL/d(its output), dL/d(its input)), input side
        first, the projection last (a nested block's own steps inside it): what the gradient logger records."""
        steps: list[tuple[Layer[Any], np.ndarray, np.ndarray]] = []
        grad_input = self._backward(grad_out, True, steps)
        if grad_input is None:  # pragma: no cover - asked for
            raise RuntimeError(f"{self.name}: backward returned no input gradient")
        return grad_input, steps

    def _backward(self, grad_out: np.ndarray, need_input_grad: bool, steps: list | None) -> np.ndarray | None:
        """The backward; with ``steps`` a list, each inner layer's step is added to it (input side first)."""
        # Path 1, through the layers: dL/dout carried back through F, last inner layer first.
        grad_through_layers: np.ndarray | None = grad_out
        recorded: list[list[tuple[Layer[Any], np.ndarray, np.ndarray]]] = []  # per inner layer, output side first
        for index in range(len(self.inner) - 1, -1, -1):
            layer, grad_output = self.inner[index], grad_through_layers
            if grad_output is None:  # pragma: no cover - only the first inner layer may skip it
                raise RuntimeError(f"{self.inner[index + 1].name}: backward returned no input gradient")
            if steps is not None and isinstance(layer, Residual):
                grad_through_layers, nested = layer.backward_steps(grad_output)
                recorded.append([(layer, grad_output, grad_through_layers), *nested])
            else:
                grad_through_layers = layer.backward(grad_output, need_input_grad=need_input_grad or index > 0)
                if steps is not None and grad_through_layers is not None:
                    recorded.append([(layer, grad_output, grad_through_layers)])
        # Path 2, along the skip: dL/dout itself (identity), or carried back through the 1x1 projection.
        if self.projection is not None:
            grad_along_skip = self.projection.backward(grad_out, need_input_grad=need_input_grad)
        else:
            grad_along_skip = grad_out
        self._collect("grads")
        if steps is not None:
            steps.extend(step for layer_steps in recorded[::-1] for step in layer_steps)
            if self.projection is not None and grad_along_skip is not None:
                steps.append((self.projection, grad_out, grad_along_skip))
        if not need_input_grad or grad_through_layers is None or grad_along_skip is None:
            return None
        # x fed both paths, so its gradient is the sum of the two.
        return nn_residual.fork_backward(grad_through_layers, grad_along_skip)

    def config(self) -> dict[str, Any]:
        return {"projection": self.projection is not None, "layers": [child.name for child in self.inner]}

    def flops(self) -> int:
        """The inner layers', the projection's, and one add per output value."""
        return sum(child.flops() for child in self.children()) + elements(self.output_shape)

    def receptive_field(self, field: ReceptiveField) -> ReceptiveField:
        """The wider of the two paths: the inner layers' (the skip's 1x1 window sees no more than its input)."""
        for layer in self.inner:
            field = layer.receptive_field(field)
        return field
