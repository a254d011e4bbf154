"""Figure helpers shared by every picture: sizes, styles, saving, panels and file names."""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties

from cnn_cli.errors import CnnError
from cnn_cli.runs.checkpoint import atomic_write

DPI = 100


FIGURE_INCHES: dict[str, tuple[float, float]] = {
    "learning_curves": (12.0, 5.0),
    "confusion_matrix": (11.0, 8.0),
    "misclassified": (12.0, 10.0),
    "filters": (10.0, 8.0),
    "feature_maps": (12.0, 12.0),  # a grid of (H, W) maps
    "feature_vector": (12.0, 5.0),  # a layer whose maps are 1×1: one bar per channel
    "saliency": (13.0, 4.8),
    "gradient_flow": (15.0, 11.0),
    "backward_maps": (12.0, 12.0),  # a grid of dScore/d(layer output) maps
    "backward_vector": (12.0, 5.0),  # a layer whose output is a vector: one bar per unit
    "relu_mask": (12.0, 12.0),
    "relu_mask_vector": (12.0, 3.6),  # a ReLU after a dense layer: one strip of units
    "maxpool_winners": (12.0, 12.0),
    # the saliency row, then one row per conv layer (1 to MAX_OVERLAP_ROWS of them)
    **{f"col2im_overlap_{rows}": (15.0, 1.2 + 3.6 * (rows + 1)) for rows in range(1, 5)},
}


LEARNING_CURVES_FILE = "learning_curves.png"


CONFUSION_MATRIX_FILE = "confusion_matrix.png"


MISCLASSIFIED_FILE = "misclassified.png"


FILTERS_FILE = "filters.png"


SALIENCY_FILE = "saliency.png"


FEATURE_MAPS_FILE = "feature_maps_{layer}.png"


GRADIENT_FLOW_FILE = "gradient_flow.png"


BACKWARD_FILE = "backward_{index:02d}_{layer}.png"


RELU_MASK_FILE = "relu_mask_{layer}.png"


MAXPOOL_WINNERS_FILE = "maxpool_winners_{layer}.png"


COL2IM_OVERLAP_FILE = "col2im_overlap.png"


MAX_OVERLAP_ROWS = 4


VIZ_DIR = "viz"


TEST_IMAGE = re.compile(r"^test:(.*)$")


MISCLASSIFIED_ROWS, MISCLASSIFIED_COLS = 4, 6


MAX_PANELS = 64  # kernels or feature maps per grid; more would be too small to see


STYLE: dict[Any, Any] = {"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "figure.titlesize": 14}


OUT_STYLE: dict[Any, Any] = {"font.size": 11, "axes.titlesize": 12}  # the one-panel pictures of --out files


INK_CMAP = "gray_r"  # digits drawn dark on white


SIGNED_CMAP = "RdBu_r"  # red > 0, blue < 0, white = 0


GRID_MARGINS = {"left": 0.02, "right": 0.88, "bottom": 0.02, "wspace": 0.08, "hspace": 0.25}


COLORBAR_BOX = (0.9, 0.2, 0.018, 0.55)  # left, bottom, width, height as fractions of the figure


def figure_pixels(kind: str) -> tuple[int, int]:
    """(width, height) in pixels of a PNG of this kind (a key of :data:`FIGURE_INCHES`)."""
    width, height = FIGURE_INCHES[kind]
    return round(width * DPI), round(height * DPI)


@contextmanager
def _saved_figure(path: Path, inches: tuple[float, float], style: dict[Any, Any], grid_top: float | None = None) -> Iterator[Figure]:
    """A fresh figure of ``inches`` at :data:`DPI`, drawn under ``style``; saved atomically as PNG to ``path`` when the block ends.

    Plots with a few axes use constrained layout. Grids of many small panels
    give ``grid_top`` instead and get fixed margins (:data:`GRID_MARGINS`):
    constrained layout measures every panel and is slow for dozens of them.
    """
    with matplotlib.rc_context(style):  # type: ignore[arg-type]  # matplotlib types the keys as a Literal of every rc name
        fig = Figure(figsize=inches, dpi=DPI, layout=None if grid_top else "constrained")
        if grid_top:
            fig.subplots_adjust(top=grid_top, **GRID_MARGINS)
        FigureCanvasAgg(fig)
        yield fig
        atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=DPI))


def _figure(kind: str, path: Path, grid_top: float | None = None) -> contextlib.AbstractContextManager[Figure]:
    """The figure of one kind of picture (its size from :data:`FIGURE_INCHES`, the :data:`STYLE` fonts)."""
    return _saved_figure(path, FIGURE_INCHES[kind], STYLE, grid_top)


def out_figure(path: Path, inches: tuple[float, float], example: str) -> contextlib.AbstractContextManager[Figure]:
    """The figure of a picture written to the file a user named with ``--out`` (``cnn compare``, ``cnn lr-find``).

    Raises:
        CnnError: ``path`` is a folder; ``example`` is the kind of file name to give instead.
    """
    if path.is_dir():
        raise CnnError(f"--out {path}: is a folder; give a file name like {example}")
    return _saved_figure(path, inches, OUT_STYLE)


