"""The residual-block exercise: out = F(x) + x with F(x) = relu(x w1ᵀ + b1) w2ᵀ + b2 (`cnn docs residual`).

The learner's ``residual_forward(x, w1, b1, w2, b2)`` is given; they write
``residual_backward(grad_out, cache) -> (dx, dw1, db1, dw2, db2)``. cnn's answer is a
``residual`` block built by the library around ``dense -> relu -> dense``, with the
learner's parameters, so that the bug zoo's mistakes in the block, the dense layer and
the ReLU, swapped in, change it and ``check`` can name them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnn_cli.learn.exercises.spec import EDGES, RANDOM, SHAPES, WORKED, Case, Exercise, rand
from cnn_cli.learn.explain.residual import RESIDUAL_GRAD, RESIDUAL_W, RESIDUAL_X

PARAMS = ("w1", "b1", "w2", "b2")
CNN_NAMES = {"w1": "res1.fc1.weight", "b1": "res1.fc1.bias", "w2": "res1.fc2.weight", "b2": "res1.fc2.bias"}
GRAD_OF = {"dw1": "fc1.weight", "db1": "fc1.bias", "dw2": "fc2.weight", "db2": "fc2.bias"}


class ResidualExercise(Exercise):
    name = "residual"
    summary = "a residual block's ∂L/∂x: the gradient through its layers plus the one along the skip"
    worked_from = "x = [1, −2, 3], F(x) = relu(W x) with w2 = I, ∂L/∂out = [0.5, −1, 2], as `cnn explain residual` works it"
    grads = ("dx", "dw1", "db1", "dw2", "db2")
    wrt = {"dx": "x", "dw1": "w1", "db1": "b1", "dw2": "w2", "db2": "b2"}

    def reference(self, case: Case) -> dict[str, np.ndarray]:
        from cnn_cli.model.network import build_model

        x = case.inputs["x"]
        hidden = case.inputs["w1"].shape[0]
        inner = [{"type": "dense", "out_features": hidden}, {"type": "relu"}, {"type": "dense", "out_features": x.shape[1]}]
        model = build_model({"input_shape": [x.shape[1]], "layers": [{"type": "residual", "layers": inner}]}, dtype="float64")
        model.load_params({CNN_NAMES[name]: case.inputs[name] for name in PARAMS})
        block = model.layers[0]
        block.training = True
        out = block.forward(x)
        dx = block.backward(case.grad_out, need_input_grad=True)
        return {"out": np.asarray(out), "dx": np.asarray(dx), **{g: block.grads[key].copy() for g, key in GRAD_OF.items()}}

    def _case(self, label: str, rng: np.random.Generator, n: int, features: int, hidden: int, note: str = "", **fixed: Any) -> Case:
        inputs = {
            "x": rand(rng, n, features),
            "w1": rand(rng, hidden, features),
            "b1": rand(rng, hidden),
            "w2": rand(rng, features, hidden),
            "b2": rand(rng, features),
        }
        inputs.update({name: np.asarray(value, dtype=np.float64) for name, value in fixed.items()})
        return Case(label, inputs, upstream=rng.standard_normal((n, features)), note=note)

    def cases(self, stage: str, rng: np.random.Generator) -> list[Case]:
        c = self._case
        if stage == SHAPES:
            return [c("x (2, 4), 3 hidden units: w1 (3, 4), w2 (4, 3)", rng, 2, 4, 3)]
        if stage == WORKED:
            inputs = {"x": RESIDUAL_X[None, :], "w1": RESIDUAL_W, "b1": np.zeros(3), "w2": np.eye(3), "b2": np.zeros(3)}
            note = "through the layers [0.5, 1, 2.5], along the skip [0.5, −1, 2]: ∂L/∂x = [1, 0, 4.5] (`cnn explain residual`)"
            label = "x = [1, −2, 3], z = W x = [4, −1.5, 2], ∂L/∂out = [0.5, −1, 2]"
            return [Case(label, inputs, upstream=RESIDUAL_GRAD[None, :], note=note, show=True)]
        if stage == RANDOM:
            return [c("x (3, 5), 4 hidden units", rng, 3, 5, 4), c("x (4, 6), 6 hidden units", rng, 4, 6, 6)]
        if stage == EDGES:
            return [
                c(
                    "every hidden unit off (b1 = −50)",
                    rng,
                    2,
                    4,
                    3,
                    "the layers pass nothing: ∂L/∂x is the skip's ∂L/∂out alone",
                    b1=np.full(3, -50.0),
                ),
                c(
                    "w2 = 0: the block is the identity",
                    rng,
                    2,
                    4,
                    3,
                    "F(x) = b2, yet dw2 is not 0: it reads the hidden units",
                    w2=np.zeros((4, 3)),
                ),
                c(
                    "x = 0 and b1 = 0: every hidden z exactly 0",
                    rng,
                    2,
                    4,
                    3,
                    "at z = 0 the ReLU passes nothing (mask z > 0, as cnn and PyTorch; `cnn docs relu`)",
                    x=np.zeros((2, 4)),
                    b1=np.zeros(3),
                ),
                c("a batch of 1", rng, 1, 5, 2),
            ]
        return [c("x (2, 4), 3 hidden units", rng, 2, 4, 3)]
