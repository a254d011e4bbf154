"""What a bug-zoo entry is: one deliberate mistake, where it runs in a model, what it spoils, and why.

An entry is used twice. ``cnn gradcheck --break NAME`` swaps it into the library
for one whole-model gradient check. ``cnn exercise check`` runs cnn's own backward
with it swapped in on the learner's inputs, and when the learner's gradient equals
what the mistake gives, names the mistake (``op`` says for which exercise).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cnn_cli.layers import Layer
from cnn_cli.learn.bugzoo.patches import Patch
from cnn_cli.model.network import Model

RunsIn = Callable[[Model, float], list[str]]

# What a mistake spoils, given the layers it runs in:
BELOW = "below"  # a wrong input gradient: every tensor under the topmost layer it runs in
OWN = "own"  # a wrong parameter gradient: only those layers' own parameters
ALL = "all"  # a wrong loss gradient: everything
WEIGHTS = "weights"  # a wrong L2 term: every weight, no bias, not the input


@dataclass(frozen=True)
class Mutation:
    """One deliberate mistake.

    Attributes:
        name: what ``--break`` takes.
        mistake: the wrong line, in words.
        why: what it does to the gradients, and so which tensors a check must flag.
        docs: the ``cnn docs`` topic (its first word) and the section of the guide with the right derivation.
        apply: a context manager that swaps the mistake in and restores the library on exit.
        demo_config: the model used when no ``--config`` is given.
        fails: the tensors that fail on ``demo_config`` (what the tests hold it to); empty = it passes.
        runs_in: the layers of a model the mistake runs in (``["loss"]``, ``["optimizer"]`` for those).
        absent: what a net lacks when ``runs_in`` finds nothing, e.g. "no maxpool2d layer".
        reach: which tensors it spoils: BELOW, OWN, ALL or WEIGHTS.
        op: the exercise whose backward can make this mistake ("" for none).
        hint: one line for ``cnn exercise check``: what went wrong and what is right.
        weight_decay: λ of the check on ``demo_config`` (the L2 mistakes need one).
    """

    name: str
    mistake: str
    why: str
    docs: str
    apply: Patch
    demo_config: dict[str, Any]
    fails: tuple[str, ...]
    runs_in: RunsIn
    absent: str
    reach: str = BELOW
    op: str = ""
    hint: str = ""
    weight_decay: float = 0.0

    @property
    def topic(self) -> str:
        return self.docs.split()[0]


def layers_of(type_name: str, where: Callable[[Any], bool] = lambda layer: True) -> RunsIn:
    """The names of the model's layers of ``type_name`` for which ``where(layer)`` holds."""

    def find(model: Model, weight_decay: float) -> list[str]:
        return [layer.name for layer in model.layers if layer.type_name == type_name and where(layer)]

    return find


def loss_named(name: str) -> RunsIn:
    return lambda model, weight_decay: ["loss"] if model.loss.name == name else []


def decays_weights(model: Model, weight_decay: float) -> list[str]:
    return ["optimizer"] if weight_decay > 0 else []


def overlapping(layer: Layer) -> bool:
    """Windows that share input pixels: the stride is smaller than the (dilated) kernel along some axis."""
    dilation = getattr(layer, "dilation", (1, 1))
    return any(s < d * (k - 1) + 1 for s, d, k in zip(layer.stride, dilation, layer.kernel_size, strict=True))  # type: ignore[attr-defined]


def square_kernel(layer: Any) -> bool:
    return layer.kernel_size[0] == layer.kernel_size[1] and layer.kernel_size != (1, 1)


def everything(config: dict[str, Any]) -> tuple[str, ...]:
    """Every tensor the check reports for ``config``: each parameter, then the input."""
    from cnn_cli.model.network import build_model

    return (*build_model(config, dtype="float64").params, "input")


CONV_DX = "conv2d (backprop.md §2.1, '∂L/∂x: the input gradient')"
PASSES_ON_RANDOM = (
    "A random float64 batch never puts a value exactly there, and central differences straddle the kink anyway, "
    "so a numeric check passes with the mistake in place. "
)
