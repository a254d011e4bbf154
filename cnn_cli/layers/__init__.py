"""Layers: parameters, gradients and a cache around the pure math in ``cnn_cli.nn``."""

from cnn_cli.layers.activation import LeakyReLU, ReLU, Sigmoid, Tanh
from cnn_cli.layers.base import Layer
from cnn_cli.layers.conv import Conv2D, Padding
from cnn_cli.layers.dense import Dense, Dropout, Flatten
from cnn_cli.layers.pool import AvgPool2D, MaxPool2D

LAYER_TYPES: dict[str, type[Layer]] = {
    cls.type_name: cls for cls in (Conv2D, Padding, MaxPool2D, AvgPool2D, ReLU, LeakyReLU, Sigmoid, Tanh, Flatten, Dense, Dropout)
}

__all__ = [
    "LAYER_TYPES",
    "AvgPool2D",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "Layer",
    "LeakyReLU",
    "MaxPool2D",
    "Padding",
    "ReLU",
    "Sigmoid",
    "Tanh",
]
