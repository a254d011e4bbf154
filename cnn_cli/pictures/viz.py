"""``cnn viz``: every picture of one input through one checkpoint, in one folder."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from cnn_cli.data.images import MNIST_SIZE, load_image
from cnn_cli.errors import CnnError, ImageError
from cnn_cli.layers.base import Layer
from cnn_cli.layers.residual import Residual
from cnn_cli.learn.visualize import feature_maps, saliency
from cnn_cli.model.network import Model
from cnn_cli.pictures.backward import plot_backward_pass
from cnn_cli.pictures.common import FEATURE_MAPS_FILE, SALIENCY_FILE, TEST_IMAGE, VIZ_DIR, _probability
from cnn_cli.pictures.filters import plot_feature_maps, plot_feature_vector, plot_saliency
from cnn_cli.pictures.inputs import _class_names, _pixels, _test_split
from cnn_cli.runs.checkpoint import Checkpoint, load_checkpoint
from cnn_cli.runs.folders import CHECKPOINT_DIR, CONFIG_FILE, RunPaths


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


def _following(layers: list[Layer[Any]]) -> dict[str, str]:
    """Each layer's name -> the type of the layer after it, inside residual blocks too."""
    after = {layer.name: then.type_name for layer, then in zip(layers, layers[1:], strict=False)}
    for layer in layers:
        if isinstance(layer, Residual):
            after.update(_following(layer.inner))
    return after


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
    following = _following(model.layers)
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
