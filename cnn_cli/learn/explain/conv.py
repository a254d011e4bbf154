"""Worked examples of convolution: cross-correlation, true convolution and the conv backward pass."""

from __future__ import annotations

import numpy as np

from cnn_cli.errors import CnnError
from cnn_cli.learn.explain.report import (
    DEFAULT_GRAD,
    NOTES003_INPUT,
    NOTES003_KERNEL,
    ExampleInput,
    Report,
    as_nchw,
    factor,
    num,
    products,
    show,
)
from cnn_cli.nn import conv as nn_conv


def _conv_operands(given: ExampleInput) -> tuple[np.ndarray, np.ndarray, bool]:
    x = NOTES003_INPUT if given.input is None else given.input
    k = NOTES003_KERNEL if given.kernel is None else given.kernel
    if k.shape[0] > x.shape[0] or k.shape[1] > x.shape[1]:
        raise CnnError(f"--kernel: a {k.shape[0]}x{k.shape[1]} kernel does not fit a {x.shape[0]}x{x.shape[1]} input")
    notes = given.input is None and given.kernel is None
    return x, k, notes


CONV_INTROS = {
    "cross-correlation": (
        "Cross-correlation Y = X ⋆ K (notes 003, 'Convolution walk through'; notes 000 §2.1; `cnn docs conv2d`).",
        "The kernel slides over the input as it is; each output is the sum of",
        "input × kernel over the window under it.",
    ),
    "convolution": (
        "Convolution Conv(X, K) = X ⋆ rot180(K) (notes 003, 'Convolution'; `cnn docs conv2d`).",
        "A true convolution first turns the kernel by 180°, then slides it like a cross-correlation.",
    ),
    "conv-backward": ("Backward of Y = X ⋆ K + b (notes 000 §2.3–§2.5, notes 003 'Backward propagation'; `cnn docs conv2d`).",),
}


def _conv_report(title: str, given: ExampleInput) -> tuple[Report, np.ndarray, np.ndarray, bool]:
    """The report of one convolution topic, opened by its :data:`CONV_INTROS` lines and the operands X and K;
    with X, K and whether they are notes 003's (``cnn docs conv2d``)."""
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
    report.say(
        f"  size: {x.shape[0]} − {k.shape[0]} + 1 = {y.shape[0]} rows "
        "(notes 003's Y = I − K + 1, no padding, stride 1; `cnn docs output-size`)"
    )
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
