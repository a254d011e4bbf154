"""Typed, validated options for layer specs in a model config.

Each layer class declares its options as a dict of :class:`Option`. The model
builder checks a spec against it, so a bad value is reported with the layer's
index, type and the key (``model.layers[3] (conv2d): kernel_size: expected a
positive int or [kh, kw], got -1``).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from cnn_cli.errors import ModelBuildError


@dataclass(frozen=True)
class Option:
    """One key of a layer spec: its kind (int, pair, float, bool, str), default and bounds."""

    kind: str
    default: Any = None
    required: bool = False
    minimum: float | None = None  # inclusive
    below: float | None = None  # exclusive upper bound
    choices: tuple[str, ...] | None = None
    nullable: bool = False

    def describe(self) -> str:
        """Words for what a valid value looks like, for error messages."""
        low = "" if self.minimum is None else ("positive " if self.minimum == 1 else f">= {self.minimum} ")
        if self.kind == "pair":
            text = f"a {low}int or [h, w] of them".replace("a positive", "a positive")
        elif self.kind == "int":
            text = f"a {low}int".strip()
        elif self.kind == "float":
            text = "a number" + (f" >= {self.minimum}" if self.minimum is not None else "")
            text += f" and < {self.below}" if self.below is not None else ""
        elif self.kind == "bool":
            text = "true or false"
        elif self.choices:
            text = "one of " + ", ".join(self.choices)
        else:
            text = "a string"
        return text + (" or null" if self.nullable else "")


def _valid_int(value: Any, option: Option) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and (option.minimum is None or value >= option.minimum)


def check_value(value: Any, option: Option) -> bool:
    """True when ``value`` is valid for ``option``."""
    if value is None:
        return option.nullable
    if option.kind == "int":
        return _valid_int(value, option)
    if option.kind == "pair":
        if isinstance(value, (list, tuple)):
            return len(value) == 2 and all(_valid_int(v, option) for v in value)
        return _valid_int(value, option)
    if option.kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if option.minimum is not None and value < option.minimum:
            return False
        return option.below is None or value < option.below
    if option.kind == "bool":
        return isinstance(value, bool)
    if option.kind == "str":
        return isinstance(value, str) and (option.choices is None or value in option.choices)
    raise ValueError(f"unknown option kind {option.kind!r}")


def resolve_options(spec: dict[str, Any], options: dict[str, Option], where: str) -> dict[str, Any]:
    """Check ``spec`` (without its ``type``/``name`` keys) and fill in defaults.

    Raises:
        ModelBuildError: naming ``where`` (layer index and type), the key and the bad value.
    """
    resolved: dict[str, Any] = {}
    for key in spec:
        if key not in options:
            close = difflib.get_close_matches(key, list(options), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            valid = ", ".join(options) or "none"
            raise ModelBuildError(f"{where}: unknown option {key!r}{hint}; valid options: {valid}")
    for key, option in options.items():
        if key not in spec:
            if option.required:
                raise ModelBuildError(f"{where}: missing required option {key!r} ({option.describe()})")
            resolved[key] = option.default
            continue
        value = spec[key]
        if not check_value(value, option):
            raise ModelBuildError(f"{where}: {key}: expected {option.describe()}, got {value!r}")
        resolved[key] = tuple(value) if isinstance(value, list) else value
    return resolved
