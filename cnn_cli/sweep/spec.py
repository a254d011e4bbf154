"""The sweep file: a base config, the parameters to vary, the metric to rank by, and how many trials run at once.

A sweep file is YAML, validated like a config before anything starts; every error
names the file, the YAML line and the key path::

    name: lr                      # optional: the file name without .yaml
    base: smoke                   # a config path (next to this file, else from the current folder) or a built-in name
    overrides:                    # optional: applied to the base for every trial
      train.epochs: 2
    method: grid                  # grid (every combination) or random (draws)
    parameters:
      optimizer.lr: [0.0003, 0.001, 0.003, 0.01]
    metric: val_acc               # what to rank by (default val_acc)
    parallelism: 2                # at most this many trials at once (default: every worker)
    retries: 2                    # re-runs of a trial whose worker died (default 2)

With ``method: random`` each parameter is a distribution and ``trials`` draws are
made from ``seed``: ``{loguniform: [1.0e-4, 1.0e-1]}``, ``{uniform: [0.8, 0.99]}``,
``{choice: [32, 64, 128]}`` (a plain list is a choice too).

Each value is checked against the config schema on its own (``optimizer.lr: -1``
is an error in the sweep file). A *combination* that cannot work (say, two layer
changes that only clash together) is not: that trial fails and the sweep goes on.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnn_cli.bounded_read import read_text
from cnn_cli.config.build import Locator, config_from_dict
from cnn_cli.config.load import config_to_yaml, read_config
from cnn_cli.config.overrides import apply_override
from cnn_cli.config.sections import Config
from cnn_cli.config.yaml_text import MAX_CONFIG_BYTES, parse_yaml
from cnn_cli.errors import ConfigError

SWEEP_KEYS = ("name", "base", "overrides", "method", "parameters", "trials", "seed", "metric", "parallelism", "retries")
METHODS = ("grid", "random")
DISTRIBUTIONS = ("loguniform", "uniform", "choice")
# What a trial can be ranked by, and whether bigger is better.
METRICS = {
    "val_acc": "max",
    "val_loss": "min",
    "train_acc": "max",
    "train_loss": "min",
    "test_accuracy": "max",
    "test_loss": "min",
}
DEFAULT_METRIC = "val_acc"
DEFAULT_RETRIES = 2
MAX_TRIALS = 10_000


@dataclass(frozen=True)
class Trial:
    """One point of the sweep: its 1-based number and the value of each swept key."""

    number: int
    params: dict[str, Any]

    @property
    def folder_name(self) -> str:
        return f"trial-{self.number:03d}"


@dataclass
class SweepSpec:
    """A validated sweep file: the base config (as a plain dict) and the trials to run."""

    name: str
    source: str
    base: dict[str, Any]
    parameters: list[str]
    trials: list[Trial]
    metric: str
    parallelism: int | None
    retries: int

    @property
    def mode(self) -> str:
        """``max`` or ``min``: which way is better for :attr:`metric`."""
        return METRICS[self.metric]

    def trial_config(self, trial: Trial) -> Config:
        """The full config of one trial: the base with the trial's values set. Raises ConfigError."""
        data = copy.deepcopy(self.base)
        for key, value in trial.params.items():
            apply_override(data, f"{key}={_yaml_scalar(value)}")
        data["name"] = f"{self.base.get('name', 'run')}-{trial.folder_name}"
        return config_from_dict(data, trial.folder_name)  # the architecture is checked with the rest

    def as_dict(self) -> dict[str, Any]:
        """What ``--resume`` needs to rebuild the sweep exactly (written to sweep.json): every field, trials as plain dicts."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepSpec:
        return cls(
            name=data["name"],
            source=data["source"],
            base=data["base"],
            parameters=list(data["parameters"]),
            trials=[Trial(int(t["number"]), dict(t["params"])) for t in data["trials"]],
            metric=data["metric"],
            parallelism=data["parallelism"],
            retries=int(data["retries"]),
        )


def _yaml_scalar(value: Any) -> str:
    """A value as ``--set`` reads it back (YAML flow style), so 1e-3 stays a float and 'relu' a string."""
    import yaml

    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a sweep file; raise ConfigError naming ``file:line: key`` on the first problem."""
    path = Path(path)
    return parse_sweep(read_text(path, MAX_CONFIG_BYTES, "sweep file", ConfigError), str(path))


