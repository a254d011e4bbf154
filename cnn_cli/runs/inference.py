"""Evaluation and prediction with a saved checkpoint, as plain functions."""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from cnn_cli.config.build import config_from_dict
from cnn_cli.data.images import MAX_STDIN_BYTES, MNIST_SIZE, Prepared, ink_fraction, load_image, preprocess, read_grayscale_bytes
from cnn_cli.errors import CnnError, ImageError
from cnn_cli.runs.checkpoint import Checkpoint, class_names, load_checkpoint
from cnn_cli.runs.evaluation import EvalResult, evaluate
from cnn_cli.runs.folders import BEST_CHECKPOINT, CHECKPOINT_DIR, CONFIG_FILE, DEFAULT_RUNS_ROOT, LATEST_LINK, newest_completed_run
from cnn_cli.runs.per_input import attempt

STDIN = "-"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
LOW_CONFIDENCE = 0.6  # top-class probability below this gets a warning
MNIST_INK_RANGE = (0.02, 0.40)  # ink fraction of MNIST digits lies in 3%..30% (0.1 and 99.9 percentiles), with margin
DIGIT_DATASETS = ("mnist", "idx")  # models of these are asked whether an image looks like an MNIST digit

DEFAULT_CHECKPOINT = Path(DEFAULT_RUNS_ROOT) / LATEST_LINK / CHECKPOINT_DIR / BEST_CHECKPOINT


def checkpoint_splits(ckpt: Checkpoint, progress: bool = False):
    """The data splits a checkpoint was trained with: its stored data section, seed and normalisation.

    Used by eval and the plots, so their numbers match what training reported.
    """
    from cnn_cli.runs.datasets import load_config_dataset

    return load_config_dataset(config_from_dict(ckpt.config), mean=ckpt.data.get("mean"), std=ckpt.data.get("std"), progress=progress)


def evaluate_checkpoint(checkpoint: str | Path, split: str = "test", progress: bool = False) -> EvalResult:
    """Loss, accuracy, per-class accuracy and confusion matrix of a checkpoint on ``test`` or ``val``."""
    ckpt, model = load_checkpoint(checkpoint)
    splits = checkpoint_splits(ckpt, progress)
    part = {"test": splits.test, "val": splits.val}[split]
    if len(part.labels) == 0:
        raise CnnError(f"{checkpoint}: its run has no {split} split (data.val_size is 0); evaluate --split test instead")
    result = evaluate(model, part.images, part.labels, config_from_dict(ckpt.config).train.eval_batch_size)
    return dataclasses.replace(result, class_names=class_names(ckpt, model.loss.num_classes))


def resolve_eval_checkpoint(target: str | Path | None, runs_root: str | Path = DEFAULT_RUNS_ROOT) -> Path:
    """What ``cnn eval [TARGET]`` evaluates: a checkpoint file, a run folder's best one, or the newest completed run's."""
    if target is None:
        newest = newest_completed_run(runs_root)
        if newest is None:
            raise CnnError(
                f"no completed run with {CHECKPOINT_DIR}/{BEST_CHECKPOINT} under {runs_root}/; "
                "train first (cnn train --config mnist) or name one"
            )
        return newest.best
    return checkpoint_in(target)


def checkpoint_in(target: str | Path) -> Path:
    """A checkpoint file as given, or a run folder's ``checkpoints/best.npz`` (``cnn eval``, ``predict --checkpoint``, ``viz``).

    Raises:
        CnnError: a run folder without a best checkpoint yet. Any other folder is left to the loader, which refuses it as not a file.
    """
    path = Path(target)
    if path.is_dir() and (path / CONFIG_FILE).is_file():
        best = path / CHECKPOINT_DIR / BEST_CHECKPOINT
        if not best.is_file():
            raise CnnError(f"{path}: this run has no {CHECKPOINT_DIR}/{BEST_CHECKPOINT} yet (no epoch finished?)")
        return best
    return path


@dataclass
class Prediction:
    """One image's result: the predicted class (its label and its name) and the top-k (class name, probability) pairs.

    A class's name is the one its checkpoint stores (``Ankle boot``, an image folder's sub-folder); an MNIST digit's is the digit.
    """

    path: str
    prediction: int | None = None
    class_name: str | None = None
    top_k: list[tuple[str, float]] | None = None
    warning: str = ""
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON form: the top-k classes only (most probable first, by name), as ``--top-k`` asks."""
        probabilities = None if self.top_k is None else {name: round(p, 6) for name, p in self.top_k}
        out: dict[str, Any] = {"path": self.path, "prediction": self.prediction, "class_name": self.class_name}
        out["probabilities"] = probabilities
        if self.warning:
            out["warning"] = self.warning
        if self.error:
            out["error"] = self.error
        return out


def resolve_checkpoint(checkpoint: str | Path | None) -> Path:
    """The given checkpoint (a run folder: its best one), or the newest run's best one; a clear error when there is none."""
    if checkpoint is not None:
        return checkpoint_in(checkpoint)
    # Not runs/latest, which may be an interrupted or killed run: the newest finished run, else any run's best epoch.
    newest = newest_completed_run(DEFAULT_RUNS_ROOT) or newest_completed_run(DEFAULT_RUNS_ROOT, require_completed=False)
    if newest is not None:
        return newest.best
    if not DEFAULT_CHECKPOINT.is_file():
        raise CnnError(
            f"no checkpoint given and none at {DEFAULT_CHECKPOINT}; train first (cnn train --config mnist.yaml) or pass --checkpoint PATH"
        )
    return DEFAULT_CHECKPOINT


