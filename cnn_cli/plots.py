"""Pictures of a run and of one input, written as PNG files.

``cnn plot RUN_DIR`` calls :func:`plot_run`; ``cnn viz CHECKPOINT IMAGE`` calls
:func:`visualize_image`. Figures are drawn on matplotlib's Agg canvas directly
(``Figure`` + ``FigureCanvasAgg``), so no display is needed and the global
pyplot backend of a notebook importing this module is left alone. Every figure
has a fixed size in inches and a fixed dpi (:data:`FIGURE_INCHES`, :data:`DPI`),
so the pixel size of each PNG is known in advance (:func:`figure_pixels`).

The arrays come from :mod:`cnn_cli.visualize`; this module only draws them.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from cnn_cli.checkpoint import Checkpoint, atomic_write, load_checkpoint
from cnn_cli.config import config_from_dict
from cnn_cli.errors import CheckpointError, CnnError, ImageError
from cnn_cli.evaluation import predictions
from cnn_cli.images import MNIST_SIZE, load_image
from cnn_cli.model import Model
from cnn_cli.runs import CHECKPOINT_DIR, CONFIG_FILE, RunPaths, existing_run, read_metrics
from cnn_cli.visualize import confident_mistakes, feature_maps, saliency

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


# ---------------------------------------------------------------- loading


def run_checkpoint(paths: RunPaths) -> Path:
    """The run's best checkpoint, else its last one; a clear error when it has neither."""
    for candidate in (paths.best, paths.last):
        if candidate.is_file():
            return candidate
    raise CheckpointError(f"{paths.checkpoints}: no checkpoint ({paths.best.name} or {paths.last.name}); the run stopped before saving one")


def _test_split(ckpt: Checkpoint) -> tuple[np.ndarray, np.ndarray]:
    """The checkpoint's test split, (N, 1, 28, 28) normalised images and (N,) labels, as ``cnn eval`` sees it."""
    from cnn_cli.inference import checkpoint_splits

    splits = checkpoint_splits(ckpt)
    return splits.test.images, splits.test.labels


def _class_names(ckpt: Checkpoint, model: Model) -> list[str]:
    """The original label of each class index (e.g. ``['0', '1']`` or ``['3', '8']``)."""
    classes = ckpt.data.get("classes") or list(range(model.loss.num_classes))
    return [str(c) for c in classes]


def _pixels(image: np.ndarray, ckpt: Checkpoint) -> np.ndarray:
    """Undo the normalisation of one (C, H, W) input for display: (H, W) in [0, 1]."""
    mean, std = float(ckpt.data.get("mean", 0.0)), float(ckpt.data.get("std", 1.0))
    return np.clip(image.mean(axis=0) * std + mean, 0.0, 1.0)


def _run_status(paths: RunPaths) -> str:
    try:
        return str(json.loads(paths.run_info.read_text(encoding="utf-8")).get("status", "unknown"))
    except (OSError, ValueError, AttributeError):
        return "unknown"


# ---------------------------------------------------------------- cnn plot


def plot_run(run_dir: str | Path) -> list[Path]:
    """Draw a run's learning curves, test confusion matrix, misclassified digits and first-layer filters,
    and its gradient flow when the run logged ``gradients.csv``.

    Uses ``checkpoints/best.npz`` if present, else ``last.npz``. A run with no
    finished epoch (interrupted early) or a single one still gets every picture;
    the learning curves then say what is missing.

    Returns:
        the four PNG paths (five with ``gradient_flow.png``), inside ``RUN_DIR/plots/``.
    Raises:
        CnnError: the folder is not a run, or it holds no checkpoint (one line).
    """
    paths = existing_run(run_dir)
    checkpoint = run_checkpoint(paths)
    gradient_rows = None
    if paths.gradients.is_file():  # read first: a broken file fails before the slow pictures
        from cnn_cli.gradient_flow import read_gradients

        gradient_rows = read_gradients(paths.gradients)
    ckpt, model = load_checkpoint(checkpoint)
    paths.plots.mkdir(parents=True, exist_ok=True)
    title = f"run {paths.root.resolve().name} ({_run_status(paths)}), {checkpoint.name}"

    written = [plot_learning_curves(read_metrics(paths.metrics), ckpt.best_epoch, paths.plots / LEARNING_CURVES_FILE, title)]
    images, labels = _test_split(ckpt)
    batch = config_from_dict(ckpt.config).train.eval_batch_size
    chunks = [model.forward(images[i : i + batch], keep_cache=False) for i in range(0, len(images), batch)]
    logits = np.concatenate(chunks) if chunks else np.zeros((0, *model.output_shape), model.dtype)
    probabilities = model.loss.probabilities(logits)
    predicted = predictions(model, logits)
    names = _class_names(ckpt, model)
    written.append(plot_confusion_matrix(labels, predicted, names, paths.plots / CONFUSION_MATRIX_FILE, title))
    written.append(plot_misclassified(images, labels, probabilities, predicted, names, ckpt, paths.plots / MISCLASSIFIED_FILE, title))
    written.append(plot_filters(model, paths.plots / FILTERS_FILE, title))
    if gradient_rows is not None:
        written.append(plot_gradient_flow(gradient_rows, paths.plots / GRADIENT_FLOW_FILE, title))
    return written


