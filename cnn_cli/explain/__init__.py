"""``cnn explain``: the lecture notes' worked examples, computed live by the library.

Every number printed as "cnn" comes from a call into ``cnn_cli.nn`` (or a model
built from ``cnn_cli.layers``) at the moment the example runs; nothing is
re-typed. Beside it stands the value the notes print, or, for the learner's own
matrices, the same quantity worked out by hand (a plain sum of products written
out in the line). Each comparison is a ✓ or a ✗; any ✗ makes ``cnn explain``
exit 1, so a broken library function shows up here as it would in a test.

Where a note's own printed number is wrong, the example says so as a note
erratum (not a ✗): the notes are quoted, not trusted.

The library modules are looked up as module attributes at call time
(``nn_conv.conv2d_forward``), so that a deliberately broken function swapped into
the module is the one that runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnn_cli import optim
from cnn_cli.errors import CnnError
from cnn_cli.nn import activations as nn_act
from cnn_cli.nn import conv as nn_conv
from cnn_cli.nn import losses as nn_losses
from cnn_cli.nn import pool as nn_pool

# Notes 003, "Convolution walk through".
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
        self.errata += 1
        self.say(f"  note erratum: {text}")

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
    if not np.all(np.isfinite(matrix)):
        raise CnnError(f"{option}: entries must be finite numbers, got {text!r}")
    if matrix.size > 100:
        raise CnnError(f"{option}: at most 100 entries (this is for small worked examples), got {matrix.size}")
    return matrix


# ---------------------------------------------------------------- conv examples


def _conv_operands(given: ExampleInput) -> tuple[np.ndarray, np.ndarray, bool]:
    x = NOTES003_INPUT if given.input is None else given.input
    k = NOTES003_KERNEL if given.kernel is None else given.kernel
    if k.shape[0] > x.shape[0] or k.shape[1] > x.shape[1]:
        raise CnnError(f"--kernel: a {k.shape[0]}x{k.shape[1]} kernel does not fit a {x.shape[0]}x{x.shape[1]} input")
    notes = given.input is None and given.kernel is None
    return x, k, notes


CONV_INTROS = {
    "cross-correlation": (
        "Cross-correlation Y = X ⋆ K (notes 003, 'Convolution walk through'; notes 000 §2.1).",
        "The kernel slides over the input as it is; each output is the sum of",
        "input × kernel over the window under it.",
    ),
    "convolution": (
        "Convolution Conv(X, K) = X ⋆ rot180(K) (notes 003, 'Convolution').",
        "A true convolution first turns the kernel by 180°, then slides it like a cross-correlation.",
    ),
    "conv-backward": ("Backward of Y = X ⋆ K + b (notes 000 §2.3–§2.5, notes 003 'Backward propagation').",),
}


def _conv_report(title: str, given: ExampleInput) -> tuple[Report, np.ndarray, np.ndarray, bool]:
    """The report of one convolution topic, opened by its :data:`CONV_INTROS` lines and the operands X and K;
    with X, K and whether they are notes 003's."""
    x, k, notes = _conv_operands(given)
    report = Report(title)
    for line in CONV_INTROS[title]:
        report.say(line)
    report.matrix("X", x)
    report.matrix("K", k)
    return report, x, k, notes


def _sums_of_products(report: Report, x: np.ndarray, k: np.ndarray, out: np.ndarray, name: str) -> None:
    """Each output pixel as its sum of products, checked against the library's output."""
    k_h, k_w = k.shape
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            window = x[i : i + k_h, j : j + k_w]
            written, total = products(window, k)
            report.check_sum(f"{name}[{i},{j}]", written, total, out[i, j])


