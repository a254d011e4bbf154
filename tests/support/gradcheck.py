"""Helpers for numeric gradient checks in float64 (STYLE habit 5).

A layer maps x to y. With a fixed random upstream gradient G (never all ones,
which would hide a wrong sign or a transposed index), the scalar
L(x) = Σ G · y(x) has dL/dx = backward(G). Central differences estimate the
same derivative one entry at a time:

    dL/dx[k] ≈ (L(x + ε e_k) − L(x − ε e_k)) / 2ε

and the two are compared with a relative error, printed when the check fails.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# ε ≈ (float64 machine epsilon)^(1/3), the step that balances the curvature error
# of central differences (~ε²) against roundoff (~ε_mach/ε). A correct backward then
# agrees to 1e-7 or better in the worst entry of these tests; a broken one is off by O(0.1–1).
EPS = 1e-5
TOLERANCE = 1e-6
# Roundoff leaves an absolute error of ~1e-10 on every numeric entry, a large *relative*
# error on an entry that happens to be 1e-6 while its neighbours are 1. So an entry is
# compared against at least FLOOR_FRACTION of the tensor's largest gradient. This also
# turns 0 against 0 (a max-pool loser, a dropped unit) into an error of 0.
FLOOR_FRACTION = 1e-3


def numeric_gradient(f: Callable[[], float], x: np.ndarray, eps: float = EPS) -> np.ndarray:
    """Central-difference gradient of the scalar ``f()`` with respect to every entry of ``x``.

    ``x`` is perturbed in place and restored, so ``f`` must read the same array
    (a layer's parameter, or an input captured by the closure). x must be float64.
    Returns an array shaped like ``x``.
    """
    if x.dtype != np.float64:
        raise TypeError(f"gradient checks need float64, got {x.dtype}")
    if not x.flags.c_contiguous:
        raise ValueError("x must be C-contiguous, so that perturbing its flat view perturbs x")
    grad = np.zeros_like(x)
    flat_x = x.reshape(-1)  # a view: writing here perturbs x
    flat_grad = grad.reshape(-1)
    for k in range(flat_x.size):
        original = flat_x[k]
        flat_x[k] = original + eps
        loss_plus = f()
        flat_x[k] = original - eps
        loss_minus = f()
        flat_x[k] = original
        flat_grad[k] = (loss_plus - loss_minus) / (2 * eps)
    return grad


def elementwise_relative_error(analytic: np.ndarray, numeric: np.ndarray) -> np.ndarray:
    """|a_k − n_k| / max(|a_k| + |n_k|, floor) per entry, floor = FLOOR_FRACTION · max_j (|a_j| + |n_j|).

    0 for a perfect match, 1 for a sign error, ~1 for unrelated values.
    """
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    if analytic.shape != numeric.shape:
        raise ValueError(f"shape mismatch: analytic {analytic.shape} vs numeric {numeric.shape}")
    magnitude = np.abs(analytic) + np.abs(numeric)
    floor = max(FLOOR_FRACTION * float(np.max(magnitude, initial=0.0)), np.finfo(np.float64).tiny)
    return np.abs(analytic - numeric) / np.maximum(magnitude, floor)


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """The largest :func:`elementwise_relative_error` (0.0 for empty arrays)."""
    return float(np.max(elementwise_relative_error(analytic, numeric), initial=0.0))


def assert_gradient_close(name: str, analytic: np.ndarray, numeric: np.ndarray, tolerance: float = TOLERANCE) -> float:
    """Fail with the relative error and the worst entry when analytic and numeric gradients differ.

    Returns the relative error, so callers can record it.
    """
    error = relative_error(analytic, numeric)
    if not error <= tolerance:  # written so that NaN fails too
        a = np.asarray(analytic, dtype=np.float64).reshape(-1)
        n = np.asarray(numeric, dtype=np.float64).reshape(-1)
        worst = int(np.argmax(np.nan_to_num(elementwise_relative_error(a, n), nan=np.inf)))
        index = np.unravel_index(worst, np.shape(analytic))
        raise AssertionError(
            f"{name}: relative error {error:.3e} > {tolerance:.0e}; worst entry {tuple(int(i) for i in index)}: "
            f"analytic {a[worst]:.10g} vs numeric {n[worst]:.10g}"
        )
    return error


def check_layer(
    layer,
    x: np.ndarray,
    rng: np.random.Generator,
    tolerance: float = TOLERANCE,
    eps: float = EPS,
) -> dict[str, float]:
    """Gradient-check a layer's input gradient and every parameter gradient with a random upstream gradient.

    Args:
        layer: any ``cnn_cli.layers`` layer in float64 (forward/backward/params/grads).
        x: float64 input batch, (N, *input_shape).
        rng: draws the upstream gradient G, shaped like the output.
    Returns:
        {"input": rel err, "<param>": rel err, ...}. Raises AssertionError on failure.
    """
    x = x.copy()
    out = layer.forward(x)
    upstream = rng.standard_normal(out.shape)

    def loss() -> float:
        return float(np.sum(upstream * layer.forward(x)))

    layer.forward(x)  # the backward reads the cache of the unperturbed forward
    grad_x = layer.backward(upstream, need_input_grad=True)
    analytic = {"input": grad_x, **{key: value.copy() for key, value in layer.grads.items()}}
    if set(layer.grads) != set(layer.params):
        raise AssertionError(f"{layer.name}: grads {sorted(layer.grads)} do not match params {sorted(layer.params)}")
    errors = {"input": assert_gradient_close(f"{layer.name} dL/dx", grad_x, numeric_gradient(loss, x, eps), tolerance)}
    for key, param in layer.params.items():
        numeric = numeric_gradient(loss, param, eps)
        errors[key] = assert_gradient_close(f"{layer.name} dL/d{key}", analytic[key], numeric, tolerance)
    return errors


def shuffled_linspace(shape: tuple[int, ...], rng: np.random.Generator, low: float = -1.0, high: float = 1.0) -> np.ndarray:
    """Distinct, evenly spaced values in random order (Chainer's trick): no two entries tie.

    Max-pool inputs made this way have one clear maximum per window, and neighbouring
    values are (high − low)/size apart, far more than a finite-difference step.
    """
    size = int(np.prod(shape))
    return rng.permutation(np.linspace(low, high, size)).reshape(shape)


def away_from_zero(shape: tuple[int, ...], rng: np.random.Generator, margin: float = 0.1) -> np.ndarray:
    """Random values with |x| in [margin, 1] and random sign: ReLU's kink at 0 stays out of reach of ±ε."""
    magnitude = rng.uniform(margin, 1.0, size=shape)
    sign = rng.choice([-1.0, 1.0], size=shape)
    return sign * magnitude