def plot_learning_curves(rows: list[dict[str, Any]], best_epoch: int, path: Path, title: str = "") -> Path:
    """Loss and accuracy per epoch, train vs validation, with the best epoch marked.

    Args:
        rows: metrics.csv rows (:func:`cnn_cli.runs.read_metrics`); may be empty.
        best_epoch: the epoch with the best validation accuracy (0: none).
    """
    epochs = np.array([r["epoch"] for r in rows], dtype=float)
    has_val = np.isfinite(np.array([r["val_loss"] for r in rows], dtype=float))
    notes = []
    if len(rows) == 1:
        notes.append("one finished epoch only: each curve is a single point")
    if rows and not has_val.any():
        notes.append("no validation split (data.val_size is 0)")
    with _figure("learning_curves", path) as fig:
        loss_ax, acc_ax = fig.subplots(1, 2)
        fig.suptitle("\n".join([f"Learning curves: {title}" if title else "Learning curves", *notes]))
        for ax, key, label in ((loss_ax, "loss", "loss (mean over the epoch)"), (acc_ax, "acc", "accuracy")):
            ax.set_title(label.split(" ")[0].capitalize())
            ax.set_xlabel("epoch")
            ax.set_ylabel(label)
            if not rows:
                _note(ax, "no finished epoch yet:\nthe run stopped before its first epoch ended,\nso there is no curve to draw")
                continue
            train = np.array([r[f"train_{key}"] for r in rows], dtype=float)
            val = np.array([r[f"val_{key}"] for r in rows], dtype=float)
            ax.plot(epochs, train, "o-", color="tab:blue", label="train")
            if has_val.any():
                ax.plot(epochs[has_val], val[has_val], "s-", color="tab:orange", label="validation")
            if best_epoch in epochs:
                ax.axvline(best_epoch, color="tab:green", linestyle="--", linewidth=1.2, label=f"best epoch ({best_epoch})")
                best_row = rows[int(np.flatnonzero(epochs == best_epoch)[0])]
                if math.isfinite(best_row[f"val_{key}"]):
                    ax.plot([best_epoch], [best_row[f"val_{key}"]], "*", color="tab:green", markersize=16)
            if len(epochs) <= 20:
                ax.set_xticks(epochs, [str(int(e)) for e in epochs])
            else:
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlim(epochs.min() - 0.5, epochs.max() + 0.5)
            ax.grid(True, alpha=0.3)
            ax.legend(loc="best")
        acc_ax.set_ylim(top=1.0)
    return path


def plot_confusion_matrix(labels: np.ndarray, predicted: np.ndarray, names: list[str], path: Path, title: str = "") -> Path:
    """Counts of (true, predicted) classes on the test split, with per-class accuracy beside each row.

    Cell colour is the fraction of the true class (its row), on a square-root
    scale so that the few mistakes stand out next to the large diagonal.
    """
    k = len(names)
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (labels, predicted), 1)
    row_totals = counts.sum(axis=1)
    fractions = counts / np.maximum(row_totals, 1)[:, None]
    per_class = counts.diagonal() / np.maximum(row_totals, 1)
    accuracy = counts.diagonal().sum() / max(counts.sum(), 1)
    with _figure("confusion_matrix", path) as fig:
        matrix_ax, acc_ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [5, 1.3]})
        fig.suptitle(f"Test confusion matrix: {title}\n{counts.sum():,} images, accuracy {accuracy:.2%}")
        image = matrix_ax.imshow(fractions, cmap="Blues", norm=PowerNorm(gamma=0.5, vmin=0, vmax=1))
        cell_font = 10 if k <= 10 else 7
        for true in range(k):
            for pred in range(k):
                matrix_ax.text(
                    pred,
                    true,
                    f"{counts[true, pred]}",
                    ha="center",
                    va="center",
                    fontsize=cell_font,
                    color="white" if fractions[true, pred] > 0.5 else "black",
                )
        matrix_ax.set_xticks(range(k), names)
        matrix_ax.set_yticks(range(k), names)
        matrix_ax.set_xlabel("predicted class")
        matrix_ax.set_ylabel("true class")
        matrix_ax.set_title("counts")
        fig.colorbar(image, ax=matrix_ax, shrink=0.8, label="colour: fraction of the true class (row)")

        # A good model has every class above 90%: start the axis at the tens below the worst class
        # so that differences show; the printed percentages carry the exact values.
        low = max(0.0, math.floor((per_class.min() - 0.02) * 10) / 10) if k else 0.0
        span = 1.0 - low
        rows = np.arange(k)
        acc_ax.barh(rows, per_class - low, left=low, color="tab:blue", height=0.7)
        for row, value in zip(rows, per_class, strict=True):
            inside = value - low > 0.45 * span  # the label fits inside the bar
            acc_ax.text(
                value - 0.03 * span if inside else max(value, low) + 0.03 * span,
                row,
                f"{value:.1%}",
                va="center",
                ha="right" if inside else "left",
                color="white" if inside else "black",
                fontsize=cell_font,
            )
        acc_ax.set_ylim(k - 0.5, -0.5)
        acc_ax.set_yticks(range(k), names)
        acc_ax.set_xlim(low, 1)
        acc_ax.set_xticks([low, 1], [f"{low:.0%}", "100%"])
        acc_ax.set_xlabel("accuracy" if low == 0 else f"accuracy (axis from {low:.0%})")
        acc_ax.set_title("per class")
    return path


