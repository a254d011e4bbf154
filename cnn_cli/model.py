"""A sequential model built from a config, with shape inference and named parameters.

Notebook use::

    from cnn_cli import build_model
    model = build_model("mnist")                  # a built-in config name, a path, or a dict
    logits = model.forward(images, training=True)  # (N, 1, 28, 28) -> (N, 10, 1, 1)
    loss, grad_logits = model.loss(logits, labels)
    model.backward(grad_logits)
    model.params["conv1.weight"], model.grads["conv1.weight"]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnn_cli.errors import ModelBuildError
from cnn_cli.init import INIT_SCHEMES
from cnn_cli.layers import LAYER_TYPES, Layer
from cnn_cli.layers.options import resolve_options
from cnn_cli.nn.activations import sigmoid
from cnn_cli.nn.losses import (
    binary_cross_entropy_with_logits,
    softmax,
    softmax_cross_entropy,
    sum_squared_error,
)

LOSSES = ("softmax_cross_entropy", "binary_cross_entropy", "sum_squared_error")
NAME_PREFIX = {"conv2d": "conv", "dense": "fc"}
LAYER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Loss:
    """A loss on the model's logits, mean over the batch, plus how to read probabilities.

    ``softmax_cross_entropy`` and ``sum_squared_error`` need one output per class;
    ``binary_cross_entropy`` needs a single output (the logit of class 1).
    """

    def __init__(self, name: str, num_outputs: int) -> None:
        self.name = name
        self.num_outputs = num_outputs

    @property
    def num_classes(self) -> int:
        """How many classes the outputs stand for."""
        return 2 if self.name == "binary_cross_entropy" else self.num_outputs

    def __call__(self, logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
        """(loss, dLoss/dlogits) for logits of any shape (N, ...) and integer labels (N,)."""
        flat = logits.reshape(logits.shape[0], -1)
        if self.name == "softmax_cross_entropy":
            loss, grad = softmax_cross_entropy(flat, labels)
        elif self.name == "binary_cross_entropy":
            loss, grad = binary_cross_entropy_with_logits(flat, labels)
        else:
            loss, grad = sum_squared_error(flat, np.eye(flat.shape[1], dtype=flat.dtype)[labels])
        return loss, grad.reshape(logits.shape)

    def predict(self, logits: np.ndarray) -> np.ndarray:
        """(N, ...) logits -> (N,) predicted class indices (int64)."""
        flat = logits.reshape(logits.shape[0], -1)
        if self.name == "binary_cross_entropy":
            return (flat[:, 0] > 0).astype(np.int64)
        return flat.argmax(axis=1)

    def class_score_gradient(self, logits: np.ndarray, class_index: int) -> np.ndarray:
        """d(score of ``class_index``)/d(logits) for (N, ...) logits, same shape.

        The score of class k is its logit ``z_k``: the gradient is 1 at k and 0
        elsewhere. A ``binary_cross_entropy`` model has a single logit z for class 1;
        class 1's score is z and class 0's is -z (its log-odds), so the gradient is +1 or -1.
        """
        grad = np.zeros_like(logits).reshape(logits.shape[0], -1)
        if self.name == "binary_cross_entropy":
            grad[:, 0] = 1.0 if class_index == 1 else -1.0
        else:
            grad[:, class_index] = 1.0
        return grad.reshape(logits.shape)

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """(N, ...) logits -> (N, num_classes) class probabilities."""
        flat = logits.reshape(logits.shape[0], -1)
        if self.name == "binary_cross_entropy":
            p1 = sigmoid(flat[:, 0])
            return np.stack([1 - p1, p1], axis=1)
        return softmax(flat)


@dataclass
class LayerTrace:
    """One layer's step of a forward pass: its input and output, (N, *input_shape) and (N, *output_shape)."""

    layer: Layer
    input: np.ndarray
    output: np.ndarray


@dataclass
class LayerGradient:
    """One layer's step of a backward pass: dL/d(its output) and dL/d(its input), same shapes as in the forward."""

    layer: Layer
    grad_output: np.ndarray
    grad_input: np.ndarray


@dataclass
class LayerSummary:
    """One row of :meth:`Model.summary`."""

    name: str
    type_name: str
    output_shape: tuple[int, ...]
    num_params: int
    flops: int


