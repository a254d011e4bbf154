"""The windowed exercises: conv2d, maxpool2d, avgpool2d.

cnn's answer comes from its layers (``Conv2D``, ``MaxPool2D``, ``AvgPool2D``), run
as a model runs them, so that a bug-zoo mistake swapped into the library changes
it. The worked examples are the notes' own numbers: notes 003's 3x3 ⋆ 2x2 for the
convolution (the same as ``cnn explain conv-backward``), notes 000 §2.7's 4x4
max-pool figure (as ``cnn explain maxpool``) (`cnn docs maxpool2d`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnn_cli.layers import AvgPool2D, Conv2D, MaxPool2D
from cnn_cli.learn.exercises.spec import EDGES, NUMERIC, RANDOM, SHAPES, WORKED, Case, Exercise, distinct, rand
from cnn_cli.learn.explain.report import DEFAULT_GRAD, NOTES003_INPUT, NOTES003_KERNEL
from cnn_cli.learn.explain.routing import NOTES000_POOL_INPUT

NOTES000_POOL_GRAD = np.array([[1.5, -2.0], [3.0, 0.25]])  # an upstream gradient for the 2x2 pooled output, not all ones


def _image(array: np.ndarray | list[list[float]]) -> np.ndarray:
    """A (H, W) matrix as a (1, 1, H, W) batch."""
    return np.asarray(array, dtype=np.float64).reshape(1, 1, *np.shape(array))


def _upstream(rng: np.random.Generator, out: np.ndarray) -> np.ndarray:
    return rng.standard_normal(out.shape)


class Conv2DExercise(Exercise):
    name = "conv2d"
    summary = "a convolution's ∂L/∂x, ∂L/∂w, ∂L/∂b (stride, padding, dilation, groups)"
    worked_from = "notes 003: the 3x3 input [[1,6,2],[5,3,1],[7,0,4]] ⋆ the 2x2 kernel [[1,2],[-1,0]] (`cnn docs conv2d`)"
    grads = ("dx", "dw", "db")
    wrt = {"dx": "x", "dw": "w", "db": "b"}

    def reference(self, case: Case) -> dict[str, np.ndarray]:
        x, w, b = case.inputs["x"], case.inputs["w"], case.inputs["b"]
        options = {"stride": 1, "pad": 0, "dilation": 1, "groups": 1, **case.options}
        layer = Conv2D(
            "conv",
            x.shape[1],
            w.shape[0],
            w.shape[2:],
            options["stride"],
            options["pad"],
            options["dilation"],
            options["groups"],
            dtype=np.float64,
        )
        layer.params["weight"], layer.params["bias"] = w.copy(), b.copy()
        out = layer.forward(x)
        dx = layer.backward(case.grad_out, need_input_grad=True)
        return {"out": np.ascontiguousarray(out), "dx": np.ascontiguousarray(dx), "dw": layer.grads["weight"], "db": layer.grads["bias"]}

    def _case(self, label: str, rng: np.random.Generator, x_shape: tuple, w_shape: tuple, note: str = "", **options: Any) -> Case:
        case = Case(label, {"x": rand(rng, *x_shape), "w": rand(rng, *w_shape), "b": rand(rng, w_shape[0])}, options, note=note)
        case.upstream = _upstream(rng, self._out_shape(case))
        return case

    def _out_shape(self, case: Case) -> np.ndarray:
        x, w = case.inputs["x"], case.inputs["w"]
        stride, pad, dilation = (case.options.get(k, d) for k, d in (("stride", 1), ("pad", 0), ("dilation", 1)))
        out_h = (x.shape[2] + 2 * pad - dilation * (w.shape[2] - 1) - 1) // stride + 1
        out_w = (x.shape[3] + 2 * pad - dilation * (w.shape[3] - 1) - 1) // stride + 1
        return np.empty((x.shape[0], w.shape[0], out_h, out_w))

    def cases(self, stage: str, rng: np.random.Generator) -> list[Case]:
        c = self._case
        if stage == SHAPES:
            return [c("x (2, 3, 5, 6), w (4, 3, 3, 3)", rng, (2, 3, 5, 6), (4, 3, 3, 3))]
        if stage == WORKED:
            inputs = {"x": _image(NOTES003_INPUT), "w": _image(NOTES003_KERNEL), "b": np.zeros(1)}
            note = "`cnn explain conv-backward` works this one by hand, tap by tap"
            return [
                Case(
                    "notes 003's X ⋆ K, ∂L/∂Y = [[1, −1], [2, 0.5]] (`cnn docs conv2d`)",
                    inputs,
                    upstream=_image(DEFAULT_GRAD),
                    note=note,
                    show=True,
                )
            ]
        if stage == RANDOM:
            return [
                c("x (2, 3, 6, 6), w (4, 3, 3, 3)", rng, (2, 3, 6, 6), (4, 3, 3, 3)),
                c("x (3, 2, 5, 4), w (2, 2, 2, 3)", rng, (3, 2, 5, 4), (2, 2, 2, 3)),
            ]
        if stage == EDGES:
            return [
                c("stride 2", rng, (2, 2, 7, 7), (3, 2, 3, 3), "window (i, j) starts at (2i, 2j)", stride=2),
                c("padding 1", rng, (2, 2, 5, 5), (3, 2, 3, 3), "compute on the padded input, then crop the border off", pad=1),
                c("stride 2 and padding 1", rng, (2, 2, 6, 6), (3, 2, 3, 3), "the last padded row is read by no window", stride=2, pad=1),
                c("stride 3: rows no window reads", rng, (1, 1, 7, 7), (1, 1, 2, 2), "inputs no window reads get gradient 0", stride=3),
                c("dilation 2", rng, (1, 2, 7, 7), (2, 2, 3, 3), "tap (a, b) reads (i + 2a, j + 2b)", dilation=2),
                c("groups 2", rng, (2, 4, 5, 5), (6, 2, 3, 3), "output channel o reads only its group's input channels", groups=2),
                c("a batch of 1", rng, (1, 3, 5, 5), (2, 3, 3, 3)),
                c("a 1x1 kernel", rng, (2, 3, 4, 4), (5, 3, 1, 1), "a 1x1 conv is a dense layer at every pixel"),
            ]
        return [c("x (2, 2, 5, 5), w (3, 2, 3, 3), stride 2, padding 1", rng, (2, 2, 5, 5), (3, 2, 3, 3), stride=2, pad=1)]


class _PoolExercise(Exercise):
    layer_class: type[MaxPool2D] | type[AvgPool2D] = MaxPool2D

    def reference(self, case: Case) -> dict[str, np.ndarray]:
        options = {"size": 2, "stride": 2, "pad": 0, **case.options}
        layer = self.layer_class("pool", options["size"], options["stride"], options["pad"])
        out = layer.forward(case.inputs["x"])
        dx = layer.backward(case.grad_out, need_input_grad=True)
        return {"out": np.ascontiguousarray(out), "dx": np.ascontiguousarray(dx)}

    def _case(
        self, label: str, x: np.ndarray, rng: np.random.Generator, note: str = "", show: bool = False, upstream: Any = None, **options: Any
    ) -> Case:
        size, stride, pad = options.get("size", 2), options.get("stride", 2), options.get("pad", 0)
        out_h = (x.shape[2] + 2 * pad - size) // stride + 1
        out_w = (x.shape[3] + 2 * pad - size) // stride + 1
        drawn = rng.standard_normal((x.shape[0], x.shape[1], out_h, out_w))  # drawn always, so later cases keep their numbers
        return Case(label, {"x": x}, options, drawn if upstream is None else upstream, note, show)

    def common_cases(self, stage: str, rng: np.random.Generator) -> list[Case]:
        c = self._case
        if stage == SHAPES:
            return [c("x (2, 3, 6, 5), 2x2 windows", rand(rng, 2, 3, 6, 5), rng)]
        if stage == RANDOM:
            return [
                c("x (2, 3, 6, 6), 2x2 windows", distinct(rng, 2, 3, 6, 6), rng),
                c("3x3 windows, stride 2", distinct(rng, 2, 2, 7, 7), rng, size=3),
            ]
        if stage == NUMERIC:
            return [c("x (2, 2, 6, 6), 3x3 windows, stride 2, padding 1", distinct(rng, 2, 2, 6, 6), rng, size=3, stride=2, pad=1)]
        return []


class MaxPool2DExercise(_PoolExercise):
    name = "maxpool2d"
    summary = "a max-pool's ∂L/∂x: the gradient goes to each window's winner (ties, overlap, padding)"
    worked_from = "notes 000 §2.7: a 4x4 input in 2x2 windows; each gradient lands where the notes' figure puts it (`cnn docs maxpool2d`)"
    layer_class = MaxPool2D

    def cases(self, stage: str, rng: np.random.Generator) -> list[Case]:
        c = self._case
        if stage == WORKED:
            return [
                Case(
                    "notes 000 §2.7's 4x4 input, 2x2 windows, ∂L/∂Y = [[1.5, −2], [3, 0.25]] (`cnn docs maxpool2d`)",
                    {"x": _image(NOTES000_POOL_INPUT)},
                    upstream=_image(NOTES000_POOL_GRAD),
                    note="`cnn explain maxpool` works this one by hand",
                    show=True,
                )
            ]
        if stage != EDGES:
            return self.common_cases(stage, rng)
        ties = _image([[5.0, 5.0, 0.0, 1.0], [1.0, 2.0, 3.0, 0.5], [0.0, 1.0, 4.0, 4.0], [2.0, 0.0, 4.0, 1.0]])
        blank = np.stack([np.full((4, 4), 0.5), distinct(rng, 4, 4)])[None]
        overlap = distinct(rng, 1, 1, 5, 5)
        overlap[0, 0, 2, 2] = 10.0  # the centre wins all nine 3x3 windows
        tie_note = "the forward copied one input, so one input gets the gradient: cnn (and PyTorch) pick the first maximum in reading order"
        return [
            c("two or more inputs tie for a window's maximum", ties, rng, tie_note, show=True, upstream=_image(NOTES000_POOL_GRAD)),
            c("a blank patch: all four inputs of a window are equal", blank, rng, tie_note),
            c(
                "overlapping 3x3 windows, stride 1: one input wins all nine",
                overlap,
                rng,
                "a winner collects from every window it won",
                size=3,
                stride=1,
            ),
            c("padding 1 around negative inputs", -2.0 - distinct(rng, 1, 2, 5, 5), rng, "the border is −∞, never a winner", size=3, pad=1),
            c("a batch of 1", distinct(rng, 1, 3, 4, 4), rng),
            c("an odd size: the last row and column are in no window", distinct(rng, 2, 1, 5, 5), rng, "inputs no window reads get 0"),
        ]


class AvgPool2DExercise(_PoolExercise):
    name = "avgpool2d"
    summary = "an average-pool's ∂L/∂x: each input gets its share of every window it is in"
    worked_from = "a 4x4 input 1..16 in 2x2 windows: every input gets a quarter of its window's ∂L/∂y"
    layer_class = AvgPool2D

    def cases(self, stage: str, rng: np.random.Generator) -> list[Case]:
        c = self._case
        if stage == WORKED:
            x = _image(np.arange(1.0, 17.0).reshape(4, 4))
            grad = _image([[4.0, -8.0], [2.0, 1.0]])
            return [Case("x = 1..16 in a 4x4 grid, 2x2 windows, ∂L/∂Y = [[4, −8], [2, 1]]", {"x": x}, upstream=grad, show=True)]
        if stage != EDGES:
            return self.common_cases(stage, rng)
        share = "an input in several windows collects a share from each: +="
        return [
            c("overlapping 3x3 windows, stride 1", rand(rng, 1, 2, 5, 5), rng, share, size=3, stride=1),
            c("2x2 windows, stride 1", rand(rng, 2, 1, 4, 4), rng, share, stride=1),
            c(
                "padding 1 (the zeros count in the mean)",
                rand(rng, 1, 2, 5, 5),
                rng,
                "the divisor stays size², as in PyTorch",
                size=3,
                pad=1,
            ),
            c("a batch of 1", rand(rng, 1, 3, 4, 4), rng),
            c("an odd size: the last row and column are in no window", rand(rng, 2, 1, 5, 5), rng, "inputs no window reads get 0"),
        ]
