"""The run configuration: one typed schema with defaults, and loading it from YAML with clear messages.

A config file has five sections: ``model`` (architecture), ``data``, ``optimizer``,
``schedule`` and ``train``. Each section, and each layer type's options
(:mod:`cnn_cli.layers`), is a typed dataclass; :mod:`cnn_cli.schema` validates
them all with the same machinery. Choices (layer types, losses, optimizers,
schedules, inits, datasets) come from their registries.

Loading checks everything before anything runs: types and ranges, then what
needs several values at once (shape inference through the layers, the loss's
output count, the memory the model needs). Every error names the key path and the
bad value and, for files, the YAML line, or the ``--set`` that gave the value::

    mnist.yaml:14: train.batch_size: expected an int >= 1, got 0

The model is built from a loaded config by :func:`cnn_cli.model.build_model`,
which re-checks nothing.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import yaml

from cnn_cli.data.catalog import DATASETS, IDX_DATASET
from cnn_cli.errors import ConfigError, ModelBuildError
from cnn_cli.init import INIT_SCHEMES
from cnn_cli.layers import LAYER_SPECS, LayerSpec, Shape, default_layer_names
from cnn_cli.layers.base import elements
from cnn_cli.losses import LOSSES
from cnn_cli.nn.shapes import GeometryError
from cnn_cli.optim import OPTIMIZERS, SCHEDULES
from cnn_cli.schema import Described, Key, Length, OneOf, Range, Tagged, build, json_schema, parent_paths, to_plain

BUILTIN_CONFIG_PACKAGE = "cnn_cli.configs"
DTYPES = ("float32", "float64")

# Bounds on what a config file may cost to read. A config is a few KB; these stop hostile
# files (a multi-MB file, 100,000 nested brackets, a "billion laughs" alias bomb) early.
# A config is a few KB. It is stored in every checkpoint, where NumPy keeps text as 4 bytes a character:
# 128 KiB of JSON stays well below the checkpoint's metadata limit (checkpoint.MAX_META_BYTES, 1 MiB).
MAX_CONFIG_BYTES = 128 * 1024
MAX_YAML_DEPTH = 64
MAX_YAML_NODES = 100_000  # after expanding aliases
DEFAULT_MEMORY_LIMIT_GB = 4.0

NonNegativeInt = Annotated[int, Range(minimum=0)]
PositiveInt = Annotated[int, Range(minimum=1)]
PositiveNumber = Annotated[float, Range(above=0)]
NonNegativeNumber = Annotated[float, Range(minimum=0)]
LayerList = Annotated[
    list[Annotated[LayerSpec, Tagged(LAYER_SPECS, noun="layer type")]],
    Length(min_items=1, words="a non-empty list of layers"),
]


@dataclass
class ModelConfig:
    """The architecture: layers in order (each ``type`` from the layer registry), the input, the loss and the init."""

    layers: LayerList = field(default_factory=list)
    input_shape: Annotated[
        list[Annotated[int, Range(minimum=1)]], Length(min_items=1), Described("a list of positive ints like [1, 28, 28]")
    ] = field(default_factory=lambda: [1, 28, 28])
    loss: Annotated[str, OneOf(tuple(LOSSES))] = "softmax_cross_entropy"
    init: Annotated[str, OneOf(INIT_SCHEMES)] = "kaiming"

    def as_dict(self) -> dict[str, Any]:
        return to_plain(self)


@dataclass
class AugmentConfig:
    """Training-batch augmentation, off by default."""

    translate: NonNegativeInt = 0  # pixels; smaller than the input image
    rotate: Annotated[float, Range(minimum=0, maximum=180)] = 0.0  # degrees


@dataclass
class DataConfig:
    """Which dataset, how it is split, filtered and normalised."""

    dataset: Annotated[str, OneOf((*DATASETS, IDX_DATASET))] = "mnist"
    data_dir: str | None = None  # None: ./data in a project folder, else $CNN_DATA_DIR or the per-user cache
    paths: dict[str, str] | None = None
    val_size: NonNegativeInt = 5000
    classes: list[int] | None = None
    limit: PositiveInt | None = None
    mean: float | None = None
    std: PositiveNumber | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class OptimizerConfig:
    """Update rule. ``weight_decay`` is notes 001's λ: L = data loss + ½λΣw² over weights."""

    name: Annotated[str, OneOf(OPTIMIZERS)] = "adam"
    lr: PositiveNumber = 1e-3
    momentum: Annotated[float, Range(minimum=0, below=1)] = 0.9
    betas: Annotated[
        list[Annotated[float, Range(minimum=0, below=1)]], Length(min_items=2, max_items=2), Described("two numbers in [0, 1)")
    ] = field(default_factory=lambda: [0.9, 0.999])
    eps: PositiveNumber = 1e-8
    weight_decay: NonNegativeNumber = 0.0
    clip_grad_norm: PositiveNumber | None = None