def cross_correlation(given: ExampleInput) -> Report:
    report, x, k, notes = _conv_report("cross-correlation", given)
    out, cache = nn_conv.conv2d_forward(as_nchw(x), as_nchw(k), None)
    y = out[0, 0]
    report.matrix("Y = cnn_cli.nn.conv.conv2d_forward(X, K)", y)
    report.say(f"  size: {x.shape[0]} − {k.shape[0]} + 1 = {y.shape[0]} rows (notes 003's Y = I − K + 1, no padding, stride 1)")
    if notes:
        report.erratum("notes 003 says 'the size of input subtracted by size of the output plus 1'; it means the kernel: Y = I − K + 1.")
    report.say()
    report.say("Each output as its sum of products (window entry · kernel entry, row by row):")
    _sums_of_products(report, x, k, y, "Y")
    if notes:
        report.check("Y", y, [[8, 7], [4, 5]], "notes 003", "[[8, 7], [4, 5]]")
    report.say()
    report.say("im2col: every window becomes one row of a matrix, the kernel one column,")
    report.say("and the whole layer is a single matrix product (cnn_cli/nn/conv.py keeps these rows in its cache):")
    cols = cache.cols[0]
    kernel_column = np.ascontiguousarray(k).reshape(-1)
    for row_index, row in enumerate(cols):
        i, j = divmod(row_index, y.shape[1])
        value = float(row @ kernel_column)
        report.say(f"  row {row_index} (Y[{i},{j}]): {show(row)} · {show(kernel_column)}ᵀ = {num(value)}")
    report.check("cols @ vec(K)", (cols @ kernel_column).reshape(y.shape), y, "conv2d_forward")
    if notes:
        report.say()
        report.say("Notes 003 writes step 1 as 1·1 + 2·6 + −1·5 + 0·3 (kernel entry first); the products are the same.")
    return report


def convolution(given: ExampleInput) -> Report:
    report, x, k, notes = _conv_report("convolution", given)
    flipped = np.ascontiguousarray(k[::-1, ::-1])
    report.matrix("rot180(K)", flipped)
    if notes:
        report.check("rot180(K)", flipped, [[0, -1], [2, 1]], "notes 003", "[[0, −1], [2, 1]]")
    out, _ = nn_conv.conv2d_forward(as_nchw(x), as_nchw(flipped), None)
    y = out[0, 0]
    report.matrix("Conv(X, K) = cnn_cli.nn.conv.conv2d_forward(X, rot180(K))", y)
    _sums_of_products(report, x, flipped, y, "Conv")
    if notes:
        report.check("Conv(X, K)", y, [[7, 5], [11, 3]], "notes 003", "[[7, 5], [11, 3]]")
        report.erratum(
            "notes 003's 'I ⋆ K = I ⋆ rot180(K)' is garbled in extraction; it means cross-correlation ≠ convolution, "
            "Conv(I, K) = I ⋆ rot180(K)."
        )
    plain, _ = nn_conv.conv2d_forward(as_nchw(x), as_nchw(k), None)
    report.say()
    report.say(f"Cross-correlation of the same input gave {show(plain[0, 0])}: a different answer.")
    report.say("Why cnn (like PyTorch's Conv2d) computes cross-correlation anyway: the kernel is learned.")
    report.say("A network trained with one would learn the flipped kernel of the other, so the forward pass")
    report.say("loses nothing. The rotation comes back in the backward pass: ∂L/∂X is a full correlation")
    report.say("of ∂L/∂Y with rot180(K) (see `cnn explain conv-backward`).")
    return report


