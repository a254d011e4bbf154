"""The layer contract: a typed spec (the options a config gives), and the layer built from it.

Each layer type declares its options once, as a frozen :class:`LayerSpec`
dataclass. The config loader validates ``model.layers`` against those specs
(:mod:`cnn_cli.schema`), runs their shape inference (:meth:`LayerSpec.output_shape`,
the layer's one geometry check) and estimates their memory; the model builder then
calls :meth:`Layer.build` with a spec that is known to work and re-checks nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Generic, Self, TypeVar

import numpy as np

from cnn_cli.nn.init import init_weight
from cnn_cli.nn.shapes import IntPair, ReceptiveField
from cnn_cli.schema.markers import PairOf, Pattern, Range

Shape = tuple[int, ...]  # one sample's shape, without the batch axis: (C, H, W) or (F,)

# Option types shared by the specs. Window geometry (kernel, stride, padding, dilation) stays
# below 2**16 pixels: far beyond any useful image, and safely inside NumPy's stride arithmetic.
MAX_WINDOW = 1 << 16
Size = Annotated[int, Range(minimum=1, word="positive")]
PositivePair = Annotated[IntPair, PairOf(), Range(minimum=1, maximum=MAX_WINDOW, word="positive")]
NonNegativePair = Annotated[IntPair, PairOf(), Range(minimum=0, maximum=MAX_WINDOW)]
LayerName = Annotated[str, Pattern(r"[A-Za-z_][A-Za-z0-9_]*", "letters, digits and _ (no dots)")]


@dataclass(frozen=True, kw_only=True)
class LayerSpec:
    """The options of one layer in ``model.layers``; subclasses add theirs.

    ``type`` picks the layer class; ``name`` defaults to the type's prefix and a
    per-type count (``conv1``, ``relu2``, ``fc1``), filled in by the config loader.
    """

    type: str = ""
    name: LayerName | None = None
    name_prefix: ClassVar[str] = ""  # "" means the type name

    def output_shape(self, input_shape: Shape) -> Shape:
        """Shape inference: one sample's output shape, or GeometryError if the options cannot work there."""
        return input_shape

    def num_params(self, input_shape: Shape) -> int:
        """How many trainable values the layer holds on this input."""
        return 0

    def workspace(self, input_shape: Shape) -> int:
        """Values per sample a forward keeps beyond its output (e.g. the im2col matrix), for memory estimates."""
        return 0


SpecT = TypeVar("SpecT", bound=LayerSpec)


@dataclass(frozen=True)
class BuildContext:
    """What every layer build shares: the seeded weight generator, the dtype and the model's default init."""

    rng: np.random.Generator
    dtype: np.dtype
    default_init: str

    def weight_options(self, spec: Any) -> dict[str, Any]:
        """``bias``, ``rng``, ``dtype`` and ``init`` of a layer with weights: the spec's own init, else the model's default."""
        return {"bias": spec.bias, "rng": self.rng, "dtype": self.dtype, "init": spec.init or self.default_init}


class Layer(Generic[SpecT]):
    """Base class. A layer keeps ``params`` and ``grads`` under the same names, and ``buffers`` (not trained).

    ``forward`` keeps only what ``backward`` needs from the latest call (the
    cache), and keeps nothing when ``keep_cache`` is False (evaluation, prediction:
    no backward will follow). ``backward`` reads only that cache, fills ``grads``
    and returns the gradient for the layer's input. The optimizer sees the dicts,
    never the layer.
    """

    type_name: ClassVar[str] = ""
    spec_class: ClassVar[type[LayerSpec]] = LayerSpec

    def __init__(self, name: str) -> None:
        self.name = name
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        # State that is not trained but belongs to the model (batch norm's running statistics):
        # checkpoints keep it, the optimizer never sees it. Updated in place, never rebound.
        self.buffers: dict[str, np.ndarray] = {}
        self.training = False
        self.keep_cache = True  # False: forward keeps nothing for a backward
        self.input_shape: Shape = ()
        self.output_shape: Shape = ()

    @classmethod
    def build(cls, spec: SpecT, input_shape: Shape, ctx: BuildContext) -> Self:  # pragma: no cover - interface
        """The layer for a validated spec on one sample's ``input_shape`` (shapes set, weights drawn from ``ctx.rng``)."""
        raise NotImplementedError

    def _init_weights(
        self, init: str, shape: tuple[int, ...], fan_in: int, fan_out: int, bias: bool, rng: np.random.Generator | None, dtype: Any
    ) -> None:
        """``params['weight']`` of ``shape`` drawn by ``init`` from ``rng`` (a generator seeded 0 if None), and a zero
        ``params['bias']`` of ``shape[0]`` values when ``bias``."""
        rng = rng if rng is not None else np.random.default_rng(0)
        self.params["weight"] = init_weight(init, shape, fan_in, fan_out, rng, np.dtype(dtype))
        if bias:
            self.params["bias"] = np.zeros(shape[0], dtype=dtype)

    def _placed(self, input_shape: Shape, spec: LayerSpec) -> Self:
        """Set the layer's shapes from its spec's shape inference."""
        self.input_shape, self.output_shape = input_shape, spec.output_shape(input_shape)
        return self

    def forward(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        """Compute the output for a batch; keep what backward needs (if ``keep_cache``)."""
        raise NotImplementedError

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:  # pragma: no cover
        """Given dL/d(output), fill ``grads`` and return dL/d(input) (or None if not needed)."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """The options this layer was built with (for summaries and checkpoints)."""
        return {}

    def flops(self) -> int:
        """Multiply-adds x2 of one forward pass for one sample (0 when negligible)."""
        return 0

    def receptive_field(self, field: ReceptiveField) -> ReceptiveField:
        """The input pixels one output unit sees, given ``field`` for one input unit (unchanged for elementwise layers)."""
        return field

    def children(self) -> list[Layer[Any]]:
        """The layers inside this one, in order (none for a plain layer); summaries walk them."""
        return []

    def _missing_cache(self) -> RuntimeError:
        return RuntimeError(f"{self.name}: backward called before forward")

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.config().items())
        return f"{type(self).__name__}({self.name}{', ' if opts else ''}{opts})"


def elements(shape: Shape) -> int:
    """Values in one sample of ``shape`` (exact for any size: Python ints do not overflow)."""
    return math.prod(shape)
