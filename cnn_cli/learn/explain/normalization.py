"""Worked examples of batch norm (forward, both backwards, the running statistics) and global average pooling.

The batch-norm example is a 2x3 matrix: one image of 2 channels, each a 1x3 map, so each
row is a channel and its 3 values share one mean and one variance (M = 3). Every
intermediate of the forward and of the staged backward is printed; the library's
one-line backward, its staged backward and a central difference must all agree.
"""

from __future__ import annotations

import numpy as np

from cnn_cli.learn.explain.report import ExampleInput, Report, _no_matrices, num, show
from cnn_cli.nn import batchnorm as nn_bn
from cnn_cli.nn import pool as nn_pool

BN_INPUT = np.array([[1.0, 4.0, 7.0], [0.0, 1.0, 5.0]])  # rows: channels; M = 3 values each
BN_GAMMA = np.array([2.0, 0.5])
BN_BETA = np.array([1.0, -1.0])
BN_GRAD = np.array([[1.0, -1.0, 2.0], [0.5, 2.0, -1.0]])  # not all ones: Σ dy·x̂ would then be 0
BN_EPS = 1e-5
BN_MOMENTUM = 0.1
NUMERIC_STEP = 1e-6


def _as_map(rows: np.ndarray) -> np.ndarray:
    """(C, M) rows as one image of C channels, each a 1xM map: (1, C, 1, M)."""
    return np.ascontiguousarray(rows, dtype=np.float64)[None, :, None, :]


def _per_row(values: np.ndarray) -> str:
    return ", ".join(f"channel {c}: {num(v)}" for c, v in enumerate(values))


def batchnorm(given: ExampleInput) -> Report:
    _no_matrices(given, "batchnorm")
    report = Report("batchnorm")
    report.say("Batch norm on a 2x3 example, forward and backward (`cnn docs batchnorm`).")
    report.say("One image of 2 channels, each a 1x3 map: each row is a channel, its M = 3 values share μ and σ.")
    x, count = BN_INPUT, BN_INPUT.shape[1]
    report.matrix("X", x)
    report.say(f"  γ = {show(BN_GAMMA)}, β = {show(BN_BETA)}, ε = {BN_EPS:g}")
    running_mean, running_var = np.zeros(2), np.ones(2)
    out, cache = nn_bn.batchnorm_forward(_as_map(x), BN_GAMMA, BN_BETA, running_mean, running_var, True, BN_MOMENTUM, BN_EPS)
    y = out[0, :, 0, :]
    report.say()
    report.say("Forward, one intermediate at a time (training: the batch's own statistics):")
    mean = x.sum(axis=1) / count
    sums = ", ".join(f"({' + '.join(num(v) for v in row)})/3" for row in x)
    report.check("μ = (1/M) Σ x", x[:, 0] - cache.centred[0], mean, f"by hand {sums}")
    centred = x - mean[:, None]
    report.check("x̄ = x − μ", cache.centred.T, centred, "by hand")
    var = (centred**2).sum(axis=1) / count
    report.check("v = (1/M) Σ x̄² (biased)", (cache.std**2 - BN_EPS), var, "by hand " + ", ".join(f"{num(v * 3)}/3" for v in var))
    std = np.sqrt(var + BN_EPS)
    report.check("σ = √(v + ε)", cache.std, std, "by hand")
    x_hat = centred / std[:, None]
    report.check("x̂ = x̄/σ", cache.x_hat.T, x_hat, "by hand")
    report.check("y = γ·x̂ + β", y, BN_GAMMA[:, None] * x_hat + BN_BETA[:, None], "by hand")
    report.matrix("Y = cnn_cli.nn.batchnorm.batchnorm_forward(X)", y)
    report.say("  each row of x̂ has mean 0 and variance v/(v + ε) ≈ 1, whatever the scale of its channel.")
    _running_statistics(report, running_mean, running_var, mean, var, count)
    _backward(report, cache, x_hat, std, centred, count)
    return report


def _running_statistics(report: Report, running_mean, running_var, mean, var, count: int) -> None:
    report.say()
    report.say(f"Running statistics for evaluation (momentum {BN_MOMENTUM}), updated by that forward, as PyTorch does:")
    report.check("running_mean = 0.9·0 + 0.1·μ", running_mean, 0.1 * mean, "by hand")
    unbiased = var * count / (count - 1)
    report.check("running_var = 0.9·1 + 0.1·v·M/(M − 1)", running_var, 0.9 + 0.1 * unbiased, "by hand")
    report.say(f"  the forward divides by M = {count} (biased v: {_per_row(var)}); the running variance takes")
    report.say(f"  the unbiased v·M/(M − 1) ({_per_row(unbiased)}). Evaluation then uses these two, not the batch's.")


