"""The random generators a model carries (dropout's masks), saved in checkpoints so a resume draws what the run would have drawn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnn_cli.errors import CheckpointError


def _random_layers(model: Any) -> list[Any]:
    """Every layer that draws random numbers, inner layers of blocks included (``res1.drop1``)."""
    layers = model.all_layers() if hasattr(model, "all_layers") else model.layers
    return [layer for layer in layers if hasattr(layer, "rng")]


def model_rng_state(model: Any) -> dict[str, Any]:
    """The generator state of every layer that draws random numbers (dropout), by layer name."""
    return {layer.name: layer.rng.bit_generator.state for layer in _random_layers(model)}


def restore_rng_state(model: Any, state: dict[str, Any], source: str | Path = "checkpoint") -> None:
    """Put back each random layer's generator state (the inverse of :func:`model_rng_state`).

    Raises:
        CheckpointError: a stored state NumPy refuses (a damaged or edited checkpoint), naming the layer.
    """
    for layer in _random_layers(model):
        if layer.name in state:
            try:
                layer.rng.bit_generator.state = state[layer.name]
            except (TypeError, ValueError, KeyError, OverflowError) as exc:
                raise CheckpointError(f"{source}: meta/rng: not a random generator state for layer {layer.name} ({exc})") from None
