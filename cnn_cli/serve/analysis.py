"""What the draw pad shows for one image, as JSON-ready data (no web framework here).

One forward pass with :meth:`Model.trace` and one backward pass with
:meth:`Model.backward_trace`, started from ``dScore_k/dlogits``
(:meth:`Loss.class_score_gradient`) or, as the page may choose, from ``dLoss/dlogits`` with
class k as the label (``p − y``), give everything at once:

- the probabilities (softmax of the last layer's output);
- every conv layer's output (the feature maps :func:`cnn_cli.learn.visualize.feature_maps` returns);
- ``dScore_k/d(input)``, the first layer's input gradient: the saliency map of
  :func:`cnn_cli.learn.visualize.saliency` (summed over input channels, as there);
- ``dScore_k/d(activation)`` of every layer, its ``grad_output``: notes 000 §2.5's
  dLoss/d(output) with the loss replaced by the class score (``cnn docs conv2d``);
- the logits, every spatial layer's output and gradient, a max-pool's winners, each conv
  layer's weights and weight gradients (:mod:`cnn_cli.serve.layer_views`).

One pixel's arithmetic, forward and backward, is :func:`pixel_arithmetic`
(:mod:`cnn_cli.serve.arithmetic`), from the same two passes.

The image is prepared exactly as ``cnn predict`` prepares a file
(:func:`cnn_cli.runs.images.preprocess`, then the checkpoint's mean and std).
Pictures travel as base64 bytes with a scale, values as base64 float32, so one update stays small and fast.
"""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

from cnn_cli.data.images import MNIST_SIZE, preprocess, read_grayscale_bytes
from cnn_cli.errors import CnnError
from cnn_cli.model.network import LayerGradient, LayerTrace, Model
from cnn_cli.runs.checkpoint import Checkpoint, load_checkpoint
from cnn_cli.runs.checkpoint import class_names as checkpoint_class_names
from cnn_cli.serve.arithmetic import backward_arithmetic, conv_step_index, forward_arithmetic
from cnn_cli.serve.layer_views import MAX_CHANNELS_SHOWN, channel_norms, encode_float, layer_views, weight_views

# One image's matrix products are small: waking OpenBLAS's worker threads for them costs more than
# it saves, and on a busy machine a woken thread that must wait for a core adds tens of milliseconds
# to an update. The draw pad's passes run single-threaded (measured: see the serve tests' latency test).
BLAS = ThreadpoolController()  # shared by every server-side pass (analysis.py, evaluation.py)


@dataclass(frozen=True)
class Spot:
    """One pixel of one layer's map: the layer's name, the channel, the row and the column."""

    layer: str
    channel: int
    y: int
    x: int


@dataclass
class LoadedModel:
    """A checkpoint loaded once and kept while its file is unchanged."""

    path: Path
    ckpt: Checkpoint
    model: Model
    stamp: tuple[int, int]  # (mtime_ns, size) of the file when loaded
    lock: threading.Lock  # a model's layers keep caches: one analysis at a time

    @property
    def class_names(self) -> list[str]:
        return checkpoint_class_names(self.ckpt, self.model.loss.num_classes)


class ModelCache:
    """Loaded checkpoints by path; a file that changed on disk (a run saving a better epoch) is reloaded."""

    def __init__(self, capacity: int = 4) -> None:
        self._models: dict[Path, LoadedModel] = {}
        self._capacity = capacity
        self._lock = threading.Lock()

    def get(self, path: Path) -> LoadedModel:
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            cached = self._models.get(path)
            if cached is not None and cached.stamp == stamp:
                return cached
        ckpt, model = load_checkpoint(path)
        if tuple(model.input_shape) != (1, MNIST_SIZE, MNIST_SIZE):
            raise CnnError(f"{path.name}: its model takes input {tuple(model.input_shape)}; the draw pad feeds 1x28x28 digit images")
        loaded = LoadedModel(path, ckpt, model, stamp, threading.Lock())
        with self._lock:
            if len(self._models) >= self._capacity:
                self._models.pop(next(iter(self._models)))
            self._models[path] = loaded
        return loaded


