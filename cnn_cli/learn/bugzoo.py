"""The bug zoo: deliberately wrong backward passes, and what a gradient check says about each.

``cnn gradcheck --break NAME`` swaps one of these into the library for the length
of one check, runs the usual numeric-gradient comparison and puts the result
beside the explanation: which tensors should fail and why, and which docs section
derives the right formula. Each mistake is one a learner really makes (CS231n's
assignments are full of them). One entry is a lesson in what a check can miss:
``=`` instead of ``+=`` in col2im passes when stride = kernel size, because then no
two windows share an input pixel and there is nothing to add up.

A mutation is a context manager that replaces a function in a library module
and restores it on exit, so the rest of the process never sees the bug.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from cnn_cli.errors import CnnError
from cnn_cli.layers import conv as conv_layer
from cnn_cli.layers import pool as pool_layer
from cnn_cli.nn import activations as nn_act
from cnn_cli.nn import conv as nn_conv
from cnn_cli.nn import pool as nn_pool
from cnn_cli.nn.windows import tap_slice

# Small float64 models on which each mistake shows (or hides) in a second.
CONV_STACK = {
    "input_shape": [1, 8, 8],
    "layers": [
        {"type": "conv2d", "out_channels": 3, "kernel_size": 3, "stride": 2, "padding": 1},
        {"type": "relu"},
        {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "stride": 1, "padding": 1},
        {"type": "relu"},
        {"type": "flatten"},
        {"type": "dense", "out_features": 5},
    ],
}
POOL_NET = {
    "input_shape": [1, 6, 6],
    "layers": [
        {"type": "conv2d", "out_channels": 2, "kernel_size": 3},
        {"type": "relu"},
        {"type": "maxpool2d", "kernel_size": 2},
        {"type": "flatten"},
        {"type": "dense", "out_features": 3},
    ],
}
# Stride = kernel size: the windows tile the input, no pixel is read twice.
PATCHES = {
    "input_shape": [1, 8, 8],
    "layers": [
        {"type": "conv2d", "out_channels": 3, "kernel_size": 2, "stride": 2},
        {"type": "relu"},
        {"type": "conv2d", "out_channels": 4, "kernel_size": 2, "stride": 2},
        {"type": "flatten"},
        {"type": "dense", "out_features": 5},
    ],
}


@dataclass(frozen=True)
class Mutation:
    """One deliberate mistake.

    Attributes:
        name: what ``--break`` takes.
        mistake: the wrong line, in words.
        why: what it does to the gradients, and so which tensors a check must flag.
        docs: the ``cnn docs`` topic and the section of the guide (cnn_cli/learn/guide/backprop.md) with the right derivation.
        apply: a context manager that swaps the mistake in and restores the library on exit.
        demo_config: the model used when no ``--config`` is given.
        fails: the tensors that fail on ``demo_config`` (what the tests hold it to); empty = it passes.
    """

    name: str
    mistake: str
    why: str
    docs: str
    apply: Callable[[], contextlib.AbstractContextManager[None]]
    demo_config: dict[str, Any]
    fails: tuple[str, ...]


@contextlib.contextmanager
def _patched(target: Any, attribute: str, value: Any) -> Iterator[None]:
    original = getattr(target, attribute)
    setattr(target, attribute, value)
    try:
        yield
    finally:
        setattr(target, attribute, original)


def _col2im_with(assign: bool = False, ignore_stride: bool = False) -> Callable[..., None]:
    """A col2im like cnn_cli.nn.conv._col2im, with one of two classic mistakes."""

    def col2im(grad_x_padded: np.ndarray, grad_cols: np.ndarray, cache: nn_conv.ConvCache, in_slice: slice) -> None:
        _, out_h, out_w, k_h, k_w, _ = grad_cols.shape
        stride = (1, 1) if ignore_stride else cache.stride
        for a in range(k_h):
            for b in range(k_w):
                rows = tap_slice(a, cache.dilation[0], stride[0], out_h)
                cols = tap_slice(b, cache.dilation[1], stride[1], out_w)
                if assign:
                    grad_x_padded[:, rows, cols, in_slice] = grad_cols[:, :, :, a, b, :]  # the bug: = instead of +=
                else:
                    grad_x_padded[:, rows, cols, in_slice] += grad_cols[:, :, :, a, b, :]

    return col2im


def _col2im_assign() -> contextlib.AbstractContextManager[None]:
    return _patched(nn_conv, "_col2im", _col2im_with(assign=True))


def _col2im_no_stride() -> contextlib.AbstractContextManager[None]:
    return _patched(nn_conv, "_col2im", _col2im_with(ignore_stride=True))


def _bias_not_summed() -> contextlib.AbstractContextManager[None]:
    right = nn_conv.conv2d_backward

    def wrong(grad_out: np.ndarray, cache: nn_conv.ConvCache, need_input_grad: bool = True):
        grad_x, grad_w, grad_b = right(grad_out, cache, need_input_grad)
        if grad_b is not None:
            grad_b = grad_out[0].sum(axis=(1, 2))  # the bug: only the first sample's positions are summed
        return grad_x, grad_w, grad_b

    return _patched(conv_layer, "conv2d_backward", wrong)


def _kernel_not_rotated() -> contextlib.AbstractContextManager[None]:
    right = nn_conv.conv2d_backward

    def wrong(grad_out: np.ndarray, cache: nn_conv.ConvCache, need_input_grad: bool = True):
        _, grad_w, grad_b = right(grad_out, cache, False)
        grad_x = None
        if need_input_grad:
            # dL/dX = full correlation of dL/dY with rot180(K). Handing the backward a pre-flipped
            # kernel undoes the rotation: the bug computes the full correlation with K itself.
            flipped = replace(cache, weight=np.ascontiguousarray(cache.weight[:, :, ::-1, ::-1]))
            grad_x, _, _ = right(grad_out, flipped, True)
        return grad_x, grad_w, grad_b

    return _patched(conv_layer, "conv2d_backward", wrong)


def _relu_no_mask() -> contextlib.AbstractContextManager[None]:
    return _patched(nn_act, "relu_backward", lambda grad_out, positive: grad_out.copy())  # the bug: every unit passes


def _maxpool_spread() -> contextlib.AbstractContextManager[None]:
    def wrong(grad_out: np.ndarray, cache: nn_pool.PoolCache) -> np.ndarray:
        # the bug: every input of the window gets the whole output gradient, not just the winner
        grad_nhwc = grad_out.transpose(0, 2, 3, 1)
        return nn_pool._scatter_to_windows(cache, lambda tap: grad_nhwc)

    return _patched(pool_layer.MaxPool2D, "_backward", staticmethod(wrong))


@contextlib.contextmanager
def _loss_gradient(change: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]) -> Iterator[None]:
    """Keep the loss value (the numeric side), replace its gradient (the analytic side)."""
    from cnn_cli.layers import losses as losses_module

    right = losses_module.softmax_cross_entropy

    def wrong(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
        loss, grad = right(logits, labels)
        return loss, change(grad, logits, labels)

    with _patched(losses_module, "softmax_cross_entropy", wrong):
        yield


def _loss_not_averaged() -> contextlib.AbstractContextManager[None]:
    return _loss_gradient(lambda grad, logits, labels: grad * logits.shape[0])  # the bug: the 1/N is missing


def _softmax_without_y() -> contextlib.AbstractContextManager[None]:
    from cnn_cli.nn.losses import softmax

    return _loss_gradient(lambda grad, logits, labels: softmax(logits) / logits.shape[0])  # the bug: p, not p − y


def _everything(config: dict[str, Any]) -> tuple[str, ...]:
    """Every tensor the check reports for ``config``: each parameter, then the input."""
    from cnn_cli.model.network import build_model

    return (*build_model(config, dtype="float64").params, "input")


MUTATIONS = {
    m.name: m
    for m in [
        Mutation(
            "col2im-assign",
            "col2im writes grad_x[window] = ... instead of += ...",
            "Overlapping windows share input pixels; with = each pixel keeps only the last window's share. "
            "Every input gradient of a conv whose windows overlap is wrong, and so is every tensor below it; "
            "that conv's own weight and bias are still right (they never go through col2im).",
            "conv2d (backprop.md §2.1, '∂L/∂x: the input gradient')",
            _col2im_assign,
            CONV_STACK,
            ("conv1.weight", "conv1.bias", "input"),
        ),
        Mutation(
            "col2im-assign-no-overlap",
            "the same = instead of +=, on a net whose convs have stride = kernel size",
            "PASSES: when stride equals the kernel size the windows tile the input, every pixel is read by exactly "
            "one window, and there is nothing to add up, so = and += agree. A gradient check only tests the geometry "
            "it is given: check with overlapping windows too.",
            "conv2d (backprop.md §2.1, '∂L/∂x: the input gradient')",
            _col2im_assign,
            PATCHES,
            (),
        ),
        Mutation(
            "bias-not-summed",
            "conv bias gradient summed over the positions of the first sample only, not over the batch",
            "The bias is added to every output of every sample, so its gradient is the sum of ∂L/∂y over the batch and "
            "all positions. Only the conv biases fail; the batch must have 2 or more samples to show it.",
            "conv2d (backprop.md §2.1, '∂L/∂bias: the bias gradient')",
            _bias_not_summed,
            CONV_STACK,
            ("conv1.bias", "conv2.bias"),
        ),
        Mutation(
            "relu-no-mask",
            "ReLU backward returns grad_out unchanged (no [x > 0] mask)",
            "Units that output 0 pass gradient they never had. Everything below the last ReLU fails; the layers "
            "above it (here the dense layer) are still right.",
            "relu (backprop.md §2.5)",
            _relu_no_mask,
            CONV_STACK,
            ("conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "input"),
        ),
        Mutation(
            "maxpool-spread",
            "max-pool backward gives the output gradient to every input of the window",
            "Only the winner influenced the output, so only it gets ∂L/∂y; the others must get 0. Everything below the pool fails.",
            "maxpool2d (backprop.md §2.3)",
            _maxpool_spread,
            POOL_NET,
            ("conv1.weight", "conv1.bias", "input"),
        ),
        Mutation(
            "kernel-not-rotated",
            "conv input gradient computed as the full correlation of ∂L/∂Y with K instead of rot180(K)",
            "Each input pixel must meet each ∂L/∂y through the tap that connected them; without the 180° turn the "
            "taps are mirrored. The conv's own weight and bias stay right; its input gradient and everything below "
            "fail (a 1x1 or centre-symmetric kernel would hide it).",
            "conv2d (backprop.md §2.1, '∂L/∂x: the input gradient'; `cnn explain conv-backward`)",
            _kernel_not_rotated,
            CONV_STACK,
            ("conv1.weight", "conv1.bias", "input"),
        ),
        Mutation(
            "col2im-no-stride",
            "col2im steps through the input one pixel at a time, ignoring the stride",
            "With stride s, window (i, j) starts at (i·s, j·s); adding its gradient at (i, j) puts it on the wrong "
            "pixels. Only the stride-2 conv1 is affected: its input gradient fails (conv2 has stride 1, so the "
            "mistake changes nothing there).",
            "conv2d (backprop.md §1.3 tap_slice, §2.1 '∂L/∂x')",
            _col2im_no_stride,
            CONV_STACK,
            ("input",),
        ),
        Mutation(
            "loss-not-averaged",
            "softmax cross-entropy gradient not divided by the batch size N (the loss is the mean)",
            "The loss is the batch mean, so every gradient carries 1/N. Without it every tensor is N times too large: "
            "all fail, each by the same relative error (N − 1)/(N + 1).",
            "softmax_cross_entropy (backprop.md §1.5 and §2.12)",
            _loss_not_averaged,
            CONV_STACK,
            (),  # filled in below: every tensor
        ),
        Mutation(
            "softmax-without-y",
            "softmax cross-entropy gradient p instead of p − y",
            "∂L/∂z_k = p_k − y_k: the −1 at the target class is what makes the true class's score go up. Without it every tensor fails.",
            "softmax_cross_entropy (backprop.md §2.12; `cnn explain softmax-ce`)",
            _softmax_without_y,
            CONV_STACK,
            (),
        ),
    ]
}
for _name in ("loss-not-averaged", "softmax-without-y"):
    MUTATIONS[_name] = replace(MUTATIONS[_name], fails=_everything(MUTATIONS[_name].demo_config))


def get_mutation(name: str) -> Mutation:
    if name not in MUTATIONS:
        raise CnnError(f"--break: unknown mistake {name!r}; `cnn gradcheck --break list` shows: {', '.join(MUTATIONS)}")
    return MUTATIONS[name]


def list_mutations() -> str:
    width = max(len(name) for name in MUTATIONS)
    lines = [f"{m.name:<{width}}  {m.mistake}" for m in MUTATIONS.values()]
    lines.append("")
    lines.append("Run one: cnn gradcheck --break NAME (on its own small net), or add --config C for yours.")
    return "\n".join(lines)


def explain_mutation(mutation: Mutation, failed: list[str], expected_known: bool) -> str:
    """What the learner reads under the table: the mistake, what fails and why, where the docs derive it."""
    lines = [f"mistake: {mutation.mistake}"]
    if failed:
        lines.append(f"failed:  {', '.join(failed)}")
    else:
        lines.append("failed:  nothing; the check passed with the mistake in place")
    if expected_known:
        match = tuple(failed) == mutation.fails
        expected = ", ".join(mutation.fails) if mutation.fails else "nothing"
        lines.append(f"expected to fail: {expected} ({'as expected' if match else 'NOT what was expected'})")
    lines.append(f"why:     {mutation.why}")
    lines.append(f"read:    cnn docs {mutation.docs}")
    return "\n".join(lines)


def gradcheck_report(
    config_name: str | None,
    seed: int = 0,
    batch_size: int = 2,
    break_name: str | None = None,
    show: int = 0,
    impl: str | None = None,
    atol: float | None = None,
) -> tuple[str, bool]:
    """What ``cnn gradcheck`` prints, and whether it passed (``--break list`` counts as passed).

    With ``break_name`` the check is run with that mistake swapped in: it "passes" (exit 0)
    when exactly the expected tensors fail on the mistake's own net, or, on the learner's
    ``--config``, when anything fails at all, so that the zoo teaches rather than alarms.
    ``atol`` is the absolute floor of the check (None: the default, ``cnn docs gradcheck``).
    """
    from cnn_cli.config.load import load_config
    from cnn_cli.learn.gradcheck import ATOL, format_entries, format_gradcheck, gradcheck_model

    if impl is not None:
        if config_name or break_name:
            raise CnnError("--impl checks your own functions; drop --config/--break")
        from cnn_cli.learn.impl_check import check_learner_file, format_impl

        impl_results = check_learner_file(Path(impl), seed=seed)
        return format_impl(impl_results), all(r.passed for r in impl_results)
    if break_name == "list":
        return list_mutations(), True
    mutation = get_mutation(break_name) if break_name is not None else None
    if config_name is None and mutation is None:
        raise CnnError("give --config CONFIG (e.g. --config mnist), --break NAME (--break list) or --impl FILE.py")
    config: Any = load_config(config_name) if config_name is not None else mutation.demo_config  # type: ignore[union-attr]
    with mutation.apply() if mutation is not None else contextlib.nullcontext():
        results = gradcheck_model(config, seed=seed, batch_size=batch_size, show=show, atol=ATOL if atol is None else atol)
    parts = [format_gradcheck(results)]
    if show:
        parts.append("")
        parts.append(format_entries(results))
    if mutation is None:
        return "\n".join(parts), all(r.passed for r in results)
    failed = [r.name for r in results if not r.passed]
    on_demo = config_name is None
    parts.insert(0, f"with the mistake '{mutation.name}' swapped in" + ("" if config_name else " (its own small net)") + ":")
    parts.append("")
    parts.append(explain_mutation(mutation, failed, expected_known=on_demo))
    ok = tuple(failed) == mutation.fails if on_demo else True
    return "\n".join(parts), ok