def parse_sweep(text: str, source: str) -> SweepSpec:
    """Validate sweep-file text (see the module docstring for the format)."""
    data, line_numbers = parse_yaml(text, source)
    lines = Locator(source, line_numbers)
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping with keys base, parameters, ... at the top level")
    for key in data:
        if key not in SWEEP_KEYS:
            raise ConfigError(f"{lines.where(str(key))}{key}: unknown sweep key (valid keys: {', '.join(SWEEP_KEYS)})")

    def fail(key: str, message: str) -> ConfigError:
        return ConfigError(f"{lines.where(key)}{key}: {message}")

    name = data.get("name", Path(source).name.removesuffix(".yaml").removesuffix(".yml"))
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise fail("name", f"expected a folder-safe name (letters, digits, - _ .), got {name!r}")
    base = _base_config(data, lines, fail)

    method = data.get("method", "grid")
    if method not in METHODS:
        raise fail("method", f"expected one of {', '.join(METHODS)}, got {method!r}")
    parameters = data.get("parameters")
    if not isinstance(parameters, dict) or not parameters:
        raise fail("parameters", "expected a mapping of config keys to values, e.g. optimizer.lr: [0.001, 0.01]")
    for key in parameters:
        if not isinstance(key, str) or not key:
            raise fail("parameters", f"expected config keys like optimizer.lr, got {key!r}")

    if method == "grid":
        for key in ("trials", "seed"):
            if key in data:
                raise fail(key, "only used with method: random (a grid runs every combination)")
        # Counted before any value is checked or any combination made: a 9-million-trial grid is refused at once.
        combinations = math.prod(len(spec) if isinstance(spec, list) else 1 for spec in parameters.values())
        if combinations > MAX_TRIALS:
            raise fail("parameters", f"the grid has {combinations:,} combinations; at most {MAX_TRIALS:,}")
        values = {key: _grid_values(key, spec, base, lines) for key, spec in parameters.items()}
        trials = [Trial(i + 1, dict(zip(values, combo, strict=True))) for i, combo in enumerate(itertools.product(*values.values()))]
    else:
        count = _int_key(data, "trials", lines, minimum=1, maximum=MAX_TRIALS, required=True)
        seed = _int_key(data, "seed", lines, minimum=0, default=0)
        samplers = {key: _sampler(key, spec, base, lines) for key, spec in parameters.items()}
        rng = np.random.default_rng(seed)
        trials = [Trial(i + 1, {key: draw(rng) for key, draw in samplers.items()}) for i in range(count or 0)]

    metric = data.get("metric", DEFAULT_METRIC)
    if metric not in METRICS:
        raise fail("metric", f"expected one of {', '.join(METRICS)}, got {metric!r}")
    parallelism = _int_key(data, "parallelism", lines, minimum=1, default=None)
    retries = _int_key(data, "retries", lines, minimum=0, maximum=100, default=DEFAULT_RETRIES)
    return SweepSpec(name, source, base, list(parameters), trials, metric, parallelism, retries)  # type: ignore[arg-type]


