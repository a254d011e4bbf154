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

import time
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np

from cnn_cli.config.build import config_from_dict, model_config_from_dict
from cnn_cli.config.load import load_config
from cnn_cli.config.sections import Config, ModelConfig
from cnn_cli.layers import LAYER_TYPES, BuildContext, Layer
from cnn_cli.layers.losses import Loss
from cnn_cli.model.summary import LayerSummary, summarize
from cnn_cli.nn.init import OUTPUT_INIT

__all__ = ["LayerGradient", "LayerSummary", "LayerTrace", "Loss", "Model", "build_model"]


@dataclass
class LayerTrace:
    """One layer's step of a forward pass: its input and output, (N, *input_shape) and (N, *output_shape)."""

    layer: Layer
    input: np.ndarray
    output: np.ndarray
    seconds: float = 0.0  # wall time of this layer's forward


@dataclass
class LayerGradient:
    """One layer's step of a backward pass: dL/d(its output) and dL/d(its input), same shapes as in the forward."""

    layer: Layer
    grad_output: np.ndarray
    grad_input: np.ndarray


class Model:
    """An ordered list of layers, with the loss that follows them.

    Parameters and gradients are exposed by dotted name (``conv1.weight``): the
    same names the checkpoints use and the optimizer sees.
    """

    def __init__(self, layers: list[Layer], input_shape: tuple[int, ...], loss_name: str, dtype: str | np.dtype) -> None:
        self.layers = layers
        self.input_shape = input_shape
        self.output_shape = layers[-1].output_shape if layers else input_shape
        self.dtype = np.dtype(dtype)
        self.loss = Loss(loss_name, int(np.prod(self.output_shape)))
        self.params: dict[str, np.ndarray] = {f"{layer.name}.{key}": value for layer in layers for key, value in layer.params.items()}
        # Layers before the first one with parameters need no input gradient in training.
        self._first_param_layer = next((i for i, layer in enumerate(layers) if layer.params), len(layers))

    @property
    def buffers(self) -> dict[str, np.ndarray]:
        """State that is not trained but saved with the model (``bn1.running_mean``), by dotted name like ``params``."""
        return {f"{layer.name}.{key}": value for layer in self.layers for key, value in layer.buffers.items()}

    @property
    def grads(self) -> dict[str, np.ndarray]:
        """dLoss/dparam for every parameter, filled by the latest :meth:`backward`."""
        return {f"{layer.name}.{key}": value for layer in self.layers for key, value in layer.grads.items()}

    def forward(self, x: np.ndarray, training: bool = False, keep_cache: bool = True) -> np.ndarray:
        """(N, *input_shape) -> (N, *output_shape) logits. ``training`` switches dropout on and batch norm to batch statistics.

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

    def trace(self, x: np.ndarray, training: bool = False, start: int = 0) -> list[LayerTrace]:
        """A forward pass that keeps every layer's input and output (for pictures, checks and timings).

        Each layer keeps its backward cache, so :meth:`backward_trace` (or
        :meth:`backward`) may follow. The last entry's output is the logits.
        ``start`` > 0 runs only ``layers[start:]``, with ``x`` the input of layer ``start``.
        """
        expected = self.layers[start].input_shape if start else self.input_shape
        if tuple(x.shape[1:]) != tuple(expected):
            raise ValueError(f"model expects input (N, {', '.join(map(str, expected))}), got {x.shape}")
        out = x.astype(self.dtype, copy=False)
        steps = []
        for layer in self.layers[start:]:
            layer.training = training
            layer.keep_cache = True
            began = time.perf_counter()
            layer_input, out = out, layer.forward(out)
            steps.append(LayerTrace(layer, layer_input, out, time.perf_counter() - began))
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
        grad: np.ndarray | None = grad_logits
        stop = 0 if need_input_grad else self._first_param_layer
        for index in range(len(self.layers) - 1, stop - 1, -1):
            if grad is None:  # pragma: no cover - only the last layer run may skip its input gradient
                raise RuntimeError(f"{self.layers[index + 1].name}: backward returned no input gradient")
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

    def summary(self, depth: int | None = None) -> list[LayerSummary]:
        """Per layer: name, type, output shape, parameter count and forward FLOPs per sample, with its window, its
        receptive field on the input and its memory per image in the model's dtype.

        A layer with children (a block) is followed by their rows, ``depth`` levels deep
        at most (1: the model's own layers; None: all).
        """
        return summarize(self.layers, self.input_shape, self.dtype, depth)

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

    def load_buffers(self, arrays: dict[str, np.ndarray]) -> None:
        """Copy arrays into the buffers in place (names, shapes must match exactly)."""
        buffers = self.buffers
        if set(arrays) != set(buffers):
            raise ValueError(
                f"buffer names differ: missing {sorted(set(buffers) - set(arrays))}, unexpected {sorted(set(arrays) - set(buffers))}"
            )
        for name, value in arrays.items():
            if value.shape != buffers[name].shape:
                raise ValueError(f"{name}: expected shape {buffers[name].shape}, got {value.shape}")
            buffers[name][...] = value

    def __repr__(self) -> str:
        return "Model(\n" + "\n".join(f"  {layer!r}" for layer in self.layers) + f"\n  loss={self.loss.name}\n)"


def build_model(config: Config | ModelConfig | dict | str | Path, seed: int = 0, dtype: str | np.dtype = "float32") -> Model:
    """Build a :class:`Model` from a config, each layer on the input shape its predecessor gives.

    Args:
        config: a loaded :class:`cnn_cli.config.sections.Config` (or its ``model``), a path or
            built-in config name (``"mnist"``), a full config dict (with a ``model``
            key) or a model section dict (``input_shape``, ``layers``, ``loss``, ``init``).
            Paths and dicts are validated first; a loaded config is not checked again.
        seed: seeds the weight generator; the same seed gives bit-identical weights.
        dtype: float32 for training, float64 for gradient checks.
    Raises:
        ModelBuildError: (paths and dicts) naming the layer index, its type and the shapes or values involved.
    """
    model_config = model_config_of(config)
    ctx = BuildContext(np.random.default_rng(seed), np.dtype(dtype), model_config.init)
    # The output layer's default init is small, so that the untrained loss is about ln C.
    output_ctx = replace(ctx, default_init=OUTPUT_INIT)
    output_index = output_layer_index(model_config.layers)
    shape = tuple(model_config.input_shape)
    layers: list[Layer] = []
    for index, spec in enumerate(model_config.layers):
        layer = LAYER_TYPES[spec.type].build(spec, shape, output_ctx if index == output_index else ctx)
        layers.append(layer)
        shape = layer.output_shape
    return Model(layers, tuple(model_config.input_shape), model_config.loss, ctx.dtype)


def output_layer_index(specs: list) -> int | None:
    """Index of the output layer: the last layer with weights (a spec with an ``init`` option), or None.

    ``model.init`` draws every other layer with weights; this one gets the ``small`` init,
    N(0, 0.01/fan_in), unless its spec names an init (``cnn docs initial-loss`` says why).
    """
    weighted = [index for index, spec in enumerate(specs) if "init" in {f.name for f in fields(spec)}]
    return weighted[-1] if weighted else None


def model_config_of(config: Config | ModelConfig | dict | str | Path) -> ModelConfig:
    """The validated model section of anything :func:`build_model` accepts."""
    if isinstance(config, (str, Path)):
        config = load_config(config)
    if isinstance(config, Config):
        return config.model
    if isinstance(config, ModelConfig):
        return config
    if isinstance(config, dict):
        return config_from_dict(config).model if "model" in config else model_config_from_dict(config)
    raise TypeError(f"cannot build a model from {type(config).__name__}")
