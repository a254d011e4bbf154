"""Checkpoint files: written atomically, loaded safely and validated before use.

A checkpoint is an ``.npz`` holding
- every parameter under its dotted name in PyTorch layout (``conv1.weight``),
- every buffer (state that is not trained: batch norm's running statistics) under
  ``buffer/<name>`` (``buffer/bn1.running_mean``); a model without buffers stores none,
  so checkpoints written before buffers existed still load,
- the optimizer's state under ``optimizer/<name>`` (and ``optimizer/steps``),
- metadata under ``meta/``: format version, epoch, step, position inside the
  epoch, running sums of a partial epoch, best validation accuracy, RNG states,
  the data normalisation, classes and class names, and the resolved config (JSON text), and the metrics
  history (one row per finished epoch, ``meta/history``, a float64 array with the
  columns of ``metrics.csv``; optional, so older checkpoints still load).

Loading never unpickles (``allow_pickle=False``), checks declared sizes before
decompressing anything, and checks every key, shape, dtype and value.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnn_cli.data.catalog import MAX_CLASS_NAME_CHARS
from cnn_cli.errors import CheckpointError, CnnError, RuntimeFault
from cnn_cli.io import atomic_write  # re-exported: runs and plots write through it too

FORMAT_VERSION = 1
OPTIMIZER_PREFIX = "optimizer/"
BUFFER_PREFIX = "buffer/"
META_PREFIX = "meta/"
META_KEYS = (
    "format_version",
    "epoch",
    "step",
    "batch_in_epoch",
    "running",
    "best_val_acc",
    "best_epoch",
    "rng",
    "data",
    "config",
)
HISTORY_KEY = "history"
HISTORY_COLUMNS = ("epoch", "step", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds", "images_per_s")
MAX_META_BYTES = 1 << 20  # the config and other metadata are small; anything bigger is refused
SIZE_SLACK_BYTES = 1 << 20


@dataclass
class Checkpoint:
    """Everything a checkpoint holds, as plain Python and NumPy values."""

    params: dict[str, np.ndarray]
    config: dict[str, Any]
    optimizer_state: dict[str, np.ndarray] = field(default_factory=dict)
    epoch: int = 0  # completed epochs
    step: int = 0  # optimizer steps taken
    batch_in_epoch: int = 0  # batches of the current (unfinished) epoch already trained on
    running: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0])  # loss sum, correct, seen, seconds
    best_val_acc: float = -1.0
    best_epoch: int = 0
    rng: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)  # mean, std, classes, class_names
    history: list[dict[str, Any]] | None = None  # metrics rows of the finished epochs (None: not stored)
    buffers: dict[str, np.ndarray] = field(default_factory=dict)  # the model's buffers by dotted name


def _text(value: Any) -> np.ndarray:
    return np.array(json.dumps(value))  # a unicode scalar, never an object array


def stored_meta_bytes(value: Any) -> int:
    """Bytes a JSON metadata value takes inside a checkpoint (NumPy stores text as UTF-32: 4 bytes a character)."""
    return _text(value).nbytes + 128  # + the .npy header


def check_meta_fits(key: str, value: Any) -> None:
    """What ``cnn`` writes, ``cnn`` must read: refuse metadata the loader would refuse.

    Raises:
        RuntimeFault: naming the key, its stored size and the limit.
    """
    size = stored_meta_bytes(value)
    if size > MAX_META_BYTES:
        raise RuntimeFault(f"meta/{key}: {size:,} bytes once stored, more than the {MAX_META_BYTES:,} a checkpoint may hold")


def model_rng_state(model: Any) -> dict[str, Any]:
    """The generator state of every layer that draws random numbers (dropout), by layer name."""
    return {layer.name: layer.rng.bit_generator.state for layer in model.layers if hasattr(layer, "rng")}


def restore_rng_state(model: Any, state: dict[str, Any], source: str | Path = "checkpoint") -> None:
    """Put back each random layer's generator state (the inverse of :func:`model_rng_state`).

    Raises:
        CheckpointError: a stored state NumPy refuses (a damaged or edited checkpoint), naming the layer.
    """
    for layer in model.layers:
        if hasattr(layer, "rng") and layer.name in state:
            try:
                layer.rng.bit_generator.state = state[layer.name]
            except (TypeError, ValueError, KeyError, OverflowError) as exc:
                raise CheckpointError(f"{source}: meta/rng: not a random generator state for layer {layer.name} ({exc})") from None


def _history_array(history: list[dict[str, Any]]) -> np.ndarray:
    return np.array([[float(row[column]) for column in HISTORY_COLUMNS] for row in history], dtype=np.float64).reshape(
        len(history), len(HISTORY_COLUMNS)
    )


def _history_rows(array: np.ndarray) -> list[dict[str, Any]]:
    return [
        {column: (int(value) if column in ("epoch", "step") else float(value)) for column, value in zip(HISTORY_COLUMNS, row, strict=True)}
        for row in array.tolist()
    ]


def save_checkpoint(path: str | Path, ckpt: Checkpoint) -> None:
    """Write ``ckpt`` to ``path`` atomically: temp file in the same folder, fsync, rename.

    If anything fails (disk full, a crash before the rename), the previous file
    at ``path`` is untouched and the temp file is removed.

    Raises:
        RuntimeFault: the file could not be written (e.g. ENOSPC), naming it.
    """
    path = Path(path)
    arrays: dict[str, np.ndarray] = dict(ckpt.params)
    arrays.update({OPTIMIZER_PREFIX + k: v for k, v in ckpt.optimizer_state.items()})
    arrays.update({BUFFER_PREFIX + k: v for k, v in ckpt.buffers.items()})
    meta = {
        "format_version": np.array(FORMAT_VERSION),
        "epoch": np.array(ckpt.epoch),
        "step": np.array(ckpt.step),
        "batch_in_epoch": np.array(ckpt.batch_in_epoch),
        "running": np.array(ckpt.running, dtype=np.float64),
        "best_val_acc": np.array(ckpt.best_val_acc),
        "best_epoch": np.array(ckpt.best_epoch),
        "rng": _text(ckpt.rng),
        "data": _text(ckpt.data),
        "config": _text(ckpt.config),
    }
    for key in ("rng", "data", "config"):
        if meta[key].nbytes + 128 > MAX_META_BYTES:
            check_meta_fits(key, getattr(ckpt, key))
    if ckpt.history is not None:
        meta[HISTORY_KEY] = _history_array(ckpt.history)
    arrays.update({META_PREFIX + k: v for k, v in meta.items()})
    atomic_write(path, lambda handle: np.savez(handle, **arrays))  # type: ignore[arg-type]  # numpy's stub types **kwds as allow_pickle


# ---------------------------------------------------------------- loading


def _open_zip(path: Path) -> zipfile.ZipFile:
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a file")
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(f"{path}: not a valid checkpoint (not an .npz archive, or truncated): {exc}") from None


def _member_name(key: str) -> str:
    return key + ".npy"


def _read_member(archive: zipfile.ZipFile, path: Path, key: str, max_bytes: int) -> np.ndarray:
    """Read one array from the archive after checking its declared size; never unpickles."""
    try:
        info = archive.getinfo(_member_name(key))
    except KeyError:
        raise CheckpointError(f"{path}: missing key {key!r}") from None
    if info.file_size > max_bytes:
        raise CheckpointError(f"{path}: member {key!r} declares {info.file_size:,} bytes, more than the {max_bytes:,} its config allows")
    try:
        with archive.open(info) as handle:
            return np.lib.format.read_array(handle, allow_pickle=False)
    except ValueError as exc:
        raise CheckpointError(f"{path}: key {key!r} is not a plain numeric array ({exc}); refusing to load it") from None
    except (zipfile.BadZipFile, EOFError, OSError, zipfile.LargeZipFile) as exc:
        raise CheckpointError(f"{path}: key {key!r} is corrupt or truncated: {exc}") from None


def _read_json(archive, path, key) -> Any:
    value = _read_member(archive, path, META_PREFIX + key, MAX_META_BYTES)
    if value.dtype.kind != "U" or value.ndim != 0:
        raise CheckpointError(f"{path}: meta/{key} must be JSON text, got a {value.dtype} array")
    try:
        return json.loads(str(value))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: meta/{key} is not valid JSON: {exc}") from None


def _read_scalar(archive, path, key, kind: str) -> Any:
    value = _read_member(archive, path, META_PREFIX + key, MAX_META_BYTES)
    if value.ndim != 0 or value.dtype.kind not in kind:
        raise CheckpointError(f"{path}: meta/{key} must be a number, got {value.dtype} with shape {value.shape}")
    return value.item()


def load_checkpoint(path: str | Path) -> tuple[Checkpoint, Any]:
    """Load and validate a checkpoint; also rebuild its model from the stored config.

    Returns:
        (checkpoint, model) where ``model`` holds the checkpoint's weights.
    Raises:
        CheckpointError: one line naming the file and what is wrong.
    """
    from cnn_cli.config.build import config_from_dict
    from cnn_cli.model.network import build_model

    path = Path(path)
    with _open_zip(path) as archive:
        names = archive.namelist()
        if any(not n.endswith(".npy") for n in names):
            bad = next(n for n in names if not n.endswith(".npy"))
            raise CheckpointError(f"{path}: unexpected member {bad!r}; not a cnn checkpoint")
        keys = {n[: -len(".npy")] for n in names}
        version = _read_scalar(archive, path, "format_version", "iu") if META_PREFIX + "format_version" in keys else None
        if version != FORMAT_VERSION:
            raise CheckpointError(f"{path}: not a cnn checkpoint of format {FORMAT_VERSION} (meta/format_version={version})")
        config_data = _read_json(archive, path, "config")
        try:
            config = config_from_dict(config_data, source=f"{path} (stored config)")
            model = build_model(config, seed=0, dtype=config.train.dtype)
        except CnnError as exc:
            raise CheckpointError(f"{path}: stored config is invalid: {exc}") from None

        param_bytes = sum(p.nbytes for p in model.params.values())
        _check_declared_sizes(archive, path, param_bytes + sum(b.nbytes for b in model.buffers.values()))
        buffer_keys = {BUFFER_PREFIX + name for name in model.buffers}
        _check_keys(path, keys, set(model.params) | buffer_keys)
        params = _read_params(archive, path, model.params)
        buffers = _read_params(archive, path, model.buffers, BUFFER_PREFIX)
        optimizer_state = _read_optimizer_state(archive, path, keys, model.params, param_bytes)

        ckpt = Checkpoint(
            params=params,
            config=config.as_dict(),
            optimizer_state=optimizer_state,
            epoch=int(_read_scalar(archive, path, "epoch", "iu")),
            step=int(_read_scalar(archive, path, "step", "iu")),
            batch_in_epoch=int(_read_scalar(archive, path, "batch_in_epoch", "iu")),
            running=[float(v) for v in _read_member(archive, path, META_PREFIX + "running", 4096).ravel()],
            best_val_acc=float(_read_scalar(archive, path, "best_val_acc", "iuf")),
            best_epoch=int(_read_scalar(archive, path, "best_epoch", "iu")),
            rng=_read_json(archive, path, "rng"),
            data=_read_json(archive, path, "data"),
            buffers=buffers,
        )
        if META_PREFIX + HISTORY_KEY in keys:
            ckpt.history = _read_history(archive, path, ckpt.epoch)
    _check_meta(path, ckpt, model)
    model.load_params(params)
    model.load_buffers(buffers)
    return ckpt, model


def _check_declared_sizes(archive: zipfile.ZipFile, path: Path, param_bytes: int) -> None:
    """Refuse an archive whose members declare (or whose file takes) far more bytes than the stored config's model needs."""
    # Parameters + at most two optimizer arrays per parameter + the metadata, each member of which is
    # capped when it is read (so a config near MAX_META_BYTES, which save_checkpoint accepts, loads too).
    meta_bytes = sum(min(info.file_size, MAX_META_BYTES) for info in archive.infolist() if info.filename.startswith(META_PREFIX))
    allowed_total = 3 * param_bytes + meta_bytes + SIZE_SLACK_BYTES
    declared_total = sum(info.file_size for info in archive.infolist())
    if declared_total > allowed_total or path.stat().st_size > allowed_total:
        raise CheckpointError(
            f"{path}: declares {declared_total:,} bytes ({path.stat().st_size:,} on disk), far more than the "
            f"{allowed_total:,} its config implies; refusing to decompress it"
        )