def _base_config(data: dict, lines: Locator, fail) -> dict[str, Any]:
    """The base config with the sweep's overrides, validated; returned as a full plain dict."""
    if "base" not in data:
        raise fail("base", "missing; name the config every trial starts from, e.g. base: smoke")
    base_name = data["base"]
    if not isinstance(base_name, str):
        raise fail("base", f"expected a config path or built-in name, got {base_name!r}")
    beside = Path(lines.source).parent / base_name  # a relative path is read next to the sweep file first
    try:
        base_file = read_config(beside if beside.is_file() else base_name)  # with the configs it extends
    except ConfigError as exc:
        raise fail("base", str(exc)) from None
    base = base_file.data
    config_from_dict(copy.deepcopy(base), base_file.source, base_file.lines, line_files=base_file.files)  # errors point into the base
    overrides = data.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise fail("overrides", "expected a mapping of config keys to values, e.g. train.epochs: 2")
    for key, value in overrides.items():
        where = f"overrides.{key}"
        try:
            apply_override(base, f"{key}={_yaml_scalar(value)}")
            config_from_dict(copy.deepcopy(base))
        except ConfigError as exc:
            raise fail(where, str(exc).removeprefix("--set ")) from None
    try:
        config = config_from_dict(copy.deepcopy(base))
    except ConfigError as exc:
        raise fail("base", str(exc)) from None
    # Relative data paths keep their meaning on each worker (see cnn_cli.sweep.data); the dict is the resolved config.
    import yaml

    return yaml.safe_load(config_to_yaml(config))


def _check_value(key: str, value: Any, base: dict, lines: Locator, where: str) -> None:
    """One swept value must make a valid config on its own."""
    data = copy.deepcopy(base)
    try:
        apply_override(data, f"{key}={_yaml_scalar(value)}")
        config_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{lines.where(where)}{where}: {str(exc).removeprefix('--set ')}") from None


def _grid_values(key: str, spec: Any, base: dict, lines: Locator) -> list[Any]:
    where = f"parameters.{key}"
    if not isinstance(spec, list) or not spec:
        raise ConfigError(
            f"{lines.where(where)}{where}: a grid needs a non-empty list of values, got {spec!r} "
            "(for loguniform/uniform draws use method: random)"
        )
    for i, value in enumerate(spec):
        _check_value(key, value, base, lines, f"{where}[{i}]")
    return list(spec)


def _sampler(key: str, spec: Any, base: dict, lines: Locator):
    """A function rng -> value for one random-search parameter, after checking its bounds."""
    where = f"parameters.{key}"
    if isinstance(spec, list):
        spec = {"choice": spec}
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
        raise ConfigError(
            f"{lines.where(where)}{where}: expected one of {{loguniform: [low, high]}}, {{uniform: [low, high]}}, "
            f"{{choice: [values]}}, got {spec!r}"
        )
    kind, args = next(iter(spec.items()))
    inner = f"{where}.{kind}"
    if kind == "choice":
        if not isinstance(args, list) or not args:
            raise ConfigError(f"{lines.where(inner)}{inner}: expected a non-empty list of values, got {args!r}")
        for i, value in enumerate(args):
            _check_value(key, value, base, lines, f"{inner}[{i}]")
        choices = list(args)
        return lambda rng: choices[int(rng.integers(len(choices)))]
    numbers = isinstance(args, list) and len(args) == 2 and all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args)
    if not numbers or not all(math.isfinite(a) for a in args) or not args[0] < args[1]:
        raise ConfigError(f"{lines.where(inner)}{inner}: expected [low, high] with low < high, got {args!r}")
    low, high = float(args[0]), float(args[1])
    if kind == "loguniform" and low <= 0:
        raise ConfigError(f"{lines.where(inner)}{inner}: loguniform needs low > 0, got {args[0]!r}")
    for i, value in enumerate((low, high)):
        _check_value(key, value, base, lines, f"{inner}[{i}]")
    if kind == "loguniform":
        return lambda rng: float(math.exp(rng.uniform(math.log(low), math.log(high))))
    return lambda rng: float(rng.uniform(low, high))


def _int_key(
    data: dict, key: str, lines: Locator, minimum: int, maximum: int | None = None, default: int | None = None, required: bool = False
) -> int | None:
    if key not in data:
        if required:
            raise ConfigError(f"{lines.where(key)}{key}: missing; random search needs the number of draws")
        return default
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" + (f" and <= {maximum}" if maximum is not None else "")
        raise ConfigError(f"{lines.where(key)}{key}: expected an int {bound}, got {value!r}")
    return value
