"""The run configuration as typed data with defaults, validated with messages.

A config file has five sections: ``model`` (architecture, see :mod:`cnn_cli.model`),
``data``, ``optimizer``, ``schedule`` and ``train``. Every error names the key
path, the bad value and, for files, the YAML line:
``mnist.yaml:14: train.batch_size: expected an int >= 1, got 0``.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from cnn_cli.errors import ConfigError

BUILTIN_CONFIG_PACKAGE = "cnn_cli.configs"


def _bounds(minimum: float | None = None, below: float | None = None, above: float | None = None) -> dict:
    return {"minimum": minimum, "below": below, "above": above}


@dataclass
class ModelConfig:
    """The architecture. Layers are checked when the model is built (shape inference)."""

    layers: list[dict] = field(default_factory=list)
    input_shape: list[int] = field(default_factory=lambda: [1, 28, 28])
    loss: Literal["softmax_cross_entropy", "binary_cross_entropy", "sum_squared_error"] = "softmax_cross_entropy"
    init: Literal["kaiming", "xavier"] = "kaiming"

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class AugmentConfig:
    """Training-batch augmentation, off by default."""

    translate: int = field(default=0, metadata=_bounds(minimum=0))
    rotate: float = field(default=0.0, metadata=_bounds(minimum=0))


@dataclass
class DataConfig:
    """Which dataset, how it is split, filtered and normalised."""

    dataset: Literal["mnist", "fashion-mnist", "idx"] = "mnist"
    data_dir: str = "data"
    paths: dict[str, str] | None = None
    val_size: int = field(default=5000, metadata=_bounds(minimum=0))
    classes: list[int] | None = None
    limit: int | None = field(default=None, metadata=_bounds(minimum=1))
    mean: float | None = None
    std: float | None = field(default=None, metadata=_bounds(above=0))
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class OptimizerConfig:
    """Update rule. ``weight_decay`` is notes 001's λ: L = data loss + ½λΣw² over weights."""

    name: Literal["sgd", "momentum", "nesterov", "adam"] = "adam"
    lr: float = field(default=1e-3, metadata=_bounds(above=0))
    momentum: float = field(default=0.9, metadata=_bounds(minimum=0, below=1))
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = field(default=1e-8, metadata=_bounds(above=0))
    weight_decay: float = field(default=0.0, metadata=_bounds(minimum=0))
    clip_grad_norm: float | None = field(default=None, metadata=_bounds(above=0))


@dataclass
class ScheduleConfig:
    """Learning-rate schedule over epochs, with optional linear warm-up."""

    name: Literal["constant", "step", "cosine"] = "constant"
    step_size: int = field(default=1, metadata=_bounds(minimum=1))
    gamma: float = field(default=0.1, metadata=_bounds(above=0))
    min_lr: float = field(default=0.0, metadata=_bounds(minimum=0))
    warmup_epochs: float = field(default=0.0, metadata=_bounds(minimum=0))


@dataclass
class TrainConfig:
    """The training loop."""

    epochs: int = field(default=8, metadata=_bounds(minimum=1))
    batch_size: int = field(default=64, metadata=_bounds(minimum=1))
    eval_batch_size: int = field(default=100, metadata=_bounds(minimum=1))
    seed: int = 0
    drop_last: bool = False
    early_stopping_patience: int | None = field(default=None, metadata=_bounds(minimum=1))
    dtype: Literal["float32", "float64"] = "float32"
    plots: bool = True
    save_every_epoch: bool = False  # also keep checkpoints/epoch-NNN.npz
    log_gradients: bool = True  # gradients.csv: per-layer gradient norms (cnn_cli.callbacks.GradientLogger)
    log_every: int = field(default=100, metadata=_bounds(minimum=1))  # steps between gradient logs (and each epoch end)
    tensorboard: bool = False  # tensorboard/ event files (cnn_cli.tensorboard_log; needs the tensorboard extra)
    overfit_batches: int | None = field(default=None, metadata=_bounds(minimum=1))  # train on these first N batches only
    freeze: list[str] = field(default_factory=list)  # layers whose parameters training leaves as they are (cnn_cli.transfer)


