"""TensorBoard event files for a run (``train.tensorboard: true`` or ``cnn train --tensorboard``), written with tensorboardX.

tensorboardX needs only numpy and protobuf (no TensorFlow, no torch); it is the
``tensorboard`` extra: ``pip install ".[tensorboard]"``. The run folder gets
``tensorboard/`` with, on the x axis the global step (the optimizer steps taken):

- scalars ``step/loss``, ``step/accuracy``, ``step/lr``: every training step, on its batch;
- scalars ``epoch/<column>``: every numeric column of ``metrics.csv`` (train and
  validation loss and accuracy, lr, seconds, img/s, and the epoch number), at the
  step the epoch ended;
- histograms ``weights/<param>`` and ``gradients/<param>`` at each epoch end: the
  weights after the epoch, and the gradients of its last step as applied (weight
  decay and clipping included);
- scalars ``gradient_norms/<layer>/<column>``: the numbers of ``gradients.csv``
  (when ``train.log_gradients`` is on), at their steps;
- images ``filters/<layer>`` (the first conv layer's kernels, red > 0, blue < 0) at
  each epoch end; at the end of a completed run the ``plots/filters`` and
  ``plots/misclassified`` figures of ``cnn plot`` (test split, best checkpoint);
- text ``config``, and the config as hparams with ``hparams/test_accuracy``,
  ``hparams/test_loss`` and ``hparams/best_val_accuracy`` once the run completes.

Resuming appends to the same folder: the new writer starts its event file with a
purge at the checkpoint's step + 1 (TensorBoard's own mechanism, ``purge_step``),
so whatever an earlier process logged after the checkpoint it resumes from
(steps that are trained again) is discarded by TensorBoard, and no step appears
twice. This logger runs before the checkpoint of an epoch end is committed and
flushes its file then, so a crash in between leaves only steps that the purge drops.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cnn_cli.errors import CnnError
from cnn_cli.training.state import Callback

if TYPE_CHECKING:
    from cnn_cli.config.sections import Config
    from cnn_cli.training.gradient_logger import GradientLogger
    from cnn_cli.training.state import TrainState

TENSORBOARD_DIR = "tensorboard"
INSTALL_HINT = 'TensorBoard logging (train.tensorboard) needs tensorboardX: pip install ".[tensorboard]"'
EPOCH_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "images_per_s")
NORM_COLUMNS = ("weight_grad_norm", "bias_grad_norm", "input_grad_norm", "update_ratio", "dead_fraction")
FILTER_ZOOM = 8  # screen pixels per kernel pixel in the filter grid


def require_extras(config: Config | None) -> None:
    """Refuse (one line, exit 2) a run that asks for TensorBoard when tensorboardX is not installed."""
    if config is None or not config.train.tensorboard:
        return
    try:
        import tensorboardX  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        raise CnnError(INSTALL_HINT) from None


def tensorboard_dir(run_root: str | Path) -> Path:
    return Path(run_root) / TENSORBOARD_DIR


class TensorBoardLogger(Callback):
    """Writes the run's ``tensorboard/`` event files (see the module docstring)."""

    def __init__(self, gradients: GradientLogger | None = None) -> None:
        self.gradients = gradients
        self.writer: Any = None
        self._gradient_rows = 0

    # -------------------------------------------------------------- hooks

    def on_fit_start(self, state: TrainState) -> None:
        from tensorboardX import SummaryWriter  # type: ignore[import-untyped]

        folder = tensorboard_dir(state.paths.root)
        earlier = len(list(folder.glob("events.out.tfevents.*"))) if folder.is_dir() else 0
        appending = earlier > 0
        self.writer = SummaryWriter(  # the suffix keeps a resume in the same second from reusing the previous file's name
            logdir=str(folder), purge_step=state.step + 1 if appending else None, flush_secs=30, filename_suffix=f".{earlier + 1:03d}"
        )
        if self.gradients is not None:
            self._gradient_rows = len(self.gradients.rows)  # rows up to the checkpoint are logged already
        if state.step == 0 and not appending:
            from cnn_cli.config.load import config_to_yaml

            self.writer.add_text("config", "```\n" + config_to_yaml(state.config) + "```", 0)
            self._filters(state)

    def on_step_end(self, state: TrainState) -> None:
        if state.status != "running" or state.labels is None or state.logits is None:
            return
        from cnn_cli.runs.evaluation import predictions

        step, writer = state.step, self.writer
        writer.add_scalar("step/loss", state.loss, step)
        writer.add_scalar("step/accuracy", float(np.mean(predictions(state.model, state.logits) == state.labels)), step)
        writer.add_scalar("step/lr", state.lr, step)
        self._gradient_norms()

    def on_epoch_end(self, state: TrainState) -> None:
        row, writer = state.row, self.writer
        step = row["step"]
        for column in EPOCH_COLUMNS:
            writer.add_scalar(f"epoch/{column}", row[column], step)
        for name, value in state.model.params.items():
            writer.add_histogram(f"weights/{name}", value, step)
        for name, value in state.model.grads.items():
            writer.add_histogram(f"gradients/{name}", value, step)
        self._filters(state)
        writer.flush()  # before last.npz commits this epoch

    def on_interrupt(self, state: TrainState) -> None:
        self.writer.flush()

    def on_finish(self, state: TrainState) -> None:
        if self.writer is None:
            return
        self._gradient_norms()
        if state.status == "completed" and state.summary:
            self._figures(state)
            self._hparams(state)
        self.writer.close()
        self.writer = None

    # -------------------------------------------------------------- what

    def _gradient_norms(self) -> None:
        """The rows gradients.csv gained since the last call, one scalar per number (an ``epoch`` row repeats a ``step`` row)."""
        if self.gradients is None:
            return
        rows = self.gradients.rows
        seen = {(int(row["step"]), row["layer"]) for row in rows[: self._gradient_rows]}
        for row in rows[self._gradient_rows :]:
            key = (int(row["step"]), row["layer"])
            if key in seen:
                continue
            seen.add(key)
            for column in NORM_COLUMNS:
                if row[column] != "":
                    self.writer.add_scalar(f"gradient_norms/{row['layer']}/{column}", float(row[column]), key[0])
        self._gradient_rows = len(rows)

    def _filters(self, state: TrainState) -> None:
        grid = filter_grid(state.model)
        if grid is not None:
            layer, image = grid
            self.writer.add_image(f"filters/{layer}", image, state.step, dataformats="HWC")

    def _figures(self, state: TrainState) -> None:
        """``cnn plot``'s filters and misclassified-digits figures of the best checkpoint, as images."""
        from PIL import Image

        from cnn_cli.pictures.confusion import plot_misclassified
        from cnn_cli.pictures.filters import plot_filters
        from cnn_cli.pictures.inputs import _class_names, _test_split, run_checkpoint
        from cnn_cli.runs.checkpoint import load_checkpoint
        from cnn_cli.runs.evaluation import predictions

        checkpoint = run_checkpoint(state.paths)
        ckpt, model = load_checkpoint(checkpoint)
        images, labels = _test_split(ckpt)
        batch = state.config.train.eval_batch_size
        chunks = [model.forward(images[i : i + batch], keep_cache=False) for i in range(0, len(images), batch)]
        logits = np.concatenate(chunks) if chunks else np.zeros((0, *model.output_shape), model.dtype)
        title = f"{checkpoint.name}, epoch {ckpt.epoch}"
        with tempfile.TemporaryDirectory() as folder:
            drawn = {
                "plots/filters": plot_filters(model, Path(folder) / "filters.png", title),
                "plots/misclassified": plot_misclassified(
                    images,
                    labels,
                    model.loss.probabilities(logits),
                    predictions(model, logits),
                    _class_names(ckpt, model),
                    ckpt,
                    Path(folder) / "misclassified.png",
                    title,
                ),
            }
            for tag, path in drawn.items():
                with Image.open(path) as picture:
                    self.writer.add_image(tag, np.asarray(picture.convert("RGB")), state.step, dataformats="HWC")

    def _hparams(self, state: TrainState) -> None:
        from tensorboardX.summary import hparams  # type: ignore[import-untyped]

        summary = state.summary
        metrics = {
            "hparams/test_accuracy": summary["test_accuracy"],
            "hparams/test_loss": summary["test_loss"],
            **({"hparams/best_val_accuracy": summary["best_val_accuracy"]} if "best_val_accuracy" in summary else {}),
        }
        experiment, start, end = hparams(config_hparams(state.config), metrics)
        for part in (experiment, start, end):
            self.writer.file_writer.add_summary(part, state.step)
        for tag, value in metrics.items():
            self.writer.add_scalar(tag, value, state.step)


