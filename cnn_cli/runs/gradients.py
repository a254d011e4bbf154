"""Read a run's ``gradients.csv``: per-layer gradient norms logged during training.

The training loop's gradient logger writes one row per layer per logged moment,
layers in model order (input side first)::

    epoch,step,event,layer,type,weight_grad_norm,bias_grad_norm,input_grad_norm,update_ratio,dead_fraction

``event`` is ``step`` (every ``train.log_every`` steps) or ``epoch`` (an epoch's
end); an empty cell is a value that does not apply (a layer without weights, a
layer that is not a ReLU). Norms are L2 (Frobenius) norms over the logged batch.
:func:`cnn_cli.pictures.gradient_flow.plot_gradient_flow` draws them.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from cnn_cli.bounded_read import RECORD_BYTES, read_text
from cnn_cli.errors import CnnError

GRADIENT_COLUMNS = (
    "epoch",
    "step",
    "event",
    "layer",
    "type",
    "weight_grad_norm",
    "bias_grad_norm",
    "input_grad_norm",
    "update_ratio",
    "dead_fraction",
)
INT_COLUMNS = ("epoch", "step")
TEXT_COLUMNS = ("event", "layer", "type")
FLOAT_COLUMNS = tuple(c for c in GRADIENT_COLUMNS if c not in INT_COLUMNS + TEXT_COLUMNS)


def _parse_row(raw: list[str]) -> dict[str, Any] | None:
    """One CSV record as typed values (empty float cells -> nan); None when it is incomplete."""
    if len(raw) != len(GRADIENT_COLUMNS):
        return None
    row: dict[str, Any] = dict(zip(GRADIENT_COLUMNS, raw, strict=True))
    try:
        for key in INT_COLUMNS:
            row[key] = int(row[key])
        for key in FLOAT_COLUMNS:
            row[key] = float(row[key]) if row[key] != "" else math.nan
    except ValueError:
        return None
    if not row["layer"] or row["event"] not in ("step", "epoch"):
        return None
    return row


def read_gradients(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a ``gradients.csv``, typed, in file order.

    A run killed while writing leaves a half-written last line (no newline at its
    end): it is dropped, every complete line before it is kept. A bad complete
    line is an error.

    Raises:
        CnnError: unreadable file, wrong header, or a malformed line before the last one.
    """
    path = Path(path)
    try:
        text = read_text(path, RECORD_BYTES, "gradients file")  # bounded: a FIFO or a device is refused, not waited on
    except CnnError as exc:
        raise CnnError(f"{path}: cannot read gradients file: {str(exc).removeprefix(f'{path}: ')}") from None
    lines = text.splitlines()
    if not lines:
        return []
    records = list(csv.reader(lines))
    if tuple(records[0]) != GRADIENT_COLUMNS:
        raise CnnError(f"{path}: expected the header {','.join(GRADIENT_COLUMNS)}, got {lines[0][:200]!r}")
    if not text.endswith("\n"):
        # A run killed while writing leaves its last line without a newline: even if it
        # parses, a cut-off number would read as a wrong value, so it is dropped.
        records = records[:-1]
    rows = []
    for number, raw in enumerate(records[1:], start=1):
        if not raw:
            continue
        row = _parse_row(raw)
        if row is None:
            raise CnnError(f"{path}: line {number + 1} is not a gradients row: {lines[number][:200]!r}")
        rows.append(row)
    return rows


def layer_order(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(layer name, type) in model order, as first seen in the rows."""
    seen: dict[str, str] = {}
    for row in rows:
        seen.setdefault(row["layer"], row["type"])
    return list(seen.items())
