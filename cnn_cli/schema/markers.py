"""The markers a dataclass field carries (Range, OneOf, Pattern, ...) and the key path an error names."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cnn_cli.errors import ConfigError

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


# eq=False: typing caches Annotated[...] by equality, and Range(minimum=0) == Range(minimum=0.0);
# the bounds must be printed as each declaration writes them.
@dataclass(frozen=True, eq=False)
class Range:
    """Bounds on an int or a number. ``word`` replaces the bounds in messages ("a positive int")."""

    minimum: float | None = None  # inclusive
    above: float | None = None  # exclusive lower bound
    below: float | None = None  # exclusive upper bound
    maximum: float | None = None  # inclusive
    word: str = ""

    def holds(self, value: float) -> bool:
        return not (
            (self.minimum is not None and value < self.minimum)
            or (self.above is not None and value <= self.above)
            or (self.below is not None and value >= self.below)
            or (self.maximum is not None and value > self.maximum)
        )

    def words(self, kind: str) -> str:
        """``kind`` ("an int", "a number") with the bounds: "an int >= 1", "a number >= 0 and < 1"."""
        lower = () if self.word else ((">=", self.minimum), (">", self.above))
        parts = [f"{sign} {bound}" for sign, bound in (*lower, ("<", self.below), ("<=", self.maximum)) if bound is not None]
        named = f"a {self.word} {kind.split(' ', 1)[1]}" if self.word else kind
        return f"{named} {' and '.join(parts)}".strip()


@dataclass(frozen=True)
class OneOf:
    """A string that must be one of ``choices`` (taken from a registry)."""

    choices: tuple[str, ...]


@dataclass(frozen=True)
class Pattern:
    """A string matching ``regex``; ``words`` says what that means."""

    regex: str
    words: str


@dataclass(frozen=True)
class Length:
    """How many items a list may hold."""

    min_items: int = 0
    max_items: int | None = None
    words: str = ""  # what a valid list is, when "a list of ..." does not say it


@dataclass(frozen=True)
class Described:
    """Report any problem inside the value as one, in these words (e.g. "two numbers in [0, 1)")."""

    words: str


@dataclass(frozen=True)
class PairOf:
    """A ``tuple[int, int]`` that may also be written as one int standing for both (kernel 3 = [3, 3])."""


@dataclass(frozen=True)
class Duration:
    """A number of seconds that may also be written as a clock reading: ``"MM:SS"``, ``"HH:MM:SS"`` or ``"DD:HH:MM:SS"``.

    The value is kept in seconds (a float), so ``"00:10:00"`` and ``600`` are the same setting.
    Every field but the first stays below its limit (60 seconds, 60 minutes, 24 hours).
    """

    words: str = 'a number of seconds > 0 or a duration like "00:10:00" (HH:MM:SS)'
    regex: str = r"\d+(?::[0-5]?\d){1,2}(?:\.\d+)?|\d+:(?:[01]?\d|2[0-3])(?::[0-5]?\d){2}(?:\.\d+)?"

    def seconds(self, text: str) -> float | None:
        """``"01:30:00"`` -> 5400.0; None when ``text`` is no such duration."""
        if not re.fullmatch(self.regex, text.strip()):
            return None
        *larger, last = text.strip().split(":")
        fields = [float(last), *(int(part) for part in reversed(larger))]  # seconds, minutes, hours, days
        return sum(value * unit for value, unit in zip(fields, (1, 60, 3600, 86400), strict=False))


@dataclass(frozen=True)
class Tagged:
    """A mapping whose ``type`` key picks its dataclass from ``registry`` (a layer spec, say)."""

    registry: Mapping[str, type]
    noun: str = "type"
    key: str = "type"


@dataclass(frozen=True)
class Key:
    """Where a value sits: its canonical ``path`` and the ``label`` messages show."""

    path: str = ""
    label: str = ""
    tagged: bool = False  # a list item chosen by its type: its keys read "item (type): key"

    def child(self, name: str) -> Key:
        path = f"{self.path}.{name}" if self.path else name
        return Key(path, f"{self.label}: {name}" if self.tagged else path)

    def item(self, index: int) -> Key:
        path = f"{self.path}[{index}]"
        return Key(path, path)

    def with_tag(self, tag: str) -> Key:
        return Key(self.path, f"{self.path} ({tag})", tagged=True)

    def fail(self, expected: str, value: Any) -> ConfigError:
        return ConfigError(f"{self.label}: expected {expected}, got {value!r}", self.path)


def parent_paths(path: str) -> list[str]:
    """``model.layers[0].kernel_size`` -> itself, ``model.layers[0]``, ``model.layers``, ``model``."""
    out = []
    while path:
        out.append(path)
        parent = re.sub(r"(\.[^.\[]*|\[\d+\])$", "", path)
        if parent == path:
            break
        path = parent
    return out