def _check_keys(path: Path, keys: set[str], param_names: set[str]) -> None:
    """Every parameter and metadata key is there, and nothing else but optimizer state and the optional history."""
    expected_meta = {META_PREFIX + k for k in META_KEYS}
    missing = sorted((param_names | expected_meta) - keys)
    if missing:
        raise CheckpointError(f"{path}: missing key {missing[0]!r}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    optional_meta = {META_PREFIX + HISTORY_KEY}
    extra = sorted(k for k in keys - param_names - expected_meta - optional_meta if not k.startswith(OPTIMIZER_PREFIX))
    if extra:
        raise CheckpointError(f"{path}: unexpected key {extra[0]!r}; it does not belong to the stored config's model")


def _read_params(archive: zipfile.ZipFile, path: Path, model_arrays: dict[str, np.ndarray], prefix: str = "") -> dict[str, np.ndarray]:
    """Every parameter (or, with ``prefix`` ``buffer/``, every buffer), each checked against the shape and dtype of the model's own."""
    arrays = {}
    for name, expected in model_arrays.items():
        value = _read_member(archive, path, prefix + name, expected.nbytes + 4096)
        _check_array(path, prefix + name, value, expected.shape, expected.dtype)
        arrays[name] = value
    return arrays


def _read_optimizer_state(
    archive: zipfile.ZipFile, path: Path, keys: set[str], model_params: dict[str, np.ndarray], param_bytes: int
) -> dict[str, np.ndarray]:
    """The ``optimizer/`` arrays by their short names: ``steps``, an integer, and per-parameter arrays shaped like their parameter."""
    optimizer_state = {}
    for key in sorted(k for k in keys if k.startswith(OPTIMIZER_PREFIX)):
        short = key[len(OPTIMIZER_PREFIX) :]
        value = _read_member(archive, path, key, param_bytes + 4096)
        if short == "steps":
            if value.ndim != 0 or value.dtype.kind not in "iu":
                raise CheckpointError(f"{path}: {key} must be an integer")
        else:
            owner = short.rsplit(".", 1)[0]
            if owner not in model_params:
                raise CheckpointError(f"{path}: unexpected key {key!r}; no parameter {owner!r} in the model")
            _check_array(path, key, value, model_params[owner].shape, model_params[owner].dtype)
        optimizer_state[short] = value
    return optimizer_state


def _read_history(archive: zipfile.ZipFile, path: Path, epochs: int) -> list[dict[str, Any]]:
    """meta/history: sized from what was written (one float64 row per finished epoch), checked before use."""
    key = META_PREFIX + HISTORY_KEY
    value = _read_member(archive, path, key, 8 * len(HISTORY_COLUMNS) * epochs + 4096)
    if value.dtype != np.float64 or value.shape != (epochs, len(HISTORY_COLUMNS)):
        shape = (epochs, len(HISTORY_COLUMNS))
        raise CheckpointError(f"{path}: {key} must be a float64 array of shape {shape}, got {value.dtype} {value.shape}")
    rows = _history_rows(value)
    if [row["epoch"] for row in rows] != list(range(1, epochs + 1)):
        raise CheckpointError(f"{path}: {key} must hold one row for each of the epochs 1..{epochs}")
    return rows


def _check_meta(path: Path, ckpt: Checkpoint, model: Any) -> None:
    """The metadata must be usable as it stands: finite counters, a sane normalisation and class list."""

    def bad(key: str, why: str) -> CheckpointError:
        return CheckpointError(f"{path}: meta/{key} {why}")

    if len(ckpt.running) != 4 or not all(np.isfinite(v) and v >= 0 for v in ckpt.running):
        raise bad("running", f"must hold 4 finite, non-negative numbers, got {ckpt.running}")
    for key in ("epoch", "step", "batch_in_epoch", "best_epoch"):
        if getattr(ckpt, key) < 0:
            raise bad(key, f"must be >= 0, got {getattr(ckpt, key)}")
    if not (np.isfinite(ckpt.best_val_acc) and -1.0 <= ckpt.best_val_acc <= 1.0):
        raise bad("best_val_acc", f"must be an accuracy in [0, 1] (or -1 before any epoch), got {ckpt.best_val_acc}")
    if not isinstance(ckpt.rng, dict):
        raise bad("rng", "must be a JSON object")
    data = ckpt.data
    if not isinstance(data, dict):
        raise bad("data", "must be a JSON object with mean, std and classes")
    mean, std, classes = data.get("mean"), data.get("std"), data.get("classes")
    if not isinstance(mean, (int, float)) or isinstance(mean, bool) or not np.isfinite(mean):
        raise bad("data", f"mean must be a finite number, got {mean!r}")
    if not isinstance(std, (int, float)) or isinstance(std, bool) or not (np.isfinite(std) and std > 0):
        raise bad("data", f"std must be a finite number > 0, got {std!r}")
    if (
        not isinstance(classes, list)
        or len(classes) != model.loss.num_classes
        or not all(isinstance(c, int) and not isinstance(c, bool) for c in classes)
    ):
        raise bad("data", f"classes must list {model.loss.num_classes} integer labels, got {classes!r}")
    names = data.get("class_names")
    if names is not None and (
        not isinstance(names, list)
        or len(names) != model.loss.num_classes
        or not all(isinstance(name, str) and 0 < len(name) <= MAX_CLASS_NAME_CHARS for name in names)
    ):
        raise bad("data", f"class_names must list {model.loss.num_classes} names of 1 to {MAX_CLASS_NAME_CHARS} characters, got {names!r}")


def class_names(ckpt: Checkpoint, num_classes: int) -> list[str]:
    """The name of each class index the checkpoint's model predicts: the stored names (Fashion-MNIST's, an image
    folder's sub-folders, the digits), else, for checkpoints written before names were kept, the original labels."""
    names = ckpt.data.get("class_names")
    if names:
        return [str(name) for name in names]
    return [str(label) for label in (ckpt.data.get("classes") or range(num_classes))]


def _check_array(path: Path, name: str, value: np.ndarray, shape: tuple, dtype: np.dtype) -> None:
    if value.shape != tuple(shape):
        raise CheckpointError(f"{path}: {name} has shape {value.shape}, but the stored config's model needs {tuple(shape)}")
    if value.dtype != dtype:
        raise CheckpointError(f"{path}: {name} has dtype {value.dtype}, expected {dtype}")
    if not np.all(np.isfinite(value)):
        raise CheckpointError(f"{path}: {name} contains NaN or infinite values")
