"""The bug zoo's mistake in a residual block: the skip's gradient forgotten (``cnn docs residual``)."""

from __future__ import annotations

import contextlib

import numpy as np

from cnn_cli.learn.bugzoo import nets
from cnn_cli.learn.bugzoo.mutation import Mutation, layers_of
from cnn_cli.learn.bugzoo.patches import patched
from cnn_cli.nn import residual as nn_residual


def _through_layers_only(grad_through_layers: np.ndarray, grad_along_skip: np.ndarray) -> np.ndarray:
    return grad_through_layers  # the bug: x fed two paths, but only the inner layers' gradient comes back


def residual_no_skip_grad() -> contextlib.AbstractContextManager[None]:
    return patched(nn_residual, "fork_backward", _through_layers_only)


ENTRIES = [
    Mutation(
        "residual-no-skip-grad",
        "residual block backward returns only the gradient through its inner layers, forgetting the skip's",
        "x feeds both the inner layers and the skip, so ∂L/∂x = (through the layers) + ∂L/∂out (along the skip). "
        "Without the second term every tensor below the block fails; the block's own parameters pass (their gradients "
        "come from ∂L/∂out, which is right).",
        "residual (backprop.md §2.17; `cnn explain residual`)",
        residual_no_skip_grad,
        nets.RESIDUAL_NET,
        ("conv1.weight", "conv1.bias", "input"),
        layers_of("residual"),
        "no residual block",
        op="residual",
        hint="x feeds the inner layers and the skip: ∂L/∂x is the sum of the gradient through the layers and ∂L/∂out along the skip",
    ),
]
