"""What a sweep run is given (the engine's options) and what it returns."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cnn_cli.sweep.report import (
    TrialRow,
)

CONNECT_TIMEOUT_S = 10


@dataclass
class EngineOptions:
    """Where trials run. ``ship_data`` None means: ship with ``scheduler``, use the workers' folder locally."""

    scheduler: str | None = None
    workers: int | None = None
    dashboard: str | None = None  # an address such as 127.0.0.1:8787, or None for no dashboard
    ship_data: bool | None = None
    connect_timeout: float = CONNECT_TIMEOUT_S


@dataclass
class SweepResult:
    """How the sweep ended."""

    root: Path
    rows: list[TrialRow]
    interrupted: bool
    best: TrialRow | None
    png: Path | None
