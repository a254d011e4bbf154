"""Worked examples of gradient routing and the loss: max-pool winners, ReLU masks and softmax cross-entropy."""

from __future__ import annotations

import math

import numpy as np

from cnn_cli.errors import CnnError
from cnn_cli.learn.explain.report import ExampleInput, Report, _no_matrices, as_nchw, num, show
from cnn_cli.nn import activations as nn_act
from cnn_cli.nn import losses as nn_losses
from cnn_cli.nn import pool as nn_pool

# Notes 000 §2.7's figure: dL/dy00 lands on x00, dL/dy01 on x12, dL/dy10 on x31, dL/dy11 on x23.
NOTES000_POOL_WINNERS = {(0, 0): (0, 0), (0, 1): (1, 2), (1, 0): (3, 1), (1, 1): (2, 3)}


NOTES000_POOL_INPUT = np.array([[0.9, 0.1, 0.2, 0.3], [0.4, 0.5, 0.8, 0.6], [0.11, 0.12, 0.13, 0.7], [0.14, 0.95, 0.15, 0.16]])


# Notes 000 §2.8's figure: the gradient is 0 at these positions (where x < 0).
NOTES000_RELU_BLOCKED = [(0, 3), (1, 2), (2, 1), (2, 3), (3, 1), (3, 2)]


def maxpool(given: ExampleInput) -> Report:
    x = NOTES000_POOL_INPUT if given.input is None else given.input
    report = Report("maxpool")
    report.say("Max-pool 2x2, stride 2, and where its gradient goes (notes 000 §2.7, `cnn docs maxpool2d`).")
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
    report.say("ReLU and where its gradient goes (notes 000 §2.8, `cnn docs relu`).")
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
        report.say("notes 001 lets it through ('positive or zero'; `cnn docs errata`). Only inputs of exactly 0 tell the two apart.")
    negative_zeros = int(np.sum((grad_x == 0) & np.signbit(grad_x)))
    report.check("entries that are −0.0", negative_zeros, 0, "expected")
    return report


def softmax_ce(given: ExampleInput) -> Report:
    _no_matrices(given, "softmax-ce")
    report = Report("softmax-ce")
    report.say("Softmax cross-entropy and its gradient p − y (notes 000 §2.9, notes 001, notes 002 1(b); `cnn docs softmax`).")
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
    labels = [0, 1]
    loss, grad = nn_losses.softmax_cross_entropy(batch, np.array(labels))
    rows, losses = [], []
    for sample, (row, label) in enumerate(zip(batch, labels, strict=True), start=1):
        e = [math.exp(v) for v in row]
        p = [v / sum(e) for v in e]
        rows.append([pc - (1.0 if c == label else 0.0) for c, pc in enumerate(p)])
        losses.append(-math.log(p[label]))
        report.say(f"  sample {sample}: logits {show(row)}, target {label}: p = {show(np.array(p))}, p − y = {show(np.array(rows[-1]))}")
    report.check("L = mean of −ln p_target, N = 2", loss, sum(losses) / 2, "by hand (" + " + ".join(num(v) for v in losses) + ")/2")
    report.check("∂L/∂logits, N = 2", grad, np.array(rows) / 2, "by hand (p − y)/N")
    report.erratum(
        "notes 002 eqs. (12)–(14) mix the indices i and c and end with p_i − y_i; the intended result is ∂Loss/∂z_c = p_c − y_c."
    )
    return report
