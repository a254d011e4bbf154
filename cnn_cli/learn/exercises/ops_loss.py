"""The exercises without a backward function: the two losses, each ``(loss, grad_logits)``, and the L2 update.

cnn's answer comes from the functions a model calls (``cnn_cli.layers.losses``'
names for the loss math, :func:`cnn_cli.nn.optim.add_l2_gradient` and SGD),
looked up at call time so that a bug-zoo mistake swapped in changes it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cnn_cli.layers import losses as losses_module
from cnn_cli.learn.exercises.spec import EDGES, EPS, RANDOM, SHAPES, WORKED, Case, Exercise, describe, rand
from cnn_cli.learn.learner_process import LearnerCall, Returned, array_ref
from cnn_cli.nn import optim


class _LossExercise(Exercise):
    """``NAME(logits, targets) -> (loss, grad_logits)``: the loss value is given, the learner writes its gradient."""

    function_name = ""
    target_name = "labels"
    numeric_title = "central differences of your own loss (float64)"

    @property
    def outputs(self) -> tuple[str, ...]:
        return ("loss", "grad_logits")

    @property
    def functions(self) -> tuple[str, ...]:
        return (self.forward_name,)

    def learner_call(self, case: Case, prefix: str, numeric: bool) -> tuple[LearnerCall, dict[str, np.ndarray]]:
        arrays = {prefix + key: value for key, value in case.inputs.items()}
        args = [array_ref(prefix + key) for key in case.inputs]
        return LearnerCall(self.forward_name, args, numeric=[prefix + "logits"] if numeric else []), arrays

    def unpack(self, returned: Returned) -> dict[str, Any] | str:
        value = returned.value
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            return f"{self.forward_name} returned {describe(value)}, expected the pair (loss, grad_logits)"
        return {"loss": value[0], "grad_logits": value[1]}

    def numeric_pairs(self, case: Case, mine: dict[str, Any], returned: Returned, prefix: str) -> list[tuple[str, Any, np.ndarray]]:
        return [("grad_logits", mine["grad_logits"], returned.numeric[prefix + "logits"])]

    def reference(self, case: Case) -> dict[str, np.ndarray]:
        loss, grad = getattr(losses_module, self.function_name)(case.inputs["logits"], case.inputs[self.target_name])
        return {"loss": np.asarray(loss), "grad_logits": grad}

    def loss_case(self, label: str, logits: Any, targets: Any, note: str = "", show: bool = False) -> Case:
        inputs = {"logits": np.asarray(logits, dtype=np.float64), self.target_name: np.asarray(targets)}
        return Case(label, inputs, note=note, show=show)


class SoftmaxCrossEntropyExercise(_LossExercise):
    name = "softmax_cross_entropy"
    function_name = "softmax_cross_entropy"
    summary = "softmax cross-entropy's ∂L/∂z = (p − y)/N, averaged over the batch"
    worked_from = (
        "notes 001: p = [0.3, 0.7] with the target class 2 gives ∂L/∂z = [0.3, −0.3]; then a batch of 2 (`cnn docs softmax_cross_entropy`)"
    )

    def cases(self, stage: str, rng: np.random.Generator) -> list[Case]:
        c = self.loss_case
        if stage == SHAPES:
            return [c("logits (3, 5), labels (3,)", rand(rng, 3, 5), [0, 4, 2])]
        if stage == WORKED:
            batch = [[2.0, 1.0, 0.1], [0.5, 0.5, 3.0]]
            return [
                c(
                    "notes 001: logits ln [0.3, 0.7], target 1 (`cnn docs softmax_cross_entropy`)",
                    [[math.log(0.3), math.log(0.7)]],
                    [1],
                    "`cnn explain softmax-ce`",
                    True,
                ),
                c(
                    "a batch of 2: logits [[2, 1, 0.1], [0.5, 0.5, 3]], labels [0, 1]",
                    batch,
                    [0, 1],
                    "the loss is the mean: each row / N",
                    True,
                ),
            ]
        if stage == RANDOM:
            return [
                c("logits (4, 10)", rand(rng, 4, 10), rng.integers(0, 10, 4)),
                c("logits (6, 3)", rand(rng, 6, 3), rng.integers(0, 3, 6)),
            ]
        if stage == EDGES:
            huge = [[1000.0, 0.0, -1000.0], [-1000.0, 1000.0, 0.0]]
            return [
                c("logits of ±1000", huge, [2, 1], "exp(1000) overflows: subtract each row's max first (`cnn docs softmax_cross_entropy`)"),
                c("a batch of 1", rand(rng, 1, 4), [3]),
                c("two classes", rand(rng, 3, 2), [1, 0, 1]),
            ]
        return [c("logits (3, 4)", rand(rng, 3, 4), [3, 0, 1])]


class BinaryCrossEntropyExercise(_LossExercise):
    name = "binary_cross_entropy"
    function_name = "binary_cross_entropy_with_logits"
    target_name = "targets"
    summary = "binary cross-entropy on the logit: ∂L/∂z = (σ(z) − y)/N: the sigmoid's derivative cancels"
    worked_from = "logits [0, ln 3] (σ = 1/2, 3/4) with targets [1, 0]: ∂L/∂z = [−1/2, 3/4] / 2"

    def cases(self, stage: str, rng: np.random.Generator) -> list[Case]:
        c = self.loss_case
        if stage == SHAPES:
            return [c("logits (4, 1), targets (4,)", rand(rng, 4, 1), [1, 0, 0, 1])]
        if stage == WORKED:
            note = "notes 004: (a − y)/(a(1 − a)) · a(1 − a) = a − y (`cnn explain seed004-net`) (`cnn docs seed004`)"
            return [c("logits [[0], [ln 3]], targets [1, 0]", [[0.0], [math.log(3.0)]], [1, 0], note, True)]
        if stage == RANDOM:
            return [c("logits (5, 1)", rand(rng, 5, 1), rng.integers(0, 2, 5)), c("logits (3, 1)", rand(rng, 3, 1), [0, 0, 1])]
        if stage == EDGES:
            return [
                c("logits of ±50", [[50.0], [-50.0], [30.0]], [0, 1, 1], "σ(z) rounds to 0 or 1: the loss needs log1p(exp(−|z|))"),
                c("logits of shape (N,)", rand(rng, 4), [1, 0, 1, 1], "the gradient has the logits' shape"),
                c("soft targets (probabilities)", rand(rng, 2, 1), np.array([0.2, 0.9])),
                c("a batch of 1", rand(rng, 1, 1), [1]),
            ]
        return [c("logits (4, 1)", rand(rng, 4, 1), [1, 0, 0, 1])]


class L2UpdateExercise(Exercise):
    name = "l2_update"
    summary = "one SGD step with L2: w ← w − lr·(∂L/∂w + λw)"
    worked_from = "notes 001: α = λ = 0.1; w = 0.1 with ∂L/∂w = −0.2401, −0.0147 and 0 moves by +0.02301, +0.00047, −0.001 (`cnn docs l2`)"
    numeric_title = "central differences of the penalty ½λΣw², against the λw your update implies"

    @property
    def outputs(self) -> tuple[str, ...]:
        return ("new_w",)

    @property
    def functions(self) -> tuple[str, ...]:
        return (self.forward_name,)

    def learner_call(self, case: Case, prefix: str, numeric: bool) -> tuple[LearnerCall, dict[str, np.ndarray]]:
        arrays = {prefix + "w": case.inputs["w"], prefix + "grad_w": case.inputs["grad_w"]}
        args = [array_ref(prefix + "w"), array_ref(prefix + "grad_w"), case.options["lr"], case.options["weight_decay"]]
        return LearnerCall(self.forward_name, args), arrays

    def unpack(self, returned: Returned) -> dict[str, Any] | str:
        return {"new_w": returned.value}

    def reference(self, case: Case) -> dict[str, np.ndarray]:
        params = {"layer.weight": case.inputs["w"].copy()}
        grads = {"layer.weight": case.inputs["grad_w"].copy()}
        optim.add_l2_gradient(params, grads, case.options["weight_decay"])
        optim.SGD(case.options["lr"]).step(params, grads)
        return {"new_w": params["layer.weight"]}

    def numeric_pairs(self, case: Case, mine: dict[str, Any], returned: Returned, prefix: str) -> list[tuple[str, Any, np.ndarray]]:
        """The penalty gradient your update implies, (w − new_w)/lr − ∂L/∂w, against central differences of ½λΣw²."""
        w, lam, lr = case.inputs["w"], case.options["weight_decay"], case.options["lr"]
        implied = (w - np.asarray(mine["new_w"], dtype=np.float64)) / lr - case.inputs["grad_w"]
        numeric = np.zeros_like(w)
        probe = w.copy()
        for index in np.ndindex(w.shape):
            original = probe[index]
            probe[index] = original + EPS
            plus = optim.l2_penalty({"w.weight": probe}, lam)
            probe[index] = original - EPS
            minus = optim.l2_penalty({"w.weight": probe}, lam)
            probe[index] = original
            numeric[index] = (plus - minus) / (2 * EPS)
        return [("λw (your (w − new_w)/lr − ∂L/∂w)", implied, numeric)]

    def _case(self, label: str, rng: np.random.Generator, shape: tuple[int, ...], lr: float, lam: float, note: str = "") -> Case:
        return Case(label, {"w": rand(rng, *shape), "grad_w": rand(rng, *shape)}, {"lr": lr, "weight_decay": lam}, note=note)

    def cases(self, stage: str, rng: np.random.Generator) -> list[Case]:
        c = self._case
        if stage == SHAPES:
            return [c("w (3, 4), lr 0.1, λ 0.01", rng, (3, 4), 0.1, 0.01)]
        if stage == WORKED:
            inputs = {"w": np.array([0.1, 0.1, 0.1]), "grad_w": np.array([-0.2401, -0.0147, 0.0])}
            note = "`cnn explain l2-update` works these by hand"
            return [
                Case(
                    "notes 001: w = [0.1, 0.1, 0.1], ∂L/∂w = [−0.2401, −0.0147, 0], α = λ = 0.1 (`cnn docs l2`)",
                    inputs,
                    {"lr": 0.1, "weight_decay": 0.1},
                    note=note,
                    show=True,
                )
            ]
        if stage == RANDOM:
            return [
                c("a conv weight (4, 3, 3, 3), lr 0.05, λ 0.001", rng, (4, 3, 3, 3), 0.05, 1e-3),
                c("a dense weight (5, 8), lr 0.5, λ 0.1", rng, (5, 8), 0.5, 0.1),
            ]
        if stage == EDGES:
            return [
                c("λ = 0: a plain SGD step", rng, (3, 3), 0.1, 0.0),
                c("lr = 0: nothing moves", rng, (2, 4), 0.0, 0.5),
                c("a large λ: the decay outweighs the gradient", rng, (2, 3), 0.1, 5.0),
            ]
        return [c("w (3, 5), lr 0.1, λ 0.3", rng, (3, 5), 0.1, 0.3)]
