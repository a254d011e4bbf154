"""Layers: parameters, gradients and a cache around the pure math in ``cnn_cli.nn``, each with its typed spec."""

from typing import Any

from cnn_cli.layers.activation import LeakyReLU, ReLU, Sigmoid, Tanh
from cnn_cli.layers.base import BuildContext, Layer, LayerSpec, Shape
from cnn_cli.layers.batchnorm import BatchNorm1D, BatchNorm2D
from cnn_cli.layers.conv import Conv2D, Padding
from cnn_cli.layers.dense import Dense, Dropout, Flatten
from cnn_cli.layers.pool import AvgPool2D, GlobalAvgPool, MaxPool2D

# The registry: layer type name (the ``type`` key in model.layers) -> layer class, and -> its options.
LAYER_TYPES: dict[str, type[Layer[Any]]] = {
    cls.type_name: cls
    for cls in (
        Conv2D,
        Padding,
        MaxPool2D,
        AvgPool2D,
        GlobalAvgPool,
        BatchNorm2D,
        BatchNorm1D,
        ReLU,
        LeakyReLU,
        Sigmoid,
        Tanh,
        Flatten,
        Dense,
        Dropout,
    )
}
LAYER_SPECS: dict[str, type[LayerSpec]] = {name: cls.spec_class for name, cls in LAYER_TYPES.items()}


def default_layer_names(specs: list[LayerSpec]) -> list[str]:
    """Each layer's name: its own, or its type's prefix and per-prefix count (conv1, conv2, relu1, fc1; batchnorm2d
    and batchnorm1d share ``bn``, so they count together: bn1, bn2)."""
    counts: dict[str, int] = {}
    names = []
    for spec in specs:
        prefix = spec.name_prefix or spec.type
        counts[prefix] = counts.get(prefix, 0) + 1
        names.append(spec.name or f"{prefix}{counts[prefix]}")
    return names


__all__ = [
    "LAYER_SPECS",
    "LAYER_TYPES",
    "AvgPool2D",
    "BatchNorm1D",
    "BatchNorm2D",
    "BuildContext",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "GlobalAvgPool",
    "Layer",
    "LayerSpec",
    "LeakyReLU",
    "MaxPool2D",
    "Padding",
    "ReLU",
    "Shape",
    "Sigmoid",
    "Tanh",
    "default_layer_names",
]
