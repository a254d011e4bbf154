"""The wrong backward passes of the windowed layers (convolution, max-pool, average-pool).

Each function here returns a context manager that swaps one mistake into the
library and restores it on exit, so the rest of the process never sees the bug.
The mistakes are swapped in where the layers look them up at call time (a
module's global, a class attribute), so a model built from ``cnn_cli.layers``,
and the exercise checker's calls into those layers, both run the wrong code.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from cnn_cli.layers import conv as conv_layer
from cnn_cli.layers import pool as pool_layer
from cnn_cli.nn import conv as nn_conv
from cnn_cli.nn import pool as nn_pool
from cnn_cli.nn.windows import tap_slice

Patch = Callable[[], contextlib.AbstractContextManager[None]]
_MISSING = object()


@contextlib.contextmanager
def patched(target: Any, attribute: str, value: Any) -> Iterator[None]:
    """Set ``target.attribute = value`` for the block; restore exactly what was there (or remove it)."""
    original = target.__dict__.get(attribute, _MISSING)  # a class's own staticmethod object, not the function it wraps
    setattr(target, attribute, value)
    try:
        yield
    finally:
        if original is _MISSING:
            delattr(target, attribute)
        else:
            setattr(target, attribute, original)


# ---------------------------------------------------------------- convolution


def _col2im_assign(grad_x_padded: np.ndarray, grad_cols: np.ndarray, cache: nn_conv.ConvCache, in_slice: slice) -> None:
    """col2im with ``=``, window by window, as a loop over the output pixels writes it: the last window wins each pixel."""
    _, out_h, out_w, k_h, k_w, _ = grad_cols.shape
    (s_h, s_w), (d_h, d_w) = cache.stride, cache.dilation
    for i in range(out_h):
        for j in range(out_w):
            rows = slice(i * s_h, i * s_h + d_h * (k_h - 1) + 1, d_h)
            cols = slice(j * s_w, j * s_w + d_w * (k_w - 1) + 1, d_w)
            grad_x_padded[:, rows, cols, in_slice] = grad_cols[:, i, j]  # the bug: = instead of +=


def _col2im_no_stride(grad_x_padded: np.ndarray, grad_cols: np.ndarray, cache: nn_conv.ConvCache, in_slice: slice) -> None:
    """col2im as cnn_cli.nn.conv._col2im does it, but with window (i, j) put back at (i, j) instead of (i·s, j·s)."""
    _, out_h, out_w, k_h, k_w, _ = grad_cols.shape
    for a in range(k_h):
        for b in range(k_w):
            rows = tap_slice(a, cache.dilation[0], 1, out_h)  # the bug: stride 1
            cols = tap_slice(b, cache.dilation[1], 1, out_w)
            grad_x_padded[:, rows, cols, in_slice] += grad_cols[:, :, :, a, b, :]


def col2im_assign() -> contextlib.AbstractContextManager[None]:
    return patched(nn_conv, "_col2im", _col2im_assign)


def col2im_no_stride() -> contextlib.AbstractContextManager[None]:
    return patched(nn_conv, "_col2im", _col2im_no_stride)


def bias_not_summed() -> contextlib.AbstractContextManager[None]:
    right = nn_conv.conv2d_backward

    def wrong(grad_out: np.ndarray, cache: nn_conv.ConvCache, need_input_grad: bool = True):
        grad_x, grad_w, grad_b = right(grad_out, cache, need_input_grad)
        if grad_b is not None:
            grad_b = grad_out[0].sum(axis=(1, 2))  # the bug: only the first sample's positions are summed
        return grad_x, grad_w, grad_b

    return patched(conv_layer, "conv2d_backward", wrong)


def _input_gradient_with_kernel(turn: Callable[[np.ndarray], np.ndarray]) -> contextlib.AbstractContextManager[None]:
    """The conv's input gradient computed with ``turn(K)`` in col2im; its weight and bias gradients stay right."""
    right = nn_conv.conv2d_backward

    def wrong(grad_out: np.ndarray, cache: nn_conv.ConvCache, need_input_grad: bool = True):
        _, grad_w, grad_b = right(grad_out, cache, False)
        grad_x = None
        if need_input_grad:
            turned = replace(cache, weight=np.ascontiguousarray(turn(cache.weight)))
            grad_x, _, _ = right(grad_out, turned, True)
        return grad_x, grad_w, grad_b

    return patched(conv_layer, "conv2d_backward", wrong)


def kernel_not_rotated() -> contextlib.AbstractContextManager[None]:
    # dL/dX = full correlation of dL/dY with rot180(K), which col2im computes with K itself. Handing
    # col2im a pre-flipped kernel undoes the rotation: the bug is the full correlation with K.
    return _input_gradient_with_kernel(lambda weight: weight[:, :, ::-1, ::-1])


def kernel_transposed() -> contextlib.AbstractContextManager[None]:
    # The full correlation with Kᵀ (rows and columns swapped) where rot180(K) belongs: col2im with rot180(Kᵀ).
    # A kernel that is not square cannot be transposed in place; there the mistake cannot run.
    def turn(weight: np.ndarray) -> np.ndarray:
        if weight.shape[2] != weight.shape[3]:
            return weight
        return weight.transpose(0, 1, 3, 2)[:, :, ::-1, ::-1]

    return _input_gradient_with_kernel(turn)