class Model:
    """An ordered list of layers, with the loss that follows them.

    Parameters and gradients are exposed by dotted name (``conv1.weight``): the
    same names the checkpoints use and the optimizer sees.
    """

    def __init__(self, layers: list[Layer], input_shape: tuple[int, ...], loss_name: str, dtype: np.dtype) -> None:
        self.layers = layers
        self.input_shape = input_shape
        self.output_shape = layers[-1].output_shape if layers else input_shape
        self.dtype = np.dtype(dtype)
        self.loss = Loss(loss_name, int(np.prod(self.output_shape)))
        self.params: dict[str, np.ndarray] = {f"{layer.name}.{key}": value for layer in layers for key, value in layer.params.items()}
        # Layers before the first one with parameters need no input gradient in training.
        self._first_param_layer = next((i for i, layer in enumerate(layers) if layer.params), len(layers))

    @property
    def grads(self) -> dict[str, np.ndarray]:
        """dLoss/dparam for every parameter, filled by the latest :meth:`backward`."""
        return {f"{layer.name}.{key}": value for layer in self.layers for key, value in layer.grads.items()}

    def forward(self, x: np.ndarray, training: bool = False, keep_cache: bool = True) -> np.ndarray:
        """(N, *input_shape) -> (N, *output_shape) logits. ``training`` switches dropout on.

        ``keep_cache=False`` (evaluation, prediction) lets each layer drop what only a
        backward would need, e.g. a convolution's im2col matrix, as soon as it is used.
        """
        if tuple(x.shape[1:]) != tuple(self.input_shape):
            raise ValueError(f"model expects input (N, {', '.join(map(str, self.input_shape))}), got {x.shape}")
        out = x.astype(self.dtype, copy=False)
        for layer in self.layers:
            layer.training = training
            layer.keep_cache = keep_cache
            out = layer.forward(out)
        return out

    def trace(self, x: np.ndarray, training: bool = False) -> list[LayerTrace]:
        """A forward pass that keeps every layer's input and output (for pictures and checks).

        Each layer keeps its backward cache, so :meth:`backward_trace` (or
        :meth:`backward`) may follow. The last entry's output is the logits.
        """
        if tuple(x.shape[1:]) != tuple(self.input_shape):
            raise ValueError(f"model expects input (N, {', '.join(map(str, self.input_shape))}), got {x.shape}")
        out = x.astype(self.dtype, copy=False)
        steps = []
        for layer in self.layers:
            layer.training = training
            layer.keep_cache = True
            layer_input, out = out, layer.forward(out)
            steps.append(LayerTrace(layer, layer_input, out))
        return steps

    def backward_trace(self, grad_logits: np.ndarray) -> list[LayerGradient]:
        """A backward pass that keeps dL/d(output) and dL/d(input) of every layer, input side first.

        Follows :meth:`forward` or :meth:`trace` on the same batch; fills ``grads`` as
        :meth:`backward` does.
        """
        grad = grad_logits
        steps = []
        for layer in reversed(self.layers):
            grad_input = layer.backward(grad, need_input_grad=True)
            if grad_input is None:  # pragma: no cover - every layer returns it when asked
                raise RuntimeError(f"{layer.name}: backward returned no input gradient")
            steps.append(LayerGradient(layer, grad, grad_input))
            grad = grad_input
        return steps[::-1]

    def backward(self, grad_logits: np.ndarray, need_input_grad: bool = False) -> np.ndarray | None:
        """Run every layer's backward from the loss gradient to the input.

        Args:
            grad_logits: (N, *output_shape), dLoss/dlogits.
            need_input_grad: also return dLoss/dinput (N, *input_shape), e.g. for
                saliency maps; training leaves it off and skips that work.
        """
        grad = grad_logits
        stop = 0 if need_input_grad else self._first_param_layer
        for index in range(len(self.layers) - 1, stop - 1, -1):
            grad = self.layers[index].backward(grad, need_input_grad=need_input_grad or index > stop)
        return grad if need_input_grad else None

    def loss_and_backward(self, x: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
        """One training pass: forward (training mode), loss, backward. Returns (loss, logits)."""
        logits = self.forward(x, training=True)
        loss, grad_logits = self.loss(logits, labels)
        self.backward(grad_logits)
        return loss, logits

    def predict_proba(self, x: np.ndarray, batch_size: int = 100) -> np.ndarray:
        """(N, *input_shape) -> (N, num_classes) probabilities, in evaluation mode."""
        chunks = [self.loss.probabilities(self.forward(x[i : i + batch_size], keep_cache=False)) for i in range(0, len(x), batch_size)]
        return np.concatenate(chunks) if chunks else np.zeros((0, self.loss.num_classes))

    def summary(self) -> list[LayerSummary]:
        """Per layer: name, type, output shape (per sample), parameter count and forward FLOPs per sample."""
        return [
            LayerSummary(layer.name, layer.type_name, layer.output_shape, sum(p.size for p in layer.params.values()), layer.flops())
            for layer in self.layers
        ]

    def num_params(self) -> int:
        """Total number of trainable values."""
        return sum(p.size for p in self.params.values())

    def load_params(self, arrays: dict[str, np.ndarray]) -> None:
        """Copy arrays into the parameters in place (names, shapes must match exactly)."""
        missing = sorted(set(self.params) - set(arrays))
        extra = sorted(set(arrays) - set(self.params))
        if missing or extra:
            raise ValueError(f"parameter names differ: missing {missing}, unexpected {extra}")
        for name, value in arrays.items():
            if value.shape != self.params[name].shape:
                raise ValueError(f"{name}: expected shape {self.params[name].shape}, got {value.shape}")
            self.params[name][...] = value

    def __repr__(self) -> str:
        return "Model(\n" + "\n".join(f"  {layer!r}" for layer in self.layers) + f"\n  loss={self.loss.name}\n)"


def build_model(config: Any, seed: int = 0, dtype: str | np.dtype = "float32") -> Model:
    """Build a :class:`Model` from a config, inferring every layer's input shape.

    Args:
        config: a path or built-in config name (``"mnist"``), a full config dict
            (with a ``model`` key), a model section dict (``input_shape``,
            ``layers``, ``loss``, ``init``), or a :class:`cnn_cli.config.Config`.
        seed: seeds the weight generator; the same seed gives bit-identical weights.
        dtype: float32 for training, float64 for gradient checks.
    Raises:
        ModelBuildError: naming the layer index, its type and the shapes or values involved.
    """
    section = _model_section(config)
    input_shape = section.get("input_shape", [1, 28, 28])
    if (
        not isinstance(input_shape, (list, tuple))
        or not input_shape
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in input_shape)
    ):
        raise ModelBuildError(f"model.input_shape: expected a list of positive ints like [1, 28, 28], got {input_shape!r}")
    loss_name = section.get("loss", "softmax_cross_entropy")
    if loss_name not in LOSSES:
        raise ModelBuildError(f"model.loss: expected one of {', '.join(LOSSES)}, got {loss_name!r}")
    default_init = section.get("init", "kaiming")
    if default_init not in INIT_SCHEMES:
        raise ModelBuildError(f"model.init: expected one of {', '.join(INIT_SCHEMES)}, got {default_init!r}")
    specs = section.get("layers")
    if not isinstance(specs, list) or not specs:
        raise ModelBuildError("model.layers: expected a non-empty list of layers")

    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    shape = tuple(input_shape)
    layers: list[Layer] = []
    counts: dict[str, int] = {}
    for index, spec in enumerate(specs):
        layer = _build_layer(index, spec, shape, rng, dtype, default_init, counts, {lay.name for lay in layers})
        layers.append(layer)
        shape = layer.output_shape
    if loss_name == "binary_cross_entropy" and int(np.prod(shape)) != 1:
        raise ModelBuildError(f"model.loss: binary_cross_entropy needs one output, the last layer gives {shape}")
    return Model(layers, tuple(input_shape), loss_name, dtype)