def conv_backward(given: ExampleInput) -> Report:
    report, x, k, notes = _conv_report("conv-backward", given)
    out, cache = nn_conv.conv2d_forward(as_nchw(x), as_nchw(k), np.zeros(1))
    out_h, out_w = out.shape[2:]
    if given.grad is None:
        grad_y = np.resize(DEFAULT_GRAD.reshape(-1), out_h * out_w).reshape(out_h, out_w)
    else:
        grad_y = given.grad
        if grad_y.shape != (out_h, out_w):
            raise CnnError(f"--grad: ∂L/∂Y must have the output's shape {out_h}x{out_w}, got {grad_y.shape[0]}x{grad_y.shape[1]}")
    report.matrix("∂L/∂Y (the upstream gradient)", grad_y)
    grad_x, grad_k, grad_b = nn_conv.conv2d_backward(as_nchw(grad_y), cache)
    grad_x = np.zeros((1, 1, *x.shape)) * np.nan if grad_x is None else grad_x  # None would be a library bug: shown as ✗
    grad_b = np.array([np.nan]) if grad_b is None else grad_b
    k_h, k_w = k.shape

    report.say()
    report.say("∂L/∂K = X ⋆ ∂L/∂Y (notes 000 §2.3): each kernel entry collects input × upstream gradient")
    report.say("over every output position it took part in.")
    report.matrix("∂L/∂K = cnn_cli.nn.conv.conv2d_backward(...)[1]", grad_k[0, 0])
    for a in range(k_h):
        for b in range(k_w):
            written, total = products(x[a : a + out_h, b : b + out_w], grad_y)
            report.check_sum(f"∂L/∂K[{a},{b}]", written, total, grad_k[0, 0, a, b])
    as_correlation, _ = nn_conv.conv2d_forward(as_nchw(x), as_nchw(grad_y), None)
    report.check("∂L/∂K", grad_k[0, 0], as_correlation[0, 0], "conv2d_forward(X, ∂L/∂Y)")

    report.say()
    report.say("∂L/∂b = Σ ∂L/∂Y (notes 000 §2.4): the bias is added to every output, so it collects every gradient.")
    written = " + ".join(factor(v) for v in grad_y.reshape(-1))
    report.check_sum("∂L/∂b", written, sum(float(v) for v in grad_y.reshape(-1)), grad_b[0])

    report.say()
    report.say("∂L/∂X, way 1: col2im (notes 000 §2.5). Each kernel tap K[a,b] saw the input block")
    report.say("starting at (a, b); its share K[a,b]·∂L/∂Y is added back onto that block. Windows overlap,")
    report.say("so this is += and the running sum grows tap by tap:")
    running = np.zeros_like(x)
    for a in range(k_h):
        for b in range(k_w):
            running[a : a + out_h, b : b + out_w] += k[a, b] * grad_y
            report.matrix(f"after tap ({a},{b}), K[{a},{b}] = {num(k[a, b])}: running sum", running, indent=4)
    report.check("∂L/∂X", grad_x[0, 0], running, "col2im by hand")
    counts = np.zeros_like(x)
    for a in range(k_h):
        for b in range(k_w):
            counts[a : a + out_h, b : b + out_w] += 1
    report.matrix("how many windows read each input pixel (with `=` instead of += only the last tap would stay)", counts)

    report.say()
    report.say("∂L/∂X, way 2: the full correlation of ∂L/∂Y with rot180(K) (notes 003's 'full convolution with K'):")
    report.say(f"pad ∂L/∂Y with {k_h - 1} row(s) and {k_w - 1} column(s) of zeros on every side, then slide rot180(K) over it.")
    padded = np.pad(grad_y, ((k_h - 1, k_h - 1), (k_w - 1, k_w - 1)))
    report.matrix("padded ∂L/∂Y", padded)
    flipped = np.ascontiguousarray(k[::-1, ::-1])
    full, _ = nn_conv.conv2d_forward(as_nchw(padded), as_nchw(flipped), None)
    report.matrix("conv2d_forward(padded ∂L/∂Y, rot180(K))", full[0, 0])
    report.check("∂L/∂X", grad_x[0, 0], full[0, 0], "full correlation with rot180(K)")
    if notes and given.grad is None:
        written, total = products(grad_y, k[::-1, ::-1])
        report.say("Notes 003 expands the middle entry: ∂E/∂x22 = ∂E/∂y11·k22 + ∂E/∂y12·k21 + ∂E/∂y21·k12 + ∂E/∂y22·k11")
        report.check_sum("∂L/∂X[1,1]", written, total, grad_x[0, 0, 1, 1])
    return report


# ---------------------------------------------------------------- routing: max-pool and ReLU

# Notes 000 §2.7's figure: dL/dy00 lands on x00, dL/dy01 on x12, dL/dy10 on x31, dL/dy11 on x23.
NOTES000_POOL_WINNERS = {(0, 0): (0, 0), (0, 1): (1, 2), (1, 0): (3, 1), (1, 1): (2, 3)}
NOTES000_POOL_INPUT = np.array([[0.9, 0.1, 0.2, 0.3], [0.4, 0.5, 0.8, 0.6], [0.11, 0.12, 0.13, 0.7], [0.14, 0.95, 0.15, 0.16]])
# Notes 000 §2.8's figure: the gradient is 0 at these positions (where x < 0).
NOTES000_RELU_BLOCKED = [(0, 3), (1, 2), (2, 1), (2, 3), (3, 1), (3, 2)]


