"""Loss evaluations for a numeric gradient check, and the kinks a ±ε step may cross.

ReLU and max-pool are not differentiable everywhere. When a ±ε step moves a ReLU
input across 0, or changes which input wins a max-pool window, the central
difference straddles a kink and says nothing about the derivative at θ. A
:class:`Probe` evaluates the loss from one layer on and reports the kink pattern
(the sign of every ReLU input, the winner of every max-pool window), so that
``cnn gradcheck`` can skip such steps and name the unit that crossed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnn_cli.layers import Layer, LeakyReLU, MaxPool2D, ReLU
from cnn_cli.model.network import Model
from cnn_cli.nn import optim
from cnn_cli.nn.pool import maxpool2d_forward


def kinks(layer: Layer, layer_input: np.ndarray) -> np.ndarray | None:
    """Where the layer's non-differentiable points sit for this input, or None for a smooth layer.

    ReLU/LeakyReLU: the mask of positive inputs. Max-pool: the index of each window's winner.
    """
    if isinstance(layer, (ReLU, LeakyReLU)):
        return layer_input > 0
    if isinstance(layer, MaxPool2D):
        _, cache = maxpool2d_forward(layer_input, layer.kernel_size, layer.stride, layer.padding)
        return cache.argmax
    return None


def uses_batch_statistics(model: Model) -> bool:
    """True when a training forward normalises with the batch's own statistics (batch norm, also inside a block)."""
    return bool(model.buffers)


def batch_norm_after(model: Model, owner: int, name: str) -> str:
    """The batch norm (in training mode) right after the layer whose ``name`` is a bias, else "".

    Such a norm subtracts the batch mean of each channel, and with it any constant the bias
    added: the loss does not depend on that bias at all, and its gradient is exactly 0.
    """
    following = model.layers[owner + 1] if 0 <= owner < len(model.layers) - 1 else None
    if not name.endswith(".bias") or following is None or not following.type_name.startswith("batchnorm"):
        return ""
    return following.name if following.training else ""


def _all_layers(layers: list[Layer[Any]]) -> list[Layer[Any]]:
    return [inner for layer in layers for inner in (layer, *_all_layers(layer.children()))]


class FixedMasks:
    """Makes a training-mode loss a fixed function of the parameters although dropout draws a fresh mask each forward.

    Every dropout generator is rewound to the state it had when this object was made, before
    each forward, so each forward draws the same masks.
    """

    def __init__(self, model: Model) -> None:
        self.layers = [layer for layer in _all_layers(model.layers) if hasattr(layer, "rng")]
        self.states = [layer.rng.bit_generator.state for layer in self.layers]

    def rewind(self) -> None:
        for layer, state in zip(self.layers, self.states, strict=True):
            layer.rng.bit_generator.state = state


class Probe:
    """Evaluates the loss from layer ``start`` on, given that layer's input, and reports the kinks met.

    Two evaluations with equal kink patterns lie on the same smooth piece of the loss,
    so their central difference estimates the derivative. With ``masks`` the forward runs in
    training mode (batch norm on the batch's statistics, dropout with the same masks each time).
    """

    def __init__(
        self,
        model: Model,
        start: int,
        start_input: np.ndarray,
        labels: np.ndarray,
        weight_decay: float = 0.0,
        masks: FixedMasks | None = None,
    ) -> None:
        self.model = model
        self.masks = masks
        self.weight_decay = weight_decay  # the L2 term ½λΣw² is part of the loss being checked
        self.start = start
        self.start_input = start_input  # for the "input" tensor this is the batch itself, perturbed in place
        self.labels = labels
        self.base_loss, self.base_pattern = self.evaluate()

    def evaluate(self) -> tuple[float, list[np.ndarray | None]]:
        """(loss, kink pattern of layers start..end) for the current parameter values."""
        if self.masks is not None:
            self.masks.rewind()
        steps = self.model.trace(self.start_input, training=self.masks is not None, start=self.start)
        loss, _ = self.model.loss(steps[-1].output, self.labels)
        loss += optim.l2_penalty(self.model.params, self.weight_decay)
        return loss, [kinks(step.layer, step.input) for step in steps]

    def flipped_unit(self, pattern: list[np.ndarray | None]) -> str:
        """Which unit left the base piece: the first ReLU input that changed sign or max-pool window that changed winner."""
        for offset, (now, base) in enumerate(zip(pattern, self.base_pattern, strict=True)):
            if now is None or base is None or np.array_equal(now, base):
                continue
            layer = self.model.layers[self.start + offset]
            where = tuple(int(i) for i in np.argwhere(now != base)[0])
            if isinstance(layer, MaxPool2D):  # argmax is (N, H_out, W_out, C): report as (n, c, i, j)
                n, i, j, c = where
                return f"{layer.name} window (n={n}, c={c}, i={i}, j={j}) changed its winner"
            return f"{layer.name} unit {where} crossed 0"
        return ""

    def on_base_piece(self, pattern: list[np.ndarray | None]) -> bool:
        """True when no ReLU input changed sign and no max-pool window changed its winner."""
        return all(
            (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))
            for a, b in zip(pattern, self.base_pattern, strict=True)
        )