def plot_misclassified(
    images: np.ndarray,
    labels: np.ndarray,
    probabilities: np.ndarray,
    predicted: np.ndarray,
    names: list[str],
    ckpt: Checkpoint,
    path: Path,
    title: str = "",
) -> Path:
    """A grid of the test images the model got wrong with the highest confidence.

    Args:
        images: (N, C, H, W) normalised test images; labels, predicted: (N,);
        probabilities: (N, num_classes).
    """
    count = MISCLASSIFIED_ROWS * MISCLASSIFIED_COLS
    chosen = confident_mistakes(probabilities, predicted, labels, count)
    wrong_total = int((predicted != labels).sum())
    with _figure("misclassified", path, grid_top=0.88) as fig:
        fig.suptitle(
            f"Most confidently wrong test images: {title}\n"
            f"{wrong_total:,} of {len(labels):,} wrong; showing the {len(chosen)} with the highest "
            "probability on the wrong class"
        )
        fig.subplots_adjust(right=0.98, hspace=0.4)
        axes = fig.subplots(MISCLASSIFIED_ROWS, MISCLASSIFIED_COLS).ravel()
        for ax in axes:
            ax.set_axis_off()
        if len(chosen) == 0:
            _note(axes[0], "no misclassified\ntest images")
        for ax, index in zip(axes, chosen, strict=False):
            ax.imshow(_pixels(images[index], ckpt), cmap=INK_CMAP, vmin=0, vmax=1)
            guess = predicted[index]
            ax.set_title(
                f"true {names[labels[index]]}, pred {names[guess]}\n{_probability(probabilities[index, guess])}  #{index}", fontsize=11
            )
    return path


def _first_conv(model: Model) -> Any | None:
    return next((layer for layer in model.layers if layer.type_name == "conv2d"), None)


def plot_filters(model: Model, path: Path, title: str = "") -> Path:
    """The first conv layer's kernels, weight (C_out, C_in, kH, kW), one panel per (output, input) channel pair.

    All panels share one colour scale, symmetric about 0, so kernels can be compared.
    """
    layer = _first_conv(model)
    with _figure("filters", path, grid_top=0.9) as fig:
        if layer is None:
            _note(fig.subplots(), "this model has no conv2d layer, so there are no filters to show")
            return path
        weight = layer.params["weight"]
        c_out, c_in, k_h, k_w = weight.shape
        kernels = weight.reshape(c_out * c_in, k_h, k_w)
        shown = kernels[:MAX_PANELS]
        limit = float(np.abs(shown).max()) or 1.0
        fig.suptitle(
            f"First conv layer ({layer.name}) kernels, {c_out}×{c_in}×{k_h}×{k_w}: {title}"
            + (f"\nfirst {MAX_PANELS} of {len(kernels)} kernel slices" if len(kernels) > MAX_PANELS else "")
        )
        image = None
        for panel, ax in _panels(fig, len(shown)):
            image = ax.imshow(shown[panel], cmap=SIGNED_CMAP, vmin=-limit, vmax=limit)
            out_channel, in_channel = divmod(panel, c_in)
            ax.set_title(f"kernel {out_channel}" + (f", in {in_channel}" if c_in > 1 else ""), fontsize=10)
        _grid_colorbar(fig, image, "weight (red > 0, blue < 0)")
    return path


# ---------------------------------------------------------------- cnn viz


def default_viz_dir(checkpoint: str | Path, image: str) -> Path:
    """Where ``cnn viz`` writes without ``--out``: ``RUN/plots/viz/<image>`` for a checkpoint inside a
    run folder (``RUN/checkpoints/*.npz``), else ``viz/<image>`` in the current folder.

    ``<image>`` is ``test-INDEX`` for ``test:INDEX``, else the image file's name without its suffix.
    """
    match = TEST_IMAGE.match(image)
    tag = f"test-{match.group(1)}" if match else Path(image).stem
    tag = re.sub(r"[^A-Za-z0-9_.-]", "_", tag) or "image"
    folder = Path(checkpoint).parent
    if folder.name == CHECKPOINT_DIR and (folder.parent / CONFIG_FILE).is_file():
        return RunPaths(folder.parent).plots / VIZ_DIR / tag
    return Path(VIZ_DIR) / tag


def _load_input(ckpt: Checkpoint, model: Model, image: str) -> tuple[np.ndarray, str, int | None, str]:
    """One input (1, C, H, W) normalised as in training, its caption, true class (or None) and a warning."""
    match = TEST_IMAGE.match(image)
    if match:
        images, labels = _test_split(ckpt)
        text = match.group(1)
        if not re.fullmatch(r"\d+", text) or int(text) >= len(labels):
            raise ImageError(f"{image}: expected test:INDEX with INDEX in 0..{len(labels) - 1} (the test split has {len(labels):,} images)")
        index = int(text)
        return images[index : index + 1].astype(model.dtype), f"test image #{index}", int(labels[index]), ""
    if tuple(model.input_shape) != (1, MNIST_SIZE, MNIST_SIZE):
        raise CnnError(
            f"{image}: image files are prepared as 1×{MNIST_SIZE}×{MNIST_SIZE}, but this model takes "
            f"{tuple(model.input_shape)}; use test:INDEX instead"
        )
    prepared = load_image(image)
    mean, std = float(ckpt.data.get("mean", 0.0)), float(ckpt.data.get("std", 1.0))
    x = ((prepared.pixels - mean) / std).astype(model.dtype)[None, None]
    return x, Path(image).name, None, prepared.warning


