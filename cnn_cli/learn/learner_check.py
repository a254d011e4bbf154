"""Did the learner's functions train the network as cnn's do? (``cnn train --impl``'s report)

Two questions, two measurements:

- **the weights**: a reference copy of the model, with cnn's own layers, takes the
  same steps on the same batches; after each step every weight tensor of the
  learner's model is compared with the reference's. The first step and tensor
  where they part by more than :data:`TOLERANCE` is where the learner's code first
  made a difference;
- **which function**: on the batch of that step, from the reference's weights
  before it, every learner function gets exactly the inputs cnn's function got
  (the same x, the same upstream gradient) and its result is compared with cnn's.
  A wrong ``dx`` of conv2 shows up in the weights as conv1 (which learns from it);
  this says it was conv2d_backward.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnn_cli.layers import Residual
from cnn_cli.learn.learner_code import LearnerCode, LearnerStop
from cnn_cli.learn.learner_layers import LearnerLayer, LearnerLoss, use_learner_code
from cnn_cli.model.network import Model

TOLERANCE = 1e-6  # weights further apart than this have diverged
# A learner function's result is "different" beyond this relative error: float32 arithmetic in
# another order (im2col vs loops) differs by ~1e-6 of the largest value; a bug by far more.
FUNCTION_TOLERANCE = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-9}


@dataclass
class FunctionDifference:
    """One result of one learner function that differs from cnn's, given the same inputs."""

    function: str  # conv2d_backward
    where: str  # layer conv2 | the loss
    tensor: str  # out | dx | dw | db | loss | grad_logits
    max_abs: float
    relative: float  # max |learner − cnn| / max |cnn|

    def line(self) -> str:
        where = f"{self.function} ({self.where})"
        return f"{where}: {self.tensor} differs from cnn's by up to {self.max_abs:.1e} ({self.relative:.1e} of its largest value)"


