"""Weight initialisation from an explicit, seeded generator.

Values are drawn in float64 and then cast, so a float32 and a float64 model
built with the same seed hold the same weights up to rounding, and the same
seed always gives bit-identical weights.
"""

from __future__ import annotations

import numpy as np

INIT_SCHEMES = ("kaiming", "xavier")


def kaiming_normal(shape: tuple[int, ...], fan_in: int, rng: np.random.Generator, dtype: np.dtype) -> np.ndarray:
    """He et al. (2015): N(0, 2 / fan_in), which keeps activation variance through ReLUs."""
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)


def xavier_uniform(shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator, dtype: np.dtype) -> np.ndarray:
    """Glorot & Bengio (2010): U(−a, a) with a = sqrt(6 / (fan_in + fan_out))."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def init_weight(scheme: str, shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator, dtype: np.dtype) -> np.ndarray:
    """Draw a weight tensor with the named scheme ('kaiming' or 'xavier')."""
    if scheme == "kaiming":
        return kaiming_normal(shape, fan_in, rng, dtype)
    if scheme == "xavier":
        return xavier_uniform(shape, fan_in, fan_out, rng, dtype)
    raise ValueError(f"unknown init scheme {scheme!r}; expected one of {INIT_SCHEMES}")
