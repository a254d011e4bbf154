"""The small float64 nets on which each mistake of the bug zoo shows (or hides) in a second."""

from __future__ import annotations

from typing import Any

CONV_STACK: dict[str, Any] = {
    "input_shape": [1, 8, 8],
    "layers": [
        {"type": "conv2d", "out_channels": 3, "kernel_size": 3, "stride": 2, "padding": 1},
        {"type": "relu"},
        {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "stride": 1, "padding": 1},
        {"type": "relu"},
        {"type": "flatten"},
        {"type": "dense", "out_features": 5},
    ],
}
POOL_NET: dict[str, Any] = {
    "input_shape": [1, 6, 6],
    "layers": [
        {"type": "conv2d", "out_channels": 2, "kernel_size": 3},
        {"type": "relu"},
        {"type": "maxpool2d", "kernel_size": 2},
        {"type": "flatten"},
        {"type": "dense", "out_features": 3},
    ],
}
# Stride = kernel size: the windows tile the input, no pixel is read twice.
PATCHES: dict[str, Any] = {
    "input_shape": [1, 8, 8],
    "layers": [
        {"type": "conv2d", "out_channels": 3, "kernel_size": 2, "stride": 2},
        {"type": "relu"},
        {"type": "conv2d", "out_channels": 4, "kernel_size": 2, "stride": 2},
        {"type": "flatten"},
        {"type": "dense", "out_features": 5},
    ],
}
# A 3x3 average over windows that overlap (stride 1): each input is shared by up to 9 windows.
AVGPOOL_NET: dict[str, Any] = {
    "input_shape": [1, 6, 6],
    "layers": [
        {"type": "conv2d", "out_channels": 2, "kernel_size": 3, "padding": 1},
        {"type": "avgpool2d", "kernel_size": 3, "stride": 1},
        {"type": "flatten"},
        {"type": "dense", "out_features": 3},
    ],
}
LEAKY_STACK: dict[str, Any] = {
    "input_shape": [1, 6, 6],
    "layers": [
        {"type": "conv2d", "out_channels": 3, "kernel_size": 3},
        {"type": "leaky_relu", "negative_slope": 0.1},
        {"type": "flatten"},
        {"type": "dense", "out_features": 3},
    ],
}
# A sigmoid above a tanh: a mistake in either spoils only what lies below it.
SQUASH_NET: dict[str, Any] = {
    "input_shape": [1, 5, 5],
    "layers": [
        {"type": "conv2d", "out_channels": 2, "kernel_size": 3},
        {"type": "tanh"},
        {"type": "conv2d", "out_channels": 2, "kernel_size": 2},
        {"type": "sigmoid"},
        {"type": "flatten"},
        {"type": "dense", "out_features": 3},
    ],
}
# fc1 has as many inputs as outputs (4 -> 4), so a transposed weight gradient still has the weight's shape.
DENSE_NET: dict[str, Any] = {
    "input_shape": [1, 2, 2],
    "layers": [
        {"type": "flatten"},
        {"type": "dense", "out_features": 4},
        {"type": "tanh"},
        {"type": "dense", "out_features": 3},
    ],
}
DROPOUT_NET: dict[str, Any] = {
    "input_shape": [1, 6, 6],
    "layers": [
        {"type": "conv2d", "out_channels": 2, "kernel_size": 3},
        {"type": "relu"},
        {"type": "dropout", "p": 0.25},
        {"type": "flatten"},
        {"type": "dense", "out_features": 3},
    ],
}
# Notes 004's layers, with its binary cross-entropy on one output.
BINARY_NET: dict[str, Any] = {
    "input_shape": [1, 6, 6],
    "loss": "binary_cross_entropy",
    "layers": [
        {"type": "conv2d", "out_channels": 1, "kernel_size": 3},
        {"type": "relu"},
        {"type": "maxpool2d", "kernel_size": 2},
        {"type": "flatten"},
        {"type": "dense", "out_features": 1},
    ],
}
# A batch norm after each of two convs, and one after a dense layer: each channel's mean and variance couple the batch.
BN_NET: dict[str, Any] = {
    "input_shape": [1, 6, 6],
    "layers": [
        {"type": "conv2d", "out_channels": 2, "kernel_size": 3},
        {"type": "batchnorm2d"},
        {"type": "tanh"},
        {"type": "flatten"},
        {"type": "dense", "out_features": 4},
        {"type": "batchnorm1d"},
        {"type": "tanh"},
        {"type": "dense", "out_features": 3},
    ],
}
# Global average pooling of 3 maps of 4x4 into the dense layer's 3 inputs.
GAP_NET: dict[str, Any] = {
    "input_shape": [1, 6, 6],
    "layers": [
        {"type": "conv2d", "out_channels": 3, "kernel_size": 3},
        {"type": "tanh"},
        {"type": "global_avg_pool"},
        {"type": "dense", "out_features": 3},
    ],
}
# A conv, then a residual block (identity skip) around conv -> tanh -> conv: what is below the block is what the skip feeds.
RESIDUAL_NET: dict[str, Any] = {
    "input_shape": [1, 6, 6],
    "layers": [
        {"type": "conv2d", "out_channels": 2, "kernel_size": 3, "padding": 1},
        {"type": "relu"},
        {
            "type": "residual",
            "layers": [
                {"type": "conv2d", "out_channels": 2, "kernel_size": 3, "padding": 1},
                {"type": "tanh"},
                {"type": "conv2d", "out_channels": 2, "kernel_size": 3, "padding": 1},
            ],
        },
        {"type": "flatten"},
        {"type": "dense", "out_features": 3},
    ],
}
