"""From a plain dict to a checked Config: the schema, the model's shapes, and the rules that span sections."""

from __future__ import annotations

import dataclasses
import json

from cnn_cli.config.memory import check_memory, layer_shapes, most_images
from cnn_cli.config.sections import Config, ModelConfig, TrainConfig
from cnn_cli.config.yaml_text import MAX_CONFIG_BYTES
from cnn_cli.errors import ConfigError, ModelBuildError
from cnn_cli.layers import LayerSpec, default_layer_names
from cnn_cli.layers.losses import LOSSES
from cnn_cli.layers.residual import PROJECTION_NAME, ResidualSpec
from cnn_cli.schema.convert import build
from cnn_cli.schema.markers import Key, parent_paths


class Locator:
    """Turns an error's key path into a place: the YAML line, or the ``--set`` that gave the value."""

    def __init__(
        self,
        source: str = "",
        lines: dict[str, int] | None = None,
        overrides: dict[str, str] | None = None,
        files: dict[str, str] | None = None,
    ) -> None:
        self.source = source
        self.lines = lines or {}
        self.overrides = overrides or {}  # canonical key path -> the --set assignment
        self.files = files or {}  # key path -> the file its line is in, where not ``source`` (a config it extends)

    def where(self, path: str) -> str:
        for probe in parent_paths(path):
            assignment = self.overrides.get(probe) or self._created_by_set(probe)
            if assignment:
                return f"{self.source}, --set {assignment}: " if self.source else f"--set {assignment}: "
            if probe in self.lines:
                return f"{self.files.get(probe, self.source)}:{self.lines[probe]}: "
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


def config_from_dict(
    data: dict,
    source: str = "",
    line_numbers: dict[str, int] | None = None,
    overrides: dict[str, str] | None = None,
    line_files: dict[str, str] | None = None,
) -> Config:
    """Validate a plain dict into a :class:`Config`, filling every default; check everything a run will need.

    ``line_numbers`` and ``line_files`` say where each key path was written (a config that
    ``extends:`` another holds keys of both files), ``overrides`` which ``--set`` gave a key.

    Raises:
        ConfigError (ModelBuildError for the architecture): one line with the place, key path and bad value.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source or 'config'}: expected a mapping at the top level, got {type(data).__name__}")
    locator = Locator(source, line_numbers, overrides, line_files)
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
    model.layers = _named(model.layers, "model.layers")
    shape = layer_shapes(model)[-1]
    problem = LOSSES[model.loss].output_problem(shape)
    if problem:
        raise ModelBuildError(f"model.loss: {problem}", "model.loss")
    return model


def _named(specs: list[LayerSpec], path: str, reserved: frozenset[str] = frozenset()) -> list[LayerSpec]:
    """The specs with every name filled in, unique among its siblings; a block's inner layers named the same way
    (within the block: ``res1``'s ``conv1`` is the model's ``res1.conv1``)."""
    names = default_layer_names(specs)
    seen: set[str] = set()
    for index, (spec, name) in enumerate(zip(specs, names, strict=True)):
        if name in seen or name in reserved:
            why = "is used twice" if name in seen else "is the block's projection (the skip's 1x1 conv)"
            raise ModelBuildError(f"{path}[{index}] ({spec.type}): layer name {name!r} {why}", f"{path}[{index}]")
        seen.add(name)
    named = []
    for index, (spec, name) in enumerate(zip(specs, names, strict=True)):
        if isinstance(spec, ResidualSpec):
            inner_reserved = frozenset({PROJECTION_NAME}) if spec.projection else frozenset()
            spec = dataclasses.replace(spec, layers=_named(spec.layers, f"{path}[{index}].layers", inner_reserved))
        named.append(dataclasses.replace(spec, name=name))
    return named


def _check_cross_field(config: Config) -> None:
    """Rules that involve more than one value."""
    if config.data.dataset == "idx":
        need = {"train_images", "train_labels", "test_images", "test_labels"}
        given = set(config.data.paths or {})
        if given != need:
            raise ConfigError(f"data.paths: dataset 'idx' needs exactly the keys {sorted(need)}, got {sorted(given)}", "data.paths")
    data = config.data
    if data.dataset == "folder" and not data.path:
        raise ConfigError("data.path: dataset 'folder' needs the folder of images (one sub-folder per class), got none", "data.path")
    if data.path is not None and data.dataset != "folder":
        raise ConfigError(
            f"data.path: expected no path for dataset {data.dataset!r} (path is for dataset 'folder'), got {data.path!r}", "data.path"
        )
    highest = None if data.dataset == "folder" else 9  # a folder's labels are known once it is read
    if data.classes is not None and (
        len(set(data.classes)) != len(data.classes)
        or len(data.classes) < 2
        or not all(0 <= c and (highest is None or c <= highest) for c in data.classes)
    ):
        labels = "labels >= 0" if highest is None else f"labels in 0..{highest}"
        raise ConfigError(f"data.classes: expected at least 2 different {labels}, got {data.classes!r}", "data.classes")
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
    train = config.train
    if train.early_stopping_patience is not None and train.early_stopping.patience not in (None, train.early_stopping_patience):
        raise ConfigError(
            f"train.early_stopping_patience: {train.early_stopping_patience} disagrees with train.early_stopping.patience: "
            f"{train.early_stopping.patience}; it is the older spelling of the same key: give one of them",
            "train.early_stopping_patience",
        )
    check_memory(config.model, config.train, images=most_images(config.data))
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
