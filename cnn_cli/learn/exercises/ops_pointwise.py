"""The exercises on layers without windows: relu, leaky_relu, sigmoid, tanh, dense, flatten, dropout.

cnn's answer comes from its layers (``ReLU``, ``Dense``, ...), run as a model
runs them, so that a bug-zoo mistake swapped into the library changes it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cnn_cli.layers import Dense, Dropout, Flatten, LeakyReLU, ReLU, Sigmoid, Tanh
from cnn_cli.learn.exercises.spec import EDGES, NUMERIC, RANDOM, SHAPES, WORKED, Case, Exercise, away_from_zero, rand
from cnn_cli.learn.explain.routing import NOTES000_RELU_BLOCKED


def _case(
    label: str, rng: np.random.Generator, inputs: dict[str, np.ndarray], out_shape: tuple[int, ...], note: str = "", **options: Any
) -> Case:
    return Case(label, inputs, options, rng.standard_normal(out_shape), note)


def _worked(label: str, x: Any, upstream: Any, note: str = "", **options: Any) -> Case:
    return Case(label, {"x": np.asarray(x, dtype=np.float64)}, options, np.asarray(upstream, dtype=np.float64), note, show=True)


def _run(layer: Any, case: Case) -> dict[str, np.ndarray]:
    """cnn's layer forward and backward on the case (in training mode, as a training step runs them)."""
    layer.training = True
    out = layer.forward(case.inputs["x"])
    return {"out": np.asarray(out), "dx": np.asarray(layer.backward(case.grad_out, need_input_grad=True))}


class _Elementwise(Exercise):
    """A layer whose output has its input's shape, one gradient ∂L/∂x."""

    def make_layer(self, case: Case) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def reference(self, case: Case) -> dict[str, np.ndarray]:
        return _run(self.make_layer(case), case)

    def random_like(self, rng: np.random.Generator, *shape: int) -> np.ndarray:
        return rand(rng, *shape)

    def plain(self, label: str, rng: np.random.Generator, x: np.ndarray, note: str = "", **options: Any) -> Case:
        return _case(label, rng, {"x": x}, x.shape, note, **options)

    def common(self, stage: str, rng: np.random.Generator, **options: Any) -> list[Case]:
        r = self.random_like
        if stage == SHAPES:
            return [self.plain("x (2, 3, 4, 5)", rng, r(rng, 2, 3, 4, 5), **options)]
        if stage == RANDOM:
            return [
                self.plain("x (2, 3, 4, 4)", rng, r(rng, 2, 3, 4, 4), **options),
                self.plain("x (4, 10), as after a dense layer", rng, r(rng, 4, 10), **options),
            ]
        if stage == NUMERIC:
            return [self.plain("x (2, 3, 4, 4)", rng, r(rng, 2, 3, 4, 4), **options)]
        return [self.plain("a batch of 1", rng, r(rng, 1, 3, 3), **options)]


class ReLUExercise(_Elementwise):
    name = "relu"
    summary = "a ReLU's ∂L/∂x: the gradient passes where the input was positive (and at exactly 0?)"
    worked_from = "notes 000 §2.8: the 4x4 figure, negative where the notes block the gradient (`cnn docs relu`)"

    def make_layer(self, case: Case) -> Any:
        return ReLU("relu")

    def random_like(self, rng: np.random.Generator, *shape: int) -> np.ndarray:
        return away_from_zero(rng, *shape)

    def cases(self, stage: str, rng: np.random.Generator) -> list[Case]:
        if stage == WORKED:
            x = np.arange(1.0, 17.0).reshape(4, 4)
            for position in NOTES000_RELU_BLOCKED:
                x[position] = -x[position]
            upstream = (np.arange(1.0, 17.0) * (-1.0) ** np.arange(16)).reshape(1, 1, 4, 4)
            return [
                _worked(
                    "notes 000 §2.8's 4x4 input, ∂L/∂Y = 1, −2, 3, −4, .. (`cnn docs relu`).", x[None, None], upstream, "`cnn explain relu`"
                )
            ]
        if stage != EDGES:
            return self.common(stage, rng)
        zeros = away_from_zero(rng, 2, 2, 4, 4)
        zeros[:, :, ::2, 1::2] = 0.0
        zero_note = "at exactly 0 the derivative does not exist; cnn, like PyTorch, passes nothing there"
        return [
            self.plain("inputs exactly 0", rng, zeros, zero_note),
            self.plain("all inputs negative: nothing passes", rng, -np.abs(away_from_zero(rng, 2, 3, 3))),
            *self.common(stage, rng),
        ]


