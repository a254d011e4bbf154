"""The backward pass drawn: every layer's gradient, ReLU masks, max-pool winners and col2im overlap counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from matplotlib.ticker import MaxNLocator

from cnn_cli.model.network import Model
from cnn_cli.pictures.common import (
    BACKWARD_FILE,
    COL2IM_OVERLAP_FILE,
    MAX_OVERLAP_ROWS,
    MAX_PANELS,
    MAXPOOL_WINNERS_FILE,
    RELU_MASK_FILE,
    _figure,
    _grid_colorbar,
    _input_and_saliency,
    _more_channels,
    _no_ticks,
    _panel_title,
    _panels,
    _signed_bars,
    _signed_maps,
    fitted_suptitle,
)


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
    from cnn_cli.learn.backward_views import backward_views, layer_overlap, maxpool_winners, relu_mask

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
            OverlapRow(layer.name, _conv_geometry(layer), layer_overlap(layer), np.abs(grad_input).mean(axis=0), _border(layer))
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
            fitted_suptitle(fig, f"{what}; ‖gradient‖ = {np.linalg.norm(values):.3g}\n{meaning}")
        return path
    with _figure("backward_maps", path, grid_top=0.9) as fig:
        more = _more_channels(grad.shape[0])
        relu_note = "; exactly 0 where the ReLU that follows cut it (see its relu_mask picture)" if cut_by_relu else ""
        fitted_suptitle(
            fig, f"{what}{more}\n{meaning}\none panel per channel, one colour scale; ‖gradient‖ = {np.linalg.norm(grad):.3g}{relu_note}"
        )
        _signed_maps(fig, grad[:MAX_PANELS], limit, f"d score({class_name}) / d value")
    return path


def plot_relu_mask(layer: str, mask: np.ndarray, relu_input: np.ndarray, caption: str, path: Path) -> Path:
    """Which units of a ReLU let the gradient through for one input: dark where its input was > 0.

    Args:
        mask: bool, the layer's output shape without the batch axis, (C, H, W) or (F,) / (F, 1, 1):
            True where dL/dx = dL/dy (:func:`cnn_cli.learn.backward_views.relu_mask`).
        relu_input: the ReLU's input, same shape (counted in the title).
    """
    spatial = _spatial(tuple(mask.shape))
    title = (
        f"{layer} (ReLU) mask, {_shape_text(mask.shape)}, for {caption}: {mask.mean():.0%} of the units pass "
        "(notes 000 §2.8, cnn docs relu)\n"
        "dark: input > 0, the gradient passes unchanged (dL/dx = dL/dy); white: input ≤ 0, the gradient is cut to 0"
        f"\n{int((relu_input <= 0).sum()):,} of {relu_input.size:,} inputs were ≤ 0"
    )
    if not spatial:
        units = mask.reshape(1, -1)
        with _figure("relu_mask_vector", path) as fig:
            ax = fig.subplots()
            fitted_suptitle(fig, title)
            ax.imshow(units, cmap="Greens", vmin=0, vmax=1.3, aspect="auto")
            ax.set_yticks([])
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("unit")
        return path
    shown = mask[:MAX_PANELS]
    with _figure("relu_mask", path, grid_top=0.9) as fig:
        fitted_suptitle(fig, title + _more_channels(mask.shape[0]))
        for channel, ax in _panels(fig, len(shown)):
            ax.imshow(shown[channel], cmap="Greens", vmin=0, vmax=1.3)
            _panel_title(ax, f"ch {channel}: {shown[channel].mean():.0%} pass", len(shown))
    return path


def plot_maxpool_winners(
    layer: str, geometry: str, winners: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], caption: str, path: Path
) -> Path:
    """Where a max-pool sends its gradient for one input: the inputs that won a window.

    Args:
        winners: (C, H, W) int, how many windows each input won (:func:`cnn_cli.learn.backward_views.maxpool_winners`).
    """
    channels, height, width = winners.shape
    shown = winners[:MAX_PANELS]
    top = max(int(shown.max()), 1)
    with _figure("maxpool_winners", path, grid_top=0.9) as fig:
        more = _more_channels(channels)
        fitted_suptitle(
            fig,
            f"{layer} (max-pool, {geometry}) winners over its {channels}×{height}×{width} input, for {caption}{more}\n"
            "each window's gradient goes to its largest input only (dark); every other input gets 0 (notes 000 §2.7, cnn docs maxpool2d)\n"
            + ("grey lines: the pooling windows" if kernel == stride else "windows overlap: one input can win several (darker)"),
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


class OverlapRow(NamedTuple):
    """One conv layer's row of col2im_overlap.png."""

    name: str
    geometry: str  # "kernel 3×3, stride 2×2, padding 1×1"
    overlap: np.ndarray  # (H, W) int: how many windows read each pixel of the layer's input
    grad_abs: np.ndarray  # (H, W) mean |dScore/d(layer input)| over channels
    border: int  # pixels at each edge where the count falls off because windows run out, not because of the stride


