"""cnn's layers and loss with the learner's functions inside (``cnn train --impl FILE``).

A wrapped layer keeps the cnn layer's name, shapes, ``params`` and ``grads`` (the
same dicts, so the optimizer, the checkpoints and every callback see nothing
different); only its forward and backward call the learner's
``NAME_forward(...) -> (out, cache)`` and ``NAME_backward(grad_out, cache)`` from the
table in :mod:`cnn_cli.learn.learner_api`. The layer's options become the learner's
arguments; options at their default are left out, so a file written for the short
signature (``conv2d_forward(x, w, b, stride=1, pad=0)``) works for every model that
does not need the rest. A dropout layer draws its keep mask from its own generator,
exactly as cnn's does, so a correct file reproduces cnn's run.

The learner's functions get copies of cnn's arrays (an in-place edit in their code
changes nothing of cnn's). What they return is checked for its shape and cast to
the model's dtype (a learner's ``np.zeros(...)`` is float64).
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import numpy as np

from cnn_cli.layers import Layer, Residual
from cnn_cli.layers.losses import BinaryCrossEntropy, Loss, SoftmaxCrossEntropy
from cnn_cli.learn.learner_api import BY_NAME
from cnn_cli.learn.learner_code import LearnerCode, LearnerStop, call_learner
from cnn_cli.model.network import Model


def _option(pair: tuple[int, int]) -> int | tuple[int, int]:
    """A (height, width) option as the learner's functions take it: one int when both are equal."""
    return pair[0] if pair[0] == pair[1] else (pair[0], pair[1])


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (shape[0], *(d for d in shape[1:] if d != 1)) if shape else shape


def checked_array(value: Any, expected: tuple[int, ...], dtype: np.dtype, label: str, what: str) -> np.ndarray:
    """``value`` as an array of ``expected`` shape and ``dtype``; a shape that differs only by axes of 1 is reshaped.

    Raises:
        LearnerStop: (failed) naming the function and the shape it returned.
    """
    try:
        array = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError):
        raise LearnerStop(f"{label} returned {what} as {type(value).__name__}, not an array of shape {expected}", False) from None
    if array.shape != expected:
        if _squeezed(array.shape) != _squeezed(expected):
            raise LearnerStop(f"{label} returned {what} of shape {array.shape}; cnn's layer needs {expected}", False)
        array = array.reshape(expected)
    return array


def _pair_of(value: Any, label: str, what: str) -> tuple[Any, Any]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise LearnerStop(f"{label} returned {type(value).__name__}; it must return a pair {what}", False)
    return value[0], value[1]


class LearnerLayer(Layer):
    """A cnn layer whose forward and backward are the learner's pair of functions.

    Subclasses say how the layer's options become the learner's arguments
    (:meth:`forward_arguments`) and what the backward returns (:meth:`take_gradients`).
    """

    op: ClassVar[str] = ""  # the name in the table: conv2d, relu, ...

    def __init__(self, layer: Layer, code: LearnerCode) -> None:
        super().__init__(layer.name)
        self.cnn_layer: Any = layer  # its options (stride, padding, p, ...) become the learner's arguments
        self.code = code
        self.params, self.grads = layer.params, layer.grads
        self.input_shape, self.output_shape = layer.input_shape, layer.output_shape
        self._cache: tuple[Any, tuple[int, ...], tuple[int, ...]] | None = None  # learner's cache, its out shape, its x shape

    @property
    def signature(self) -> tuple[str, str]:
        entry = BY_NAME[self.op]
        return entry.forward, entry.backward

    def forward_arguments(self, x: np.ndarray) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The learner's forward arguments for a batch: ``x`` (a copy) first."""
        return (x.copy(),), {}

    def take_gradients(self, result: Any, label: str) -> Any:
        """Store any parameter gradients the backward returned; return its dx."""
        return result

    def forward(self, x: np.ndarray) -> np.ndarray:
        """(N, *input_shape) -> (N, *output_shape), by the learner's ``NAME_forward``."""
        args, kwargs = self.forward_arguments(x)
        label = f"{self.op}_forward (layer {self.name})"
        result = call_learner(self.code, f"{self.op}_forward", f"layer {self.name}", args, kwargs, self.signature[0])
        out, cache = _pair_of(result, label, "(out, cache)")
        out_shape = np.shape(out)
        out = checked_array(out, (x.shape[0], *self.output_shape), x.dtype, label, "out")
        self._cache = (cache, out_shape, np.shape(args[0])) if self.keep_cache else None
        return out

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """(N, *output_shape) -> (N, *input_shape), by the learner's ``NAME_backward``; fills ``grads``."""
        if self._cache is None:
            raise self._missing_cache()
        cache, out_shape, x_shape = self._cache
        label = f"{self.op}_backward (layer {self.name})"
        upstream = grad_out.reshape(out_shape).copy()
        result = call_learner(self.code, f"{self.op}_backward", f"layer {self.name}", (upstream, cache), {}, self.signature[1])
        grad_x = checked_array(self.take_gradients(result, label), x_shape, grad_out.dtype, label, "dx")
        return grad_x.reshape(grad_out.shape[0], *self.input_shape)

    def config(self) -> dict[str, Any]:
        return self.cnn_layer.config()

    def flops(self) -> int:
        return self.cnn_layer.flops()


