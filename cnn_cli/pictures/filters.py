"""What a network computes for one input: first-layer filters, feature maps, the feature vector and the saliency map."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.ticker import MaxNLocator

from cnn_cli.model.network import Model
from cnn_cli.pictures.common import (
    INK_CMAP,
    MAX_PANELS,
    SIGNED_CMAP,
    _figure,
    _grid_colorbar,
    _input_and_saliency,
    _more_channels,
    _no_ticks,
    _note,
    _panels,
    _signed_bars,
    _signed_maps,
    fitted_suptitle,
)


def _first_conv(model: Model) -> Any | None:
    return next((layer for layer in model.layers if layer.type_name == "conv2d"), None)


RESHAPING_ONLY = ("flatten", "dropout")  # layers that pass the image's pixels on unchanged (dropout at test time)


def _first_dense_on_pixels(model: Model) -> Any | None:
    """The first layer when it is a dense layer fed the flattened one-channel image (only flatten/dropout before it), else None."""
    for layer in model.layers:
        if layer.type_name == "dense":
            return layer if model.input_shape[0] == 1 else None
        if layer.type_name not in RESHAPING_ONLY:
            return None
    return None


def _plot_dense_templates(fig: Any, model: Model, layer: Any, title: str) -> None:
    """Each unit's weights (out_features, C·H·W) drawn as an H×W image: the pixel pattern that unit responds to."""
    weight = layer.params["weight"]
    units, _ = weight.shape
    height, width = model.input_shape[1:]
    images = weight[:MAX_PANELS].reshape(-1, height, width)
    limit = float(np.abs(images).max()) or 1.0
    fitted_suptitle(
        fig,
        f"First layer ({layer.name}, dense) weights, {units}×{height * width}, each unit's as a {height}×{width} image (no conv layer)"
        f"\nred: ink there raises the unit's output, blue: lowers it; {title}"
        + (f"; first {MAX_PANELS} of {units} units" if units > MAX_PANELS else ""),
    )
    image = None
    for panel, ax in _panels(fig, len(images)):
        image = ax.imshow(images[panel], cmap=SIGNED_CMAP, vmin=-limit, vmax=limit)
        ax.set_title(f"unit {panel}", fontsize=10 if len(images) <= 36 else 9, pad=2)
    _grid_colorbar(fig, image, "weight (red > 0, blue < 0)")


def plot_filters(model: Model, path: Path, title: str = "") -> Path:
    """The first conv layer's kernels, weight (C_out, C_in, kH, kW), one panel per (output, input) channel pair.

    A model without a conv layer whose first layer is dense on the flattened image gets that
    layer's weights instead, each unit's row drawn as an image. All panels share one colour
    scale, symmetric about 0, so they can be compared.
    """
    layer = _first_conv(model)
    with _figure("filters", path, grid_top=0.9) as fig:
        if layer is None:
            dense = _first_dense_on_pixels(model)
            if dense is not None:
                _plot_dense_templates(fig, model, dense, title)
            else:
                first = model.layers[0]
                why = f"its first layer ({first.name}, {first.type_name}) is not dense on the pixels"
                _note(fig.subplots(), f"this model has no conv2d layer and {why},\nso there are no filters to show")
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
        gradient: (H, W) dScore/dinput from :func:`cnn_cli.learn.visualize.saliency`.
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