class LeakyReLUExercise(_Elementwise):
    name = "leaky_relu"
    summary = "a leaky ReLU's ∂L/∂x: 1 or the slope, and which one at exactly 0"
    worked_from = "x = [[−2, 3], [0.5, −1]], slope 0.1: the negative entries pass a tenth of their gradient"

    def make_layer(self, case: Case) -> Any:
        return LeakyReLU("leaky_relu", case.options.get("slope", 0.01))

    def random_like(self, rng: np.random.Generator, *shape: int) -> np.ndarray:
        return away_from_zero(rng, *shape)

    def cases(self, stage: str, rng: np.random.Generator) -> list[Case]:
        if stage == WORKED:
            return [
                _worked(
                    "x = [[−2, 3], [0.5, −1]], slope 0.1, ∂L/∂Y = [[1, 2], [3, 4]]",
                    [[-2.0, 3.0], [0.5, -1.0]],
                    [[1.0, 2.0], [3.0, 4.0]],
                    slope=0.1,
                )
            ]
        if stage == SHAPES:
            return self.common(stage, rng)
        if stage != EDGES:
            return self.common(stage, rng, slope=0.2)
        zeros = away_from_zero(rng, 2, 2, 4, 4)
        zeros[:, :, 1::2, ::2] = 0.0
        return [
            self.plain("inputs exactly 0", rng, zeros, "cnn, like PyTorch, puts 0 on the negative side: slope · ∂L/∂y", slope=0.1),
            self.plain("slope 0 (a plain ReLU)", rng, away_from_zero(rng, 2, 3, 3), slope=0.0),
            self.plain("the default slope 0.01", rng, away_from_zero(rng, 2, 5)),
            *self.common(stage, rng, slope=0.3),
        ]


class SigmoidExercise(_Elementwise):
    name = "sigmoid"
    summary = "a sigmoid's ∂L/∂x = ∂L/∂y · y(1 − y), from the cached output"
    worked_from = "x = 0, ln 3, −ln 3, where σ = 1/2, 3/4, 1/4 and σ' = 1/4, 3/16, 3/16"

    def make_layer(self, case: Case) -> Any:
        return Sigmoid("sigmoid")

    def cases(self, stage: str, rng: np.random.Generator) -> list[Case]:
        if stage == WORKED:
            ln3 = math.log(3.0)
            return [_worked("x = [0, ln 3, −ln 3], ∂L/∂Y = [2, 4, −4]", [[0.0, ln3, -ln3]], [[2.0, 4.0, -4.0]])]
        if stage != EDGES:
            return self.common(stage, rng)
        return [
            self.plain("large |x|: σ' underflows towards 0, never nan", rng, np.array([[-40.0, -20.0, 20.0, 40.0]])),
            self.plain("x = 0, where σ' is largest (1/4)", rng, np.zeros((2, 3))),
            *self.common(stage, rng),
        ]


class TanhExercise(_Elementwise):
    name = "tanh"
    summary = "a tanh's ∂L/∂x = ∂L/∂y · (1 − y²), from the cached output"
    worked_from = "x = 0, atanh(1/2), atanh(−1/2), where tanh = 0, 1/2, −1/2 and tanh' = 1, 3/4, 3/4"

    def make_layer(self, case: Case) -> Any:
        return Tanh("tanh")

    def cases(self, stage: str, rng: np.random.Generator) -> list[Case]:
        if stage == WORKED:
            half = math.atanh(0.5)
            return [_worked("x = [0, atanh(1/2), −atanh(1/2)], ∂L/∂Y = [1, 2, −4]", [[0.0, half, -half]], [[1.0, 2.0, -4.0]])]
        if stage != EDGES:
            return self.common(stage, rng)
        return [
            self.plain("large |x|: tanh' underflows towards 0, never nan", rng, np.array([[-30.0, -15.0, 15.0, 30.0]])),
            self.plain("x = 0, where tanh' = 1", rng, np.zeros((2, 3))),
            *self.common(stage, rng),
        ]