def visualize_image(checkpoint: str | Path, image: str, out_dir: str | Path, backward: bool = False) -> list[Path]:
    """Feature maps of every conv layer and a saliency map for one input; with ``backward``, the backward pass too.

    Args:
        checkpoint: a ``.npz`` checkpoint.
        image: a PNG/JPEG path (prepared as ``cnn predict`` does) or ``test:INDEX``
            for an image of the checkpoint's test split.
        out_dir: created if needed; files in it with the same names are replaced.
        backward: also draw the backward pass of the predicted class score
            (:func:`plot_backward_pass`).
    Returns:
        ``feature_maps_<layer>.png`` per conv layer, then ``saliency.png``, then with
        ``backward`` the files of :func:`plot_backward_pass`.
    Raises:
        CnnError: bad checkpoint, unreadable image, or a test index out of range (one line).
    """
    ckpt, model = load_checkpoint(checkpoint)
    x, caption, true_class, warning = _load_input(ckpt, model, str(image))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = _class_names(ckpt, model)
    probabilities = model.predict_proba(x)[0]

    written = []
    last_layer = model.layers[-1].name
    following = {layer.name: after.type_name for layer, after in zip(model.layers, model.layers[1:], strict=False)}
    for name, maps in feature_maps(model, x):
        path = out_dir / FEATURE_MAPS_FILE.format(layer=name)
        if maps.shape[1:] == (1, 1):
            plot_feature_vector(name, maps[:, 0, 0], path, caption, names if name == last_layer else None)
        else:
            plot_feature_maps(name, maps, path, caption, following.get(name))
        written.append(path)

    gradient, class_index = saliency(model, x)
    header = (
        f"{caption}"
        + (f", true class {names[true_class]}" if true_class is not None else "")
        + f": predicted {names[class_index]} ({_probability(probabilities[class_index])})"
    )
    if warning:
        header += f"\nwarning: {warning}"
    written.append(plot_saliency(_pixels(x[0], ckpt), gradient, names[class_index], header, out_dir / SALIENCY_FILE))
    if backward:
        written.extend(plot_backward_pass(model, x, _pixels(x[0], ckpt), names, caption, header, out_dir))
    return written


def plot_feature_maps(layer: str, maps: np.ndarray, path: Path, caption: str = "", next_layer: str | None = None) -> Path:
    """A grid of one conv layer's output maps (C, H, W), before the activation, on one shared colour scale.

    ``next_layer`` is the type of the layer that follows (e.g. ``"relu"``), named in the legend line.
    """
    channels, height, width = maps.shape
    shown = maps[:MAX_PANELS]
    with _figure("feature_maps", path, grid_top=0.92) as fig:
        more = _more_channels(channels)
        if next_layer == "relu":
            legend = "red > 0 passes the ReLU that follows, blue < 0 is cut"
        else:
            legend = "red > 0, blue < 0, white 0" + (f"; a {next_layer} layer follows" if next_layer else "")
        fig.suptitle(
            f"{layer} output, {channels}×{height}×{width} (before activation), for {caption}{more}\n"
            f"one panel per channel, one colour scale; {legend}"
        )
        _signed_maps(fig, shown, float(np.abs(shown).max()) or 1.0, "activation")
    return path


def plot_feature_vector(layer: str, values: np.ndarray, path: Path, caption: str = "", class_names: list[str] | None = None) -> Path:
    """A conv layer whose maps are 1×1 (C values): one bar per channel.

    ``class_names`` marks the model's last layer, whose channels are the class scores (logits).
    """
    with _figure("feature_vector", path) as fig:
        ax = fig.subplots()
        positions = np.arange(len(values))
        _signed_bars(ax, values)
        ax.set_ylabel("activation" if class_names is None else "logit (class score)")
        if class_names is not None:
            ax.set_xticks(positions, class_names)
            ax.set_xlabel("class")
            kind = "the class scores (logits)"
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("channel")
            kind = "one value per channel, shown as bars"
        fig.suptitle(f"{layer} output, {len(values)}×1×1 (before activation), for {caption}: {kind}")
    return path


def plot_saliency(pixels: np.ndarray, gradient: np.ndarray, class_name: str, header: str, path: Path) -> Path:
    """The input, d(score)/d(pixel) as a signed map, and |gradient| over the input.

    Args:
        pixels: (H, W) input in [0, 1] for display.
        gradient: (H, W) dScore/dinput from :func:`cnn_cli.visualize.saliency`.
    """
    with _figure("saliency", path) as fig:
        input_ax, grad_ax, overlay_ax = fig.subplots(1, 3)
        fig.suptitle(header)
        magnitude = np.abs(gradient) / _input_and_saliency(fig, input_ax, grad_ax, pixels, gradient, class_name)
        # The digit in light grey under the |gradient| heat map, so both stay visible.
        overlay_ax.imshow(pixels, cmap=INK_CMAP, vmin=0, vmax=3)
        heat = overlay_ax.imshow(magnitude, cmap="Reds", vmin=0, vmax=1, alpha=np.clip(magnitude * 2, 0, 0.9))
        overlay_ax.set_title("|gradient| over the input (grey)")
        fig.colorbar(heat, ax=overlay_ax, shrink=0.85, label="|gradient| / max")
        _no_ticks((input_ax, grad_ax, overlay_ax))
    return path