@dataclass
class WeightCheck:
    """The learner's model against the reference, tensor by tensor, step by step."""

    names: list[str]
    start_step: int  # the run's step count when the check began (0, or where a resume started)
    repeated_in_float64: bool = False  # a float32 run's steps were repeated in float64 for the check
    steps: int = 0  # steps compared so far
    latest: dict[str, float] = field(default_factory=dict)  # max |learner − reference| after the latest step
    diverged_at: dict[str, int] = field(default_factory=dict)  # tensor -> the first step it was beyond TOLERANCE
    first: tuple[int, str, float] | None = None  # (step, tensor, difference) of the first divergence
    suspects: list[FunctionDifference] | None = None  # the diagnosis at the first divergence
    seconds: float = 0.0  # spent on the reference and the comparisons

    def compare(self, step: int, learner: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> bool:
        """Record the differences after ``step``; True when this step is the first to diverge."""
        self.steps += 1
        newly = False
        for name in self.names:
            difference = float(np.max(np.abs(learner[name].astype(np.float64) - reference[name]))) if learner[name].size else 0.0
            self.latest[name] = difference
            if not difference <= TOLERANCE and name not in self.diverged_at:  # NaN counts as diverged
                self.diverged_at[name] = step
                if self.first is None:
                    self.first, newly = (step, name, difference), True
        return newly

    def as_dict(self) -> dict[str, Any]:
        return {
            "start_step": self.start_step,
            "repeated_in_float64": self.repeated_in_float64,
            "steps": self.steps,
            "tolerance": TOLERANCE,
            "max_difference": self.latest,
            "diverged_at": self.diverged_at,
            "first_divergence": None if self.first is None else dict(zip(("step", "tensor", "difference"), self.first, strict=True)),
            "suspects": [vars(s) for s in self.suspects or []],
        }


def float64_copy(model: Model) -> Model:
    """A deep copy of ``model`` that computes in float64 (generators in the same state).

    The check runs in float64: float32 arithmetic in another order (loops against
    im2col) rounds differently, and 50 Adam steps grow that to ~1e-5 in the weights of
    two correct implementations; in float64 they stay within ~1e-14 and a bug stands out.
    """
    twin = copy.deepcopy(model)
    for layer in twin.all_layers():
        if not layer.children():  # a block's params are its inner layers' arrays: converted there, then collected again
            for key, value in layer.params.items():
                layer.params[key] = value.astype(np.float64)
    for layer in twin.all_layers()[::-1]:
        if isinstance(layer, Residual):
            layer.collect_children()
    return Model(twin.layers, twin.input_shape, twin.loss.name, np.dtype(np.float64))


def _difference(function: str, where: str, tensor: str, mine: np.ndarray, cnn: np.ndarray, tolerance: float) -> FunctionDifference | None:
    if mine.shape != cnn.shape:  # pragma: no cover - the wrappers have checked the shapes
        return FunctionDifference(function, where, tensor, float("inf"), float("inf"))
    diff = np.abs(mine.astype(np.float64) - cnn)
    max_abs = float(diff.max()) if diff.size else 0.0
    scale = float(np.abs(cnn).max()) if cnn.size else 0.0
    relative = max_abs / scale if scale > 0 else max_abs
    return FunctionDifference(function, where, tensor, max_abs, relative) if not relative <= tolerance else None


def diagnose(
    reference: Model, code: LearnerCode, x: np.ndarray, y: np.ndarray, skip: frozenset[str] = frozenset()
) -> list[FunctionDifference]:
    """Every learner function on the batch (x, y), each given the inputs cnn's own function got there.

    ``reference`` is a cnn model with the weights (and generator states) from before the
    step; it is copied, not changed. Returns the results that differ from cnn's, in the
    order they run: forwards from the input, the loss, backwards from the loss. Layers inside a
    residual block are not tried one by one here (the weight check still covers them).
    """
    reference = copy.deepcopy(reference)
    learner = use_learner_code(copy.deepcopy(reference), code, skip)  # copied before any forward: the same dropout masks
    tolerance = FUNCTION_TOLERANCE.get(reference.dtype, 1e-4)
    trace = reference.trace(x, training=True)
    loss, grad_logits = reference.loss(trace[-1].output, y)
    backward = reference.backward_trace(grad_logits)
    found: list[FunctionDifference | None] = []
    wrapped = [(i, layer) for i, layer in enumerate(learner.layers) if isinstance(layer, LearnerLayer)]
    try:
        for i, layer in wrapped:
            layer.training, layer.keep_cache = True, True
            out = layer.forward(trace[i].input)
            found.append(_difference(f"{layer.op}_forward", f"layer {layer.name}", "out", out, trace[i].output, tolerance))
        if isinstance(learner.loss, LearnerLoss):
            mine_loss, mine_grad = learner.loss(trace[-1].output, y)
            name = learner.loss.name
            found.append(_difference(name, "the loss", "loss", np.array(mine_loss), np.array(loss), tolerance))
            found.append(_difference(name, "the loss", "grad_logits", mine_grad, grad_logits, tolerance))
        for i, layer in reversed(wrapped):
            grad_x = layer.backward(backward[i].grad_output.copy())
            function, where = f"{layer.op}_backward", f"layer {layer.name}"
            found.append(_difference(function, where, "dx", np.asarray(grad_x), backward[i].grad_input, tolerance))
            cnn_grads = reference.layers[i].grads
            for key, tensor in (("weight", "dw"), ("bias", "db")):
                if key in cnn_grads:
                    found.append(_difference(function, where, tensor, layer.grads[key], cnn_grads[key], tolerance))
    except LearnerStop:  # the run itself reports a failing function; the diagnosis keeps what it found
        pass
    return [entry for entry in found if entry is not None]


def report_lines(check: WeightCheck, label: str, planned: int) -> list[str]:
    """What the learner reads at the end: per tensor, the difference after the checked steps, then where it began."""
    if check.steps == 0:  # the run stopped in its first step: its own message says why
        return []
    steps = f"steps {check.start_step + 1}-{check.start_step + check.steps}"
    short = f" (of {planned} planned: the run stopped first)" if check.steps < planned else ""
    lines = [f"learner code {label} against cnn's own code, same batches, {steps}{short}:"]
    if check.repeated_in_float64:
        lines.append("  (each step repeated in float64 for the check, where float32 rounding neither hides a bug nor looks like one)")
    width = max(len(name) for name in check.names)
    for name in check.names:
        difference = check.latest[name]
        verdict = f"diverged at step {check.diverged_at[name]}" if name in check.diverged_at else "same"
        lines.append(f"  {name:<{width}}  max |mine - cnn| {difference:.1e}  {verdict}")
    if check.first is None:
        lines.append(f"  every weight within {TOLERANCE:.0e} of cnn's after {check.steps} steps: your functions train it as cnn's do")
        return lines
    step, tensor, difference = check.first
    lines.append(f"  first divergence: step {step}, {tensor} ({difference:.1e} > {TOLERANCE:.0e})")
    if check.suspects:
        lines.append(f"  on step {step}'s batch, given cnn's inputs, these of your results differ from cnn's:")
        lines.extend(f"    {suspect.line()}" for suspect in check.suspects[:6])
        lines.extend([f"    ... and {len(check.suspects) - 6} more"] if len(check.suspects) > 6 else [])
    elif check.suspects is not None:
        lines.append(f"  on step {step}'s batch every function of yours agrees with cnn's: the difference grew from rounding")
    return lines
