"""The whole-network exercise ``net004``: notes 004's 15-parameter net, the chain rule by hand (`cnn docs exercises`).

Conv 3x3 → ReLU → MaxPool 2x2 → Flatten → Dense(4 → 1) → sigmoid with binary
cross-entropy, on 6x6 images (the size that gives notes 004's 15 parameters). The
learner's ``net004_forward(x, y, params) -> (loss, cache)`` is given; they write
``net004_backward(cache) -> grads``, a dict with every parameter's gradient under
cnn's names, and may add the intermediate gradients (``dZ2``, ``dF``, ``dP1``,
``dA1``, ``dZ1``) to see where the chain first goes wrong. cnn's answer is the
``seed004`` config's model with the same parameters (`cnn docs binary_cross_entropy`).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from cnn_cli.learn.exercises.spec import EDGES, RANDOM, SHAPES, WORKED, Case, Exercise, describe, distinct
from cnn_cli.learn.explain.network import SEED004_PARAMS, seed004_input, seed004_model_section
from cnn_cli.learn.learner_api import LearnerFunction
from cnn_cli.learn.learner_process import LearnerCall, Returned, array_ref

PARAMS = ("conv1.weight", "conv1.bias", "fc1.weight", "fc1.bias")
PARAM_SHAPES = {"conv1.weight": (1, 1, 3, 3), "conv1.bias": (1,), "fc1.weight": (1, 4), "fc1.bias": (1,)}
# The chain's intermediate gradients, from the loss down, each with the step that computes it.
INTERMEDIATES = {
    "dZ2": "the loss's gradient, (A2 − Y)/N",
    "dF": "the dense layer's ∂L/∂F = ∂L/∂Z2 · W2",
    "dP1": "the flatten's reshape of ∂L/∂F",
    "dA1": "the max-pool's routing of ∂L/∂P1 to each window's winner",
    "dZ1": "the ReLU's mask [Z1 > 0]",
}
NET004 = LearnerFunction(
    "net004",
    "net004_forward(x, y, params) -> (loss, cache)",
    "net004_backward(cache) -> grads",
    "",
    "trace",
)


@lru_cache(maxsize=1)
def _model_section() -> dict[str, Any]:
    return {**seed004_model_section(), "input_shape": [1, 6, 6]}


class Net004Exercise(Exercise):
    name = "net004"
    summary = "the 15-parameter net of the seed004 config: every gradient by the chain rule"
    worked_from = (
        "notes 004's net with fixed small weights on a 6x6 image of 36 distinct values, y = 1 (`cnn explain seed004-net`)"
        " (`cnn docs seed004`)"
    )
    numeric_title = "central differences of your own forward's loss, parameter by parameter (float64)"
    grads = PARAMS
    optional = tuple(INTERMEDIATES)
    optional_steps = INTERMEDIATES

    @property
    def api(self) -> LearnerFunction:
        return NET004

    @property
    def outputs(self) -> tuple[str, ...]:
        return ("loss", *INTERMEDIATES, "fc1.weight", "fc1.bias", "conv1.weight", "conv1.bias")

    def learner_call(self, case: Case, prefix: str, numeric: bool) -> tuple[LearnerCall, dict[str, np.ndarray]]:
        arrays = {prefix + "x": case.inputs["x"], prefix + "y": case.inputs["y"]}
        arrays.update({prefix + "p." + name: case.inputs[name] for name in PARAMS})
        params = {"$dict": {name: array_ref(prefix + "p." + name) for name in PARAMS}}
        call = LearnerCall(
            self.forward_name,
            [array_ref(prefix + "x"), array_ref(prefix + "y"), params],
            backward=self.backward_name,
            numeric=[prefix + "p." + name for name in PARAMS] if numeric else [],
        )
        return call, arrays

    def unpack(self, returned: Returned) -> dict[str, Any] | str:
        if returned.not_a_pair:
            return f"{self.forward_name} returned {describe(returned.value)}, not the pair (loss, cache)"
        grads = returned.grads
        if not isinstance(grads, dict):
            return f"{self.backward_name} returned {describe(grads)}; return a dict {{'conv1.weight': ..., 'conv1.bias': ..., ...}}"
        missing = [name for name in PARAMS if name not in grads]
        if missing:
            holds = ", ".join(map(repr, grads)) or "nothing"
            return f"{self.backward_name}'s dict has no {', '.join(repr(m) for m in missing)}; it holds {holds}"
        return {"loss": returned.value, **{key: value for key, value in grads.items() if key in PARAMS or key in INTERMEDIATES}}

    def numeric_pairs(self, case: Case, mine: dict[str, Any], returned: Returned, prefix: str) -> list[tuple[str, Any, np.ndarray]]:
        return [(name, mine[name], returned.numeric[prefix + "p." + name]) for name in PARAMS]

    def reference(self, case: Case) -> dict[str, np.ndarray]:
        from cnn_cli.model.network import build_model

        model = build_model(_model_section(), dtype="float64")
        model.load_params({name: case.inputs[name] for name in PARAMS})
        x, y = case.inputs["x"], case.inputs["y"]
        steps = model.trace(x, training=True)
        loss, grad_logits = model.loss(steps[-1].output, y)
        back = model.backward_trace(grad_logits)
        n = x.shape[0]
        found = {
            "loss": np.asarray(loss),
            "dZ2": grad_logits.reshape(n, 1),
            "dF": back[4].grad_input.reshape(n, 4),
            "dP1": back[3].grad_input,
            "dA1": back[2].grad_input,
            "dZ1": back[1].grad_input,
        }
        found.update({name: grad.copy() for name, grad in model.grads.items()})
        return found

    def _case(self, label: str, x: np.ndarray, y: list[int], params: dict[str, np.ndarray], note: str = "", show: bool = False) -> Case:
        return Case(label, {"x": x, "y": np.asarray(y), **params}, note=note, show=show)

    def _params(self, rng: np.random.Generator, bias: float | None = None) -> dict[str, np.ndarray]:
        params = {name: 0.5 * rng.standard_normal(shape) for name, shape in PARAM_SHAPES.items()}
        if bias is not None:
            params["conv1.bias"] = np.array([bias])
        return params

    def cases(self, stage: str, rng: np.random.Generator) -> list[Case]:
        c = self._case
        if stage == SHAPES:
            return [c("x (2, 1, 6, 6), y = [0, 1]", distinct(rng, 2, 1, 6, 6), [0, 1], self._params(rng))]
        if stage == WORKED:
            params = {name: value.copy() for name, value in SEED004_PARAMS.items()}
            return [
                c(
                    "notes 004's net, X 6x6, y = 1 (`cnn docs seed004`)",
                    seed004_input(),
                    [1],
                    params,
                    "`cnn explain seed004-net` prints every factor",
                    True,
                )
            ]
        if stage == RANDOM:
            return [c("x (3, 1, 6, 6), random parameters", distinct(rng, 3, 1, 6, 6), [1, 0, 1], self._params(rng))]
        if stage == EDGES:
            blank = "every Z1 equals b1, so every pool window ties: one input (the first) gets each gradient"
            return [
                c("a blank image, b1 > 0", np.zeros((1, 1, 6, 6)), [0], self._params(rng, bias=0.3), blank),
                c(
                    "b1 so negative every ReLU is off",
                    distinct(rng, 1, 1, 6, 6),
                    [1],
                    self._params(rng, bias=-50.0),
                    "no gradient reaches W1 or b1",
                ),
                c("y = 0 and y = 1 in one batch: the loss is the mean", distinct(rng, 2, 1, 6, 6), [0, 1], self._params(rng)),
            ]
        return [c("x (2, 1, 6, 6), y = [1, 0]", distinct(rng, 2, 1, 6, 6), [1, 0], self._params(rng))]
