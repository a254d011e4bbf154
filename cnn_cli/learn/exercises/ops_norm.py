"""The exercises on batch norm (training mode, (N, D) as batchnorm1d) and global average pooling.

cnn's answer comes from its layers (``BatchNorm1D``, ``GlobalAvgPool``), run as a
training step runs them, so that a bug-zoo mistake swapped into the library changes
it. The worked examples are the numbers of ``cnn explain batchnorm`` and ``cnn explain
global-avg-pool`` (`cnn docs batchnorm`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnn_cli.layers import BatchNorm1D, GlobalAvgPool
from cnn_cli.learn.exercises.spec import EDGES, RANDOM, SHAPES, WORKED, Case, Exercise, rand
from cnn_cli.learn.explain.normalization import BN_BETA, BN_EPS, BN_GAMMA, BN_GRAD, BN_INPUT


class BatchNormExercise(Exercise):
    name = "batchnorm"
    summary = "batch norm's ∂L/∂x through the batch mean and variance, ∂L/∂γ, ∂L/∂β"
    worked_from = "`cnn explain batchnorm`'s 2x3 example, as 3 samples of 2 features (`cnn docs batchnorm`)"
    grads = ("dx", "dgamma", "dbeta")
    wrt = {"dx": "x", "dgamma": "gamma", "dbeta": "beta"}

    def reference(self, case: Case) -> dict[str, np.ndarray]:
        x, gamma, beta = case.inputs["x"], case.inputs["gamma"], case.inputs["beta"]
        layer = BatchNorm1D("bn", x.shape[1], eps=case.options.get("eps", 1e-5), dtype=np.float64)
        layer.params["weight"], layer.params["bias"] = gamma.copy(), beta.copy()
        layer.training = True
        out = layer.forward(x)
        dx = layer.backward(case.grad_out, need_input_grad=True)
        return {"out": out, "dx": np.asarray(dx), "dgamma": layer.grads["weight"], "dbeta": layer.grads["bias"]}

    def _case(self, label: str, rng: np.random.Generator, x: np.ndarray, note: str = "", gamma: Any = None, **options: Any) -> Case:
        d = x.shape[1]
        gamma = rng.uniform(0.5, 2.0, d) if gamma is None else np.asarray(gamma, dtype=np.float64)
        inputs = {"x": x, "gamma": gamma, "beta": rand(rng, d)}
        return Case(label, inputs, options, rng.standard_normal(x.shape), note)

    def cases(self, stage: str, rng: np.random.Generator) -> list[Case]:
        c = self._case
        if stage == SHAPES:
            return [c("x (4, 3)", rng, rand(rng, 4, 3))]
        if stage == WORKED:
            inputs = {"x": BN_INPUT.T.copy(), "gamma": BN_GAMMA, "beta": BN_BETA}
            note = "`cnn explain batchnorm` works this one, every intermediate of both backwards"
            label = "x = [[1, 0], [4, 1], [7, 5]], γ = [2, 0.5], β = [1, −1], ∂L/∂out = [[1, 0.5], [−1, 2], [2, −1]]"
            return [Case(label, inputs, {"eps": BN_EPS}, BN_GRAD.T.copy(), note, show=True)]
        if stage == RANDOM:
            return [c("x (5, 4)", rng, rand(rng, 5, 4) * 2 + 1), c("x (8, 3)", rng, rand(rng, 8, 3))]
        if stage == EDGES:
            return [
                c("one feature (D = 1)", rng, rand(rng, 6, 1)),
                c("γ with negative entries", rng, rand(rng, 4, 3), gamma=[-1.5, 0.5, -0.25]),
                c("a large ε = 0.5", rng, rand(rng, 5, 2), "σ = √(v + ε) everywhere, in the backward too", eps=0.5),
                c("inputs far from 0 (x·50 + 100)", rng, rand(rng, 4, 3) * 50 + 100, "the statistics take the offset and scale out"),
            ]
        return [c("x (4, 3)", rng, rand(rng, 4, 3) * 1.5 - 0.5)]


class GlobalAvgPoolExercise(Exercise):
    name = "global_avg_pool"
    summary = "global average pooling's ∂L/∂x: ∂L/∂out / (H·W) to every input of the map"
    worked_from = "`cnn explain global-avg-pool`'s 2x3 map, ∂L/∂out = 3 (`cnn docs global_avg_pool`)"

    def reference(self, case: Case) -> dict[str, np.ndarray]:
        layer = GlobalAvgPool("gap")
        out = layer.forward(case.inputs["x"])
        return {"out": out, "dx": np.asarray(layer.backward(case.grad_out, need_input_grad=True))}

    def _case(self, label: str, rng: np.random.Generator, *shape: int, note: str = "") -> Case:
        return Case(label, {"x": rand(rng, *shape)}, {}, rng.standard_normal(shape[:2]), note)

    def cases(self, stage: str, rng: np.random.Generator) -> list[Case]:
        c = self._case
        if stage == SHAPES:
            return [c("x (2, 3, 4, 5)", rng, 2, 3, 4, 5)]
        if stage == WORKED:
            x = BN_INPUT.reshape(1, 1, 2, 3)
            return [Case("x = [[1, 4, 7], [0, 1, 5]], ∂L/∂out = 3", {"x": x}, {}, np.array([[3.0]]), "3/6 to each input", show=True)]
        if stage == RANDOM:
            return [c("x (2, 3, 4, 4)", rng, 2, 3, 4, 4), c("x (3, 2, 5, 3)", rng, 3, 2, 5, 3)]
        if stage == EDGES:
            return [
                c("a 1x1 map: the mean of one value", rng, 2, 3, 1, 1, note="H·W = 1: dx = ∂L/∂out"),
                c("one channel", rng, 2, 1, 3, 3),
                c("a batch of 1", rng, 1, 4, 2, 2),
                c("a map that is not square (3x7)", rng, 2, 2, 3, 7, note="divide by H·W, not H² or W²"),
            ]
        return [c("x (2, 3, 3, 4)", rng, 2, 3, 3, 4)]
