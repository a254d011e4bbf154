"""Elementwise activations and their derivatives. Any shape in, same shape out.

Notes 000 §2.8 and notes 001 (``cnn docs relu``): ReLU passes the gradient where its
input was positive and blocks it elsewhere. At exactly 0 the derivative is undefined;
notes 001 lets the gradient through ("positive or zero"), we take it as 0, as
PyTorch does, so the two agree bit for bit (tests keep inputs away from 0).

Notes 001/003 (``cnn docs sigmoid``): sigmoid' = σ(1 − σ). tanh' = 1 − tanh² (``cnn docs tanh``).
"""

from __future__ import annotations

import numpy as np

from cnn_cli.nn.threads import batch_ufunc, for_each_slice


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """y = max(0, x). Returns (y, cache = the mask x > 0).

    Outputs keep the memory order of ``x`` (channels-last after a convolution).
    """
    positive = batch_ufunc(np.greater, x, 0, out=np.empty_like(x, dtype=bool))
    return batch_ufunc(np.multiply, x, positive, out=np.empty_like(x)), positive


def relu(x: np.ndarray) -> np.ndarray:
    """y = max(0, x) without the mask, for evaluation: one pass instead of two."""
    return batch_ufunc(np.maximum, x, x.dtype.type(0), out=np.empty_like(x))


def relu_backward(grad_out: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """dL/dx = dL/dy where x > 0, else 0.

    The blocked entries are +0.0: multiplying by the mask alone would give −0.0 wherever
    dL/dy was negative, which prints as "-0." and differs from PyTorch bit for bit; adding
    +0.0 turns −0.0 into +0.0 and leaves every other value as it is (a masked copy does the
    same but is many times slower).
    """
    grad_x = np.empty_like(positive, dtype=grad_out.dtype)

    def multiply(batch: slice) -> None:
        np.multiply(grad_out[batch], positive[batch], out=grad_x[batch])
        np.add(grad_x[batch], 0.0, out=grad_x[batch])

    for_each_slice(multiply, grad_x.shape[0], grad_x.size)
    return grad_x


def leaky_relu_forward(x: np.ndarray, slope: float) -> tuple[np.ndarray, np.ndarray]:
    """y = x for x > 0, slope * x otherwise. Returns (y, cache = the mask x > 0)."""
    positive = x > 0
    return np.where(positive, x, x * x.dtype.type(slope)), positive


def leaky_relu_backward(grad_out: np.ndarray, positive: np.ndarray, slope: float) -> np.ndarray:
    """dL/dx = dL/dy where x > 0, slope * dL/dy otherwise."""
    return np.where(positive, grad_out, grad_out * grad_out.dtype.type(slope))


def sigmoid(x: np.ndarray) -> np.ndarray:
    """σ(x) = 1 / (1 + e^(−x)) without overflow: e^(−|x|) never exceeds 1."""
    exp_neg_abs = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + exp_neg_abs), exp_neg_abs / (1.0 + exp_neg_abs)).astype(x.dtype, copy=False)


def sigmoid_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """y = σ(x). Returns (y, cache = y)."""
    out = sigmoid(x)
    return out, out


def sigmoid_backward(grad_out: np.ndarray, out: np.ndarray) -> np.ndarray:
    """dL/dx = dL/dy · σ(x)(1 − σ(x)) (notes 001, 'derivative of sigmoid function'; ``cnn docs sigmoid``)."""
    return grad_out * out * (1 - out)


def tanh_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """y = tanh(x). Returns (y, cache = y)."""
    out = np.tanh(x)
    return out, out


def tanh_backward(grad_out: np.ndarray, out: np.ndarray) -> np.ndarray:
    """dL/dx = dL/dy · (1 − tanh²(x))."""
    return grad_out * (1 - out * out)
