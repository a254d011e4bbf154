"""The one place that holds the geometry of convolution and pooling: the output-size formula, its check, the receptive field."""

from __future__ import annotations

from dataclasses import dataclass

IntPair = tuple[int, int]  # (height, width)


class GeometryError(ValueError):
    """A window sweep that cannot work: the (dilated) kernel does not fit its padded input."""


def pair(value: int | tuple[int, int] | list[int]) -> IntPair:
    """Return ``value`` as a ``(height, width)`` pair; an int stands for both."""
    if isinstance(value, (tuple, list)):
        return int(value[0]), int(value[1])
    return int(value), int(value)


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Length of one output axis of a convolution or pooling window sweep.

    ``H_out = (H + 2p - d(k-1) - 1) // s + 1`` (PyTorch's formula, floor mode).
    Returns a value < 1 when the (dilated) kernel does not fit the padded input.
    """
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def window_output_hw(
    size: IntPair, kernel: IntPair, stride: IntPair, padding: IntPair = (0, 0), dilation: IntPair | None = None
) -> IntPair:
    """(H_out, W_out) of a window sweep over an (H, W) input, or :class:`GeometryError` if the kernel does not fit.

    ``dilation`` None is a pooling window (dilation 1, not mentioned in the message).
    """
    d_h, d_w = dilation or (1, 1)
    out_h = conv_output_size(size[0], kernel[0], stride[0], padding[0], d_h)
    out_w = conv_output_size(size[1], kernel[1], stride[1], padding[1], d_w)
    if out_h < 1 or out_w < 1:
        dilated = f" (dilation {d_h}x{d_w})" if dilation is not None else ""
        raise GeometryError(
            f"kernel {kernel[0]}x{kernel[1]}{dilated} is larger than its padded input {size[0] + 2 * padding[0]}x{size[1] + 2 * padding[1]}"
        )
    return out_h, out_w


def image_shape(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """``shape`` as (C, H, W), or :class:`GeometryError` when it is not an image."""
    if len(shape) != 3:
        raise GeometryError(f"needs (C, H, W) input, got shape {shape}")
    return shape[0], shape[1], shape[2]


@dataclass(frozen=True)
class ReceptiveField:
    """The input pixels one output unit of a layer sees: a ``size`` window, neighbouring units ``jump`` pixels apart.

    Through a window of kernel k, stride s and dilation d (a convolution or a pooling)::

        r_out = r_in + (k - 1)·d·j_in        j_out = j_in·s

    starting from r = j = 1 on the input, per axis (height, width). ``size`` may
    exceed the image: the rest of the window falls on padding.

    A flatten moves the (H, W) map into the channel axis; ``grid`` keeps that map (None
    while the activations are still images). A layer that then mixes channels (a dense
    layer, a 1x1 convolution) sees the whole map, as a window as large as the map would
    (:meth:`across`), and its output has no spatial layout left (``grid`` (1, 1)).
    """

    size: IntPair = (1, 1)
    jump: IntPair = (1, 1)
    grid: IntPair | None = None

    @property
    def flat(self) -> bool:
        """True once a flatten has moved the spatial axes into the channels."""
        return self.grid is not None

    def through_window(self, kernel: IntPair, stride: IntPair, dilation: IntPair = (1, 1)) -> ReceptiveField:
        """The field after a window sweep of ``kernel``, ``stride`` and ``dilation`` (padding changes neither r nor j)."""
        (r_h, r_w), (j_h, j_w) = self.size, self.jump
        size = (r_h + (kernel[0] - 1) * dilation[0] * j_h, r_w + (kernel[1] - 1) * dilation[1] * j_w)
        return ReceptiveField(size, (j_h * stride[0], j_w * stride[1]), self.grid)

    def flattened(self, grid: IntPair) -> ReceptiveField:
        """After a flatten of an (H, W) = ``grid`` map: each value is still one unit of that map."""
        return self if self.flat else ReceptiveField(self.size, self.jump, grid)

    def across(self, grid: IntPair) -> ReceptiveField:
        """A unit that sees every position of an (H, W) = ``grid`` map: a window of the map's size; no map is left after it."""
        swept = self.through_window(grid, grid)
        return ReceptiveField(swept.size, swept.jump, (1, 1))