def _model_section(config: Any) -> dict[str, Any]:
    from cnn_cli.config import Config, load_config  # config imports model's constants

    if isinstance(config, (str, Path)):
        config = load_config(config)
    if isinstance(config, Config):
        return config.model.as_dict()
    if isinstance(config, dict):
        return config["model"] if "model" in config else config
    raise TypeError(f"cannot build a model from {type(config).__name__}")


def _build_layer(index, spec, input_shape, rng, dtype, default_init, counts, taken) -> Layer:
    if not isinstance(spec, dict) or "type" not in spec:
        raise ModelBuildError(f"model.layers[{index}]: expected a mapping with a 'type' key, got {spec!r}")
    type_name = spec["type"]
    where = f"model.layers[{index}] ({type_name})"
    if type_name not in LAYER_TYPES:
        import difflib

        close = difflib.get_close_matches(str(type_name), list(LAYER_TYPES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ModelBuildError(f"model.layers[{index}]: unknown layer type {type_name!r}{hint}; known: {', '.join(LAYER_TYPES)}")
    cls = LAYER_TYPES[type_name]
    counts[type_name] = counts.get(type_name, 0) + 1
    name = spec.get("name") or f"{NAME_PREFIX.get(type_name, type_name)}{counts[type_name]}"
    if not isinstance(name, str) or not LAYER_NAME.match(name):
        raise ModelBuildError(f"{where}: name must be letters, digits and _ (no dots), got {name!r}")
    if name in taken:
        raise ModelBuildError(f"{where}: layer name {name!r} is used twice")
    opts = resolve_options({k: v for k, v in spec.items() if k not in ("type", "name")}, cls.options, where)
    return cls.build(name, opts, input_shape, rng, dtype, default_init, where)