class FlattenExercise(_Elementwise):
    name = "flatten"
    summary = "a flatten's ∂L/∂x: the gradient reshaped back, in the order the forward read"
    worked_from = "x (1, 2, 2, 2) = 1..8: out[k] is x[c, h, w] with k = 4c + 2h + w"

    def make_layer(self, case: Case) -> Any:
        return Flatten("flatten")

    def plain(self, label: str, rng: np.random.Generator, x: np.ndarray, note: str = "", **options: Any) -> Case:
        return _case(label, rng, {"x": x}, (x.shape[0], int(np.prod(x.shape[1:])), 1, 1), note, **options)

    def cases(self, stage: str, rng: np.random.Generator) -> list[Case]:
        if stage == WORKED:
            x = np.arange(1.0, 9.0).reshape(1, 2, 2, 2)
            upstream = np.array([0.5, -1.0, 1.5, -2.0, 2.5, -3.0, 3.5, -4.0]).reshape(1, 8, 1, 1)
            return [Case("x = 1..8 in (1, 2, 2, 2), ∂L/∂out = 0.5, −1, 1.5, −2, ...", {"x": x}, upstream=upstream, show=True)]
        if stage == RANDOM:
            return [self.plain("x (2, 3, 4, 5)", rng, rand(rng, 2, 3, 4, 5)), self.plain("x (3, 1, 2, 2)", rng, rand(rng, 3, 1, 2, 2))]
        if stage != EDGES:
            return self.common(stage, rng)
        return [
            self.plain("a batch of 1", rng, rand(rng, 1, 4, 3, 3)),
            self.plain("one channel", rng, rand(rng, 2, 1, 3, 3)),
            self.plain("a 1x1 map (already flat)", rng, rand(rng, 2, 5, 1, 1)),
        ]


class DenseExercise(Exercise):
    name = "dense"
    summary = "a dense layer's ∂L/∂x, ∂L/∂W = (∂L/∂y)ᵀx, ∂L/∂b"
    worked_from = "notes 004's output layer: W2 = [0.5, −0.4, 0.3, 0.2], b2 = −0.1, one image F = [1, 2, 0, −1] (`cnn docs dense`)"
    grads = ("dx", "dw", "db")
    wrt = {"dx": "x", "dw": "w", "db": "b"}

    def reference(self, case: Case) -> dict[str, np.ndarray]:
        x, w, b = case.inputs["x"], case.inputs["w"], case.inputs["b"]
        layer = Dense("fc", w.shape[1], w.shape[0], dtype=np.float64)
        layer.params["weight"], layer.params["bias"] = w.copy(), b.copy()
        out = layer.forward(x)
        dx = layer.backward(case.grad_out, need_input_grad=True)
        return {"out": out, "dx": np.asarray(dx), "dw": layer.grads["weight"], "db": layer.grads["bias"]}

    def _case(self, label: str, rng: np.random.Generator, x_shape: tuple[int, ...], f_out: int, note: str = "") -> Case:
        f_in = int(np.prod(x_shape[1:]))
        inputs = {"x": rand(rng, *x_shape), "w": rand(rng, f_out, f_in), "b": rand(rng, f_out)}
        return _case(label, rng, inputs, (x_shape[0], f_out), note)

    def cases(self, stage: str, rng: np.random.Generator) -> list[Case]:
        c = self._case
        if stage == SHAPES:
            return [c("x (2, 5), w (3, 5)", rng, (2, 5), 3)]
        if stage == WORKED:
            inputs = {"x": np.array([[1.0, 2.0, 0.0, -1.0]]), "w": np.array([[0.5, -0.4, 0.3, 0.2]]), "b": np.array([-0.1])}
            note = "∂L/∂W2 = (A2 − Y)Fᵀ with A2 − Y = −0.25 (`cnn explain seed004-net`)"
            return [Case("F = [1, 2, 0, −1], ∂L/∂Z2 = A2 − Y = −0.25", inputs, upstream=np.array([[-0.25]]), note=note, show=True)]
        if stage == RANDOM:
            return [c("x (3, 5), w (4, 5)", rng, (3, 5), 4), c("x (4, 6), w (6, 6)", rng, (4, 6), 6)]
        if stage == EDGES:
            return [
                c("x (2, 6, 1, 1) from a flatten", rng, (2, 6, 1, 1), 3, "dx has the input's own shape, (N, F, 1, 1)"),
                c("a square weight (4 in, 4 out)", rng, (3, 4), 4, "∂L/∂W is (F_out, F_in): a transpose still fits, but is wrong"),
                c("one output, as notes 004's (`cnn docs seed004`)", rng, (5, 4), 1),
                c("a batch of 1", rng, (1, 4), 3),
            ]
        return [c("x (3, 4), w (2, 4)", rng, (3, 4), 2)]


