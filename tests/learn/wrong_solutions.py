"""Typical wrong solutions of every exercise, each the skeleton with a wrong backward filled in.

Each entry says at which stage ``cnn exercise check`` must stop and what its report must
say there: the bug-zoo mistake it names, or the diagnosis it gives. The bodies are what a
learner writes, loops and all; the correct ones are the files in tests/learn/solutions/.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from cnn_cli.learn.exercises import skeleton_text

SOLUTIONS = Path(__file__).parent / "solutions"
TODO = re.compile(r"    # TODO[^\n]*\n    raise NotImplementedError\([^\n]*\)\n    return [^\n]*\n")


def with_body(exercise: str, body: str) -> str:
    """The skeleton of ``exercise`` with its TODO replaced by ``body`` (indented four spaces)."""
    text = skeleton_text(exercise)
    found = TODO.search(text)
    if found is None:  # pragma: no cover - a skeleton without its TODO
        raise AssertionError(f"{exercise}: the skeleton has no TODO block")
    return text[: found.start()] + body + text[found.end() :]


@dataclass(frozen=True)
class Wrong:
    """One wrong solution: the stage (1-5) the check stops at, and fragments its report must show."""

    exercise: str
    mistake: str  # an id for the test
    body: str
    stage: int
    says: tuple[str, ...]

    @property
    def text(self) -> str:
        return with_body(self.exercise, self.body)


CONV_LOOP = """    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dx_pad = np.zeros_like(x_pad)
    c_out, c_in_group, k_h, k_w = w.shape
    _, _, out_h, out_w = grad_out.shape
    c_out_group = c_out // groups
    for o in range(c_out):
        g = o // c_out_group
        channels = slice(g * c_in_group, (g + 1) * c_in_group)
        for i in range(out_h):
            for j in range(out_w):
                rows = slice(i * stride, i * stride + dilation * (k_h - 1) + 1, dilation)
                cols = slice(j * stride, j * stride + dilation * (k_w - 1) + 1, dilation)
                upstream = grad_out[:, o, i, j]
                dw[o] += np.tensordot(upstream, x_pad[:, channels, rows, cols], axes=(0, 0))
                DX_LINE
    db = grad_out.sum(axis=(0, 2, 3))
    dx = dx_pad[:, :, pad : pad + x.shape[2], pad : pad + x.shape[3]]
    return dx, dw, db
"""
RIGHT_DX = "dx_pad[:, channels, rows, cols] += upstream[:, None, None, None] * w[o]"
# ∂L/∂X as a full correlation of ∂L/∂Y with a kernel TURN(w[:, c]) (right: w[:, c, ::-1, ::-1]); stride 1, no padding.
CONV_FULL_CORRELATION = """    c_out, _, k_h, k_w = w.shape
    for o in range(c_out):
        for a in range(k_h):
            for b in range(k_w):
                window = x[:, :, a : a + grad_out.shape[2], b : b + grad_out.shape[3]]
                dw[o, :, a, b] = np.sum(window * grad_out[:, o, None], axis=(0, 2, 3))
    db = grad_out.sum(axis=(0, 2, 3))
    g_pad = np.pad(grad_out, ((0, 0), (0, 0), (k_h - 1, k_h - 1), (k_w - 1, k_w - 1)))
    for c in range(x.shape[1]):
        kernel = TURN
        for u in range(x.shape[2]):
            for v in range(x.shape[3]):
                dx[:, c, u, v] = np.sum(g_pad[:, :, u : u + k_h, v : v + k_w] * kernel, axis=(1, 2, 3))
    return dx, dw, db
"""

MAXPOOL_WINDOWS = """    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=-np.inf)
    dx_pad = np.zeros_like(x_pad)
    n, c, out_h, out_w = grad_out.shape
    for i in range(out_h):
        for j in range(out_w):
            rows = slice(i * stride, i * stride + size)
            cols = slice(j * stride, j * stride + size)
            window = x_pad[:, :, rows, cols]
            SHARE
    return dx_pad[:, :, pad : pad + x.shape[2], pad : pad + x.shape[3]]
"""
MAXPOOL_LAST = """    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=-np.inf)
    dx_pad = np.zeros_like(x_pad)
    n, c, out_h, out_w = grad_out.shape
    for s in range(n):
        for ch in range(c):
            for i in range(out_h):
                for j in range(out_w):
                    best, where = -np.inf, (0, 0)
                    for a in range(size):
                        for b in range(size):
                            if x_pad[s, ch, i * stride + a, j * stride + b] >= best:
                                best, where = x_pad[s, ch, i * stride + a, j * stride + b], (a, b)
                    dx_pad[s, ch, i * stride + where[0], j * stride + where[1]] += grad_out[s, ch, i, j]
    return dx_pad[:, :, pad : pad + x.shape[2], pad : pad + x.shape[3]]