@dataclass
class Config:
    """A whole run: every default filled in once loaded."""

    name: str = "run"
    description: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (for YAML/JSON), every default included."""
        return dataclasses.asdict(self)


# ---------------------------------------------------------------- conversion


class _Lines:
    """Key path -> YAML line number, so errors can point into the file."""

    def __init__(self, source: str = "", lines: dict[str, int] | None = None) -> None:
        self.source = source
        self.lines = lines or {}

    def where(self, path: str) -> str:
        probe = path
        while probe:
            if probe in self.lines:
                return f"{self.source}:{self.lines[probe]}: "
            parent = re.sub(r"(\.[^.\[]*|\[\d+\])$", "", probe)
            if parent == probe:  # a top-level key the file does not have (e.g. set by --set)
                break
            probe = parent
        return f"{self.source}: " if self.source else ""


def _type_words(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(tp)))
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return _type_words(inner[0]) + " or null"
    if origin is list:
        return f"a list of {_type_words(typing.get_args(tp)[0]).removeprefix('a ').removeprefix('an ')}s"
    if origin is dict:
        return "a mapping"
    return {int: "an int", float: "a number", bool: "true or false", str: "a string", dict: "a mapping"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _convert(tp: Any, value: Any, path: str, lines: _Lines, meta: dict | None = None) -> Any:
    """Check ``value`` against the annotation ``tp``; return it converted (ints to floats, dataclasses built)."""
    origin = typing.get_origin(tp)

    def fail(expected: str) -> ConfigError:
        return ConfigError(f"{lines.where(path)}{path}: expected {expected}, got {value!r}")

    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise fail("a mapping")
        return _build(tp, value, path, lines)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        inner = [a for a in typing.get_args(tp) if a is not type(None)][0]
        try:
            return _convert(inner, value, path, lines, meta)
        except ConfigError:
            raise fail(_type_words(tp)) from None
    if origin is Literal:
        if value not in typing.get_args(tp):
            close = difflib.get_close_matches(str(value), [str(a) for a in typing.get_args(tp)], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{lines.where(path)}{path}: expected {_type_words(tp)}, got {value!r}{hint}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise fail(_type_words(tp))
        item_type = typing.get_args(tp)[0]
        return [_convert(item_type, v, f"{path}[{i}]", lines) for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise fail("a mapping")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail(_bounded_words("an int", meta))
        _check_bounds(value, path, lines, meta, "an int")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail(_bounded_words("a number", meta))
        if not math.isfinite(value):
            raise fail(_bounded_words("a finite number", meta))
        _check_bounds(value, path, lines, meta, "a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise fail("a string")
        return value
    raise TypeError(f"unsupported config type {tp!r} at {path}")


def _bounded_words(kind: str, meta: dict | None) -> str:
    meta = meta or {}
    parts = []
    if meta.get("minimum") is not None:
        parts.append(f">= {meta['minimum']}")
    if meta.get("above") is not None:
        parts.append(f"> {meta['above']}")
    if meta.get("below") is not None:
        parts.append(f"< {meta['below']}")
    return f"{kind} {' and '.join(parts)}".strip()


def _check_bounds(value: float, path: str, lines: _Lines, meta: dict | None, kind: str) -> None:
    meta = meta or {}
    bad = (
        (meta.get("minimum") is not None and value < meta["minimum"])
        or (meta.get("above") is not None and value <= meta["above"])
        or (meta.get("below") is not None and value >= meta["below"])
    )
    if bad:
        raise ConfigError(f"{lines.where(path)}{path}: expected {_bounded_words(kind, meta)}, got {value!r}")


def _build(cls: type, data: dict, path: str, lines: _Lines) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            full = f"{path}.{key}" if path else str(key)
            raise ConfigError(f"{lines.where(full)}{full}: unknown key{hint} (valid keys: {', '.join(fields)})")
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            full = f"{path}.{name}" if path else name
            kwargs[name] = _convert(hints[name], data[name], full, lines, dict(f.metadata))
    return cls(**kwargs)


def config_from_dict(data: dict, source: str = "", line_numbers: dict[str, int] | None = None) -> Config:
    """Validate a plain dict into a :class:`Config`, filling every default."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source or 'config'}: expected a mapping at the top level, got {type(data).__name__}")
    config = _build(Config, data, "", _Lines(source, line_numbers))
    _check_cross_field(config, _Lines(source, line_numbers))
    return config


def _check_cross_field(config: Config, lines: _Lines) -> None:
    betas = config.optimizer.betas
    if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
        raise ConfigError(f"{lines.where('optimizer.betas')}optimizer.betas: expected two numbers in [0, 1), got {betas}")
    if config.data.dataset == "idx":
        need = {"train_images", "train_labels", "test_images", "test_labels"}
        given = set(config.data.paths or {})
        if given != need:
            raise ConfigError(
                f"{lines.where('data.paths')}data.paths: dataset 'idx' needs exactly the keys {sorted(need)}, got {sorted(given)}"
            )


