"""One line per tensor, backprop-ninja style, and a diagnosis when a tensor is wrong.

Karpathy's ``cmp(name, mine, theirs)`` prints whether two tensors are exactly
equal, approximately equal, and their largest difference. Here the line also says
where the worst entry is and what the two values there are, so the learner can go
straight to it. A wrong tensor is then compared with what each relevant bug-zoo
mistake gives on the same inputs (:func:`diagnose`); failing that, with a few
patterns (a constant factor, a flipped sign, the right values in the wrong places).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cnn_cli.learn.exercises.spec import describe
from cnn_cli.learn.learner_process import Number

RTOL = 1e-6  # "close": float64 code computed in another order agrees to ~1e-15; a real mistake is off by 1e-2 or more
NUMERIC_TOLERANCE = 1e-6  # relative error against central differences (ε = 1e-5, float64)
FLOOR_FRACTION = 1e-2  # as cnn gradcheck: entries below 1% of the tensor's largest are judged against that 1%


@dataclass
class TensorResult:
    """How one output compared: ``line`` is what is printed; ``problem`` is set when it is not even an array of the right shape."""

    name: str
    ok: bool
    line: str
    problem: str = ""
    mine: np.ndarray | None = None
    size: float = 0.0  # max abs diff (or max relative error): how far off, to pick the worst case of a stage


def as_array(value: Any, scalar: bool = False) -> tuple[np.ndarray | None, str]:
    """The learner's value as a float64 array, or what is wrong with it (a str, None, a tuple, integers...)."""
    if isinstance(value, Number):
        return np.asarray(value.value, dtype=np.float64), ""
    if not isinstance(value, np.ndarray):
        return None, f"is {describe(value)}, not {'a number' if scalar else 'an array'}"
    if value.dtype.kind == "b" or value.dtype.kind in "iu":
        return None, f"holds {value.dtype} values: a gradient needs floats (np.zeros_like(x) keeps x's float64)"
    if value.dtype != np.float64:
        return None, f"is {value.dtype}: the inputs are float64 and the gradient must keep that precision (use np.zeros_like(x))"
    return value.astype(np.float64, copy=False), ""


def _index(flat: int, shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(int(i)) for i in np.unravel_index(flat, shape)) + "]" if shape else "[]"


def _num(value: float) -> str:
    text = f"{value:.6g}"
    return "−" + text[1:] if text.startswith("-") else text


def shape_result(name: str, value: Any, expected: np.ndarray, width: int) -> TensorResult:
    """Stage 1: the right type and shape."""
    scalar = expected.shape == ()
    mine, problem = as_array(value, scalar)
    label = name.ljust(width)
    if mine is None:
        return TensorResult(name, False, f"{label}  ✗ {problem}", problem)
    if scalar and mine.size == 1:
        return TensorResult(name, True, f"{label}  one number  ✓", mine=mine.reshape(()))
    if scalar:
        problem = f"is an array of shape {mine.shape}, not one number: the loss is the mean over the batch"
        return TensorResult(name, False, f"{label}  ✗ {problem}", problem, mine)
    if mine.shape != expected.shape:
        problem = f"has shape {mine.shape}, expected {expected.shape}"
        return TensorResult(name, False, f"{label}  {str(mine.shape):<16} ✗ expected {expected.shape}", problem, mine)
    return TensorResult(name, True, f"{label}  {str(mine.shape):<16} ✓", mine=mine)


def value_result(name: str, value: Any, expected: np.ndarray, width: int) -> TensorResult:
    """Stages 2-4: exact / close / max abs diff / where, against cnn's answer."""
    checked = shape_result(name, value, expected, width)
    if not checked.ok or checked.mine is None:
        return checked
    mine = checked.mine.reshape(expected.shape)
    label = name.ljust(width)
    exact = bool(np.array_equal(mine, expected))
    scale = float(np.max(np.abs(expected), initial=0.0))
    finite = bool(np.all(np.isfinite(mine)))
    close = finite and bool(np.allclose(mine, expected, rtol=RTOL, atol=RTOL * max(scale, 1e-12)))
    diff = np.abs(mine - expected)
    if not finite:
        where = int(np.flatnonzero(~np.isfinite(mine))[0])
    else:
        where = int(np.argmax(diff)) if diff.size else 0
    biggest = _num(float(np.max(diff, initial=0.0)))
    line = f"{label} | exact: {'yes' if exact else 'no ':3} | close: {'yes' if close else 'no ':3} | max abs diff {biggest}"
    if not close and expected.size:
        line += (
            f" | worst at {_index(where, expected.shape)}: yours {_num(float(mine.flat[where]))}, cnn {_num(float(expected.flat[where]))}"
        )
    return TensorResult(name, close, line, mine=mine, size=float(np.max(diff, initial=0.0)) if finite else float("inf"))


