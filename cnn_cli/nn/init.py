"""Weight initialisation from an explicit, seeded generator.

Values are drawn in float64 and then cast, so a float32 and a float64 model
built with the same seed hold the same weights up to rounding, and the same
seed always gives bit-identical weights.

The hidden layers get ``kaiming`` (or ``xavier``); the output layer, the last
conv2d or dense before the loss, gets ``small`` unless it names its own init,
so that an untrained net starts at the loss of a uniform guess, ln C (see
``cnn docs initial-loss``).
"""

from __future__ import annotations

import numpy as np

INIT_SCHEMES = ("kaiming", "xavier", "small")
# The init of the output layer (the last layer with weights) when its spec names none.
OUTPUT_INIT = "small"
OUTPUT_GAIN = 0.1


def kaiming_normal(shape: tuple[int, ...], fan_in: int, rng: np.random.Generator, dtype: np.dtype) -> np.ndarray:
    """He et al. (2015): N(0, 2 / fan_in), which keeps activation variance through ReLUs."""
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)


def xavier_uniform(shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator, dtype: np.dtype) -> np.ndarray:
    """Glorot & Bengio (2010): U(−a, a) with a = sqrt(6 / (fan_in + fan_out))."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def small_normal(shape: tuple[int, ...], fan_in: int, rng: np.random.Generator, dtype: np.dtype) -> np.ndarray:
    """The output layer's init: N(0, OUTPUT_GAIN² / fan_in), a tenth of LeCun's standard deviation 1/√fan_in.

    The logits then have a standard deviation of about OUTPUT_GAIN·√E[x²] (x: the output
    layer's input), a few tenths at most, so the untrained softmax is close to uniform and
    the loss close to ln C. PyTorch's default U(±1/√fan_in) is not small enough on notes 000's
    network: its ReLU features have E[x²] ≈ 3 and a mean ≈ 1, and the loss starts near 2.7.
    See ``cnn docs initial-loss``.
    """
    return (rng.standard_normal(shape) * (OUTPUT_GAIN / np.sqrt(fan_in))).astype(dtype)


def init_weight(scheme: str, shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator, dtype: np.dtype) -> np.ndarray:
    """Draw a weight tensor with the named scheme ('kaiming', 'xavier' or 'small')."""
    if scheme == "kaiming":
        return kaiming_normal(shape, fan_in, rng, dtype)
    if scheme == "xavier":
        return xavier_uniform(shape, fan_in, fan_out, rng, dtype)
    if scheme == "small":
        return small_normal(shape, fan_in, rng, dtype)
    raise ValueError(f"unknown init scheme {scheme!r}; expected one of {INIT_SCHEMES}")
