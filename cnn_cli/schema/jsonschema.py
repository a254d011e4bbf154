"""JSON Schema generated from the same dataclasses the validator reads."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from cnn_cli.schema.convert import _meta, _optional_inner, _split, field_types, is_required
from cnn_cli.schema.markers import JSON_SCHEMA_DIALECT, Described, Duration, Length, OneOf, PairOf, Pattern, Range, Tagged


def json_schema(cls: type, title: str = "") -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of dataclass ``cls``, written from the same types :func:`convert` checks.

    Rules that need more than one value at once (shape inference, memory estimates,
    keys that depend on another key) are left to the loader.
    """
    defs: dict[str, Any] = {}
    schema = {"$schema": JSON_SCHEMA_DIALECT, **({"title": title} if title else {}), **_schema_of(cls, defs)}
    if defs:
        schema["$defs"] = defs
    return schema


def _schema_of(tp: Any, defs: dict[str, Any]) -> dict[str, Any]:
    base, meta = _split(tp)
    out: dict[str, Any] = {}
    described = _meta(meta, Described)
    if described:
        out["description"] = f"expected {described.words}"
    inner = _optional_inner(base)
    if inner is not None:
        return {**out, "anyOf": [_schema_of(inner, defs), {"type": "null"}]}
    tagged = _meta(meta, Tagged)
    if tagged:
        for tag, spec_cls in tagged.registry.items():
            if spec_cls.__name__ not in defs:  # claimed first: a type whose fields list the registry again (a block) refers back
                defs[spec_cls.__name__] = {}
                defs[spec_cls.__name__] = _object_schema(spec_cls, defs, discriminator=(tagged.key, tag))
        return {
            **out,
            "type": "object",
            "required": [tagged.key],
            "oneOf": [{"$ref": f"#/$defs/{c.__name__}"} for c in tagged.registry.values()],
        }
    if dataclasses.is_dataclass(base):
        return {**out, **_object_schema(typing.cast(type, base), defs)}
    bounds = _meta(meta, Range)
    if _meta(meta, PairOf):
        one = {"type": "integer", **_bounds_schema(bounds)}
        return {**out, "anyOf": [one, {"type": "array", "items": one, "minItems": 2, "maxItems": 2}]}
    duration = _meta(meta, Duration)
    if duration:
        clock = {"type": "string", "pattern": f"^(?:{duration.regex})$"}
        return {**out, "description": f"expected {duration.words}", "anyOf": [{"type": "number", **_bounds_schema(bounds)}, clock]}
    if base is bool:
        return {**out, "type": "boolean"}
    if base is int:
        return {**out, "type": "integer", **_bounds_schema(bounds)}
    if base is float:
        return {**out, "type": "number", **_bounds_schema(bounds)}
    if base is str:
        one_of, pattern = _meta(meta, OneOf), _meta(meta, Pattern)
        if one_of:
            return {**out, "enum": list(one_of.choices)}
        return {**out, "type": "string", **({"pattern": f"^(?:{pattern.regex})$"} if pattern else {})}
    origin = typing.get_origin(base)
    if origin is list:
        length = _meta(meta, Length) or Length()
        sizes = {"minItems": length.min_items} if length.min_items else {}
        if length.max_items is not None:
            sizes["maxItems"] = length.max_items
        return {**out, "type": "array", "items": _schema_of(typing.get_args(base)[0], defs), **sizes}
    if origin is dict:
        return {**out, "type": "object", "additionalProperties": _schema_of(typing.get_args(base)[1], defs)}
    raise TypeError(f"no JSON Schema for {base!r}")


def _bounds_schema(bounds: Range | None) -> dict[str, float]:
    if bounds is None:
        return {}
    pairs = (
        ("minimum", bounds.minimum),
        ("exclusiveMinimum", bounds.above),
        ("exclusiveMaximum", bounds.below),
        ("maximum", bounds.maximum),
    )
    return {name: value for name, value in pairs if value is not None}


def _object_schema(cls: type, defs: dict[str, Any], discriminator: tuple[str, str] | None = None) -> dict[str, Any]:
    types_of = field_types(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    properties: dict[str, Any] = {}
    required = []
    if discriminator:
        tag_key, tag = discriminator
        properties[tag_key] = {"const": tag}
        required.append(tag_key)
        fields.pop(tag_key, None)
    for name, f in fields.items():
        properties[name] = _schema_of(types_of[name], defs)
        if is_required(f):
            required.append(name)
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if cls.__doc__:
        schema["description"] = cls.__doc__.strip().splitlines()[0]
    if required:
        schema["required"] = required
    return schema