def encode_signed(values: np.ndarray) -> dict[str, Any]:
    """A signed array as bytes: 0 ↦ 128, ±max|value| ↦ 255/1 (one scale for the whole array)."""
    limit = float(np.abs(values).max()) if values.size else 0.0
    scaled = np.round(127.5 + 127.0 * values / (limit or 1.0)).astype(np.uint8)
    return {"shape": list(values.shape), "scale": limit, "signed": True, "data": base64.b64encode(scaled.tobytes()).decode("ascii")}


def encode_unsigned(values: np.ndarray, limit: float | None = None) -> dict[str, Any]:
    """A non-negative array as bytes: 0 ↦ 0, ``limit`` (default its max) ↦ 255."""
    limit = float(values.max()) if limit is None and values.size else float(limit or 0.0)
    scaled = np.round(255.0 * np.clip(values / (limit or 1.0), 0.0, 1.0)).astype(np.uint8)
    return {"shape": list(values.shape), "scale": limit, "signed": False, "data": base64.b64encode(scaled.tobytes()).decode("ascii")}


def prepare_upload(data: bytes, loaded: LoadedModel) -> tuple[np.ndarray, np.ndarray, str]:
    """Image bytes -> ((28, 28) pixels in [0, 1], (1, 1, 28, 28) normalised input, warning), as ``cnn predict`` does.

    Raises:
        ImageError: not an image, undecodable, or a decompression bomb.
    """
    prepared = preprocess(read_grayscale_bytes(data, "uploaded image"))
    mean, std = float(loaded.ckpt.data.get("mean", 0.0)), float(loaded.ckpt.data.get("std", 1.0))
    x = ((prepared.pixels - mean) / std).astype(loaded.model.dtype)[None, None]
    return prepared.pixels, x, prepared.warning


TARGETS = ("score", "loss")  # what the backward pass differentiates: the class's logit, or the loss with that class as label


@dataclass
class Passes:
    """One forward and one backward pass of a single input, kept for the views (taken under the model's lock)."""

    steps: list[LayerTrace]
    backward: list[LayerGradient]
    probabilities: np.ndarray  # (num_classes,)
    predicted: int
    explained: int
    target: str  # "score": ∂z_k/∂·, "loss": ∂loss(label k)/∂·
    loss: float | None
    weights: list[dict[str, Any]]


def run_passes(loaded: LoadedModel, x: np.ndarray, class_index: int | None = None, target: str = "score") -> Passes:
    """Forward with :meth:`Model.trace`, backward with :meth:`Model.backward_trace` from ∂target/∂logits.

    Args:
        loaded: the model and its checkpoint.
        x: one normalised input, (1, C, H, W).
        class_index: the class explained (None: the predicted one).
        target: ``score`` starts from ``dScore_k/dlogits`` (one-hot), ``loss`` from ``dLoss/dlogits`` with label k
            (``p − y`` for softmax cross-entropy, ``cnn docs softmax_cross_entropy``).
    Raises:
        CnnError: ``class_index`` outside 0..num_classes-1, or an unknown target.
    """
    model = loaded.model
    if class_index is not None and not 0 <= class_index < model.loss.num_classes:
        raise CnnError(f"class must be in 0..{model.loss.num_classes - 1}, got {class_index}")
    if target not in TARGETS:
        raise CnnError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    with loaded.lock, BLAS.limit(limits=1, user_api="blas"):
        steps = model.trace(x, training=False)
        logits = steps[-1].output
        probabilities = model.loss.probabilities(logits)[0]
        predicted = int(model.loss.predict(logits)[0])
        explained = predicted if class_index is None else class_index
        loss = None
        if target == "loss":
            loss, grad_logits = model.loss(logits, np.array([explained]))
        else:
            grad_logits = model.loss.class_score_gradient(logits, explained)
        backward = model.backward_trace(grad_logits)
        weights = weight_views(steps)  # the weight gradients are the layers' own arrays: read them under the lock
    return Passes(steps, backward, probabilities, predicted, explained, target, loss, weights)


