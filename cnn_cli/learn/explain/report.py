"""How a worked example prints: numbers, sums of products, ✓/✗ beside the notes' values, and matrices typed on the command line."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cnn_cli.errors import CnnError

# Notes 003, "Convolution walk through" (cnn docs conv2d).
NOTES003_INPUT = np.array([[1.0, 6.0, 2.0], [5.0, 3.0, 1.0], [7.0, 0.0, 4.0]])


NOTES003_KERNEL = np.array([[1.0, 2.0], [-1.0, 0.0]])


# An upstream gradient for the backward example. The notes give none in numbers; these are
# small, exact in binary, and not all ones (all ones would hide a swapped index).
DEFAULT_GRAD = np.array([[1.0, -1.0], [2.0, 0.5]])


MINUS = "−"


CLOSE = 1e-12  # library against a by-hand sum: both exact up to float64 roundoff


@dataclass
class ExampleInput:
    """The learner's own matrices (``--input``, ``--kernel``, ``--grad``); None means the notes' numbers."""

    input: np.ndarray | None = None
    kernel: np.ndarray | None = None
    grad: np.ndarray | None = None

    @property
    def custom(self) -> bool:
        return self.input is not None or self.kernel is not None or self.grad is not None


@dataclass
class Report:
    """The printed walk-through of one example and the outcome of its checks."""

    name: str
    lines: list[str] = field(default_factory=list)
    checks: int = 0
    failures: int = 0
    errata: int = 0

    def say(self, text: str = "") -> None:
        self.lines.append(text)

    def matrix(self, label: str, values: np.ndarray, indent: int = 2) -> None:
        """A labelled matrix, one row per line, columns aligned."""
        grid = np.atleast_2d(values)
        cells = [[num(v) for v in row] for row in grid]
        width = max(len(c) for row in cells for c in row)
        pad = " " * indent
        self.say(f"{pad}{label} =")
        for row in cells:
            self.say(f"{pad}  [ " + "  ".join(c.rjust(width) for c in row) + " ]")

    def check(self, label: str, computed, expected, source: str, printed: str | None = None) -> bool:
        """✓ when ``computed`` (from the library) equals ``expected``.

        ``printed`` is the notes' text for the value (e.g. "0.023"): then the two must agree to
        the digits the notes print (half a unit in the last printed decimal). Without it they
        must agree to float64 roundoff.
        """
        computed_arr = np.asarray(computed, dtype=np.float64)
        expected_arr = np.asarray(expected, dtype=np.float64)
        if printed is not None:
            decimals = len(printed.split(".")[1]) if "." in printed else 0
            tolerance = 0.5 * 10.0**-decimals + CLOSE
        else:
            tolerance = CLOSE * max(1.0, float(np.max(np.abs(expected_arr), initial=0.0)))
        ok = computed_arr.shape == expected_arr.shape and bool(np.all(np.abs(computed_arr - expected_arr) <= tolerance))
        self.checks += 1
        self.failures += not ok
        shown = printed.replace("-", MINUS) if printed is not None else show(expected_arr)
        self.say(f"  {'✓' if ok else '✗'} {label}: cnn {show(computed_arr)}   {source}: {shown}")
        return ok

    def check_sum(self, label: str, written: str, by_hand: float, computed) -> bool:
        """One line: ``✓ Y[0,0] = 1·1 + 6·2 + 5·(−1) + 3·0 = 8   (cnn: 8)``, ✓ when the library's value equals the sum."""
        ok = abs(float(computed) - by_hand) <= CLOSE * max(1.0, abs(by_hand))
        self.checks += 1
        self.failures += not ok
        self.say(f"  {'✓' if ok else '✗'} {label} = {written} = {num(by_hand)}   (cnn: {num(float(computed))})")
        return ok

    def erratum(self, text: str) -> None:
        """A note's own misprint, quoted beside what the library computes (not a ✗); the guide lists them all."""
        self.errata += 1
        self.say(f"  note erratum: {text.rstrip('.')} (`cnn docs notes-errata`).")

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def num(value: float) -> str:
    """A number as the notes write it: 8, 0.5, −0.3 (a real minus sign; −0.0 printed as 0)."""
    value = float(value)
    if value == 0:
        return "0"
    if value == int(value) and abs(value) < 1e15:
        text = str(int(value))
    else:
        text = f"{value:.6g}"
    return text.replace("-", MINUS)


def factor(value: float) -> str:
    """A factor inside a product: negatives in parentheses, ``5·(−1)``."""
    text = num(value)
    return f"({text})" if text.startswith(MINUS) else text


def show(values: np.ndarray) -> str:
    """A scalar as a number, an array as nested brackets: [[8, 7], [4, 5]]."""
    values = np.asarray(values)
    if values.ndim == 0:
        return num(float(values))
    if values.ndim == 1:
        return "[" + ", ".join(num(v) for v in values) + "]"
    return "[" + ", ".join(show(row) for row in values) + "]"


def products(left: np.ndarray, right: np.ndarray) -> tuple[str, float]:
    """``1·1 + 6·2 + 5·(−1) + 3·0`` and its value, summed in the written order."""
    pairs = list(zip(np.ravel(left), np.ravel(right), strict=True))
    total = 0.0
    for a, b in pairs:
        total += float(a) * float(b)
    return " + ".join(f"{factor(a)}·{factor(b)}" for a, b in pairs), total


def as_nchw(matrix: np.ndarray) -> np.ndarray:
    """A 2-D map as (1, 1, H, W)."""
    return np.ascontiguousarray(matrix, dtype=np.float64)[None, None]


MAX_ENTRY = 1e6  # an entry of a worked example's matrix: squares and sums of such stay far from float64's limits


def parse_matrix(text: str, option: str) -> np.ndarray:
    """ "1,6,2;5,3,1;7,0,4" -> a 3x3 float array: rows split by ';', entries by ','."""
    rows = [row.strip() for row in text.strip().strip(";").split(";")]
    try:
        values = [[float(entry) for entry in row.split(",")] for row in rows]
    except ValueError:
        raise CnnError(
            f"{option}: expected numbers like '1,6,2;5,3,1;7,0,4' (',' between entries, ';' between rows), got {text!r}"
        ) from None
    if not values or any(len(row) != len(values[0]) for row in values):
        raise CnnError(f"{option}: every row needs the same number of entries, got {text!r}")
    matrix = np.array(values)
    if not np.all(np.isfinite(matrix)) or np.any(np.abs(matrix) > MAX_ENTRY):
        raise CnnError(f"{option}: entries must be numbers in [-{MAX_ENTRY:g}, {MAX_ENTRY:g}] (small worked examples), got {text!r}")
    if matrix.size > 100:
        raise CnnError(f"{option}: at most 100 entries (this is for small worked examples), got {matrix.size}")
    return matrix


def _no_matrices(given: ExampleInput, name: str) -> None:
    if given.custom:
        raise CnnError(f"{name}: --input/--kernel/--grad work only with cross-correlation, convolution, conv-backward, maxpool and relu")
