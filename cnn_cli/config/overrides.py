"""``--set key=value`` overrides: a dotted key path with list indices, the value parsed as YAML."""

from __future__ import annotations

import re
from typing import Any

import yaml

from cnn_cli.config.yaml_text import _load_yaml
from cnn_cli.errors import ConfigError

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