def _backward(report: Report, cache, x_hat: np.ndarray, std: np.ndarray, centred: np.ndarray, count: int) -> None:
    dy = BN_GRAD
    report.say()
    report.matrix("∂L/∂Y", dy)
    d_gamma, d_beta = nn_bn.batchnorm_param_grads(_as_map(dy), cache)
    report.check("∂L/∂β = Σ dy", d_beta, dy.sum(axis=1), "by hand")
    report.check("∂L/∂γ = Σ dy·x̂", d_gamma, (dy * x_hat).sum(axis=1), "by hand")
    report.say()
    report.say("Backward by the chain rule, each forward line in reverse (`batchnorm_backward_staged`):")
    d_x_hat = dy * BN_GAMMA[:, None]
    report.matrix("∂L/∂x̂ = dy·γ", d_x_hat)
    d_inv_std = (d_x_hat * centred).sum(axis=1)
    report.say(f"  ∂L/∂(1/σ) = Σ ∂L/∂x̂ · x̄ = {show(d_inv_std)}")
    d_std = -d_inv_std / std**2
    report.say(f"  ∂L/∂σ = −∂L/∂(1/σ) / σ² = {show(d_std)}")
    d_var = d_std / (2 * std)
    report.say(f"  ∂L/∂v = ∂L/∂σ / 2σ = {show(d_var)}")
    d_centred = d_x_hat / std[:, None] + d_var[:, None] * 2 * centred / count
    report.matrix("∂L/∂x̄ = ∂L/∂x̂ / σ  +  ∂L/∂v · 2x̄/M   (x̄ feeds x̂ and v: the two add)", d_centred)
    d_mean = -d_centred.sum(axis=1)
    report.say(f"  ∂L/∂μ = −Σ ∂L/∂x̄ = {show(d_mean)}")
    d_x = d_centred + d_mean[:, None] / count
    report.matrix("∂L/∂X = ∂L/∂x̄ + ∂L/∂μ / M", d_x)
    staged = nn_bn.batchnorm_backward_staged(_as_map(dy), cache)[0, :, 0, :]
    report.check("∂L/∂X staged", staged, d_x, "by hand")
    report.say()
    report.say("The same derivative summed up into one line (`batchnorm_backward`):")
    report.say("  ∂L/∂X = (γ/σ)/M · (M·dy − Σdy − x̂·Σ(dy·x̂))")
    one_line = nn_bn.batchnorm_backward(_as_map(dy), cache)[0, :, 0, :]
    report.check("∂L/∂X one line", one_line, staged, "staged")
    numeric = _numeric_input_gradient()
    agree = bool(np.all(np.abs(one_line - numeric) <= 1e-6 * np.max(np.abs(numeric))))
    report.checks += 1
    report.failures += not agree
    report.say(f"  {'✓' if agree else '✗'} ∂L/∂X against central differences of L = Σ dy·y (step {NUMERIC_STEP:g}): {show(numeric)}")
    report.say("  each row sums to 0: moving a whole channel by a constant changes nothing after the mean is subtracted.")
    report.check("row sums of ∂L/∂X", np.round(one_line.sum(axis=1), 12), [0.0, 0.0], "expected")


def _numeric_input_gradient() -> np.ndarray:
    """(L(x + h) − L(x − h)) / 2h for each entry, L = Σ dy·y on the whole batch (BN couples it)."""

    def loss(x: np.ndarray) -> float:
        out, _ = nn_bn.batchnorm_forward(_as_map(x), BN_GAMMA, BN_BETA, np.zeros(2), np.ones(2), True, BN_MOMENTUM, BN_EPS)
        return float((BN_GRAD * out[0, :, 0, :]).sum())

    grad = np.zeros_like(BN_INPUT)
    for index in np.ndindex(BN_INPUT.shape):
        step = np.zeros_like(BN_INPUT)
        step[index] = NUMERIC_STEP
        grad[index] = (loss(BN_INPUT + step) - loss(BN_INPUT - step)) / (2 * NUMERIC_STEP)
    return grad


def global_avg_pool(given: ExampleInput) -> Report:
    _no_matrices(given, "global-avg-pool")
    report = Report("global-avg-pool")
    report.say("Global average pooling of one 2x3 feature map (`cnn docs global_avg_pool`).")
    x = BN_INPUT
    report.matrix("X", x)
    y = nn_pool.global_avgpool_forward(x[None, None])[0, 0]
    report.check_sum("y = (1/(H·W)) Σ x", f"({' + '.join(num(v) for v in x.ravel())})/6", float(x.sum()) / x.size, y)
    grad_y = 3.0
    report.say(f"  ∂L/∂y = {num(grad_y)}")
    grad_x = nn_pool.global_avgpool_backward(np.array([[grad_y]]), x.shape)[0, 0]
    report.matrix("∂L/∂X = cnn_cli.nn.pool.global_avgpool_backward(∂L/∂y)", grad_x)
    report.check("∂L/∂X", grad_x, np.full(x.shape, grad_y / x.size), "by hand ∂L/∂y / (H·W) = 3/6 everywhere")
    report.say("Every input moved the mean by 1/(H·W) of its own change, so each gets that share of ∂L/∂y;")
    report.say("forgetting the 1/(H·W) would hand every input the whole gradient, H·W = 6 times too much.")
    return report