def maxpool(given: ExampleInput) -> Report:
    x = NOTES000_POOL_INPUT if given.input is None else given.input
    report = Report("maxpool")
    report.say("Max-pool 2x2, stride 2, and where its gradient goes (notes 000 §2.7).")
    if x.shape[0] < 2 or x.shape[1] < 2:
        raise CnnError(f"--input: max-pool 2x2 needs at least a 2x2 input, got {x.shape[0]}x{x.shape[1]}")
    if given.input is None:
        report.say("The input is chosen so that each window's maximum sits where notes 000 §2.7's figure")
        report.say("sends the gradient (its figure has positions, not numbers).")
    report.matrix("X", x)
    out, cache = nn_pool.maxpool2d_forward(as_nchw(x), (2, 2), (2, 2))
    y = out[0, 0]
    out_h, out_w = y.shape
    grad_y = np.resize(np.array([1.5, -2.0, 3.0, 0.25]), out_h * out_w).reshape(out_h, out_w) if given.grad is None else given.grad
    if grad_y.shape != y.shape:
        raise CnnError(f"--grad: ∂L/∂Y must have the pooled shape {out_h}x{out_w}, got {grad_y.shape[0]}x{grad_y.shape[1]}")
    report.matrix("Y = cnn_cli.nn.pool.maxpool2d_forward(X)", y)
    grad_x = nn_pool.maxpool2d_backward(as_nchw(grad_y), cache)[0, 0]
    report.matrix("∂L/∂Y", grad_y)
    report.say("A max-pool output is a copy of its window's largest input, so ∂y/∂x is 1 for that one")
    report.say("input and 0 for the rest: each ∂L/∂y goes to its window's winner, the others get 0.")
    expected = np.zeros_like(x)
    for i in range(out_h):
        for j in range(out_w):
            window = x[2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
            a, b = np.unravel_index(int(np.argmax(window)), window.shape)  # first maximum on ties, as cnn does
            winner = (2 * i + a, 2 * j + b)
            expected[winner] += grad_y[i, j]
            report.say(
                f"  window ({i},{j}): max {num(window.max())} at x[{winner[0]},{winner[1]}] receives ∂L/∂y[{i},{j}] = {num(grad_y[i, j])}"
            )
            report.check(f"Y[{i},{j}]", y[i, j], window.max(), "by hand")
            if given.input is None:
                placed = tuple(int(v) for v in np.argwhere(grad_x == grad_y[i, j])[0])
                notes_at = NOTES000_POOL_WINNERS[(i, j)]
                report.check(
                    f"∂L/∂y[{i},{j}] lands at",
                    placed,
                    notes_at,
                    "notes 000 §2.7",
                    f"x[{notes_at[0]},{notes_at[1]}]",
                )
    report.matrix("∂L/∂X = cnn_cli.nn.pool.maxpool2d_backward(∂L/∂Y)", grad_x)
    if x.shape[0] % 2 or x.shape[1] % 2:
        report.say(
            f"  (H_out = ⌊{x.shape[0]}/2⌋ = {out_h}, W_out = ⌊{x.shape[1]}/2⌋ = {out_w}: a last odd row or column is read by no window"
        )
        report.say("   and gets gradient 0.)")
    report.check("∂L/∂X", grad_x, expected, "by hand")
    report.say("Ties go to the first maximum in reading order (as in PyTorch), never to every tied input:")
    report.say("that would multiply the gradient.")
    return report


def relu(given: ExampleInput) -> Report:
    report = Report("relu")
    if given.input is None:
        x = np.arange(1.0, 17.0).reshape(4, 4)
        for position in NOTES000_RELU_BLOCKED:
            x[position] = -x[position]
        x[3, 0] = 0.0
    else:
        x = given.input
    report.say("ReLU and where its gradient goes (notes 000 §2.8).")
    if given.input is None:
        report.say("The input is negative where notes 000 §2.8's figure blocks the gradient; x[3,0] is exactly 0.")
    report.matrix("X", x)
    y, positive = nn_act.relu_forward(x)
    report.matrix("Y = max(0, X) = cnn_cli.nn.activations.relu_forward(X)", y)
    # Signs alternate: a blocked negative gradient must come out as 0, not −0.0.
    grad_y = (np.arange(1.0, 1.0 + x.size) * (-1.0) ** np.arange(x.size)).reshape(x.shape) if given.grad is None else given.grad
    if grad_y.shape != x.shape:
        raise CnnError(f"--grad: ∂L/∂Y must have the input's shape {x.shape[0]}x{x.shape[1]}, got {grad_y.shape[0]}x{grad_y.shape[1]}")
    report.matrix("∂L/∂Y", grad_y)
    grad_x = nn_act.relu_backward(grad_y, positive)
    report.say("∂y/∂x = 1 where x > 0 and 0 elsewhere, so the gradient passes where the input was positive.")
    report.matrix("∂L/∂X = cnn_cli.nn.activations.relu_backward(∂L/∂Y, mask)", grad_x)
    report.check("∂L/∂X", grad_x, np.where(x > 0, grad_y, 0.0), "by hand ([x > 0]·∂L/∂Y)")
    blocked = sorted((int(i), int(j)) for i, j in np.argwhere(grad_x == 0))
    if given.input is None:
        report.check("blocked at", blocked, sorted([*NOTES000_RELU_BLOCKED, (3, 0)]), "notes 000 §2.8 + x[3,0] = 0")
        report.say("At exactly 0 the derivative does not exist. cnn, like PyTorch, passes nothing there;")
        report.say("notes 001 lets it through ('positive or zero'). Only inputs of exactly 0 tell the two apart.")
    negative_zeros = int(np.sum((grad_x == 0) & np.signbit(grad_x)))
    report.check("entries that are −0.0", negative_zeros, 0, "expected")
    return report


# ---------------------------------------------------------------- softmax cross-entropy


def softmax_ce(given: ExampleInput) -> Report:
    _no_matrices(given, "softmax-ce")
    report = Report("softmax-ce")
    report.say("Softmax cross-entropy and its gradient p − y (notes 000 §2.9, notes 001, notes 002 1(b)).")
    report.say()
    report.say("Notes 001: two classes with p = [0.3, 0.7], the target is class 2 (index 1).")
    logits = np.log(np.array([[0.3, 0.7]]))
    loss, grad = nn_losses.softmax_cross_entropy(logits, np.array([1]))
    report.check("p = softmax(log p)", nn_losses.softmax(logits)[0], [0.3, 0.7], "notes 001", "[0.3, 0.7]")
    report.check("∂L/∂f_p1", grad[0, 0], 0.3, "notes 001", "0.3")
    report.check("∂L/∂f_p2 = 0.7 − 1", grad[0, 1], -0.3, "notes 001", "-0.3")
    report.check("L = −ln 0.7", loss, -math.log(0.7), "by hand")
    report.say()
    report.say("Notes 001's seesaw network: p_target = 0.51, the other class 0.49.")
    logits = np.log(np.array([[0.49, 0.51]]))
    loss, grad = nn_losses.softmax_cross_entropy(logits, np.array([1]))
    report.check("∂L/∂f_target = p_target − 1", grad[0, 1], -0.49, "notes 001", "-0.49")
    report.check("∂L/∂f_other = p_other", grad[0, 0], 0.49, "notes 001", "0.49")
    report.check("data loss L = −ln 0.51", loss, -math.log(0.51), "by hand")
    report.erratum(
        f"notes 001 prints 'Data loss = 0.29'. That is −log₁₀ 0.51 = {num(-math.log10(0.51))}; the natural log the "
        f"loss is defined with (and the gradient p − y assumes) gives −ln 0.51 = {num(loss)}."
    )
    report.say()
    report.say("Notes 000 §2.9: ∂Loss/∂x[k] = p[k] − 1 for the target k, p[i] for every other class.")
    logits = np.array([[2.0, 1.0, 0.1]])
    loss, grad = nn_losses.softmax_cross_entropy(logits, np.array([0]))
    exp = [math.exp(v) for v in logits[0]]
    p = [v / sum(exp) for v in exp]
    report.say(f"  logits {show(logits[0])}, target k = 0: p = e^x / Σ e^x = {show(np.array(p))}")
    report.check("∂L/∂x", grad[0], [p[0] - 1, p[1], p[2]], "by hand [p0 − 1, p1, p2]")
    report.say()
    report.say("Over a batch the loss is the mean, so each row of the gradient is divided by N:")
    batch = np.array([[2.0, 1.0, 0.1], [0.5, 0.5, 3.0]])
    _, grad = nn_losses.softmax_cross_entropy(batch, np.array([0, 1]))
    rows = []
    for row, label in zip(batch, [0, 1], strict=True):
        e = [math.exp(v) for v in row]
        rows.append([v / sum(e) - (1.0 if c == label else 0.0) for c, v in enumerate(e)])
    report.check("∂L/∂logits, N = 2", grad, np.array(rows) / 2, "by hand (p − y)/N")
    report.erratum(
        "notes 002 eqs. (12)–(14) mix the indices i and c and end with p_i − y_i; the intended result is ∂Loss/∂z_c = p_c − y_c."
    )
    return report


# ---------------------------------------------------------------- notes 004's network

SEED004_PARAMS = {
    "conv1.weight": np.array([[[[0.2, -0.1, 0.3], [0.1, 0.4, -0.2], [-0.3, 0.1, 0.2]]]]),
    "conv1.bias": np.array([-0.12]),
    "fc1.weight": np.array([[0.5, -0.4, 0.3, 0.2]]),
    "fc1.bias": np.array([-0.1]),
}


def seed004_model_section() -> dict[str, Any]:
    """The shipped ``seed004`` config's model section (notes 004's layers and loss), the one place it is written."""
    from cnn_cli.config import load_config

    return load_config("seed004").as_dict()["model"]


def seed004_input() -> np.ndarray:
    """A 6x6 image with 36 distinct values (7 is coprime with 36), so no max-pool window ties."""
    index = np.arange(36)
    return ((index * 7 % 36) / 35.0 - 0.3).reshape(1, 1, 6, 6)


def seed004_net(given: ExampleInput) -> Report:
    _no_matrices(given, "seed004-net")
    from cnn_cli.model import build_model

    report = Report("seed004-net")
    report.say("Notes 004's network: Z1 = Conv(X, W1) + b1, A1 = relu(Z1), P1 = maxpool(A1), F = flatten(P1),")
    report.say("Z2 = W2 F + b2, A2 = σ(Z2), L = −y log A2 − (1 − y) log(1 − A2). Input 6x6 (the notes give no size).")
    model = build_model({**seed004_model_section(), "input_shape": [1, 6, 6]}, dtype="float64")
    model.load_params(SEED004_PARAMS)
    for name, value in model.params.items():
        report.say(f"  {name:<13} shape {str(value.shape):<14} {value.size:>2} parameters")
    report.check("trainable parameters", model.num_params(), 15, "notes 004", "15")
    report.say("  (the notes print no parameter values; these are fixed small numbers)")
    x = seed004_input()
    y_label = np.array([1])
    steps = model.trace(x, training=True)
    z1, a1, p1, flat, z2 = (step.output for step in steps)
    f = flat.reshape(1, -1)  # Flatten gives (N, 4, 1, 1), the layout a dense layer reads
    report.say()
    report.say("Forward (each value is a layer's output from Model.trace):")
    report.matrix("X", x[0, 0])
    report.matrix("Z1 = Conv(X, W1) + b1", z1[0, 0])
    report.matrix("A1 = relu(Z1)", a1[0, 0])
    report.matrix("P1 = maxpool(A1), 2x2 stride 2", p1[0, 0])
    report.say(f"  F = flatten(P1) = {show(f[0])}")
    a2 = float(model.loss.probabilities(z2)[0, 1])
    z2_value = float(z2[0, 0])
    report.say(f"  Z2 = W2 F + b2 = {num(z2_value)},  A2 = σ(Z2) = {num(a2)},  y = 1")
    written, total = products(model.params["fc1.weight"][0], f[0])
    report.check("Z2", z2_value, total + float(model.params["fc1.bias"][0]), "by hand " + written + " + b2")
    loss, grad_logits = model.loss(z2, y_label)
    report.check("L = −log A2", loss, -math.log(a2), "by hand")
    report.say()
    report.say("Backward, one chain-rule factor at a time (notes 004):")
    dl_da2 = (a2 - 1.0) / (a2 * (1.0 - a2))
    da2_dz2 = a2 * (1.0 - a2)
    report.say(f"  ∂L/∂A2 = (a2 − y)/(a2(1 − a2)) = {num(dl_da2)}")
    report.say(f"  ∂A2/∂Z2 = a2(1 − a2) = {num(da2_dz2)}")
    report.check("∂L/∂Z2 = ∂L/∂A2 · ∂A2/∂Z2 = a2 − y", grad_logits[0, 0], dl_da2 * da2_dz2, "by hand")
    grads = model.backward_trace(grad_logits)
    dl_df = grads[4].grad_input.reshape(-1)
    report.check("∂L/∂F = (a2 − y) · W2 (∂Z2/∂F = W2)", dl_df, (a2 - 1.0) * model.params["fc1.weight"][0], "by hand")
    dl_dp1 = grads[3].grad_input[0, 0]
    report.check("∂L/∂P1 = reshape(∂L/∂F) (∂F/∂P1 only reshapes)", dl_dp1, dl_df.reshape(2, 2), "by hand")
    dl_da1 = grads[2].grad_input[0, 0]
    routed = np.zeros((4, 4))
    for i in range(2):
        for j in range(2):
            window = a1[0, 0, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
            a, b = np.unravel_index(int(np.argmax(window)), (2, 2))
            routed[2 * i + a, 2 * j + b] = dl_dp1[i, j]
    report.matrix("∂L/∂A1 (∂P1/∂A1: each value to its window's winner)", dl_da1)
    report.check("∂L/∂A1", dl_da1, routed, "by hand")
    dl_dz1 = grads[1].grad_input[0, 0]
    report.matrix("∂L/∂Z1 (∂A1/∂Z1 = [Z1 > 0])", dl_dz1)
    report.check("∂L/∂Z1", dl_dz1, np.where(z1[0, 0] > 0, dl_da1, 0.0), "by hand")
    correlation, _ = nn_conv.conv2d_forward(x, as_nchw(dl_dz1), None)
    report.matrix("∂L/∂W1 = X ⋆ ∂L/∂Z1 (∂Z1/∂W1)", model.grads["conv1.weight"][0, 0])
    report.check("∂L/∂W1", model.grads["conv1.weight"][0, 0], correlation[0, 0], "conv2d_forward(X, ∂L/∂Z1)")
    report.check("∂L/∂b1 = Σ ∂L/∂Z1", model.grads["conv1.bias"][0], float(dl_dz1.sum()), "by hand")
    f_column = f.T  # (4, m) with m = 1: one column per image, as in the notes
    report.check("∂L/∂W2 = (A2 − Y)Fᵀ", model.grads["fc1.weight"], (a2 - 1.0) * f_column.T, "by hand")
    report.check("∂L/∂b2 = A2 − Y", model.grads["fc1.bias"][0], a2 - 1.0, "by hand")
    report.erratum(
        "notes 004's ∂L/∂b2 step writes (a2 − y)/(a2(1 − a2)) × 1 = (A2 − Y): it drops the factor ∂A2/∂z2 = a2(1 − a2); "
        "with it the product is (A2 − Y), as computed here."
    )
    return report


# ---------------------------------------------------------------- notes 001's update rule


def l2_update(given: ExampleInput) -> Report:
    _no_matrices(given, "l2-update")
    report = Report("l2-update")
    alpha = lam = 0.1
    report.say("Notes 001's update with L2 regularisation: w ← w − α(∂L/∂w + λw), α = λ = 0.1.")
    report.say("∂(½λΣw²)/∂w = λw is added by cnn_cli.optim.add_l2_gradient; the step is cnn_cli.optim.SGD.")

    def update(name: str, w: float, grad: float) -> float:
        params = {f"{name}.weight": np.array([w])}
        grads = {f"{name}.weight": np.array([grad])}
        optim.add_l2_gradient(params, grads, lam)
        optim.SGD(alpha).step(params, grads)
        return float(params[f"{name}.weight"][0] - w)

    report.say()
    report.say("Output weight of the target class: w = 0.1, ∂L/∂w = (p_target − 1)·Out = −0.49·0.49.")
    delta = update("fc", 0.1, -0.49 * 0.49)
    report.say(f"  Δw = −0.1·(−0.49·0.49 + 0.1·0.1) = {num(delta)}")
    report.check("Δw", delta, 0.023, "notes 001", "0.023")
    report.say()
    report.say("Inner weight w5 = −0.1: ∂L/∂w5 = Σ(∂L/∂f · w@c) · f@c(1 − f@c) · Out_A")
    inner = (-0.49 * 0.1 + 0.49 * 0.2) * 0.49 * (1 - 0.49) * 0.1
    delta = update("fc", -0.1, inner)
    report.say(f"  = (−0.49·0.1 + 0.49·0.2)·0.49·(1 − 0.49)·0.1 = {num(inner)};  Δw5 = {num(delta)}")
    report.check("Δw5", delta, 0.000878, "notes 001", "0.000878")
    report.say()
    report.say("The 1x2 conv filter [w1, w2] = [0.1, 0.1] over In = [1, 1, 0, 0, 0], ∂L/∂f = [0, −0.0147, 0.0196, 0.0196]:")
    inputs = np.array([[[[1.0, 1.0, 0.0, 0.0, 0.0]]]])
    weight = np.array([[[[0.1, 0.1]]]])
    _, cache = nn_conv.conv2d_forward(inputs, weight, None)
    _, grad_w, _ = nn_conv.conv2d_backward(np.array([[[[0.0, -0.0147, 0.0196, 0.0196]]]]), cache)
    report.check("∂L/∂w1 = Σ ∂L/∂f_i · In_i", grad_w[0, 0, 0, 0], -0.0147, "notes 001", "-0.0147")
    report.check("∂L/∂w2 = Σ ∂L/∂f_i · In_(i+1)", grad_w[0, 0, 0, 1], 0.0, "notes 001", "0")
    params = {"conv.weight": weight.copy()}
    optim.add_l2_gradient(params, {"conv.weight": grad_w}, lam)
    optim.SGD(alpha).step(params, {"conv.weight": grad_w})
    change = (params["conv.weight"] - weight)[0, 0, 0]
    report.check("Δw1 = −0.1(−0.0147 + 0.1·0.1)", change[0], 0.00047, "notes 001", "0.00047")
    report.check("Δw2 = −0.1(0 + 0.1·0.1)", change[1], -0.001, "notes 001", "-0.001")
    report.say("Biases are not regularised (add_l2_gradient skips them), as in notes 001's ½λΣ w².")
    return report


def _no_matrices(given: ExampleInput, name: str) -> None:
    if given.custom:
        raise CnnError(f"{name}: --input/--kernel/--grad work only with cross-correlation, convolution, conv-backward, maxpool and relu")


@dataclass(frozen=True)
class Example:
    name: str
    summary: str
    run: Callable[[ExampleInput], Report]


EXAMPLES = {
    e.name: e
    for e in [
        Example("cross-correlation", "notes 003's 3x3 ⋆ 2x2 = [[8,7],[4,5]], as sums of products and im2col rows", cross_correlation),
        Example("convolution", "the same with rot180(K) = [[7,5],[11,3]], and why cnn computes cross-correlation", convolution),
        Example("conv-backward", "∂L/∂K = X ⋆ ∂L/∂Y, ∂L/∂b = Σ ∂L/∂Y, ∂L/∂X as col2im += and as full correlation", conv_backward),
        Example("maxpool", "where a max-pool gradient goes (notes 000 §2.7)", maxpool),
        Example("relu", "where a ReLU gradient goes (notes 000 §2.8)", relu),
        Example("softmax-ce", "p − y with the numbers of notes 000, 001 and 002", softmax_ce),
        Example("seed004-net", "notes 004's 15-parameter net: forward, every chain-rule factor, (A2 − Y)Fᵀ", seed004_net),
        Example("l2-update", "notes 001's w ← w − α(∂L/∂w + λw) with its numbers", l2_update),
    ]
}


# The examples that take the learner's own matrices (--input, --kernel, --grad).
MATRIX_EXAMPLES = ("cross-correlation", "convolution", "conv-backward", "maxpool", "relu")


def run_examples(names: list[str], given: ExampleInput | None = None) -> list[Report]:
    """Run the named examples (all of them for an empty list) and return their reports."""
    given = given or ExampleInput()
    unknown = [name for name in names if name not in EXAMPLES]
    if unknown:
        raise CnnError(f"unknown example {unknown[0]!r}; known: {', '.join(EXAMPLES)}")
    if not names:
        names = list(MATRIX_EXAMPLES if given.custom else EXAMPLES)
    return [EXAMPLES[name].run(given) for name in names]


def format_reports(reports: list[Report]) -> str:
    """Every report's text, then one summary line per report and in total."""
    parts = []
    for report in reports:
        parts.append(f"== {report.name} " + "=" * max(0, 60 - len(report.name)))
        parts.append(report.text)
        parts.append("")
    checks = sum(r.checks for r in reports)
    failures = sum(r.failures for r in reports)
    errata = sum(r.errata for r in reports)
    verdict = "all agree" if failures == 0 else f"{failures} DIFFER (✗)"
    parts.append(f"{checks} values checked, {verdict}; note errata: {errata}")
    return "\n".join(parts)


def list_examples() -> str:
    width = max(len(name) for name in EXAMPLES)
    return "\n".join(f"{e.name:<{width}}  {e.summary}" for e in EXAMPLES.values())


# ---------------------------------------------------------------- exercises

EXERCISES = {"conv": "conv_exercise.py"}


def write_exercise(name: str, path: Path | None) -> Path:
    """Write the skeleton file of exercise ``name`` (to ``path``, default ./conv_exercise.py); refuse to overwrite."""
    from cnn_cli.runs import write_text

    if name not in EXERCISES:
        raise CnnError(f"--exercise: unknown exercise {name!r}; known: {', '.join(EXERCISES)}")
    target = Path(path) if path is not None else Path(EXERCISES[name])
    if target.exists():
        raise CnnError(f"{target}: already exists; not overwriting your work (give another path with --output)")
    template = (Path(__file__).parent / "conv_exercise.py").read_text(encoding="utf-8")
    write_text(target, template)
    return target
