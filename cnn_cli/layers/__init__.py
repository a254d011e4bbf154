"""Layers: parameters, gradients and a cache around the pure math in ``cnn_cli.nn``, each with its typed spec."""

from cnn_cli.layers.activation import LeakyReLU, ReLU, Sigmoid, Tanh
from cnn_cli.layers.base import BuildContext, Layer, LayerSpec, Shape
from cnn_cli.layers.batchnorm import BatchNorm1D, BatchNorm2D
from cnn_cli.layers.conv import Conv2D, Padding
from cnn_cli.layers.dense import Dense, Dropout, Flatten
from cnn_cli.layers.pool import AvgPool2D, GlobalAvgPool, MaxPool2D
from cnn_cli.layers.registry import LAYER_SPECS, LAYER_TYPES, default_layer_names, register
from cnn_cli.layers.residual import Residual

# The registry: layer type name (the ``type`` key in model.layers) -> layer class, and -> its options.
register(
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
    Residual,
)


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
    "Residual",
    "Shape",
    "Sigmoid",
    "Tanh",
    "default_layer_names",
]
