"""Validation: a plain value converted to a field's type, or an error naming the key path and what was expected."""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from typing import Annotated, Any

from cnn_cli.errors import ConfigError
from cnn_cli.schema.markers import Described, Duration, Key, Length, OneOf, PairOf, Pattern, Range, Tagged


def _split(tp: Any) -> tuple[Any, tuple[Any, ...]]:
    """(base type, its Annotated metadata)."""
    if typing.get_origin(tp) is Annotated:
        return tp.__origin__, tuple(tp.__metadata__)
    return tp, ()


def _join(base: Any, meta: tuple[Any, ...]) -> Any:
    """The inverse of :func:`_split` (``Annotated`` needs at least one piece of metadata)."""
    return Annotated[(base, *meta)] if meta else base


def _meta(metadata: tuple[Any, ...], kind: type) -> Any:
    return next((m for m in metadata if isinstance(m, kind)), None)


def _optional_inner(tp: Any) -> Any | None:
    """X for ``X | None``, else None."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1 and len(args) == 2:
            return inner[0]
    return None


def field_types(cls: type) -> dict[str, Any]:
    """The (Annotated) type of every init field of a dataclass."""
    hints = typing.get_type_hints(cls, include_extras=True)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def is_required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def describe(tp: Any) -> str:
    """What a valid value of type ``tp`` looks like, in words for messages."""
    base, meta = _split(tp)
    described = _meta(meta, Described)
    if described:
        return described.words
    inner = _optional_inner(base)
    if inner is not None:
        return describe(inner) + " or null"
    bounds = _meta(meta, Range) or Range()
    if _meta(meta, PairOf):
        return f"{bounds.words('an int')} or [h, w] of them"
    if _meta(meta, Duration):
        return _meta(meta, Duration).words
    if _meta(meta, Tagged):
        return f"a mapping with a {_meta(meta, Tagged).key!r} key"
    if dataclasses.is_dataclass(base):
        return "a mapping"
    if base is bool:
        return "true or false"
    if base is int:
        return bounds.words("an int")
    if base is float:
        return bounds.words("a number")
    if base is str:
        one_of, pattern = _meta(meta, OneOf), _meta(meta, Pattern)
        if one_of:
            return "one of " + ", ".join(one_of.choices)
        return pattern.words if pattern else "a string"
    origin = typing.get_origin(base)
    length = _meta(meta, Length)
    if origin is list and length and length.words:
        return length.words
    if origin is list:
        item = describe(typing.get_args(base)[0])
        return f"a list of {item.removeprefix('a ').removeprefix('an ')}s"
    if origin is dict or base is dict:
        return "a mapping"
    return getattr(base, "__name__", str(base))


def convert(tp: Any, value: Any, key: Key) -> Any:
    """Check ``value`` against ``tp`` and return it converted (ints to floats, lists to pairs, dataclasses built).

    Raises:
        ConfigError: naming ``key`` (label and canonical path), what was expected and the value.
    """
    base, meta = _split(tp)
    if _meta(meta, Described):
        try:
            return _convert(base, meta, value, key)
        except ConfigError:
            raise key.fail(describe(tp), value) from None
    return _convert(base, meta, value, key)


def _convert(base: Any, meta: tuple[Any, ...], value: Any, key: Key) -> Any:
    inner = _optional_inner(base)
    if inner is not None:
        if value is None:
            return None
        try:
            return convert(inner, value, key)
        except ConfigError as exc:
            if exc.key_path != key.path:  # a deeper problem (inside a mapping) keeps its own message
                raise
            raise key.fail(describe(base), value) from None
    tagged = _meta(meta, Tagged)
    if tagged:
        return _convert_tagged(tagged, value, key)
    if dataclasses.is_dataclass(base):
        if not isinstance(value, dict):
            raise key.fail("a mapping", value)
        return build(typing.cast(type, base), value, key)
    if base is bool:
        if not isinstance(value, bool):
            raise key.fail("true or false", value)
        return value
    if base is str:
        return _convert_str(meta, value, key)
    if _meta(meta, PairOf) or base in (int, float):
        return _convert_number(base, meta, value, key)
    if typing.get_origin(base) in (list, dict):
        return _convert_container(base, meta, value, key)
    raise TypeError(f"unsupported schema type {base!r} at {key.path}")


def _convert_number(base: Any, meta: tuple[Any, ...], value: Any, key: Key) -> Any:
    """An int, a number (ints become floats; NaN and infinities are refused) or a pair of ints, within bounds."""
    bounds = _meta(meta, Range) or Range()
    duration = _meta(meta, Duration)
    if duration:
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        seconds = float(value) if number else duration.seconds(value) if isinstance(value, str) else None
        if seconds is None or not bounds.holds(seconds):
            raise key.fail(duration.words, value)
        return seconds
    if _meta(meta, PairOf):
        items = value if isinstance(value, list) and len(value) == 2 else [value, value]
        if not all(_is_int(v) and bounds.holds(v) for v in items):
            raise key.fail(describe(_join(base, meta)), value)
        return (items[0], items[1])
    if base is int:
        if not _is_int(value) or not bounds.holds(value):
            raise key.fail(bounds.words("an int"), value)
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise key.fail(bounds.words("a number"), value)
    if not math.isfinite(value):
        raise key.fail(bounds.words("a finite number"), value)
    if not bounds.holds(value):
        raise key.fail(bounds.words("a number"), value)
    return float(value)


def _convert_container(base: Any, meta: tuple[Any, ...], value: Any, key: Key) -> Any:
    """A list (of the right length, each item converted) or a mapping of string keys."""
    if typing.get_origin(base) is dict:
        if not isinstance(value, dict):
            raise key.fail("a mapping", value)
        _, value_type = typing.get_args(base)
        return {str(k): convert(value_type, v, key.child(str(k))) for k, v in value.items()}
    length = _meta(meta, Length) or Length()
    if not isinstance(value, list) or len(value) < length.min_items or (length.max_items is not None and len(value) > length.max_items):
        raise key.fail(describe(_join(base, meta)), value)
    item_type = typing.get_args(base)[0]
    return [convert(item_type, v, key.item(i)) for i, v in enumerate(value)]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _convert_str(meta: tuple[Any, ...], value: Any, key: Key) -> str:
    one_of, pattern = _meta(meta, OneOf), _meta(meta, Pattern)
    if one_of:
        if not isinstance(value, str) or value not in one_of.choices:
            close = difflib.get_close_matches(str(value), list(one_of.choices), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{key.label}: expected {describe(Annotated[str, one_of])}, got {value!r}{hint}", key.path)
        return value
    if not isinstance(value, str):
        raise key.fail("a string", value)
    if pattern and not re.fullmatch(pattern.regex, value):
        raise key.fail(pattern.words, value)
    return value


def _convert_tagged(tagged: Tagged, value: Any, key: Key) -> Any:
    if not isinstance(value, dict) or tagged.key not in value:
        raise key.fail(f"a mapping with a {tagged.key!r} key", value)
    tag = value[tagged.key]
    if not isinstance(tag, str) or tag not in tagged.registry:
        close = difflib.get_close_matches(str(tag), list(tagged.registry), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{key.label}: unknown {tagged.noun} {tag!r}{hint}; known: {', '.join(tagged.registry)}", key.path)
    options = {k: v for k, v in value.items() if k != tagged.key}
    return build(tagged.registry[tag], options, key.with_tag(tag))


def build(cls: type, data: dict, key: Key = Key()) -> Any:
    """Build dataclass ``cls`` from a mapping: unknown keys refused (with a suggestion), defaults filled in."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    if key.tagged:  # the discriminator is not an option the user sets
        fields.pop("type", None)
    types_of = field_types(cls)
    for name in data:
        if name not in fields:
            close = difflib.get_close_matches(str(name), list(fields), n=1)
            child = key.child(str(name))
            if key.tagged:
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"{key.label}: unknown option {name!r}{hint}; valid options: {', '.join(fields) or 'none'}", child.path)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{child.label}: unknown key{hint} (valid keys: {', '.join(fields)})", child.path)
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = convert(types_of[name], data[name], key.child(name))
        elif is_required(f):
            noun = "option" if key.tagged else "key"
            raise ConfigError(f"{key.label}: missing required {noun} {name!r} ({describe(types_of[name])})", key.path)
    return cls(**kwargs)


def to_plain(value: Any) -> Any:
    """A validated object as plain YAML/JSON data: dataclasses to dicts (field order), tuples to lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    return value