"""
AVGPOOL_WINDOWS = """    n, c, h, width = x_shape
    dx_pad = np.zeros((n, c, h + 2 * pad, width + 2 * pad), dtype=grad_out.dtype)
    _, _, out_h, out_w = grad_out.shape
    for i in range(out_h):
        for j in range(out_w):
            SHARE
    return dx_pad[:, :, pad : pad + h, pad : pad + width]
"""
AVG_WINDOW = "dx_pad[:, :, i * stride : i * stride + size, j * stride : j * stride + size]"

NET004 = (SOLUTIONS / "net004.py").read_text(encoding="utf-8")
NET004_BODY = NET004[NET004.index('    w2 = params["fc1.weight"]') : NET004.rindex("    return grads\n") + len("    return grads\n")]
NET004_ROUTING = """            a, b = np.divmod(window.argmax(axis=1), 2)  # the first maximum wins a tie
            da1[np.arange(n), 0, 2 * i + a, 2 * j + b] += dp1[:, 0, i, j]
"""
NET004_TIES_ALL = """            tied = (window == window.max(axis=1, keepdims=True)).reshape(n, 2, 2)
            da1[:, 0, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2] += tied * dp1[:, 0, i, j][:, None, None]
"""

RESIDUAL_BODY = """    dw2 = grad_out.T @ h
    db2 = grad_out.sum(axis=0)
    grad_z = (grad_out @ w2) * (z > 0)
    dw1 = grad_z.T @ x
    db1 = grad_z.sum(axis=0)
    through = grad_z @ w1
    dx = through + grad_out
    return dx, dw1, db1, dw2, db2
