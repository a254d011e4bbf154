"""Start a new run from another run's weights, and freeze layers (``cnn train --init-from CKPT --freeze conv1,conv2``).

:func:`init_from_checkpoint` copies every parameter whose dotted name
(``conv1.weight``) and shape match into a freshly built model; the rest keep
their fresh initialisation. :func:`frozen_parameters` turns ``train.freeze``
(layer names) into the parameter names that :func:`cnn_cli.training.loop.train_step`
keeps away from the optimizer: a frozen parameter gets no update, no weight
decay, no optimizer state, and does not count towards gradient clipping, so it
stays bit-identical through training. Its gradient is still computed (the
layers below need the gradient that flows through it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnn_cli.errors import CheckpointError, ConfigError
from cnn_cli.model.network import Model


@dataclass
class TransferReport:
    """Which parameters came from the source checkpoint, which were skipped and why, and which are frozen."""

    source: str
    loaded: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # parameter (or buffer) name -> reason
    loaded_buffers: list[str] = field(default_factory=list)  # batch norm's running statistics, copied with their layer
    frozen: list[str] = field(default_factory=list)  # layer names

    def lines(self) -> list[str]:
        out = [f"init from {self.source}: loaded {len(self.loaded)} parameter(s): {', '.join(self.loaded) or 'none'}"]
        if self.loaded_buffers:
            out.append(f"  and {len(self.loaded_buffers)} buffer(s): {', '.join(self.loaded_buffers)}")
        out += [f"  skipped {name}: {reason}" for name, reason in self.skipped.items()]
        if self.frozen:
            out.append(f"  frozen (not trained): {', '.join(self.frozen)}")
        for layer in self.frozen:
            if not any(name.startswith(f"{layer}.") for name in self.loaded):
                out.append(f"  warning: {layer} is frozen but nothing of it was loaded: it stays at its random initialisation")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "checkpoint": self.source,
            "loaded": self.loaded,
            "loaded_buffers": self.loaded_buffers,
            "skipped": self.skipped,
            "frozen": self.frozen,
        }


def frozen_parameters(model: Model, layers: list[str]) -> frozenset[str]:
    """The dotted parameter names of the named layers; a name that is no layer with parameters is a ConfigError."""
    with_params = [layer.name for layer in model.layers if layer.params]
    for name in layers:
        layer = next((candidate for candidate in model.layers if candidate.name == name), None)
        if layer is None or not layer.params:
            what = "is not a layer of this model" if layer is None else f"is a {layer.type_name} layer, which has no parameters"
            raise ConfigError(f"train.freeze: {name!r} {what}; layers with parameters: {', '.join(with_params) or 'none'}")
    return frozenset(f"{name}.{key}" for name in layers for key in next(lay for lay in model.layers if lay.name == name).params)


def source_checkpoint(source: str | Path) -> Path:
    """A checkpoint file, or a run folder's best checkpoint (else its last)."""
    from cnn_cli.runs.folders import existing_run

    path = Path(source)
    if not path.is_dir():
        return path
    paths = existing_run(path)
    for candidate in (paths.best, paths.last):
        if candidate.is_file():
            return candidate
    raise CheckpointError(f"{paths.checkpoints}: no checkpoint ({paths.best.name} or {paths.last.name}) to start from")


def init_from_checkpoint(model: Model, source: str | Path, frozen_layers: list[str] | None = None) -> TransferReport:
    """Copy into ``model`` every parameter and buffer (running statistics) of the checkpoint with the same name and
    shape (cast to the model's dtype)."""
    from cnn_cli.runs.checkpoint import load_checkpoint

    path = source_checkpoint(source)
    ckpt, _ = load_checkpoint(path)
    report = TransferReport(str(path), frozen=list(frozen_layers or []))
    report.loaded = _copy_matching(model.params, ckpt.params, report.skipped, "parameter")
    report.loaded_buffers = _copy_matching(model.buffers, ckpt.buffers, report.skipped, "buffer")
    return report


def _copy_matching(ours: dict[str, np.ndarray], stored: dict[str, np.ndarray], skipped: dict[str, str], noun: str) -> list[str]:
    """Copy each stored array into the one of ``ours`` with its name and shape; the names copied, the rest in ``skipped``."""
    loaded = []
    for name, value in ours.items():
        source = stored.get(name)
        if source is None:
            skipped[name] = "not in the checkpoint"
        elif source.shape != value.shape:
            skipped[name] = f"shape {tuple(source.shape)} in the checkpoint, {tuple(value.shape)} here"
        else:
            value[...] = np.asarray(source, dtype=value.dtype)
            loaded.append(name)
    skipped.update({name: f"in the checkpoint only (no such {noun} here)" for name in stored if name not in ours})
    return loaded