# ---------------------------------------------------------------- pooling


@dataclass
class _WindowCache(nn_pool.PoolCache):
    """A pooling cache that also keeps the input, which a mistake about ties needs to find every tied maximum."""

    x: np.ndarray | None = None


def _keeping_input(grad_for_tap: Callable[[np.ndarray, np.ndarray, _WindowCache], Callable[[int], np.ndarray]]) -> Iterator[None]:
    """Swap in a max-pool whose cache keeps the input, and a backward that scatters ``grad_for_tap(grad, windows, cache)``."""

    def forward(x: np.ndarray, kernel, stride, padding=(0, 0)):
        out, cache = nn_pool.maxpool2d_forward(x, kernel, stride, padding)
        return out, _WindowCache(**vars(cache), x=x)

    def backward(grad_out: np.ndarray, cache: _WindowCache) -> np.ndarray:
        if cache.x is None:  # pragma: no cover - the forward above always keeps it
            raise RuntimeError("the mistake's forward kept no input")
        windows, _ = nn_pool._pool_windows(cache.x, cache.kernel, cache.stride, cache.padding, pad_value=-np.inf)
        n, out_h, out_w, _, _, c = windows.shape
        flat = windows.transpose(0, 1, 2, 5, 3, 4).reshape(n, out_h, out_w, c, -1)  # (N, H_out, W_out, C, kH*kW)
        return nn_pool._scatter_to_windows(cache, grad_for_tap(grad_out.transpose(0, 2, 3, 1), flat, cache))

    with (
        patched(pool_layer.MaxPool2D, "_forward", staticmethod(forward)),
        patched(pool_layer.MaxPool2D, "_backward", staticmethod(backward)),
    ):
        yield


@contextlib.contextmanager
def maxpool_ties_all() -> Iterator[None]:
    def grad_for_tap(grad_nhwc: np.ndarray, flat: np.ndarray, cache: _WindowCache) -> Callable[[int], np.ndarray]:
        maxima = flat.max(axis=-1)
        # the bug: every input equal to the window's maximum gets the whole gradient
        return lambda tap: np.where(flat[..., tap] == maxima, grad_nhwc, 0)

    yield from _keeping_input(grad_for_tap)


@contextlib.contextmanager
def maxpool_tie_last() -> Iterator[None]:
    def grad_for_tap(grad_nhwc: np.ndarray, flat: np.ndarray, cache: _WindowCache) -> Callable[[int], np.ndarray]:
        taps = flat.shape[-1]
        last = taps - 1 - flat[..., ::-1].argmax(axis=-1)  # the bug: the last maximum in reading order wins a tie
        return lambda tap: np.where(last == tap, grad_nhwc, 0)

    yield from _keeping_input(grad_for_tap)


def maxpool_spread() -> contextlib.AbstractContextManager[None]:
    def wrong(grad_out: np.ndarray, cache: nn_pool.PoolCache) -> np.ndarray:
        # the bug: every input of the window gets the whole output gradient, not just the winner
        grad_nhwc = grad_out.transpose(0, 2, 3, 1)
        return nn_pool._scatter_to_windows(cache, lambda tap: grad_nhwc)

    return patched(pool_layer.MaxPool2D, "_backward", staticmethod(wrong))


def avgpool_no_divide() -> contextlib.AbstractContextManager[None]:
    def wrong(grad_out: np.ndarray, cache: nn_pool.PoolCache) -> np.ndarray:
        grad_nhwc = grad_out.transpose(0, 2, 3, 1)  # the bug: the 1/(kH·kW) of the mean is missing
        return nn_pool._scatter_to_windows(cache, lambda tap: grad_nhwc)

    return patched(pool_layer.AvgPool2D, "_backward", staticmethod(wrong))


def avgpool_assign() -> contextlib.AbstractContextManager[None]:
    def wrong(grad_out: np.ndarray, cache: nn_pool.PoolCache) -> np.ndarray:
        n, c, h, w = cache.input_shape
        pad_h, pad_w = cache.padding
        (k_h, k_w), (s_h, s_w) = cache.kernel, cache.stride
        share = grad_out.transpose(0, 2, 3, 1) / (k_h * k_w)  # (N, H_out, W_out, C)
        grad_padded = np.zeros((n, h + 2 * pad_h, w + 2 * pad_w, c), dtype=share.dtype)
        for i in range(share.shape[1]):
            for j in range(share.shape[2]):
                # the bug: = instead of +=, window by window: the last window wins each pixel
                grad_padded[:, i * s_h : i * s_h + k_h, j * s_w : j * s_w + k_w, :] = share[:, i, j, None, None, :]
        return grad_padded[:, pad_h : pad_h + h, pad_w : pad_w + w, :].transpose(0, 3, 1, 2)

    return patched(pool_layer.AvgPool2D, "_backward", staticmethod(wrong))