def relative_error(mine: np.ndarray, numeric: np.ndarray) -> float:
    """max |a − n| / max(|a| + |n|, floor), floor = 1% of the largest |n| (from the numeric side only)."""
    if numeric.size == 0:
        return 0.0
    floor = max(FLOOR_FRACTION * float(np.max(np.abs(numeric))), np.finfo(np.float64).tiny)
    errors = np.abs(mine - numeric) / np.maximum(np.abs(mine) + np.abs(numeric), floor)
    return float(np.max(errors)) if np.all(np.isfinite(errors)) else float("nan")


def numeric_result(name: str, value: Any, numeric: np.ndarray, width: int) -> TensorResult:
    """Stage 5: the learner's gradient against central differences of the learner's own forward."""
    checked = shape_result(name, value, numeric, width)
    if not checked.ok or checked.mine is None:
        return checked
    mine = checked.mine.reshape(numeric.shape)
    error = relative_error(mine, numeric)
    ok = bool(error <= NUMERIC_TOLERANCE)
    diff = np.abs(mine - numeric)
    where = int(np.argmax(diff)) if diff.size else 0
    biggest = _num(float(np.max(diff, initial=0.0)))
    line = f"{name.ljust(width)} | max rel err {error:.1e} {'✓' if ok else '✗'} | max abs diff {biggest}"
    if not ok:
        yours, theirs = _num(float(mine.flat[where])), _num(float(numeric.flat[where]))
        line += f" | worst at {_index(where, numeric.shape)}: yours {yours}, central differences {theirs}"
    return TensorResult(name, ok, line, mine=mine, size=error)


def pattern(mine: np.ndarray, expected: np.ndarray, batch: int | None) -> str:
    """A diagnosis from the numbers alone, when no bug-zoo mistake gives the learner's tensor."""
    if not np.all(np.isfinite(mine)):
        return "yours has nan or inf: an overflow (exp of a large number?) or 0/0; the stable form is in the docs"
    if not np.any(mine) and np.any(expected):
        return "yours is all zeros: nothing was written into it (did you return the zeros you started from?)"
    nonzero = np.abs(expected) > 1e-12 * max(float(np.max(np.abs(expected), initial=0.0)), 1e-300)
    if np.any(nonzero) and np.all((mine == 0) | nonzero):
        ratios = mine[nonzero] / expected[nonzero]
        ratio = float(ratios[0])
        if np.allclose(ratios, ratio, rtol=1e-6) and not np.isclose(ratio, 1.0):
            if np.isclose(ratio, -1.0):
                return "yours is cnn's with the sign flipped everywhere"
            because = ""
            if batch and batch > 1 and (np.isclose(ratio, batch) or np.isclose(ratio, 1 / batch)):
                because = f" (the batch size N = {batch}: the loss is a mean over the batch)"
            return f"yours is cnn's times {ratio:.6g} everywhere: a constant factor is missing or extra{because}"
    if mine.size > 1 and np.allclose(np.sort(mine.reshape(-1)), np.sort(expected.reshape(-1)), rtol=RTOL, atol=1e-12):
        return "yours holds cnn's values, but in other places: an index, a stride or a reshape order is off"
    wrong = ~np.isclose(mine, expected, rtol=RTOL, atol=RTOL * max(float(np.max(np.abs(expected), initial=0.0)), 1e-12))
    return f"{int(wrong.sum())} of {wrong.size} entries differ; no known mistake gives exactly yours"


def shape_hint(name: str, shape: tuple[int, ...], expected: tuple[int, ...], inputs: dict[str, tuple[int, ...]]) -> str:
    """Why a tensor may have come back with the wrong shape."""
    if len(shape) == 2 and shape == expected[::-1]:
        return f"{shape} is the transpose of {expected}"
    if int(np.prod(shape)) == int(np.prod(expected)):
        return f"the right number of values in another shape: reshape to {expected}"
    for input_name, input_shape in inputs.items():
        if shape == input_shape and input_shape != expected:
            return f"that is the shape of {input_name}; {name} must have the shape of what it differentiates, {expected}"
    if len(shape) == len(expected) and all(s >= e for s, e in zip(shape, expected, strict=True)) and shape != expected:
        return f"larger than {expected} by {tuple(s - e for s, e in zip(shape, expected, strict=True))}: crop the padding off"
    return ""


def show_matrix(array: np.ndarray, indent: str) -> list[str]:
    """A small array as rows of numbers (leading axes of length 1 dropped), or nothing when it is too big to read."""
    grid = np.asarray(array, dtype=np.float64)
    while grid.ndim > 2 and grid.shape[0] == 1:
        grid = grid[0]
    if grid.ndim > 2 or grid.size > 36:
        return []
    grid = np.atleast_2d(grid)
    cells = [[_num(float(v)) for v in row] for row in grid]
    width = max(len(cell) for row in cells for cell in row)
    return [indent + "[ " + "  ".join(cell.rjust(width) for cell in row) + " ]" for row in cells]