TITLE_MARGIN = 0.02  # of the figure's width, kept free at each side of a title line


def _title_lines(fig: Figure, text: str, fontsize: float) -> list[str]:
    """``text``'s lines, each wrapped at spaces so that it fits the figure's width at ``fontsize`` (measured, not guessed)."""
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]  # FigureCanvasAgg has one
    font = FontProperties(size=fontsize)
    room = fig.bbox.width * (1 - 2 * TITLE_MARGIN)

    def fits(line: str) -> bool:
        return renderer.get_text_width_height_descent(line, font, ismath=False)[0] <= room

    lines: list[str] = []
    for paragraph in text.split("\n"):
        current = ""
        for word in paragraph.split(" "):
            trial = f"{current} {word}" if current else word
            if current and not fits(trial):
                lines.append(current)
                current = word
            else:
                current = trial
        lines.append(current)
    return lines


def fitted_suptitle(fig: Figure, text: str) -> None:
    """The figure's title, every line wrapped to the figure's width so that none is cut at the edges.

    In a fixed-margin grid figure (no layout engine) the panels move down below the title's last line.
    """
    fontsize = FontProperties(size=matplotlib.rcParams["figure.titlesize"]).get_size_in_points()
    title = fig.suptitle("\n".join(_title_lines(fig, text, fontsize)), fontsize=fontsize)
    if fig.get_layout_engine() is None:
        renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
        bottom = title.get_window_extent(renderer).y0 / fig.bbox.height
        fig.subplots_adjust(top=min(fig.subplotpars.top, bottom - 0.035))


def _note(ax: Any, text: str) -> None:
    """Write a centred explanation in an empty panel."""
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=12, color="0.3", transform=ax.transAxes)


def _probability(p: float) -> str:
    """``p=0.873``; a probability that would round to 1 reads ``p>0.999``, not ``p=1.000``."""
    return "p>0.999" if p > 0.9995 else f"p={p:.3f}"


def _grid_shape(count: int) -> tuple[int, int]:
    cols = math.ceil(math.sqrt(count))
    return math.ceil(count / cols), cols


def _grid_colorbar(fig: Figure, image: Any, label: str) -> None:
    """A colour bar at the right edge of a fixed-margin grid figure."""
    fig.colorbar(image, cax=fig.add_axes(COLORBAR_BOX), label=label)


def _no_ticks(axes: Any) -> None:
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])


def _more_channels(channels: int) -> str:
    """The title's note when a grid shows only the first :data:`MAX_PANELS` channels."""
    return f"; first {MAX_PANELS} of {channels} channels" if channels > MAX_PANELS else ""


def _panels(fig: Figure, count: int) -> Iterator[tuple[int, Any]]:
    """``(index, ax)`` for the first ``count`` panels of a near-square grid without ticks; the spare panels are hidden."""
    rows, cols = _grid_shape(count)
    for index, ax in enumerate(np.atleast_1d(fig.subplots(rows, cols)).ravel()):
        _no_ticks([ax])
        if index >= count:
            ax.set_axis_off()
            continue
        yield index, ax


def _panel_title(ax: Any, text: str, count: int) -> None:
    """A panel's title, smaller in a grid of more than 36 panels."""
    ax.set_title(text, fontsize=10 if count <= 36 else 9, pad=2)


def _signed_maps(fig: Figure, maps: np.ndarray, limit: float, label: str) -> None:
    """One panel per (H, W) map of ``maps`` (C, H, W), on one colour scale from -limit to +limit, with a colour bar."""
    image = None
    for channel, ax in _panels(fig, len(maps)):
        image = ax.imshow(maps[channel], cmap=SIGNED_CMAP, vmin=-limit, vmax=limit)
        _panel_title(ax, f"ch {channel}", len(maps))
    _grid_colorbar(fig, image, label)


def _signed_bars(ax: Any, values: np.ndarray) -> None:
    """One bar per value, red above 0 and blue below, on a zero line; the axis fits the bars."""
    ax.bar(np.arange(len(values)), values, color=np.where(values >= 0, "tab:red", "tab:blue"), width=0.8)
    ax.axhline(0, color="0.3", linewidth=0.8)
    ax.set_xlim(-0.8, len(values) - 0.2)
    ax.grid(True, axis="y", alpha=0.3)


def _input_and_saliency(fig: Figure, input_ax: Any, grad_ax: Any, pixels: np.ndarray, gradient: np.ndarray, class_name: str) -> float:
    """The input as the network sees it, and d score/d pixel beside it on a signed scale; returns that scale's limit."""
    limit = float(np.abs(gradient).max()) or 1.0
    input_ax.imshow(pixels, cmap=INK_CMAP, vmin=0, vmax=1)
    input_ax.set_title("input (as the network sees it)")
    signed = grad_ax.imshow(gradient, cmap=SIGNED_CMAP, vmin=-limit, vmax=limit)
    grad_ax.set_title(f"saliency: d score({class_name}) / d pixel")
    fig.colorbar(signed, ax=grad_ax, shrink=0.85, label="gradient")
    return limit