@dataclass
class ScheduleConfig:
    """Learning-rate schedule over epochs, with optional linear warm-up."""

    name: Annotated[str, OneOf(SCHEDULES)] = "constant"
    step_size: PositiveInt = 1
    gamma: PositiveNumber = 0.1
    min_lr: NonNegativeNumber = 0.0
    warmup_epochs: NonNegativeNumber = 0.0


@dataclass
class TrainConfig:
    """The training loop."""

    epochs: PositiveInt = 8
    batch_size: PositiveInt = 64
    eval_batch_size: PositiveInt = 100
    seed: NonNegativeInt = 0
    drop_last: bool = False
    early_stopping_patience: PositiveInt | None = None
    dtype: Annotated[str, OneOf(DTYPES)] = "float32"
    plots: bool = True
    save_every_epoch: bool = False  # also keep checkpoints/epoch-NNN.npz
    memory_limit_gb: PositiveNumber = DEFAULT_MEMORY_LIMIT_GB  # refuse models estimated to need more
    log_gradients: bool = True  # gradients.csv: per-layer gradient norms (cnn_cli.callbacks.GradientLogger)
    log_every: PositiveInt = 100  # steps between gradient logs (and each epoch end)
    tensorboard: bool = False  # tensorboard/ event files (cnn_cli.tensorboard_log; needs the tensorboard extra)
    overfit_batches: PositiveInt | None = None  # train on these first N batches only
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
        """Plain dict (for YAML/JSON), every default included (layer names and options too)."""
        return to_plain(self)


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema of a config file, generated from the dataclasses above (what ``cnn schema`` prints)."""
    return json_schema(Config, title="cnn config")


# ---------------------------------------------------------------- where an error points


class Locator:
    """Turns an error's key path into a place: the YAML line, or the ``--set`` that gave the value."""

    def __init__(self, source: str = "", lines: dict[str, int] | None = None, overrides: dict[str, str] | None = None) -> None:
        self.source = source
        self.lines = lines or {}
        self.overrides = overrides or {}  # canonical key path -> the --set assignment

    def where(self, path: str) -> str:
        for probe in parent_paths(path):
            assignment = self.overrides.get(probe) or self._created_by_set(probe)
            if assignment:
                return f"{self.source}, --set {assignment}: " if self.source else f"--set {assignment}: "
            if probe in self.lines:
                return f"{self.source}:{self.lines[probe]}: "
        return f"{self.source}: " if self.source else ""

    def _created_by_set(self, path: str) -> str | None:
        """The --set that made ``path`` (a key the file does not have, with a --set below it)."""
        if path in self.lines:
            return None
        return next((a for p, a in self.overrides.items() if p.startswith((path + ".", path + "["))), None)

    def located(self, exc: ConfigError) -> ConfigError:
        """The error with its place in front; anything under ``model`` is a ModelBuildError."""
        in_model = exc.key_path == "model" or exc.key_path.startswith(("model.", "model["))
        kind = ModelBuildError if in_model else type(exc)
        return kind(f"{self.where(exc.key_path)}{exc}", exc.key_path)


# ---------------------------------------------------------------- validation