def image_files(folder: Path) -> tuple[list[Path], list[str]]:
    """Every image file (by suffix) under ``folder``, recursively, sorted; plus one error per folder that could not be listed."""
    found: list[Path] = []
    errors: list[str] = []

    def unreadable(exc: OSError) -> None:
        errors.append(f"{exc.filename}: cannot list the folder ({exc.strerror or exc})")

    for root, dirs, files in os.walk(folder, onerror=unreadable):
        dirs.sort()
        found.extend(Path(root) / name for name in files if name.lower().endswith(IMAGE_SUFFIXES))
    return sorted(found), errors


def _read_stdin(stream: IO[bytes]) -> bytes:
    data = stream.read(MAX_STDIN_BYTES + 1)
    if len(data) > MAX_STDIN_BYTES:
        raise ImageError(f"{STDIN}: more than {MAX_STDIN_BYTES >> 20} MiB on stdin; refused")
    return data


def expand_sources(sources: list[str]) -> list[tuple[str, str]]:
    """(path, error) per image to predict: stdin (``-``) and files as given, folders replaced by the images inside them."""
    items: list[tuple[str, str]] = []
    for source in sources:
        path = Path(source)
        is_folder, error = attempt(path.is_dir) if source != STDIN else (False, "")
        if error:  # e.g. a name too long for the file system: this source fails, the others go on
            items.append((source, error))
        elif is_folder:
            files, errors = image_files(path)
            items.extend(("", error) for error in errors)
            if not files and not errors:
                items.append((source, f"{path}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder"))
            items.extend((str(f), "") for f in files)
        else:
            items.append((source, ""))
    return items


def _prepared(source: str, stdin: IO[bytes] | None) -> Prepared:
    """One image read and preprocessed: a file, or ``-`` (stdin)."""
    if source != STDIN:
        return load_image(source)
    if stdin is None:
        raise ImageError(f"{STDIN}: no standard input to read an image from")
    return preprocess(read_grayscale_bytes(_read_stdin(stdin), STDIN))


def doubt(prepared: Prepared, top_probability: float, digits: bool = True) -> str:
    """A warning when the answer deserves doubt: low confidence, or (for a model of ``digits``) an image unlike an MNIST digit."""
    if prepared.warning:  # blank or no ink: already said to be meaningless
        return prepared.warning
    reasons = []
    if top_probability < LOW_CONFIDENCE:
        known = "a digit" if digits else "something"
        reasons.append(f"low confidence (top class p={top_probability:.2f}); this may not be {known} the model knows")
    fraction = ink_fraction(prepared.pixels)
    low, high = MNIST_INK_RANGE
    if digits and not low <= fraction <= high:
        reasons.append(f"unlike an MNIST digit: {fraction:.0%} of the prepared 28x28 pixels are ink (MNIST digits: 3% to 30%)")
    return "; ".join(reasons)


def predict_images(
    paths: list[str], checkpoint: str | Path | None = None, top_k: int = 3, stdin: IO[bytes] | None = None
) -> list[Prediction]:
    """Classify images: files, folders (every image inside, recursively, sorted) and ``-`` (one image read from ``stdin``).

    A bad image gets ``error`` set; the others are still predicted (:mod:`cnn_cli.runs.per_input`).
    """
    checkpoint_path = resolve_checkpoint(checkpoint)
    ckpt, model = load_checkpoint(checkpoint_path)
    if tuple(model.input_shape) != (1, MNIST_SIZE, MNIST_SIZE):
        raise CnnError(
            f"{checkpoint_path}: its model takes input {tuple(model.input_shape)}; predict feeds 1x{MNIST_SIZE}x{MNIST_SIZE} digit images"
        )
    mean, std = float(ckpt.data.get("mean", 0.0)), float(ckpt.data.get("std", 1.0))
    classes = ckpt.data.get("classes") or list(range(model.loss.num_classes))
    names = class_names(ckpt, model.loss.num_classes)
    digits = ckpt.config.get("data", {}).get("dataset") in DIGIT_DATASETS
    results = []
    for source, error in expand_sources(paths):
        if error:
            results.append(Prediction(path=source, error=error))
            continue
        prepared, error = attempt(functools.partial(_prepared, source, stdin))
        if prepared is None:
            results.append(Prediction(path=source, error=error))
            continue
        x = ((prepared.pixels - mean) / std).astype(model.dtype)[None, None]
        probs = model.predict_proba(x)[0]
        order = np.argsort(-probs, kind="stable")[:top_k]
        results.append(
            Prediction(
                path=source,
                prediction=int(classes[int(order[0])]),
                class_name=names[int(order[0])],
                top_k=[(names[int(i)], float(probs[i])) for i in order],
                warning=doubt(prepared, float(probs[order[0]]), digits),
            )
        )
    return results