# ---------------------------------------------------------------- gradient flow (cnn plot)


def _layer_colours(count: int) -> list[Any]:
    """One colour per layer, dark (input side) to light (output side)."""
    cmap = matplotlib.colormaps["viridis"]
    return [cmap(0.9 * i / max(count - 1, 1)) for i in range(count)]


def _moments(rows: list[dict[str, Any]]) -> tuple[str, list[int]]:
    """Which logged event to draw over time (``step`` if any, else ``epoch``) and its steps in order."""
    event = "step" if any(r["event"] == "step" for r in rows) else "epoch"
    return event, sorted({r["step"] for r in rows if r["event"] == event})


STEP_AXIS = {"step": "training step (logged every train.log_every steps)", "epoch": "training step (logged at each epoch end)"}


def _profile_steps(steps: list[int]) -> list[int]:
    """The first, middle and last logged step (fewer when fewer were logged)."""
    return sorted({steps[0], steps[len(steps) // 2], steps[-1]}) if steps else []


def plot_gradient_flow(rows: list[dict[str, Any]], path: Path, title: str = "") -> Path:
    """Per-layer gradient norms across training, from ``gradients.csv`` rows, on log scales.

    Four panels: ‖dL/dW‖ of each layer over the logged steps; the same norms as a
    profile across the layers (input side left, output side right) at the first,
    middle and last logged step; ‖dL/d(layer input)‖, the backpropagated signal
    reaching every layer, as a profile; and the update ratio ‖Δw‖/‖w‖ (how fast each
    layer learns). Vanishing gradients show as profiles that fall toward the input.

    Args:
        rows: :func:`cnn_cli.gradient_flow.read_gradients` rows; may be empty.
    """
    from cnn_cli.gradient_flow import layer_order

    layers = layer_order(rows)
    event, steps = _moments(rows)
    by_key = {(r["event"], r["step"], r["layer"]): r for r in rows}
    weighted = [name for name, _ in layers if any(math.isfinite(r["weight_grad_norm"]) for r in rows if r["layer"] == name)]
    colours = dict(zip(weighted, _layer_colours(len(weighted)), strict=True))
    profile_steps = _profile_steps(steps)
    profile_styles = dict(zip(profile_steps, ("o:", "s--", "D-"), strict=False))

    def values(key: str, names: list[str], step: int) -> np.ndarray:
        return np.array([by_key[(event, step, n)][key] if (event, step, n) in by_key else math.nan for n in names], dtype=float)

    with _figure("gradient_flow", path) as fig:
        (time_ax, profile_ax), (signal_ax, update_ax) = fig.subplots(2, 2)
        ratio_line = ""
        if steps and len(weighted) >= 2:
            last = values("weight_grad_norm", weighted, steps[-1])
            ratio_line = (
                f"\nat step {steps[-1]}: ‖dL/dW‖ of the input-side layer {weighted[0]} is "
                f"{last[0] / last[-1]:.2g}× that of the output-side layer {weighted[-1]}"
            )
        fig.suptitle((f"Gradient flow: {title}" if title else "Gradient flow") + ratio_line)
        if not rows:
            for ax in (time_ax, profile_ax, signal_ax, update_ax):
                _note(ax, "gradients.csv has no complete row yet:\nthe run stopped before its first logged step")
            return path

        time_ax.set_title("‖dL/dW‖ of each layer during training")
        for name in weighted:
            norms = np.array([values("weight_grad_norm", [name], s)[0] for s in steps])
            time_ax.plot(steps, norms, "-", color=colours[name], label=name, linewidth=1.6)
        time_ax.set_xlabel(STEP_AXIS[event])
        time_ax.set_ylabel("L2 norm of the weight gradient (log)")

        profile_ax.set_title("‖dL/dW‖ across the layers: input side → output side")
        positions = np.arange(len(weighted))
        for step in profile_steps:
            profile_ax.plot(
                positions, values("weight_grad_norm", weighted, step), profile_styles[step], color="tab:red", label=f"step {step}"
            )
        profile_ax.set_xticks(positions, weighted, rotation=30 if len(weighted) > 6 else 0)
        profile_ax.set_xlabel(
            "layer with weights, input side on the left\n(dL/dW = δ·inputᵀ: a layer fed the raw image gets a larger one)", fontsize=10
        )
        profile_ax.set_ylabel("L2 norm of the weight gradient (log)")

        names = [name for name, _ in layers]
        types = dict(layers)
        signal_ax.set_title("‖dL/d(layer input)‖: the gradient signal that reaches each layer")
        positions_all = np.arange(len(names))
        for step in profile_steps:
            signal_ax.plot(
                positions_all, values("input_grad_norm", names, step), profile_styles[step], color="tab:blue", label=f"step {step}"
            )
        if profile_steps:
            dead = values("dead_fraction", names, profile_steps[-1])
            top = values("input_grad_norm", names, profile_steps[-1])
            for pos, (fraction, height) in enumerate(zip(dead, top, strict=True)):
                if math.isfinite(fraction) and math.isfinite(height) and height > 0:
                    signal_ax.annotate(
                        f"dead {fraction:.0%}", (pos, height), textcoords="offset points", xytext=(0, 8), ha="center", fontsize=8
                    )
        signal_ax.set_xticks(
            positions_all, [f"{n}\n{types[n]}" if len(names) <= 8 else n for n in names], rotation=0 if len(names) <= 8 else 60
        )
        has_relu = any(t == "relu" for t in types.values())
        signal_ax.set_xlabel(
            "every layer, input side on the left" + (" (dead: ReLU units that passed no gradient for the whole batch)" if has_relu else "")
        )
        signal_ax.set_ylabel("L2 norm over the batch (log)")

        update_ax.set_title("update ratio ‖Δw‖ / ‖w‖: how fast each layer learns")
        drawn = False
        for name in weighted:
            ratios = np.array([values("update_ratio", [name], s)[0] for s in steps])
            if np.isfinite(ratios).any():
                update_ax.plot(steps, ratios, "-", color=colours[name], label=name, linewidth=1.6)
                drawn = True
        if not drawn:
            _note(update_ax, "no update ratios logged")
        update_ax.set_xlabel(STEP_AXIS[event])
        update_ax.set_ylabel("‖Δw‖ / ‖w‖ of that step's update (log)")

        for ax in (time_ax, profile_ax, signal_ax, update_ax):
            if ax.has_data():
                finite = [line.get_ydata() for line in ax.get_lines()]
                if any((np.asarray(y, dtype=float) > 0).any() for y in finite):
                    ax.set_yscale("log")
                ax.grid(True, which="both", alpha=0.25)
                if ax in (time_ax, update_ax):  # one line per layer: the legend goes beside the lines
                    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9, title="layer")
                else:
                    ax.legend(loc="best", fontsize=9)
    return path


# ---------------------------------------------------------------- the backward pass (cnn viz --backward)


def _shape_text(shape: tuple[int, ...]) -> str:
    return "×".join(str(v) for v in shape)


def _spatial(shape: tuple[int, ...]) -> bool:
    """A (C, H, W) array with more than one pixel per channel: drawn as a grid of maps."""
    return len(shape) == 3 and shape[1] * shape[2] > 1


def _conv_geometry(layer: Any) -> str:
    """``kernel 3×3, stride 2×2, padding 1×1`` of a conv layer."""
    return f"kernel {_shape_text(layer.kernel_size)}, stride {_shape_text(layer.stride)}, padding {_shape_text(layer.padding)}"


def plot_backward_pass(
    model: Model, x: np.ndarray, pixels: np.ndarray, names: list[str], caption: str, header: str, out_dir: Path
) -> list[Path]:
    """Draw the backward pass of the predicted class score for one input.

    Writes, in this order: ``backward_NN_<layer>.png`` for every layer (dScore/d(its
    output), NN its position from the input side); ``relu_mask_<layer>.png`` for
    every ReLU; ``maxpool_winners_<layer>.png`` for every max-pool; and
    ``col2im_overlap.png`` (the saliency map beside every conv layer's overlap
    count) when the model has a conv layer with a spatial input.

    Args:
        x: one input (1, *model.input_shape), normalised; pixels: (H, W) in [0, 1] for display.
        names: class names by index; header: the first title line (what the input is, the prediction).
    """
    from cnn_cli.backward_views import backward_views, layer_overlap, maxpool_winners, relu_mask

    view = backward_views(model, x)
    class_name = names[view.class_index]
    written: list[Path] = []
    for index, (step, grad) in enumerate(zip(view.forward, view.backward, strict=True), start=1):
        path = out_dir / BACKWARD_FILE.format(index=index, layer=step.layer.name)
        logits = names if index == len(model.layers) else None
        cut_by_relu = index < len(model.layers) and model.layers[index].type_name == "relu"
        written.append(
            plot_backward_maps(step.layer.name, step.layer.type_name, grad.grad_output[0], class_name, caption, path, logits, cut_by_relu)
        )
    for step in view.forward:
        layer = step.layer
        if layer.type_name == "relu":
            mask = relu_mask(layer, step.output.shape)[0]
            path = out_dir / RELU_MASK_FILE.format(layer=layer.name)
            written.append(plot_relu_mask(layer.name, mask, step.input[0], caption, path))
        elif layer.type_name == "maxpool2d":
            winners = maxpool_winners(layer, step.output.shape)[0]
            kernel, stride = getattr(layer, "kernel_size"), getattr(layer, "stride")  # noqa: B009 - pooling layers only
            geometry = f"kernel {_shape_text(kernel)}, stride {_shape_text(stride)}"
            path = out_dir / MAXPOOL_WINNERS_FILE.format(layer=layer.name)
            written.append(plot_maxpool_winners(layer.name, geometry, winners, kernel, stride, caption, path))
    convs = [
        (step.layer, grad.grad_input[0])
        for step, grad in zip(view.forward, view.backward, strict=True)
        if step.layer.type_name == "conv2d" and _spatial(tuple(step.layer.input_shape))
    ]
    if convs:
        rows = [
            (
                layer.name,
                _conv_geometry(layer),
                layer_overlap(layer),
                np.abs(grad_input).mean(axis=0),
            )
            for layer, grad_input in convs
        ]
        written.append(plot_col2im_overlap(pixels, view.saliency.sum(axis=0), class_name, rows, header, out_dir / COL2IM_OVERLAP_FILE))
    return written


def plot_backward_maps(
    layer: str,
    type_name: str,
    grad: np.ndarray,
    class_name: str,
    caption: str,
    path: Path,
    class_names: list[str] | None = None,
    cut_by_relu: bool = False,
) -> Path:
    """dScore/d(one layer's output) for one input: a grid of maps (C, H, W), or bars for a vector.

    Args:
        grad: (C, H, W) or (F,) / (F, 1, 1), the gradient of the class score with respect to the layer's output.
        class_names: marks the model's last layer, whose outputs are the logits (the start of the backward pass).
        cut_by_relu: a ReLU follows, so the gradient is exactly 0 wherever that ReLU's input was ≤ 0.
    """
    what = f"d score({class_name}) / d {layer} output ({type_name}), {_shape_text(grad.shape)}, for {caption}"
    meaning = "how the class score would move if one value of this layer's output grew: red raises it, blue lowers it, white: no effect"
    limit = float(np.abs(grad).max()) or 1.0
    if not _spatial(tuple(grad.shape)):
        values = grad.reshape(-1)
        with _figure("backward_vector", path) as fig:
            ax = fig.subplots()
            shown = values[:512]
            _signed_bars(ax, shown)
            ax.set_ylabel(f"d score({class_name}) / d value")
            if class_names is not None and len(class_names) == len(shown):
                ax.set_xticks(np.arange(len(shown)), class_names)
                ax.set_xlabel("class (logit)")
                meaning = (
                    f"the start of the backward pass: the score of {class_name} is its logit, so the gradient is 1 there and 0 elsewhere"
                )
            elif class_names is not None and len(shown) == 1:  # binary cross-entropy: one logit z for the second class
                ax.set_xticks([0], [f"logit z (class {class_names[-1]})"])
                meaning = (
                    f"the start of the backward pass: one logit z; class {class_names[-1]} scores z and class {class_names[0]} scores −z,\n"
                    f"so d score({class_name}) / dz is {'+1' if class_name == class_names[-1] else '−1'}"
                )
            else:
                meaning = (
                    "how the class score would move if one value of this layer's output grew:\n"
                    "red bars raise it, blue bars lower it, no bar: no effect"
                )
                ax.set_xlabel("unit" + (f" (first 512 of {len(values)})" if len(values) > 512 else ""))
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            fig.suptitle(f"{what}; ‖gradient‖ = {np.linalg.norm(values):.3g}\n{meaning}")
        return path
    with _figure("backward_maps", path, grid_top=0.9) as fig:
        more = _more_channels(grad.shape[0])
        relu_note = "; exactly 0 where the ReLU that follows cut it (see its relu_mask picture)" if cut_by_relu else ""
        fig.suptitle(
            f"{what}{more}\n{meaning}\none panel per channel, one colour scale; ‖gradient‖ = {np.linalg.norm(grad):.3g}{relu_note}"
        )
        _signed_maps(fig, grad[:MAX_PANELS], limit, f"d score({class_name}) / d value")
    return path


def plot_relu_mask(layer: str, mask: np.ndarray, relu_input: np.ndarray, caption: str, path: Path) -> Path:
    """Which units of a ReLU let the gradient through for one input: dark where its input was > 0.

    Args:
        mask: bool, the layer's output shape without the batch axis, (C, H, W) or (F,) / (F, 1, 1):
            True where dL/dx = dL/dy (:func:`cnn_cli.backward_views.relu_mask`).
        relu_input: the ReLU's input, same shape (counted in the title).
    """
    spatial = _spatial(tuple(mask.shape))
    title = (
        f"{layer} (ReLU) mask, {_shape_text(mask.shape)}, for {caption}: {mask.mean():.0%} of the units pass (notes 000 §2.8)\n"
        "dark: input > 0, the gradient passes unchanged (dL/dx = dL/dy); white: input ≤ 0, the gradient is cut to 0"
        f"\n{int((relu_input <= 0).sum()):,} of {relu_input.size:,} inputs were ≤ 0"
    )
    if not spatial:
        units = mask.reshape(1, -1)
        with _figure("relu_mask_vector", path) as fig:
            ax = fig.subplots()
            fig.suptitle(title)
            ax.imshow(units, cmap="Greens", vmin=0, vmax=1.3, aspect="auto")
            ax.set_yticks([])
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("unit")
        return path
    shown = mask[:MAX_PANELS]
    with _figure("relu_mask", path, grid_top=0.9) as fig:
        fig.suptitle(title + _more_channels(mask.shape[0]))
        for channel, ax in _panels(fig, len(shown)):
            ax.imshow(shown[channel], cmap="Greens", vmin=0, vmax=1.3)
            _panel_title(ax, f"ch {channel}: {shown[channel].mean():.0%} pass", len(shown))
    return path


def plot_maxpool_winners(
    layer: str, geometry: str, winners: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], caption: str, path: Path
) -> Path:
    """Where a max-pool sends its gradient for one input: the inputs that won a window.

    Args:
        winners: (C, H, W) int, how many windows each input won (:func:`cnn_cli.backward_views.maxpool_winners`).
    """
    channels, height, width = winners.shape
    shown = winners[:MAX_PANELS]
    top = max(int(shown.max()), 1)
    with _figure("maxpool_winners", path, grid_top=0.9) as fig:
        more = _more_channels(channels)
        fig.suptitle(
            f"{layer} (max-pool, {geometry}) winners over its {channels}×{height}×{width} input, for {caption}{more}\n"
            "each window's gradient goes to its largest input only (dark); every other input gets 0 (notes 000 §2.7)\n"
            + ("grey lines: the pooling windows" if kernel == stride else "windows overlap: one input can win several (darker)")
        )
        image = None
        for channel, ax in _panels(fig, len(shown)):
            image = ax.imshow(shown[channel], cmap="Purples", vmin=0, vmax=top * 1.15)
            if kernel == stride:
                for r in range(kernel[0], height, kernel[0]):
                    ax.axhline(r - 0.5, color="0.6", linewidth=0.4)
                for c in range(kernel[1], width, kernel[1]):
                    ax.axvline(c - 0.5, color="0.6", linewidth=0.4)
            _panel_title(ax, f"ch {channel}", len(shown))
        _grid_colorbar(fig, image, "windows won (0: gets no gradient)")
    return path


def plot_col2im_overlap(
    pixels: np.ndarray,
    saliency_map: np.ndarray,
    class_name: str,
    conv_rows: list[tuple[str, str, np.ndarray, np.ndarray]],
    header: str,
    path: Path,
) -> Path:
    """The saliency map beside each conv layer's col2im overlap count: why stride 2 draws a checkerboard.

    Args:
        pixels: (H, W) input in [0, 1]; saliency_map: (H, W) dScore/dinput.
        conv_rows: per conv layer with a spatial input, input side first: (name, geometry text,
            (H, W) overlap count on its input, (H, W) mean |dScore/d(its input)| over channels).
            At most :data:`MAX_OVERLAP_ROWS` are drawn.
    """
    shown = conv_rows[:MAX_OVERLAP_ROWS]
    more = f"; first {MAX_OVERLAP_ROWS} of {len(conv_rows)} conv layers" if len(conv_rows) > MAX_OVERLAP_ROWS else ""
    with _figure(f"col2im_overlap_{len(shown)}", path) as fig:
        fig.suptitle(
            f"{header}\nWhy the saliency map can show a checkerboard: col2im adds each window's gradient (+=) "
            f"onto every pixel it read,\nso a pixel read by 4 windows collects 4 terms and a pixel read by 1 collects 1{more}"
        )
        axes = fig.subplots(len(shown) + 1, 3)
        limit = _input_and_saliency(fig, axes[0, 0], axes[0, 1], pixels, saliency_map, class_name)
        heat = axes[0, 2].imshow(np.abs(saliency_map), cmap="Reds", vmin=0, vmax=limit)
        axes[0, 2].set_title("|saliency|: look for a regular grid")
        fig.colorbar(heat, ax=axes[0, 2], shrink=0.85, label="|gradient|")
        for row, (name, geometry, overlap, grad_abs) in enumerate(shown, start=1):
            count_ax, grad_ax, per_window_ax = axes[row]
            top = max(int(overlap.max()), 1)
            counts = count_ax.imshow(overlap, cmap="Oranges", vmin=0, vmax=top)
            interior = overlap[2:-2, 2:-2]
            even = interior.size > 0 and np.unique(interior).size == 1
            count_ax.set_title(f"{name} ({geometry}):\nwindows reading each input pixel", fontsize=10)
            if even:
                count_ax.set_xlabel("the same count everywhere but the border:\nno checkerboard from this layer", fontsize=9)
            fig.colorbar(counts, ax=count_ax, shrink=0.85, ticks=sorted({0, *np.unique(overlap).tolist()}), label="windows")
            if overlap.shape[0] * overlap.shape[1] <= 196:  # small maps: write each count
                for (i, j), value in np.ndenumerate(overlap):
                    count_ax.text(j, i, str(value), ha="center", va="center", fontsize=6, color="0.2")
            magnitude = grad_ax.imshow(grad_abs, cmap="Reds", vmin=0)
            grad_ax.set_title(f"mean |d score / d {name} input| over channels:\nthe gradient col2im gathered", fontsize=10)
            fig.colorbar(magnitude, ax=grad_ax, shrink=0.85, label="|gradient|")
            by_count = [f"{count}: {grad_abs[overlap == count].mean():.2g}" for count in np.unique(overlap) if count > 0]
            grad_ax.set_xlabel("mean by windows read, " + ", ".join(by_count), fontsize=9)
            per_window = per_window_ax.imshow(grad_abs / np.maximum(overlap, 1), cmap="Reds", vmin=0)
            per_window_ax.set_title("the same divided by the count:\nthe gradient per window", fontsize=10)
            fig.colorbar(per_window, ax=per_window_ax, shrink=0.85, label="|gradient| / windows")
        _no_ticks(axes.ravel())
    return path