def config_from_dict(
    data: dict, source: str = "", line_numbers: dict[str, int] | None = None, overrides: dict[str, str] | None = None
) -> Config:
    """Validate a plain dict into a :class:`Config`, filling every default; check everything a run will need.

    Raises:
        ConfigError (ModelBuildError for the architecture): one line with the place, key path and bad value.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source or 'config'}: expected a mapping at the top level, got {type(data).__name__}")
    locator = Locator(source, line_numbers, overrides)
    try:
        config: Config = build(Config, data)
        config.model = _checked_model(config.model)
        _check_cross_field(config)
    except ConfigError as exc:
        raise locator.located(exc) from None
    return config


def model_config_from_dict(section: dict) -> ModelConfig:
    """Validate a ``model`` section on its own (for ``build_model({...})``); every problem is a ModelBuildError."""
    if not isinstance(section, dict):
        raise ModelBuildError(f"model: expected a mapping, got {type(section).__name__}", "model")
    try:
        model = _checked_model(build(ModelConfig, section, Key("model", "model")))
        check_memory(model, TrainConfig())
    except ModelBuildError:
        raise
    except ConfigError as exc:
        raise ModelBuildError(str(exc), exc.key_path) from None
    return model


def _checked_model(model: ModelConfig) -> ModelConfig:
    """Names filled in and unique, shapes inferred through every layer, the loss fitting the last layer."""
    names = default_layer_names(model.layers)
    seen: set[str] = set()
    for index, (spec, name) in enumerate(zip(model.layers, names, strict=True)):
        if name in seen:
            raise ModelBuildError(f"model.layers[{index}] ({spec.type}): layer name {name!r} is used twice", f"model.layers[{index}]")
        seen.add(name)
    model.layers = [dataclasses.replace(spec, name=name) for spec, name in zip(model.layers, names, strict=True)]
    shape = layer_shapes(model)[-1]
    problem = LOSSES[model.loss].output_problem(shape)
    if problem:
        raise ModelBuildError(f"model.loss: {problem}", "model.loss")
    return model


def layer_shapes(model: ModelConfig) -> list[Shape]:
    """One sample's shape at the input and after every layer (shape inference), or ModelBuildError naming the layer."""
    shapes: list[Shape] = [tuple(model.input_shape)]
    for index, spec in enumerate(model.layers):
        try:
            shapes.append(spec.output_shape(shapes[-1]))
        except GeometryError as exc:
            raise ModelBuildError(f"model.layers[{index}] ({spec.type}): {exc}", f"model.layers[{index}]") from None
    return shapes


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a model needs: parameters (with gradients and optimizer state) and activations for a batch."""

    param_bytes: int
    activation_bytes: int
    biggest_layer: int  # index of the layer with the largest share

    @property
    def total(self) -> int:
        return self.param_bytes + self.activation_bytes


def estimate_memory(model: ModelConfig, batch_size: int, dtype: str, training: bool = True) -> MemoryEstimate:
    """Parameters x4 (values, gradients, two optimizer arrays) and, per sample, every layer's output and workspace
    (x2 in training: the backward's gradients are as large), in exact integer arithmetic."""
    itemsize = 8 if dtype == "float64" else 4
    shapes = layer_shapes(model)
    per_layer = []
    for spec, shape_in, shape_out in zip(model.layers, shapes, shapes[1:], strict=False):
        params = spec.num_params(shape_in) * (4 if training else 1)
        activations = (elements(shape_out) + spec.workspace(shape_in)) * batch_size * (2 if training else 1)
        per_layer.append((params * itemsize, activations * itemsize))
    biggest = max(range(len(per_layer)), key=lambda i: sum(per_layer[i]), default=0)
    return MemoryEstimate(sum(p for p, _ in per_layer), sum(a for _, a in per_layer), biggest)


def _size_words(n: int) -> str:
    if n >= 1e15:
        return f"{float(n):.1e} bytes"
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n / 1e3:,.1f} KB"


def check_memory(
    model: ModelConfig, train: TrainConfig, batch_size: int | None = None, dtype: str | None = None, batch_hint: str = ""
) -> None:
    """Refuse a model whose estimated memory (training at ``batch_size``, evaluating at eval_batch_size) is over the limit.

    ``batch_hint`` names how the caller's batch can be made smaller (``--batch-size``).

    Raises:
        ModelBuildError: with the estimate, the biggest layer and the key that raises the limit.
    """
    batch = train.batch_size if batch_size is None else batch_size
    dtype = dtype or train.dtype
    fit = estimate_memory(model, batch, dtype)
    if batch_size is None:
        evaluation = estimate_memory(model, train.eval_batch_size, dtype, training=False)
        if evaluation.total > fit.total:
            fit, batch = evaluation, train.eval_batch_size
    limit = train.memory_limit_gb * 1e9
    if fit.total <= limit:
        return
    index = fit.biggest_layer
    needed_gb = math.ceil(fit.total / 1e9)
    if fit.total > 1e15:  # a petabyte: no machine; a size was mistyped
        remedy = "that is more than any machine has; check the layer sizes"
    else:
        remedy = f"raise train.memory_limit_gb (e.g. --set train.memory_limit_gb={needed_gb}) if the machine has that much memory"
    if batch_hint:
        remedy = f"use a smaller {batch_hint}, or raise train.memory_limit_gb in the config"
    raise ModelBuildError(
        f"model.layers[{index}] ({model.layers[index].type}): the model needs about {_size_words(fit.total)} "
        f"({_size_words(fit.param_bytes)} for parameters, gradients and optimizer state, {_size_words(fit.activation_bytes)} "
        f"for the activations of a batch of {batch} in {dtype}; this layer is the largest), over the limit "
        f"train.memory_limit_gb = {train.memory_limit_gb:g}; {remedy}",
        f"model.layers[{index}]",
    )


