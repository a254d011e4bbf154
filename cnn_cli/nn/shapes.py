"""The one place that holds the output-size formula of convolution and pooling."""

from __future__ import annotations


def pair(value: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """Return ``value`` as a ``(height, width)`` pair; an int stands for both."""
    if isinstance(value, (tuple, list)):
        return int(value[0]), int(value[1])
    return int(value), int(value)


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Length of one output axis of a convolution or pooling window sweep.

    ``H_out = (H + 2p - d(k-1) - 1) // s + 1`` (PyTorch's formula, floor mode).
    Returns a value < 1 when the (dilated) kernel does not fit the padded input;
    callers turn that into an error that names the layer.
    """
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
