"""The rows of ``cnn summary``: each layer's window, output shape, receptive field on the input, parameters, memory and FLOPs.

The receptive field follows one output unit back to the input image (notes 000's
28 -> 28 -> 14 -> 12 -> 10 feature maps): through a window of kernel k, stride s and
dilation d, r_out = r_in + (k - 1)·d·j_in and j_out = j_in·s, from r = j = 1 at the
input (:class:`cnn_cli.nn.shapes.ReceptiveField`; each layer applies its own step; `cnn docs output-size`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnn_cli.layers import Layer, Shape
from cnn_cli.layers.base import elements
from cnn_cli.nn.shapes import ReceptiveField

WINDOW_KEYS = ("kernel_size", "stride", "padding", "dilation", "groups")


@dataclass
class LayerSummary:
    """One row of :meth:`cnn_cli.model.network.Model.summary`, for one sample (one image)."""

    name: str
    type_name: str
    output_shape: tuple[int, ...]
    num_params: int
    flops: int
    depth: int = 0  # 0: a layer of the model; 1: a layer inside a block of it; ...
    window: dict[str, Any] = field(default_factory=dict)  # kernel_size, stride, padding, dilation, groups as the layer has them
    receptive_field: ReceptiveField | None = None  # None when the model's input is not an image
    param_bytes: int = 0  # parameter values x the model's itemsize
    activation_bytes: int = 0  # this layer's output for one image x the model's itemsize


def summarize(layers: list[Layer[Any]], input_shape: Shape, dtype: np.dtype, max_depth: int | None = None) -> list[LayerSummary]:
    """One row per layer, in forward order; a layer with children is followed by theirs, up to ``max_depth`` levels
    (1: the model's own layers only; None: every level)."""
    rows: list[LayerSummary] = []
    start = ReceptiveField() if len(input_shape) == 3 else None
    _walk(layers, start, 0, np.dtype(dtype).itemsize, max_depth, rows)
    return rows


def _walk(
    layers: list[Layer[Any]], field_in: ReceptiveField | None, depth: int, itemsize: int, max_depth: int | None, rows: list[LayerSummary]
) -> None:
    for layer in layers:
        field_out = layer.receptive_field(field_in) if field_in is not None else None
        num_params = sum(p.size for p in layer.params.values())
        config = layer.config()
        rows.append(
            LayerSummary(
                layer.name,
                layer.type_name,
                layer.output_shape,
                num_params,
                layer.flops(),
                depth,
                {key: config[key] for key in WINDOW_KEYS if key in config},
                field_out,
                num_params * itemsize,
                elements(layer.output_shape) * itemsize,
            )
        )
        if layer.children() and (max_depth is None or depth + 1 < max_depth):
            _walk(layer.children(), field_in, depth + 1, itemsize, max_depth, rows)
        field_in = field_out


# Column titles and widths of the table; numbers are right-aligned.
_COLUMNS = (
    ("layer", 12),
    ("type", 16),
    ("kernel", 11),
    ("stride", 7),
    ("pad", 5),
    ("output shape", 16),
    ("RF", 9),
    ("jump", 6),
    ("params", 11),
    ("param mem", 11),
    ("act mem", 10),
    ("FLOPs", 14),
)
_RIGHT = {"params", "param mem", "act mem", "FLOPs"}


def summary_table(rows: list[LayerSummary], input_shape: Shape, dtype: np.dtype) -> list[str]:
    """The table ``cnn summary`` prints: a row for the input, one per layer, the totals and what the columns mean."""
    itemsize = np.dtype(dtype).itemsize
    image = len(input_shape) == 3
    lines = [_line(title for title, _ in _COLUMNS)]
    rule = "-" * len(lines[0])
    lines.append(rule)
    input_bytes = _bytes(elements(input_shape) * itemsize)
    lines.append(
        _line(["input", "", "", "", "", str(tuple(input_shape)), "1x1" if image else "-", "1" if image else "-", "", "", input_bytes, ""])
    )
    lines += [_line(_cells(row)) for row in rows]
    lines.append(rule)
    top = [row for row in rows if row.depth == 0]
    activations = elements(input_shape) * itemsize + sum(row.activation_bytes for row in top)
    total = [
        sum(row.num_params for row in top),
        _bytes(sum(row.param_bytes for row in top)),
        _bytes(activations),
        sum(row.flops for row in top),
    ]
    lines.append(_line(["total", *[""] * 7, f"{total[0]:,}", total[1], total[2], f"{total[3]:,}"]))
    lines.append("RF: the input pixels one output unit sees, r = r_in + (k-1)·d·j_in (beyond the image edge: padding);")
    lines.append("    after a flatten, a layer that mixes the values sees the whole map. jump: pixels between units, j = j_in·s")
    lines.append(f"memory per image in {np.dtype(dtype).name}: param mem = the parameters, act mem = the layer's output")
    return lines


def _cells(row: LayerSummary) -> list[str]:
    window = row.window
    kernel = ""
    if "kernel_size" in window:
        kernel = "x".join(map(str, window["kernel_size"]))
        kernel += f" d{_pair_text(window['dilation'])}" if tuple(window.get("dilation", (1, 1))) != (1, 1) else ""
        kernel += f" g{window['groups']}" if window.get("groups", 1) != 1 else ""
    receptive = row.receptive_field
    return [
        "  " * row.depth + row.name,
        row.type_name,
        kernel,
        _pair_text(window["stride"]) if "stride" in window else "",
        _pair_text(window["padding"]) if "padding" in window else "",
        str(row.output_shape),
        "x".join(map(str, receptive.size)) if receptive else "-",
        "-" if receptive is None or receptive.flat else _pair_text(receptive.jump),
        f"{row.num_params:,}",
        _bytes(row.param_bytes) if row.num_params else "",
        _bytes(row.activation_bytes),
        f"{row.flops:,}",
    ]


def _line(cells: Any) -> str:
    out = []
    for (title, width), cell in zip(_COLUMNS, cells, strict=True):
        out.append(f"{cell:>{width}}" if title in _RIGHT else f"{cell:<{width}}")
    return "".join(out).rstrip()


def _pair_text(values: Any) -> str:
    """(2, 2) -> "2"; (2, 1) -> "2x1"."""
    first, second = values
    return str(first) if first == second else f"{first}x{second}"


def _bytes(count: int) -> str:
    """Bytes in decimal units, as the memory estimate counts them: 576 B, 1.2 KB, 3.5 MB."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if count >= scale:
            return f"{count / scale:,.1f} {unit}"
    return f"{count} B"