def _check_cross_field(config: Config) -> None:
    """Rules that involve more than one value."""
    if config.data.dataset == "idx":
        need = {"train_images", "train_labels", "test_images", "test_labels"}
        given = set(config.data.paths or {})
        if given != need:
            raise ConfigError(f"data.paths: dataset 'idx' needs exactly the keys {sorted(need)}, got {sorted(given)}", "data.paths")
    data = config.data
    if data.classes is not None and (
        len(set(data.classes)) != len(data.classes) or len(data.classes) < 2 or not all(0 <= c <= 9 for c in data.classes)
    ):
        raise ConfigError(f"data.classes: expected at least 2 different labels in 0..9, got {data.classes!r}", "data.classes")
    if data.paths and data.dataset != "idx":
        raise ConfigError(
            f"data.paths: expected no paths for dataset {data.dataset!r} (paths are for dataset 'idx'), got {data.paths!r}", "data.paths"
        )
    translate = config.data.augment.translate
    image = config.model.input_shape[1:]
    if translate and len(image) == 2 and translate >= min(image):
        raise ConfigError(
            f"data.augment.translate: expected an int in [0, {min(image)}) pixels (smaller than the "
            f"{image[0]}x{image[1]} input), got {translate}",
            "data.augment.translate",
        )
    check_memory(config.model, config.train)
    # What cnn writes, cnn must read: the config is stored in every checkpoint, whose metadata is bounded.
    as_stored = config.as_dict()
    stored = len(json.dumps(as_stored))
    if stored > MAX_CONFIG_BYTES:
        largest = max(as_stored, key=lambda key: len(json.dumps(as_stored[key])))
        raise ConfigError(
            f"the config takes {stored:,} bytes as stored with its run, over the limit of {MAX_CONFIG_BYTES:,} "
            f"(a config is a few KB); shorten {largest!r}",
            "",
        )


# ---------------------------------------------------------------- files


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with limits on depth and alias expansion, no duplicate keys, and floats like 1e-3.

    The composer is recursive, so depth is checked on the way down; an alias
    counts as the whole subtree it stands for, so a "billion laughs" file is refused
    after a handful of nodes instead of expanding to gigabytes.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes after expansion, height)

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            anchored = self.anchors.get(event.anchor)
            if anchored is not None and id(anchored) not in self._sizes:
                raise yaml.composer.ComposerError(
                    None, None, f"alias *{event.anchor} inside its own anchor (a structure that contains itself)", event.start_mark
                )
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_YAML_DEPTH} levels", mark)
        node = super().compose_node(parent, index)
        self._depth -= 1
        if node is not None and id(node) not in self._sizes:
            children: list[Any] = []
            if isinstance(node, yaml.MappingNode):
                children = [part for pair in node.value for part in pair]
            elif isinstance(node, yaml.SequenceNode):
                children = list(node.value)
            sizes = [self._sizes.get(id(child), (1, 1)) for child in children]
            size = 1 + sum(s for s, _ in sizes)
            height = 1 + max((h for _, h in sizes), default=0)
            if size > MAX_YAML_NODES or height > MAX_YAML_DEPTH:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"expands to more than {MAX_YAML_NODES:,} values or {MAX_YAML_DEPTH} levels (aliases included)",
                    node.start_mark,
                )
            self._sizes[id(node)] = (size, height)
        return node

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, int] = {}
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                    line = key_node.start_mark.line + 1
                    if key_node.value in first:
                        raise yaml.constructor.ConstructorError(
                            None,
                            None,
                            f"duplicate key {key_node.value!r} (first at line {first[key_node.value]}); each key may appear once",
                            key_node.start_mark,
                        )
                    first[key_node.value] = line
        return super().construct_mapping(node, deep=deep)


# YAML 1.1 wants a dot in a float (1.0e-3); people write 1e-3 and mean a number.
_BoundedLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*)?\.?[0-9]+[eE][-+]?[0-9]+$"), list("-+0123456789.")
)


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


def _load_yaml(text: str) -> tuple[Any, yaml.Node | None]:
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        return (loader.construct_document(node) if node is not None else None), node
    finally:
        loader.dispose()


