"""The layer registries, filled by ``cnn_cli.layers`` once every layer module is imported.

They live in a module of their own so that a block (``cnn_cli.layers.residual``), whose
spec lists layers of any type and whose build builds them, can read them without
importing the package that imports it.
"""

from __future__ import annotations

from typing import Any

from cnn_cli.layers.base import Layer, LayerSpec

# layer type name (the ``type`` key in model.layers) -> layer class, and -> its options.
LAYER_TYPES: dict[str, type[Layer[Any]]] = {}
LAYER_SPECS: dict[str, type[LayerSpec]] = {}


def register(*classes: type[Layer[Any]]) -> None:
    """Add layer classes (and their specs) to the registries, under their ``type_name``."""
    for cls in classes:
        LAYER_TYPES[cls.type_name] = cls
        LAYER_SPECS[cls.type_name] = cls.spec_class


def default_layer_names(specs: list[LayerSpec]) -> list[str]:
    """Each layer's name: its own, or its type's prefix and per-prefix count (conv1, conv2, relu1, fc1, res1;
    batchnorm2d and batchnorm1d share ``bn``, so they count together: bn1, bn2)."""
    counts: dict[str, int] = {}
    names = []
    for spec in specs:
        prefix = spec.name_prefix or spec.type
        counts[prefix] = counts.get(prefix, 0) + 1
        names.append(spec.name or f"{prefix}{counts[prefix]}")
    return names