# ---------------------------------------------------------------- files


def _line_numbers(node: yaml.Node, path: str = "", out: dict[str, int] | None = None) -> dict[str, int]:
    out = {} if out is None else out
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = f"{path}.{key_node.value}" if path else str(key_node.value)
            out[key] = key_node.start_mark.line + 1
            _line_numbers(value_node, key, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            key = f"{path}[{i}]"
            out[key] = item.start_mark.line + 1
            _line_numbers(item, key, out)
    return out


def parse_yaml(text: str, source: str) -> tuple[Any, dict[str, int]]:
    """Safe-load YAML text; errors give the file, line and column."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = exc.problem or exc.context or "invalid YAML"
        if isinstance(exc, yaml.constructor.ConstructorError):
            problem = f"{problem} (only plain YAML is accepted; Python object tags are refused)"
        raise ConfigError(f"{where}: YAML error: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: YAML error: {exc}") from None
    return data, (_line_numbers(node) if node is not None else {})


def builtin_configs() -> list[str]:
    """Names of the configs shipped inside the package (without .yaml)."""
    folder = resources.files(BUILTIN_CONFIG_PACKAGE)
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def resolve_config_path(name_or_path: str | Path) -> tuple[str, str]:
    """Find a config by path, or by bare name among the built-in ones. Returns (source, text)."""
    path = Path(name_or_path)
    if path.is_file():
        try:
            return str(path), path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read config: {exc}") from None
    stem = path.name.removesuffix(".yaml").removesuffix(".yml")
    if path.parent == Path(".") and stem in builtin_configs():
        text = resources.files(BUILTIN_CONFIG_PACKAGE).joinpath(f"{stem}.yaml").read_text(encoding="utf-8")
        return f"{stem}.yaml", text
    raise ConfigError(f"{name_or_path}: config file not found; give a path or one of the built-in configs: " + ", ".join(builtin_configs()))


def apply_override(data: dict, assignment: str) -> None:
    """Apply ``KEY.PATH=VALUE`` (e.g. ``train.epochs=3``, ``model.layers[0].out_channels=8``) in place.

    The value is read as YAML, so ``3`` is an int, ``1e-3`` a float, ``[0, 1]`` a list;
    the schema then checks its type.
    """
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE, e.g. train.epochs=3")
    key, raw = assignment.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    parts = [p for p in re.split(r"\.|\[(\d+)\]", key.strip()) if p]
    if not parts:
        raise ConfigError(f"--set {assignment!r}: empty key")
    target: Any = data
    for i, part in enumerate(parts[:-1]):
        where = ".".join(parts[: i + 1])
        if isinstance(target, list):
            index = int(part) if part.isdigit() else -1
            if not 0 <= index < len(target):
                raise ConfigError(f"--set {key}: {where}: no list item {part}")
            target = target[index]
        else:
            target = target.setdefault(part, {})
        if not isinstance(target, (dict, list)):
            raise ConfigError(f"--set {key}: {where} is not a section")
    last = parts[-1]
    if isinstance(target, list):
        if not last.isdigit() or int(last) >= len(target):
            raise ConfigError(f"--set {key}: no list item {last}")
        target[int(last)] = value
    else:
        target[last] = value


def load_config(name_or_path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read, override and validate a config. Raises ConfigError with file:line: key.path."""
    source, text = resolve_config_path(name_or_path)
    data, line_numbers = parse_yaml(text, source)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of sections (model, data, optimizer, schedule, train)")
    data.setdefault("name", Path(source).name.removesuffix(".yaml").removesuffix(".yml"))
    for assignment in overrides:
        apply_override(data, assignment)
    config = config_from_dict(data, source, line_numbers)
    check_architecture(config, _Lines(source, line_numbers))
    return config


def check_architecture(config: Config, lines: _Lines | None = None) -> None:
    """Build the model once so an impossible architecture is reported now, with its YAML line."""
    from cnn_cli.errors import ModelBuildError
    from cnn_cli.model import build_model

    try:
        build_model(config, dtype=config.train.dtype)
    except ModelBuildError as exc:
        message = str(exc)
        match = re.match(r"(model\.[A-Za-z_]+(\[\d+\])?)", message)
        where = lines.where(match.group(1)) if (lines and match) else ""
        raise ModelBuildError(f"{where}{message}") from None


def config_to_yaml(config: Config) -> str:
    """The resolved config as YAML text (every default written out)."""
    return yaml.safe_dump(config.as_dict(), sort_keys=False, default_flow_style=None)
