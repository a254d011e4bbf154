"""The record of an LR range test: the learning rates and losses of every step, the smoothed curve and the suggestion."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

BETA = 0.9


LR_FIND_PLOT = "lr_find-{config}.png"  # in the runs folder: a range test is no run, but it belongs with them


DIVERGE_FACTOR = 4.0


SKIP_START = 10


MIN_DIVISOR = 10.0


@dataclass
class LrFindResult:
    """The sweep: lr and loss of every step taken, the smoothed loss, and the suggestion."""

    config_name: str
    config_lr: float
    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    steps_planned: int
    stopped_early: str  # why the sweep ended before steps_planned ("" if it did not)
    suggestion: float | None
    suggestion_note: str  # why there is no suggestion, or what to read it with
    min_loss_lr: float
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "config": self.config_name,
            "config_lr": self.config_lr,
            "suggested_lr": self.suggestion,
            "note": self.suggestion_note,
            "min_smoothed_loss_lr": self.min_loss_lr,
            "min_lr_over_10": self.min_loss_lr / MIN_DIVISOR,
            "steps": len(self.lrs),
            "steps_planned": self.steps_planned,
            "stopped_early": self.stopped_early,
            "smoothing": f"exponential moving average, beta {BETA}, bias-corrected, run forwards then backwards",
            "lr": [float(v) for v in self.lrs],
            "loss": [float(v) if math.isfinite(v) else None for v in self.losses],
            "smoothed_loss": [float(v) if math.isfinite(v) else None for v in self.smoothed],
            "seconds": round(self.seconds, 2),
        }

    def describe(self) -> str:
        lines = [
            f"lr range test on {self.config_name}: {len(self.lrs)} of {self.steps_planned} steps, "
            f"lr {self.lrs[0]:.2g} to {self.lrs[-1]:.2g}, {self.seconds:.1f}s"
            + (f"; stopped early: {self.stopped_early}" if self.stopped_early else ""),
            f"smoothed loss (EMA, beta {BETA}, bias-corrected, forwards then backwards) is lowest at lr {self.min_loss_lr:.2e}; "
            f"a tenth of that: {self.min_loss_lr / MIN_DIVISOR:.2e}",
        ]
        if self.suggestion is None:
            lines.append(f"no suggestion: {self.suggestion_note}")
        else:
            lines.append(f"suggested lr {self.suggestion:.2e} (steepest descent of the smoothed loss; the config uses {self.config_lr:g})")
        return "\n".join(lines)
