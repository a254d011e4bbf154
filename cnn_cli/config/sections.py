"""The config's sections as typed, frozen dataclasses: one description of every key, its default and its allowed values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from cnn_cli.data.catalog import DATASETS, DEFAULT_TEST_FRACTION, FOLDER_DATASET, IDX_DATASET
from cnn_cli.layers import LAYER_SPECS, LayerSpec
from cnn_cli.layers.losses import LOSSES
from cnn_cli.nn.init import INIT_SCHEMES
from cnn_cli.nn.optim import ANNEALS, OPTIMIZERS, SCHEDULES
from cnn_cli.schema.convert import to_plain
from cnn_cli.schema.jsonschema import json_schema
from cnn_cli.schema.markers import Described, Duration, Length, OneOf, Pattern, Range, Tagged

BUILTIN_CONFIG_PACKAGE = "cnn_cli.configs"


DTYPES = ("float32", "float64")


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
    zoom: Annotated[float, Range(minimum=0, below=1)] = 0.0  # sizes drawn from [1 - zoom, 1 + zoom]


@dataclass
class DataConfig:
    """Which dataset, how it is split, filtered and normalised."""

    dataset: Annotated[str, OneOf((*DATASETS, IDX_DATASET, FOLDER_DATASET))] = "mnist"
    data_dir: str | None = None  # None: ./data in a project folder, else $CNN_DATA_DIR or the per-user cache
    paths: dict[str, str] | None = None  # dataset idx: the four IDX files
    path: str | None = None  # dataset folder: the folder of images, one sub-folder per class (cnn_cli.data.folder)
    test_fraction: Annotated[float, Range(above=0, below=1)] = DEFAULT_TEST_FRACTION  # dataset folder without test/: held out per class
    val_size: NonNegativeInt = 5000
    classes: list[int] | None = None
    limit: PositiveInt | None = None
    mean: float | None = None
    std: PositiveNumber | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class OptimizerConfig:
    """Update rule. ``weight_decay`` is notes 001's λ: L = data loss + ½λΣw² over weights (``cnn docs l2``)."""

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
    """Learning-rate schedule over epochs, with optional linear warm-up.

    ``onecycle`` rises from max_lr/div_factor to ``max_lr`` (default ``optimizer.lr``) over
    the first ``pct_start`` of all steps, then falls to max_lr/div_factor/final_div_factor.
    """

    name: Annotated[str, OneOf(SCHEDULES)] = "constant"
    step_size: PositiveInt = 1
    gamma: PositiveNumber = 0.1
    min_lr: NonNegativeNumber = 0.0
    warmup_epochs: NonNegativeNumber = 0.0
    max_lr: PositiveNumber | None = None  # onecycle's peak; null: optimizer.lr
    pct_start: Annotated[float, Range(above=0, below=1)] = 0.3
    div_factor: PositiveNumber = 25.0
    final_div_factor: PositiveNumber = 1e4
    anneal: Annotated[str, OneOf(ANNEALS)] = "cos"


TrackingUri = Annotated[
    str, Pattern(r"\S(?:.*\S)?", 'an MLflow tracking URI (http://host:port, sqlite:///file.db, ...) or "local" (a store beside the run)')
]


EARLY_STOPPING_MONITORS = ("val_loss", "val_acc")  # metrics.csv columns early stopping may watch


@dataclass
class EarlyStoppingConfig:
    """Stop before train.epochs: no improvement for ``patience`` epochs, ``stop_at`` reached, or a non-finite value.

    On only when ``patience`` or ``stop_at`` is set (``train.early_stopping_patience`` is the
    older spelling of ``patience``). The final test follows, on the best checkpoint.
    """

    patience: PositiveInt | None = None  # epochs without improvement (after start_from_epoch) before stopping
    monitor: Annotated[str, OneOf(EARLY_STOPPING_MONITORS)] = "val_acc"
    mode: Annotated[str, OneOf(("auto", "min", "max"))] = "auto"  # auto: min for val_loss, max for val_acc
    min_delta: NonNegativeNumber = 0.0  # an epoch improves only when it beats the best by more than this
    min_delta_mode: Annotated[str, OneOf(("absolute", "relative"))] = "absolute"  # relative: min_delta is a fraction of the best
    start_from_epoch: NonNegativeInt = 0  # the first N epochs are a warm-up the patience rule does not watch
    stop_at: float | None = None  # the target: stop once monitor reaches it (>= for max, <= for min)


@dataclass
class TrainConfig:
    """The training loop."""

    epochs: PositiveInt = 8
    batch_size: PositiveInt = 64
    eval_batch_size: PositiveInt = 100
    seed: NonNegativeInt = 0
    drop_last: bool = False
    early_stopping_patience: PositiveInt | None = None  # the older spelling of early_stopping.patience
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    max_time: Annotated[float, Range(above=0), Duration()] | None = None  # seconds of training per invocation; then save and stop
    dtype: Annotated[str, OneOf(DTYPES)] = "float32"
    plots: bool = True
    save_every_epoch: bool = False  # also keep checkpoints/epoch-NNN.npz
    memory_limit_gb: PositiveNumber = DEFAULT_MEMORY_LIMIT_GB  # refuse models estimated to need more
    log_gradients: bool = True  # gradients.csv: per-layer gradient norms (cnn_cli.training.gradient_logger.GradientLogger)
    log_every: PositiveInt = 100  # steps between gradient logs (and each epoch end)
    tensorboard: bool = False  # tensorboard/ event files (cnn_cli.training.tensorboard; needs the tensorboard extra)
    overfit_batches: PositiveInt | None = None  # train on these first N batches only
    freeze: list[str] = field(default_factory=list)  # layers whose parameters training leaves as they are (cnn_cli.training.transfer)
    progress_seconds: PositiveNumber = 30.0  # a progress line this often when stdout is no terminal (a log file, CI)
    mlflow: TrackingUri | None = None  # MLflow: a tracking URI, or "local" (cnn_cli.training.mlflow_log; the mlflow extra)


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


EXTENDS_SCHEMA = {
    "type": "string",
    "description": "a built-in config name or a path (relative to this file) whose keys this file overrides; "
    "mappings merge key by key, lists and other values replace the parent's whole",
}


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema of a config file, generated from the dataclasses above (what ``cnn schema`` prints),
    with ``extends``, which the loader reads before the schema sees the merged file."""
    schema = json_schema(Config, title="cnn config")
    schema["properties"] = {"extends": EXTENDS_SCHEMA, **schema["properties"]}
    return schema