def _border(layer: Any) -> int:
    """How far from the edge the window count can still fall off: a dilated kernel's extent plus the stride's offset, minus 1."""
    spans = zip(layer.kernel_size, layer.stride, layer.dilation, strict=True)
    return max(dilation * (kernel - 1) + stride - 1 for kernel, stride, dilation in spans)


def _interior_counts(row: OverlapRow) -> np.ndarray:
    """The distinct window counts of an overlap map away from its border (empty for a map that is all border)."""
    edge = row.border
    return np.unique(row.overlap[edge : row.overlap.shape[0] - edge, edge : row.overlap.shape[1] - edge])


def _overlap_claim(conv_rows: list[OverlapRow]) -> tuple[str, bool]:
    """What col2im's overlap does to this net's saliency map, from the counts themselves; True when some layer reads unevenly."""
    uneven = [(row.name, counts) for row in conv_rows if (counts := _interior_counts(row)).size > 1]
    even = [f"{row.name}: {int(counts[0])}" for row in conv_rows if (counts := _interior_counts(row)).size == 1]
    if uneven:
        layers = "; ".join(f"{name} reads pixels with {', '.join(str(int(c)) for c in counts)} windows" for name, counts in uneven)
        return (
            "Why the saliency map can show a checkerboard: col2im adds each window's gradient (+=) onto every pixel it read,\n"
            f"so a pixel read by more windows collects more terms. {layers}: expect a regular grid in the saliency map",
            True,
        )
    same = f" ({', '.join(even)} windows)" if even else ""
    return (
        "col2im adds each window's gradient (+=) onto every pixel it read, so a pixel read by more windows collects more terms.\n"
        f"In this net every conv layer reads each pixel away from the border with the same number of windows{same}:\n"
        "its overlap draws no checkerboard; only the border pixels, read by fewer windows, collect fewer terms",
        False,
    )


def plot_col2im_overlap(
    pixels: np.ndarray,
    saliency_map: np.ndarray,
    class_name: str,
    conv_rows: list[OverlapRow],
    header: str,
    path: Path,
) -> Path:
    """The saliency map beside each conv layer's col2im overlap count: whether (and why) the net draws a checkerboard.

    Args:
        pixels: (H, W) input in [0, 1]; saliency_map: (H, W) dScore/dinput.
        conv_rows: per conv layer with a spatial input, input side first. At most :data:`MAX_OVERLAP_ROWS` are drawn.
    """
    shown = conv_rows[:MAX_OVERLAP_ROWS]
    more = f"; first {MAX_OVERLAP_ROWS} of {len(conv_rows)} conv layers" if len(conv_rows) > MAX_OVERLAP_ROWS else ""
    with _figure(f"col2im_overlap_{len(shown)}", path) as fig:
        claim, uneven = _overlap_claim(conv_rows)
        fitted_suptitle(fig, f"{header}\n{claim}{more}")
        axes = fig.subplots(len(shown) + 1, 3)
        limit = _input_and_saliency(fig, axes[0, 0], axes[0, 1], pixels, saliency_map, class_name)
        heat = axes[0, 2].imshow(np.abs(saliency_map), cmap="Reds", vmin=0, vmax=limit)
        axes[0, 2].set_title("|saliency|" + (": look for a regular grid" if uneven else ""))
        fig.colorbar(heat, ax=axes[0, 2], shrink=0.85, label="|gradient|")
        for row, conv in enumerate(shown, start=1):
            name, geometry, overlap, grad_abs, _ = conv
            count_ax, grad_ax, per_window_ax = axes[row]
            top = max(int(overlap.max()), 1)
            counts = count_ax.imshow(overlap, cmap="Oranges", vmin=0, vmax=top)
            even = _interior_counts(conv).size == 1
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
            lines = [", ".join(by_count[start : start + 5]) for start in range(0, len(by_count), 5)]  # 5 a line: it fits the panel
            grad_ax.set_xlabel("mean by windows read, " + ",\n".join(lines), fontsize=9)
            per_window = per_window_ax.imshow(grad_abs / np.maximum(overlap, 1), cmap="Reds", vmin=0)
            per_window_ax.set_title("the same divided by the count:\nthe gradient per window", fontsize=10)
            fig.colorbar(per_window, ax=per_window_ax, shrink=0.85, label="|gradient| / windows")
        _no_ticks(axes.ravel())
    return path
