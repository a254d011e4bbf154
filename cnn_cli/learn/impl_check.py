"""``cnn gradcheck --impl FILE.py``: check a learner's own backward functions.

The file (start from ``cnn explain --exercise conv``) defines any of these pairs,
CS231n-style, each forward returning ``(out, cache)`` in whatever cache format
the learner likes, and each backward reading only that cache:

    conv2d_forward(x, w, b, stride=1, pad=0) -> (out, cache)
    conv2d_backward(grad_out, cache)          -> (dx, dw, db)
    relu_forward(x)                           -> (out, cache)
    relu_backward(grad_out, cache)            -> dx
    maxpool2d_forward(x, size=2, stride=2)    -> (out, cache)
    maxpool2d_backward(grad_out, cache)       -> dx

Shapes: x (N, C, H, W), w (C_out, C_in, kH, kW), b (C_out,), as in cnn.

For each pair found, on a small float64 batch and a random upstream gradient G
(never all ones): the forward is compared with cnn's; each returned gradient is
compared with central differences of L = Σ G · forward(...) (the learner's own
forward, so a check never depends on cnn being right) and with cnn's hand-written
backward. The convolution runs with stride 2 and padding 1 on a 3x3 kernel, so
overlapping windows, stride and padding are all exercised.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from cnn_cli.errors import CnnError
from cnn_cli.learn.gradcheck import _max_relative_error
from cnn_cli.nn import activations as nn_act
from cnn_cli.nn import conv as nn_conv
from cnn_cli.nn import pool as nn_pool

EPS = 1e-5
TOLERANCE = 1e-6
SIGNATURES = {
    "conv2d": ("conv2d_forward(x, w, b, stride=1, pad=0) -> (out, cache)", "conv2d_backward(grad_out, cache) -> (dx, dw, db)"),
    "relu": ("relu_forward(x) -> (out, cache)", "relu_backward(grad_out, cache) -> dx"),
    "maxpool2d": ("maxpool2d_forward(x, size=2, stride=2) -> (out, cache)", "maxpool2d_backward(grad_out, cache) -> dx"),
}


@dataclass
class ImplResult:
    """One tensor of one learner function: e.g. ("conv2d_backward", "dw")."""

    function: str
    tensor: str
    vs_numeric: float
    vs_cnn: float
    passed: bool
    message: str = ""


def load_learner_file(path: Path) -> ModuleType:
    """Import the learner's file as a module of its own (it is the learner's code: run as written)."""
    path = Path(path)
    if not path.is_file():
        raise CnnError(f"--impl: {path}: no such file")
    spec = importlib.util.spec_from_file_location(f"cnn_learner_{abs(hash(str(path.resolve())))}", path)
    if spec is None or spec.loader is None:
        raise CnnError(f"--impl: {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise CnnError(f"--impl: {path}: syntax error on line {exc.lineno}: {exc.msg}") from None
    except Exception as exc:  # the learner's module-level code failed: report it as their input
        raise CnnError(f"--impl: {path}: importing it raised {type(exc).__name__}: {exc}") from None
    finally:
        sys.modules.pop(spec.name, None)
    if not any(hasattr(module, f"{op}_backward") for op in SIGNATURES):
        names = ", ".join(f"{op}_backward" for op in SIGNATURES)
        raise CnnError(f"--impl: {path}: defines none of {names} (start from `cnn explain --exercise conv`)")
    return module


def _numeric(loss: Callable[[], float], array: np.ndarray) -> np.ndarray:
    grad = np.zeros_like(array)
    flat = array.reshape(-1)
    flat_grad = grad.reshape(-1)
    for k in range(flat.size):
        original = flat[k]
        flat[k] = original + EPS
        plus = loss()
        flat[k] = original - EPS
        minus = loss()
        flat[k] = original
        flat_grad[k] = (plus - minus) / (2 * EPS)
    return grad


def _compare(function: str, tensor: str, mine, numeric: np.ndarray, library: np.ndarray | None) -> ImplResult:
    try:
        mine = np.asarray(mine, dtype=np.float64)
    except (TypeError, ValueError):
        return ImplResult(function, tensor, np.nan, np.nan, False, f"returned {type(mine).__name__}, not an array")
    if mine.shape != numeric.shape:
        return ImplResult(function, tensor, np.nan, np.nan, False, f"shape {mine.shape}, expected {numeric.shape}")
    vs_numeric = _max_relative_error(mine.reshape(-1), numeric.reshape(-1))
    vs_cnn = np.nan if library is None else _max_relative_error(mine.reshape(-1), np.asarray(library, dtype=np.float64).reshape(-1))
    passed = bool(vs_numeric <= TOLERANCE)
    return ImplResult(function, tensor, vs_numeric, vs_cnn, passed)


def _failed_call(function: str, tensors: tuple[str, ...], exc: Exception) -> list[ImplResult]:
    reason = (
        "not written yet (raises NotImplementedError)" if isinstance(exc, NotImplementedError) else f"raised {type(exc).__name__}: {exc}"
    )
    return [ImplResult(function, tensor, np.nan, np.nan, False, reason) for tensor in tensors]


def _forward_check(function: str, out, library_out: np.ndarray) -> ImplResult | None:
    out = np.asarray(out, dtype=np.float64)
    if out.shape != library_out.shape or not np.allclose(out, library_out, rtol=1e-10, atol=1e-12):
        return ImplResult(function, "out", np.nan, np.nan, False, "the forward differs from cnn's: fix it first (the skeleton's is right)")
    return None


def _check_op(
    op: str,
    tensors: dict[str, np.ndarray],
    forward: Callable[[], Any],
    library_forward: Callable[[], tuple[np.ndarray, Any]],
    backward: Callable[[np.ndarray, Any], tuple[Any, ...]],
    library_backward: Callable[[np.ndarray, Any], tuple[np.ndarray | None, ...]],
    rng: np.random.Generator,
) -> list[ImplResult]:
    """Check one op of the learner's file: its forward must match cnn's; then every gradient its backward returns
    is compared with central differences of sum(upstream · forward) and with cnn's own backward.

    Args:
        tensors: the inputs the backward returns gradients for, in its order, by the gradient's name (``{"dx": x}``).
        forward: the learner's forward on those inputs, ``(out, cache)``; library_forward: cnn's.
        backward: ``(upstream, cache) ->`` the learner's gradients as a tuple; library_backward: cnn's.
    """
    try:
        out, cache = forward()
    except Exception as exc:
        return _failed_call(f"{op}_forward", ("out",), exc)
    library_out, library_cache = library_forward()
    wrong = _forward_check(f"{op}_forward", out, library_out)
    if wrong:
        return [wrong]
    upstream = rng.standard_normal(library_out.shape)
    try:
        grads = backward(upstream.copy(), cache)
    except Exception as exc:
        return _failed_call(f"{op}_backward", tuple(tensors), exc)
    library_grads = library_backward(upstream, library_cache)

    def loss() -> float:
        return float(np.sum(upstream * np.asarray(forward()[0])))

    return [
        _compare(f"{op}_backward", name, grad, _numeric(loss, array), library_grad)
        for (name, array), grad, library_grad in zip(tensors.items(), grads, library_grads, strict=True)
    ]


def _check_conv(module: ModuleType, rng: np.random.Generator) -> list[ImplResult]:
    x = rng.standard_normal((2, 2, 5, 5))
    w = rng.standard_normal((3, 2, 3, 3))
    b = rng.standard_normal(3)
    stride, pad = 2, 1

    def backward(upstream: np.ndarray, cache: Any) -> tuple[Any, ...]:
        dx, dw, db = module.conv2d_backward(upstream, cache)
        return dx, dw, db

    return _check_op(
        "conv2d",
        {"dx": x, "dw": w, "db": b},
        lambda: module.conv2d_forward(x, w, b, stride=stride, pad=pad),
        lambda: nn_conv.conv2d_forward(x, w, b, (stride, stride), (pad, pad)),
        backward,
        nn_conv.conv2d_backward,
        rng,
    )


def _check_relu(module: ModuleType, rng: np.random.Generator) -> list[ImplResult]:
    # |x| ≥ 0.1: no ±ε step crosses the kink at 0.
    x = rng.uniform(0.1, 1.0, (2, 3, 4, 4)) * rng.choice([-1.0, 1.0], (2, 3, 4, 4))
    return _check_op(
        "relu",
        {"dx": x},
        lambda: module.relu_forward(x),
        lambda: nn_act.relu_forward(x),
        lambda upstream, cache: (module.relu_backward(upstream, cache),),
        lambda upstream, mask: (nn_act.relu_backward(upstream, mask),),
        rng,
    )


def _check_maxpool(module: ModuleType, rng: np.random.Generator) -> list[ImplResult]:
    # Distinct values 1/96 apart: one clear winner per window, far more than ε away from a tie.
    x = rng.permutation(np.linspace(-1.0, 1.0, 2 * 3 * 4 * 4)).reshape(2, 3, 4, 4)
    return _check_op(
        "maxpool2d",
        {"dx": x},
        lambda: module.maxpool2d_forward(x, size=2, stride=2),
        lambda: nn_pool.maxpool2d_forward(x, (2, 2), (2, 2)),
        lambda upstream, cache: (module.maxpool2d_backward(upstream, cache),),
        lambda upstream, cache: (nn_pool.maxpool2d_backward(upstream, cache),),
        rng,
    )


CHECKS = {"conv2d": _check_conv, "relu": _check_relu, "maxpool2d": _check_maxpool}


def check_learner_file(path: Path, seed: int = 0) -> list[ImplResult]:
    """Check every ``*_backward`` the file defines (with its ``*_forward``); see the module docstring."""
    module = load_learner_file(path)
    rng = np.random.default_rng(seed)
    results: list[ImplResult] = []
    for op, check in CHECKS.items():
        if not hasattr(module, f"{op}_backward"):
            continue
        if not hasattr(module, f"{op}_forward"):
            results.append(ImplResult(f"{op}_forward", "out", np.nan, np.nan, False, f"missing; expected {SIGNATURES[op][0]}"))
            continue
        results.extend(check(module, rng))
    return results


def format_impl(results: list[ImplResult]) -> str:
    rows = [("function", "tensor", "vs numeric", "vs cnn", "result")]
    for r in results:
        rows.append(
            (
                r.function,
                r.tensor,
                "-" if np.isnan(r.vs_numeric) else f"{r.vs_numeric:.2e}",
                "-" if np.isnan(r.vs_cnn) else f"{r.vs_cnn:.2e}",
                ("PASS" if r.passed else "FAIL") + (f"  {r.message}" if r.message else ""),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join([row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2].rjust(widths[2]), row[3].rjust(widths[3]), row[4]])
        for row in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    failed = [f"{r.function} {r.tensor}" for r in results if not r.passed]
    lines.append(f"{len(results) - len(failed)}/{len(results)} passed" + (f"; wrong: {', '.join(failed)}" if failed else ""))
    lines.append(
        f"relative error |a − n| / max(|a| + |n|, floor); PASS needs ≤ {TOLERANCE:.0e} against central differences (ε = {EPS:.0e})."
    )
    if failed:
        lines.append("Docs: cnn docs conv2d / relu / maxpool2d derive each gradient; cnn explain conv-backward works one by hand.")
    return "\n".join(lines)