def config_hparams(config: Config) -> dict[str, Any]:
    """The config as flat ``section.key`` hparams: numbers, strings and booleans as they are, lists and dicts as text."""
    out: dict[str, Any] = {}

    def walk(data: dict[str, Any], prefix: str) -> None:
        for key, value in data.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            elif value is None or isinstance(value, str | bool | int | float):
                out[f"{prefix}{key}"] = "none" if value is None else value
            else:
                out[f"{prefix}{key}"] = str(value)

    walk(dataclasses.asdict(config), "")
    return out


def filter_grid(model) -> tuple[str, np.ndarray] | None:
    """The first conv layer's kernels as one RGB uint8 image (H, W, 3): a grid of kernels, one colour scale symmetric about 0."""
    from matplotlib import colormaps

    from cnn_cli.pictures.common import MAX_PANELS, SIGNED_CMAP, _grid_shape
    from cnn_cli.pictures.filters import _first_conv

    layer = _first_conv(model)
    if layer is None:
        return None
    weight = layer.params["weight"]
    c_out, c_in, k_h, k_w = weight.shape
    kernels = weight.reshape(c_out * c_in, k_h, k_w)[:MAX_PANELS].astype(np.float64)
    limit = float(np.abs(kernels).max()) or 1.0
    rows, cols = _grid_shape(len(kernels))
    cell_h, cell_w = k_h * FILTER_ZOOM + 2, k_w * FILTER_ZOOM + 2
    scaled = np.full((rows * cell_h, cols * cell_w), math.nan)
    for index, kernel in enumerate(kernels):
        row, col = divmod(index, cols)
        big = np.kron(kernel / limit, np.ones((FILTER_ZOOM, FILTER_ZOOM)))
        scaled[row * cell_h + 1 : row * cell_h + 1 + big.shape[0], col * cell_w + 1 : col * cell_w + 1 + big.shape[1]] = big
    colours = colormaps[SIGNED_CMAP]((np.nan_to_num(scaled, nan=0.0) + 1.0) / 2.0)[..., :3]
    colours[np.isnan(scaled)] = 1.0  # white gaps between kernels
    return layer.name, (colours * 255).round().astype(np.uint8)