"""

WRONG = [
    # conv2d
    Wrong("conv2d", "assign", CONV_LOOP.replace("DX_LINE", RIGHT_DX.replace("+=", "=")), 2, ("`col2im-assign`", "+=")),
    Wrong("conv2d", "not-rotated", CONV_FULL_CORRELATION.replace("TURN", "w[:, c]"), 2, ("`kernel-not-rotated`", "rot180")),
    Wrong("conv2d", "transposed", CONV_FULL_CORRELATION.replace("TURN", "w[:, c].transpose(0, 2, 1)"), 2, ("`kernel-transposed`",)),
    Wrong(
        "conv2d",
        "bias-one-sample",
        CONV_LOOP.replace("DX_LINE", RIGHT_DX).replace("db = grad_out.sum(axis=(0, 2, 3))", "db = grad_out[0].sum(axis=(1, 2))"),
        3,
        ("`bias-not-summed`", "∂L/∂b (db)"),
    ),
    Wrong(
        "conv2d",
        "no-stride",
        CONV_LOOP.replace(
            "DX_LINE",
            RIGHT_DX.replace("channels, rows, cols", "channels, slice(i, i + dilation * (k_h - 1) + 1, dilation), slice(j, j + k_w)"),
        ),
        4,
        ('"stride 2"', "`col2im-no-stride`"),
    ),
    # maxpool2d
    Wrong(
        "maxpool2d",
        "ties-all",
        MAXPOOL_WINDOWS.replace(
            "SHARE",
            "winner = window == window.max(axis=(2, 3), keepdims=True)\n"
            "            dx_pad[:, :, rows, cols] += winner * grad_out[:, :, i, j][:, :, None, None]",
        ),
        4,
        ("tie for a window's maximum", "`maxpool-ties-all`", "first maximum in reading order"),
    ),
    Wrong(
        "maxpool2d",
        "spread",
        MAXPOOL_WINDOWS.replace("SHARE", "dx_pad[:, :, rows, cols] += grad_out[:, :, i, j][:, :, None, None]"),
        2,
        ("`maxpool-spread`", "x, yours ="),
    ),
    Wrong("maxpool2d", "tie-last", MAXPOOL_LAST, 4, ("`maxpool-tie-last`", "compare with >, not >=")),
    # avgpool2d
    Wrong(
        "avgpool2d",
        "no-divide",
        AVGPOOL_WINDOWS.replace("SHARE", AVG_WINDOW + " += grad_out[:, :, i, j][:, :, None, None]"),
        2,
        ("`avgpool-no-divide`",),
    ),
    Wrong(
        "avgpool2d",
        "assign",
        AVGPOOL_WINDOWS.replace("SHARE", AVG_WINDOW + " = grad_out[:, :, i, j][:, :, None, None] / (size * size)"),
        3,
        ('"3x3 windows, stride 2"', "`avgpool-assign`"),
    ),
    # relu
    Wrong("relu", "no-mask", "    dx = grad_out.copy()\n    return dx\n", 2, ("`relu-no-mask`",)),
    Wrong("relu", "at-zero", "    dx = grad_out * (x >= 0)\n    return dx\n", 4, ("inputs exactly 0", "`relu-at-zero`", "not x >= 0")),
    # leaky_relu
    Wrong("leaky_relu", "no-slope", "    dx = np.where(x > 0, grad_out, 0.0)\n    return dx\n", 2, ("`leaky-relu-no-slope`",)),
    Wrong("leaky_relu", "at-zero", "    dx = np.where(x >= 0, grad_out, slope * grad_out)\n    return dx\n", 4, ("`leaky-relu-at-zero`",)),
    # sigmoid
    Wrong(
        "sigmoid",
        "of-output",
        "    s = 1 / (1 + np.exp(-out))\n    dx = grad_out * s * (1 - s)\n    return dx\n",
        2,
        ("`sigmoid-of-output`", "squashes it a second time"),
    ),
    Wrong("sigmoid", "no-upstream", "    dx = out * (1 - out)\n    return dx\n", 2, ("`sigmoid-no-upstream`", "chain rule")),
    # tanh
    Wrong("tanh", "no-square", "    dx = grad_out * (1 - out)\n    return dx\n", 2, ("`tanh-no-square`",)),
    Wrong("tanh", "no-upstream", "    dx = 1 - out**2\n    return dx\n", 2, ("`tanh-no-upstream`",)),
    # dense
    Wrong(
        "dense",
        "weight-transposed",
        "    dw = x_flat.T @ grad_out\n    db = grad_out.sum(axis=0)\n    dx = (grad_out @ w).reshape(x_shape)\n    return dx, dw, db\n",
        1,
        ("∂L/∂w (dw) has shape (5, 3), expected (3, 5)", "transpose"),
    ),
    Wrong(
        "dense",
        "bias-one-sample",
        "    dw = grad_out.T @ x_flat\n    db = grad_out[0]\n    dx = (grad_out @ w).reshape(x_shape)\n    return dx, dw, db\n",
        3,
        ("`dense-bias-not-summed`",),
    ),
    Wrong(
        "dense",
        "dx-not-reshaped",
        "    dw = grad_out.T @ x_flat\n    db = grad_out.sum(axis=0)\n    dx = grad_out @ w\n    return dx, dw, db\n",
        4,
        ("from a flatten", "has shape (2, 6), expected (2, 6, 1, 1)", "reshape"),
    ),
    # flatten
    Wrong(
        "flatten", "not-reshaped", "    dx = grad_out\n    return dx\n", 1, ("has shape (2, 60, 1, 1), expected (2, 3, 4, 5)", "reshape")
    ),
    Wrong(
        "flatten",
        "channels-last",
        "    n, c, h, w = x_shape\n    dx = grad_out.reshape(n, h, w, c).transpose(0, 3, 1, 2)\n    return dx\n",
        2,
        ("`flatten-channels-last`", "(C, H, W) order"),
    ),
    # dropout
    Wrong("dropout", "no-scale", "    dx = grad_out * keep\n    return dx\n", 2, ("`dropout-no-scale`",)),
    Wrong("dropout", "divide-by-p", "    dx = grad_out * keep / p\n    return dx\n", 2, ("`dropout-divide-by-p`", "not 1/p")),
    # softmax_cross_entropy
    Wrong(
        "softmax_cross_entropy",
        "not-averaged",
        "    grad_logits = p.copy()\n    grad_logits[np.arange(n), labels] -= 1\n    return loss, grad_logits\n",
        2,
        ("a batch of 2", "`loss-not-averaged`", "(p − y)/N"),
    ),
    Wrong("softmax_cross_entropy", "without-y", "    grad_logits = p / n\n    return loss, grad_logits\n", 2, ("`softmax-without-y`",)),
    Wrong(
        "softmax_cross_entropy",
        "overflows",
        "    e = np.exp(logits)\n    grad_logits = e / e.sum(axis=1, keepdims=True)\n"
        "    grad_logits[np.arange(n), labels] -= 1\n    return loss, grad_logits / n\n",
        4,
        ("logits of ±1000", "nan or inf"),
    ),
    # binary_cross_entropy
    Wrong(
        "binary_cross_entropy",
        "not-averaged",
        "    grad_logits = (a - y).reshape(logits.shape)\n    return loss, grad_logits\n",
        2,
        ("`bce-not-averaged`",),
    ),
    Wrong(
        "binary_cross_entropy",
        "wrt-probability",
        "    grad_logits = ((a - y) / (a * (1 - a)) / n).reshape(logits.shape)\n    return loss, grad_logits\n",
        2,
        ("`bce-grad-wrt-probability`", "∂a/∂z = a(1 − a) cancels"),
    ),
    Wrong(
        "binary_cross_entropy",
        "flat-gradient",
        "    grad_logits = (a - y) / n\n    return loss, grad_logits\n",
        1,
        ("has shape (4,), expected (4, 1)", "reshape"),
    ),
    # batchnorm
    Wrong(
        "batchnorm",
        "no-mean-term",
        "    dbeta = grad_out.sum(axis=0)\n    dgamma = (grad_out * x_hat).sum(axis=0)\n"
        "    dx = gamma / std / n * (n * grad_out - x_hat * dgamma)\n    return dx, dgamma, dbeta\n",
        2,
        ("`bn-no-mean-term`", "−Σdy"),
    ),
    Wrong(
        "batchnorm",
        "sigma-constant",
        "    dbeta = grad_out.sum(axis=0)\n    dgamma = (grad_out * x_hat).sum(axis=0)\n"
        "    dx = gamma / std * (grad_out - grad_out.mean(axis=0))\n    return dx, dgamma, dbeta\n",
        2,
        ("`bn-no-variance-term`", "σ is computed from the batch too"),
    ),
    # global_avg_pool
    Wrong("global_avg_pool", "no-divide", "    dx[...] = grad_out[:, :, None, None]\n    return dx\n", 2, ("`gap-no-divide`", "(H·W)")),
    Wrong(
        "global_avg_pool",
        "not-spread",
        "    dx = grad_out / (h * w)\n    return dx\n",
        1,
        ("has shape (2, 3), expected (2, 3, 4, 5)",),
    ),
    # l2_update
    Wrong("l2_update", "missing", "    new_w = w - lr * grad_w\n    return new_w\n", 2, ("`l2-missing`",)),
    Wrong(
        "l2_update", "no-half", "    new_w = w - lr * (grad_w + 2 * weight_decay * w)\n    return new_w\n", 2, ("`l2-no-half`", "not 2λw")
    ),
    # residual
    Wrong(
        "residual",
        "no-skip",
        RESIDUAL_BODY.replace("dx = through + grad_out", "dx = through"),
        2,
        ("dx, yours =", "[ 0.5    1  2.5 ]", "your ∂L/∂x (dx) equals what `residual-no-skip-grad` gives", "read: cnn docs residual"),
    ),
    Wrong(
        "residual",
        "no-mask",
        RESIDUAL_BODY.replace("grad_z = (grad_out @ w2) * (z > 0)", "grad_z = grad_out @ w2"),
        2,
        ("your ∂L/∂x (dx), dw1, db1 equal what `relu-no-mask` gives", "read: cnn docs relu"),
    ),
    Wrong(
        "residual",
        "dw2-transposed",
        RESIDUAL_BODY.replace("dw2 = grad_out.T @ h", "dw2 = h.T @ grad_out"),
        1,
        ("your dw2 has shape (3, 4), expected (4, 3)", "transpose"),
    ),
    # net004
    Wrong(
        "net004",
        "ties-all",
        NET004_BODY.replace(NET004_ROUTING, NET004_TIES_ALL),
        4,
        ("a blank image", "the chain first goes wrong at dA1", "`maxpool-ties-all`"),
    ),
    Wrong(
        "net004",
        "wrt-probability",
        NET004_BODY.replace("dz2 = (a2 - targets) / n", "dz2 = (a2 - targets) / (a2 * (1 - a2)) / n"),
        2,
        ("the chain first goes wrong at dZ2", "`bce-grad-wrt-probability`"),
    ),
    Wrong(
        "net004",
        "w2-transposed",
        NET004_BODY.replace('grads["fc1.weight"] = dz2.T @ f', 'grads["fc1.weight"] = f.T @ dz2'),
        1,
        ("∂L/∂W2 (fc1.weight) has shape (4, 1), expected (1, 4)", "transpose"),
    ),
]
