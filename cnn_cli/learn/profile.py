"""Per-layer timing of a training step: where forward and backward time goes."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from cnn_cli.model.network import Model


@dataclass
class LayerTiming:
    """Median milliseconds per batch for one layer's forward and backward."""

    name: str
    forward_ms: float
    backward_ms: float


def profile_training_step(model: Model, batch_size: int = 64, rounds: int = 10, seed: int = 0) -> list[LayerTiming]:
    """Time each layer's forward and backward on random data, as the training step runs them.

    The first layer's input gradient is skipped, as in training. Returns the median
    over ``rounds`` after one warm-up round.
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch_size, *model.input_shape)).astype(model.dtype)
    labels = rng.integers(0, model.loss.num_classes, batch_size)
    forward: dict[str, list[float]] = {layer.name: [] for layer in model.layers}
    backward: dict[str, list[float]] = {layer.name: [] for layer in model.layers}
    for round_index in range(rounds + 1):
        steps = model.trace(x, training=True)
        for step in steps:
            forward[step.layer.name].append(step.seconds)
        _, grad = model.loss(steps[-1].output, labels)
        # The backward runs layer by layer as Model.backward does, except that the first
        # layer skips its input gradient (training never needs dL/dx of the images).
        for index in range(len(model.layers) - 1, -1, -1):
            layer = model.layers[index]
            start = time.perf_counter()
            grad_input = layer.backward(grad, need_input_grad=index > 0)
            backward[layer.name].append(time.perf_counter() - start)
            if grad_input is not None:
                grad = grad_input
        if round_index == 0:  # warm-up
            for times in (*forward.values(), *backward.values()):
                times.clear()
    return [
        LayerTiming(layer.name, 1e3 * float(np.median(forward[layer.name])), 1e3 * float(np.median(backward[layer.name])))
        for layer in model.layers
    ]


def format_profile(timings: list[LayerTiming]) -> str:
    """A table: layer, forward ms, backward ms, share of the step."""
    total = sum(t.forward_ms + t.backward_ms for t in timings) or 1.0
    lines = [f"{'layer':<12}{'forward ms':>12}{'backward ms':>13}{'share':>8}"]
    for t in timings:
        lines.append(f"{t.name:<12}{t.forward_ms:>12.2f}{t.backward_ms:>13.2f}{(t.forward_ms + t.backward_ms) / total:>8.1%}")
    lines.append(f"{'total':<12}{sum(t.forward_ms for t in timings):>12.2f}{sum(t.backward_ms for t in timings):>13.2f}")
    return "\n".join(lines)