class _WithWeights(LearnerLayer):
    """conv2d and dense: the backward returns (dx, dw, db). A layer without a bias passes zeros and drops db."""

    def _weights(self) -> tuple[np.ndarray, np.ndarray]:
        weight = self.params["weight"]
        bias = self.params.get("bias")
        return weight.copy(), bias.copy() if bias is not None else np.zeros(weight.shape[0], dtype=weight.dtype)

    def take_gradients(self, result: Any, label: str) -> Any:
        if not isinstance(result, (tuple, list)) or len(result) != 3:
            raise LearnerStop(f"{label} returned {type(result).__name__}; it must return (dx, dw, db)", False)
        grad_x, grad_w, grad_b = result
        weight = self.params["weight"]
        self.grads["weight"] = checked_array(grad_w, weight.shape, weight.dtype, label, "dw")
        if "bias" in self.params:
            self.grads["bias"] = checked_array(grad_b, self.params["bias"].shape, weight.dtype, label, "db")
        return grad_x


class LearnerConv2D(_WithWeights):
    type_name = "conv2d"
    op = "conv2d"

    def forward_arguments(self, x: np.ndarray) -> tuple[tuple[Any, ...], dict[str, Any]]:
        conv = self.cnn_layer
        options = {"stride": _option(conv.stride), "pad": _option(conv.padding)}
        options.update({"dilation": _option(conv.dilation)} if conv.dilation != (1, 1) else {})
        options.update({"groups": conv.groups} if conv.groups != 1 else {})
        return (x.copy(), *self._weights()), options


class LearnerDense(_WithWeights):
    """The learner's dense takes (N, F_in), whatever the shape of the layer's input (cnn's flatten gives (N, F, 1, 1))."""

    type_name = "dense"
    op = "dense"

    def forward_arguments(self, x: np.ndarray) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (x.reshape(x.shape[0], -1).copy(), *self._weights()), {}


class _LearnerPool(LearnerLayer):
    def forward_arguments(self, x: np.ndarray) -> tuple[tuple[Any, ...], dict[str, Any]]:
        pool = self.cnn_layer
        options = {"size": _option(pool.kernel_size), "stride": _option(pool.stride)}
        options.update({"pad": _option(pool.padding)} if pool.padding != (0, 0) else {})
        return (x.copy(),), options


class LearnerMaxPool2D(_LearnerPool):
    type_name = "maxpool2d"
    op = "maxpool2d"


class LearnerAvgPool2D(_LearnerPool):
    type_name = "avgpool2d"
    op = "avgpool2d"


class LearnerReLU(LearnerLayer):
    type_name = "relu"
    op = "relu"


class LearnerSigmoid(LearnerLayer):
    type_name = "sigmoid"
    op = "sigmoid"


class LearnerTanh(LearnerLayer):
    type_name = "tanh"
    op = "tanh"


class LearnerFlatten(LearnerLayer):
    type_name = "flatten"
    op = "flatten"


class LearnerLeakyReLU(LearnerLayer):
    type_name = "leaky_relu"
    op = "leaky_relu"

    def forward_arguments(self, x: np.ndarray) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (x.copy(),), {"slope": self.cnn_layer.negative_slope}


class LearnerDropout(LearnerLayer):
    """Training: keep = rng.random(x.shape) >= p from the layer's own generator, as cnn draws it. Evaluation: identity."""

    type_name = "dropout"
    op = "dropout"

    def __init__(self, layer: Layer, code: LearnerCode) -> None:
        super().__init__(layer, code)
        self._identity = False

    @property
    def rng(self) -> np.random.Generator:
        """The cnn layer's generator: checkpoints save and restore it through this layer."""
        return self.cnn_layer.rng

    def forward_arguments(self, x: np.ndarray) -> tuple[tuple[Any, ...], dict[str, Any]]:
        p = self.cnn_layer.p
        keep = self.rng.random(x.shape) >= p
        return (x.copy(), keep, p), {}

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._identity = not self.training or self.cnn_layer.p == 0.0
        if self._identity:
            return x
        return super().forward(x)

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        return grad_out if self._identity else super().backward(grad_out, need_input_grad)


LEARNER_LAYERS: dict[str, type[LearnerLayer]] = {
    cls.type_name: cls
    for cls in (
        LearnerConv2D,
        LearnerDense,
        LearnerMaxPool2D,
        LearnerAvgPool2D,
        LearnerReLU,
        LearnerLeakyReLU,
        LearnerSigmoid,
        LearnerTanh,
        LearnerFlatten,
        LearnerDropout,
    )
}