def analyze(loaded: LoadedModel, x: np.ndarray, class_index: int | None = None, target: str = "score") -> dict[str, Any]:
    """Probabilities, feature maps, saliency and per-layer ∂target/∂(activation) for one (1, 1, 28, 28) input.

    Args:
        loaded: the model and its checkpoint.
        x: one normalised input, (1, C, H, W).
        class_index: the class whose score (or loss) the gradients explain; None takes the predicted class.
        target: ``score`` or ``loss`` (:func:`run_passes`).
    Returns:
        a JSON-ready dict (see the module docstring); arrays are :func:`encode_signed` / :func:`encode_unsigned` dicts,
        and in ``layers``, ``weights`` and ``saliency_values`` float32 ones (:func:`cnn_cli.serve.layer_views.encode_float`).
    Raises:
        CnnError: ``class_index`` outside 0..num_classes-1.
    """
    passes = run_passes(loaded, x, class_index, target)
    steps, backward = passes.steps, passes.backward
    names = loaded.class_names
    following = {step.layer.name: after.layer.type_name for step, after in zip(steps, steps[1:], strict=False)}
    feature_maps = []
    for step in steps:
        if step.layer.type_name != "conv2d":
            continue
        maps = step.output[0]
        feature_maps.append(
            {
                "layer": step.layer.name,
                "shape": list(maps.shape),
                "next": following.get(step.layer.name, ""),
                "maps": encode_signed(maps[:MAX_CHANNELS_SHOWN]),
            }
        )
    layer_gradients = []
    for grad in backward:
        g = grad.grad_output[0]
        entry: dict[str, Any] = {
            "layer": grad.layer.name,
            "type": grad.layer.type_name,
            "shape": list(g.shape),
            "norm": float(np.sqrt(np.sum(np.square(g, dtype=np.float64)))),
        }
        if g.ndim == 3 and g.shape[1] * g.shape[2] > 1:
            # Where in the layer the target is sensitive: the L2 norm over channels at each position.
            norms = channel_norms(g)
            entry["map"] = encode_unsigned(norms)
            entry["map_values"] = encode_float(norms)
        else:
            entry["vector"] = encode_signed(g.reshape(-1))
        layer_gradients.append(entry)
    saliency = backward[0].grad_input[0].sum(axis=0)
    return {
        "classes": names,
        "probabilities": [round(float(p), 6) for p in passes.probabilities],
        "logits": [float(v) for v in steps[-1].output.reshape(-1)],
        "prediction": names[passes.predicted],
        "prediction_index": passes.predicted,
        "explained": names[passes.explained],
        "explained_index": passes.explained,
        "target": passes.target,
        "loss": passes.loss,
        "feature_maps": feature_maps,
        "saliency": encode_signed(saliency),
        "saliency_values": encode_float(saliency),
        "layer_gradients": layer_gradients,
        "layers": layer_views(steps, backward),
        "weights": passes.weights,
    }


def pixel_arithmetic(
    loaded: LoadedModel, x: np.ndarray, spot: Spot, class_index: int | None = None, target: str = "score"
) -> dict[str, Any]:
    """The arithmetic behind one conv-layer pixel (:mod:`cnn_cli.serve.arithmetic`), forward and backward.

    Raises:
        CnnError: no such layer, not a conv layer's (or its activation's) map, or a pixel outside it.
    """
    passes = run_passes(loaded, x, class_index, target)
    index = conv_step_index(passes.steps, spot.layer)
    result = forward_arithmetic(passes.steps, index, spot.channel, spot.y, spot.x)
    result["backward"] = backward_arithmetic(passes.steps[index], passes.backward[index], spot.channel, spot.y, spot.x)
    result["explained"] = loaded.class_names[passes.explained]
    result["target"] = passes.target
    return result


def analyze_upload(data: bytes, loaded: LoadedModel, class_index: int | None = None, target: str = "score") -> dict[str, Any]:
    """:func:`analyze` for image bytes, with the prepared 28×28 input and the server time in milliseconds."""
    start = time.perf_counter()
    pixels, x, warning = prepare_upload(data, loaded)
    result = analyze(loaded, x, class_index, target)
    result["input"] = encode_unsigned(pixels, 1.0)
    if warning:
        result["warning"] = warning
    result["server_ms"] = round((time.perf_counter() - start) * 1000.0, 3)
    return result


def pixel_upload(data: bytes, loaded: LoadedModel, spot: Spot, class_index: int | None = None, target: str = "score") -> dict[str, Any]:
    """:func:`pixel_arithmetic` for image bytes (prepared as for :func:`analyze_upload`)."""
    _, x, _ = prepare_upload(data, loaded)
    return pixel_arithmetic(loaded, x, spot, class_index, target)