class _FixedMask:
    """Stands in for the Dropout layer's generator: ``random`` returns 1 where ``keep`` and 0 elsewhere,
    so that the layer's own rule ``keep = random() >= p`` draws exactly the learner's mask."""

    def __init__(self, keep: np.ndarray) -> None:
        self.keep = keep

    def random(self, shape: tuple[int, ...]) -> np.ndarray:
        return self.keep.astype(np.float64).reshape(shape)


class DropoutExercise(Exercise):
    name = "dropout"
    summary = "inverted dropout's ∂L/∂x: the same mask, the same 1/(1 − p)"
    worked_from = "x = [1, 2, 3, 4], the second entry dropped, p = 0.25: the kept ones are scaled by 4/3"

    def reference(self, case: Case) -> dict[str, np.ndarray]:
        layer = Dropout("dropout", case.options["p"], rng=_FixedMask(case.inputs["keep"]))  # type: ignore[arg-type]
        return _run(layer, case)

    def _case(self, label: str, rng: np.random.Generator, x: np.ndarray, p: float, keep: np.ndarray | None = None, note: str = "") -> Case:
        keep = rng.random(x.shape) >= p if keep is None else keep
        return _case(label, rng, {"x": x, "keep": keep}, x.shape, note, p=p)

    def cases(self, stage: str, rng: np.random.Generator) -> list[Case]:
        c = self._case
        if stage == SHAPES:
            return [c("x (2, 3, 4), p = 0.3", rng, rand(rng, 2, 3, 4), 0.3)]
        if stage == WORKED:
            inputs = {"x": np.array([[1.0, 2.0, 3.0, 4.0]]), "keep": np.array([[True, False, True, True]])}
            upstream = np.array([[3.0, 3.0, -6.0, 1.5]])
            return [
                Case("x = [1, 2, 3, 4], keep = [1, 0, 1, 1], p = 0.25, ∂L/∂Y = [3, 3, −6, 1.5]", inputs, {"p": 0.25}, upstream, show=True)
            ]
        if stage == RANDOM:
            return [c("x (2, 3, 4, 4), p = 0.3", rng, rand(rng, 2, 3, 4, 4), 0.3), c("x (4, 10), p = 0.6", rng, rand(rng, 4, 10), 0.6)]
        if stage == EDGES:
            return [
                c("p = 0: nothing is dropped", rng, rand(rng, 2, 5), 0.0, np.ones((2, 5), dtype=bool)),
                c("everything dropped", rng, rand(rng, 2, 5), 0.9, np.zeros((2, 5), dtype=bool), "no unit kept, no gradient"),
                c("a batch of 1, p = 0.5", rng, rand(rng, 1, 8), 0.5),
            ]
        return [c("x (2, 3, 4), p = 0.3", rng, rand(rng, 2, 3, 4), 0.3)]