class LearnerLoss(Loss):
    """The loss's value and gradient from the learner's one function; predictions and probabilities stay cnn's."""

    code: LearnerCode

    def value_and_gradient(self, flat: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
        label = f"{self.name} (the loss)"
        result = call_learner(self.code, self.name, "the loss", (flat.copy(), labels.copy()), {}, BY_NAME[self.name].forward)
        loss, grad = _pair_of(result, label, "(loss, grad_logits)")
        try:
            value = float(loss)
        except (TypeError, ValueError):
            raise LearnerStop(f"{label} returned a loss of type {type(loss).__name__}, not a number", False) from None
        return value, checked_array(grad, flat.shape, flat.dtype, label, "grad_logits")


class LearnerSoftmaxCrossEntropy(LearnerLoss, SoftmaxCrossEntropy):
    pass


class LearnerBinaryCrossEntropy(LearnerLoss, BinaryCrossEntropy):
    pass


LEARNER_LOSSES: dict[str, type[LearnerLoss]] = {cls.name: cls for cls in (LearnerSoftmaxCrossEntropy, LearnerBinaryCrossEntropy)}


def learner_ops(model: Model, code: LearnerCode, skip: frozenset[str] = frozenset()) -> dict[str, str]:
    """Which parts of ``model`` the file replaces: {layer name or "loss": the table's name}, in the model's order."""
    ops = {}
    for layer in model.all_layers():  # inside a block too: res1.conv1 runs the learner's conv2d
        wrapper = LEARNER_LAYERS.get(layer.type_name)
        if wrapper is not None and wrapper.op not in skip and code.defines(BY_NAME[wrapper.op]):
            ops[layer.name] = wrapper.op
    loss = model.loss.name
    if loss in LEARNER_LOSSES and loss not in skip and code.defines(BY_NAME[loss]):
        ops["loss"] = loss
    return ops


def use_learner_code(model: Model, code: LearnerCode, skip: frozenset[str] = frozenset()) -> Model:
    """A model whose layers (and loss) of the types the file defines run the learner's functions.

    The new model shares ``model``'s parameter arrays and random generators; ``skip``
    names table entries to leave as cnn's (e.g. ones not written yet).
    """
    ops = learner_ops(model, code, skip)

    def learners(layer: Layer) -> Layer:
        if layer.name in ops:
            return LEARNER_LAYERS[layer.type_name](layer, code)
        if isinstance(layer, Residual):
            return layer.with_children([learners(inner) for inner in layer.inner], layer.projection and learners(layer.projection))
        return layer

    layers = [learners(layer) for layer in model.layers]
    wrapped = Model(layers, model.input_shape, model.loss.name, model.dtype)
    if "loss" in ops:
        loss = LEARNER_LOSSES[ops["loss"]](ops["loss"], model.loss.num_outputs)
        loss.code = code
        wrapped.loss = loss
    return wrapped


def cnn_model_of(model: Model) -> Model:
    """The same network with cnn's own layers and loss, sharing the parameters (the inverse of :func:`use_learner_code`)."""

    def own(layer: Layer) -> Layer:
        if isinstance(layer, LearnerLayer):
            return layer.cnn_layer
        if isinstance(layer, Residual):
            return layer.with_children([own(inner) for inner in layer.inner], layer.projection and own(layer.projection))
        return layer

    layers = [own(layer) for layer in model.layers]
    return Model(layers, model.input_shape, model.loss.name, model.dtype)


def find_unwritten(model: Model, seed: int = 0) -> dict[str, str]:
    """Run each learner function once on a random batch of 2: {table name: message} for those not written yet.

    Runs on a copy of the model, so that no generator moves. Raises:
        LearnerStop: (failed) the first learner function that raises anything but NotImplementedError.
    """
    probe = copy.deepcopy(model)
    rng = np.random.default_rng(seed)
    unwritten: dict[str, str] = {}
    for layer in probe.all_layers():
        if not isinstance(layer, LearnerLayer) or layer.op in unwritten:
            continue
        layer.training, layer.keep_cache = True, True
        x = rng.standard_normal((2, *layer.input_shape)).astype(probe.dtype)
        try:
            out = layer.forward(x)
            layer.backward(rng.standard_normal(out.shape).astype(probe.dtype))
        except LearnerStop as stop:
            if not stop.not_written:
                raise
            unwritten[layer.op] = stop.message.splitlines()[0]
    if isinstance(probe.loss, LearnerLoss):
        logits = rng.standard_normal((2, *probe.output_shape)).astype(probe.dtype)
        try:
            probe.loss(logits, np.arange(2) % probe.loss.num_classes)
        except LearnerStop as stop:
            if not stop.not_written:
                raise
            unwritten[probe.loss.name] = stop.message.splitlines()[0]
    return unwritten