def parse_yaml(text: str, source: str) -> tuple[Any, dict[str, int]]:
    """Safe-load YAML text within size, depth and alias limits; errors give the file, line and column."""
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{source}: over the limit of {MAX_CONFIG_BYTES:,} bytes for a config file (a config is a few KB)")
    try:
        data, node = _load_yaml(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = exc.problem or exc.context or "invalid YAML"
        if isinstance(exc, yaml.constructor.ConstructorError) and "could not determine a constructor" in problem:
            problem = f"{problem} (only plain YAML is accepted; Python object tags are refused)"
        raise ConfigError(f"{where}: YAML error: {problem}") from None
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: e.g. an int with more digits than Python converts
        raise ConfigError(f"{source}: YAML error: {str(exc).splitlines()[0]}") from None
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
            with path.open("rb") as handle:
                raw = handle.read(MAX_CONFIG_BYTES + 1)  # never read more than the limit
            return str(path), raw.decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read config: {exc}") from None
    stem = path.name.removesuffix(".yaml").removesuffix(".yml")
    if path.parent == Path(".") and stem in builtin_configs():
        text = resources.files(BUILTIN_CONFIG_PACKAGE).joinpath(f"{stem}.yaml").read_text(encoding="utf-8")
        return f"{stem}.yaml", text
    raise ConfigError(f"{name_or_path}: config file not found; give a path or one of the built-in configs: " + ", ".join(builtin_configs()))


_KEY_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[-?\d+\])*)")


def _parse_key(assignment: str, key: str) -> list[str | int]:
    """``model.layers[-1].out_features`` -> ["model", "layers", -1, "out_features"]."""
    parts: list[str | int] = []
    for piece in key.split("."):
        match = _KEY_PART.fullmatch(piece.strip())
        if not match:
            raise ConfigError(f"--set {assignment}: cannot read key {key!r}; write it like train.epochs or model.layers[0].kernel_size")
        parts.append(match.group(1))
        parts.extend(int(index) for index in re.findall(r"\[(-?\d+)\]", match.group(2)))
    return parts


def apply_override(data: dict, assignment: str) -> str:
    """Apply ``KEY.PATH=VALUE`` (``train.epochs=3``, ``model.layers[-1].out_features=2``) in place.

    The value is read as YAML (with the same loader as files), so ``3`` is an int,
    ``1e-3`` a float, ``[0, 1]`` a list; the schema then checks its type. A negative
    list index counts from the end. Returns the canonical key path that was set.
    """
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE, e.g. train.epochs=3")
    key, raw = assignment.split("=", 1)
    if not key.strip():
        raise ConfigError(f"--set {assignment!r}: empty key")
    parts = _parse_key(assignment, key)
    try:
        value = _load_yaml(raw)[0] if raw.strip() else None
    except (yaml.YAMLError, ValueError):
        value = raw
    target: Any = data
    path = ""
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(part, int):
            if not isinstance(target, list):
                raise ConfigError(f"--set {assignment}: {path or 'the config'} is not a list")
            if not -len(target) <= part < len(target):
                span = f"0..{len(target) - 1}" if target else "none"
                raise ConfigError(
                    f"--set {assignment}: {path} has {len(target)} item(s) (indices {span}, or negative from the end), no item {part}"
                )
            part = part % len(target)
            path = f"{path}[{part}]"
            if last:
                target[part] = value
            else:
                target = target[part]
        else:
            if not isinstance(target, dict):
                raise ConfigError(f"--set {assignment}: {path} is not a section")
            path = f"{path}.{part}" if path else part
            if last:
                target[part] = value
            else:
                target = target.setdefault(part, {})
        if not last and not isinstance(target, (dict, list)):
            raise ConfigError(f"--set {assignment}: {path} is not a section")
    return path


def load_config(name_or_path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read, override and validate a config. Raises ConfigError with file:line (or --set): key.path."""
    source, text = resolve_config_path(name_or_path)
    data, line_numbers = parse_yaml(text, source)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of sections (model, data, optimizer, schedule, train)")
    data.setdefault("name", Path(source).name.removesuffix(".yaml").removesuffix(".yml"))
    set_paths = {apply_override(data, assignment): assignment for assignment in overrides}
    return config_from_dict(data, source, line_numbers, set_paths)


def config_to_yaml(config: Config) -> str:
    """The resolved config as YAML text (every default written out)."""
    return yaml.safe_dump(config.as_dict(), sort_keys=False, default_flow_style=None)
