"""Check a configured model's hand-written gradients against central differences.

This is what ``cnn gradcheck --config FILE`` runs. The model is built in float64
and fed a small random batch. Its backward gives every gradient at once; then,
for a few sampled entries of every parameter and of the input, the loss is
evaluated at θ + ε and θ − ε and

    numeric = (L(θ + ε) − L(θ − ε)) / 2ε

is compared with the hand-written value a by the relative error

    |a − n| / max(|a| + |n|, floor),  floor = FLOOR_FRACTION · (largest |n| checked in that tensor).

The floor keeps entries that are tiny next to the rest of their tensor from being
judged on roundoff alone: in float64 the numeric estimate carries an absolute
error of about 1e-10 (ε_mach · |L| / ε, grown a little through the network),
a large *relative* error on an entry of 1e-7 but nothing next to a gradient of
0.1. It is taken from the numeric side, which does not depend on the code under
test. An entry whose true gradient is 0 (a dead ReLU unit) gives 0 against 0.

ReLU and max-pool are not differentiable everywhere. When a ±ε step moves a
ReLU input across 0, or changes which input wins a max-pool window, the central
difference straddles a kink and says nothing about the derivative at θ. Such
entries are detected (the sign pattern of every ReLU input and every max-pool
winner is compared with the unperturbed one), skipped, counted and replaced by
another sampled entry.

A parameter of layer k cannot change anything before layer k, so its loss
evaluations start from the stored input of layer k; only the input tensor needs
whole forward passes.

The batch is run in evaluation mode: dropout is the identity, so the loss is a
fixed function of the parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnn_cli.config.load import load_config
from cnn_cli.config.memory import check_memory
from cnn_cli.config.sections import Config, TrainConfig
from cnn_cli.errors import ConfigError
from cnn_cli.layers import Layer, LeakyReLU, MaxPool2D, ReLU
from cnn_cli.model.network import Model, build_model, model_config_of
from cnn_cli.nn import optim
from cnn_cli.nn.pool import maxpool2d_forward

# Entries below 1% of the largest numeric gradient checked in their tensor are compared against that 1%.
FLOOR_FRACTION = 1e-2
# Try at most this many entries per requested check before giving up on a tensor
# whose every step crosses a kink (it is then reported as failed, checked = 0).
MAX_ATTEMPTS_PER_CHECK = 5
INPUT_NAME = "input"


@dataclass
class EntryDetail:
    """One sampled entry, as ``cnn gradcheck --show N`` prints it.

    ``skipped`` names the unit whose kink a ±ε step crossed (then numeric/analytic are not judged).
    """

    index: tuple[int, ...]
    theta: float
    loss_plus: float
    loss_minus: float
    numeric: float
    analytic: float
    rel_error: float
    skipped: str = ""


@dataclass
class GradcheckResult:
    """The outcome for one tensor (a parameter such as ``conv1.weight``, or ``input``).

    Attributes:
        name: dotted parameter name, or ``"input"``.
        max_rel_error: largest relative error over the checked entries (0 if none).
        passed: every checked entry within tolerance, and at least one entry checked.
        checked: how many entries were compared.
        skipped: sampled entries left out because a ±ε step crossed a ReLU or max-pool kink.
    """

    name: str
    max_rel_error: float
    passed: bool
    checked: int
    skipped: int = 0
    entries: list[EntryDetail] = field(default_factory=list)  # the first ``show`` entries, when asked


def gradcheck_model(
    config: Any,
    seed: int = 0,
    batch_size: int = 2,
    eps: float = 1e-5,
    tolerance: float = 1e-5,
    max_checks_per_param: int = 20,
    show: int = 0,
    weight_decay: float = 0.0,
) -> list[GradcheckResult]:
    """Compare hand-written and numeric gradients for every parameter and the input.

    Args:
        config: anything :func:`cnn_cli.model.network.build_model` accepts (path, built-in
            name, dict, Config).
        seed: seeds the weights, the random batch (N, *input_shape), its labels and
            the sampled entries; the same seed gives the same report.
        batch_size: N of the random batch.
        eps: finite-difference step ε. The default 1e-5 ≈ ε_mach^(1/3) balances the
            curvature error of central differences (∝ ε²) against float64 roundoff
            (∝ ε_mach/ε); with 1e-6 roundoff alone reaches ~5e-6 on the input gradient
            of the shipped tanh/sigmoid configs, too close to the tolerance.
        tolerance: largest relative error that passes. A correct model stays below
            ~1e-6 on the shipped configs; a broken backward is off by 1e-2 to 1.
        max_checks_per_param: entries sampled per tensor (all of them for smaller
            tensors), so a large weight such as conv5's stays cheap.
        show: keep the details (θ, L(θ ± ε), numeric, analytic, error) of the first
            ``show`` sampled entries of every tensor, skipped ones included, in ``entries``.
        weight_decay: λ of an L2 term ½λΣw² added to the loss (notes 001); the hand-written side
            then gains :func:`cnn_cli.nn.optim.add_l2_gradient`, as a training step does.
    Returns:
        One :class:`GradcheckResult` per parameter, in model order, then ``input``.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed: expected an int >= 0, got {seed!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    if max_checks_per_param < 1:
        raise ValueError(f"max_checks_per_param must be >= 1, got {max_checks_per_param}")

    if isinstance(config, (str, Path)):
        config = load_config(config)
    # Refuse a batch whose float64 activations would not fit, before allocating anything.
    check_memory(
        model_config_of(config), config.train if isinstance(config, Config) else TrainConfig(), batch_size, "float64", "--batch-size"
    )
    model = build_model(config, seed=seed, dtype="float64")
    # A stream of its own, so the batch does not repeat the numbers that drew the weights.
    rng = np.random.default_rng([seed, 1])
    x = rng.standard_normal((batch_size, *model.input_shape))
    labels = rng.integers(0, model.loss.num_classes, size=batch_size)

    analytic = _analytic_gradients(model, x, labels)
    optim.add_l2_gradient(model.params, analytic, weight_decay)  # looked up at call time: the bug zoo can swap it
    # The input of every layer on the unperturbed batch: a parameter of layer k only
    # changes what comes after it, so its loss evaluations start at layer k.
    layer_inputs = _layer_inputs(model, x)
    owner = {f"{layer.name}.{key}": index for index, layer in enumerate(model.layers) for key in layer.params}

    results = []
    for name, tensor in [*model.params.items(), (INPUT_NAME, x)]:
        start = owner.get(name, 0)
        probe = _Probe(model, start, layer_inputs[start], labels, weight_decay)
        results.append(_check_tensor(name, tensor, analytic[name], probe, rng, eps, tolerance, max_checks_per_param, show))
    return results


def format_gradcheck(results: list[GradcheckResult]) -> str:
    """A plain-text table: name, entries checked, max relative error, PASS/FAIL; one row per tensor."""
    header = ("tensor", "checked", "skipped", "max rel err", "result")
    rows = [(r.name, str(r.checked), str(r.skipped), f"{r.max_rel_error:.2e}", "PASS" if r.passed else "FAIL") for r in results]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest])

    out = [line(header), "  ".join("-" * width for width in widths)]
    out.extend(line(row) for row in rows)
    failed = sum(not r.passed for r in results)
    out.append(f"{len(results) - failed}/{len(results)} passed" + (f", {failed} FAILED" if failed else ""))
    return "\n".join(out)


def _analytic_gradients(model: Model, x: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """The hand-written backward: dL/dparam for every parameter and dL/dx (N, *input_shape)."""
    logits = model.forward(x, training=False)
    _, grad_logits = model.loss(logits, labels)
    grad_input = model.backward(grad_logits, need_input_grad=True)
    grads = {name: grad.copy() for name, grad in model.grads.items()}
    missing = sorted(set(model.params) - set(grads))
    if missing:
        raise RuntimeError(f"backward left no gradient for {', '.join(missing)}")
    if grad_input is None:
        raise RuntimeError("backward returned no input gradient although need_input_grad=True")
    grads[INPUT_NAME] = np.array(grad_input, copy=True)
    return grads


def _layer_inputs(model: Model, x: np.ndarray) -> list[np.ndarray]:
    """[input of layer 0, input of layer 1, ...] for the batch x, in evaluation mode."""
    return [step.input for step in model.trace(x, training=False)]


def _kinks(layer: Layer, layer_input: np.ndarray) -> np.ndarray | None:
    """Where the layer's non-differentiable points sit for this input, or None for a smooth layer.

    ReLU/LeakyReLU: the mask of positive inputs. Max-pool: the index of each window's winner.
    """
    if isinstance(layer, (ReLU, LeakyReLU)):
        return layer_input > 0
    if isinstance(layer, MaxPool2D):
        _, cache = maxpool2d_forward(layer_input, layer.kernel_size, layer.stride, layer.padding)
        return cache.argmax
    return None


class _Probe:
    """Evaluates the loss from layer ``start`` on, given that layer's input, and reports the kinks met.

    Two evaluations with equal kink patterns lie on the same smooth piece of the loss,
    so their central difference estimates the derivative.
    """

    def __init__(self, model: Model, start: int, start_input: np.ndarray, labels: np.ndarray, weight_decay: float = 0.0) -> None:
        self.model = model
        self.weight_decay = weight_decay
        self.start = start
        self.start_input = start_input  # for the "input" tensor this is the batch itself, perturbed in place
        self.labels = labels
        _, self.base_pattern = self.evaluate()

    def evaluate(self) -> tuple[float, list[np.ndarray | None]]:
        """(loss, kink pattern of layers start..end) for the current parameter values."""
        steps = self.model.trace(self.start_input, training=False, start=self.start)
        loss, _ = self.model.loss(steps[-1].output, self.labels)
        loss += optim.l2_penalty(self.model.params, self.weight_decay)
        return loss, [_kinks(step.layer, step.input) for step in steps]

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


def _check_tensor(
    name: str,
    tensor: np.ndarray,
    analytic: np.ndarray,
    probe: _Probe,
    rng: np.random.Generator,
    eps: float,
    tolerance: float,
    max_checks: int,
    show: int = 0,
) -> GradcheckResult:
    """Central differences on up to ``max_checks`` sampled entries of ``tensor`` (perturbed in place, restored)."""
    wanted = min(max_checks, tensor.size)
    candidates = rng.permutation(tensor.size)[: wanted * MAX_ATTEMPTS_PER_CHECK]
    hand_written: list[float] = []
    numeric: list[float] = []
    skipped = 0
    details: list[EntryDetail] = []
    for flat_index in candidates:
        if len(numeric) == wanted:
            break
        index = np.unravel_index(flat_index, tensor.shape)
        original = tensor[index]
        try:
            tensor[index] = original + eps
            loss_plus, pattern_plus = probe.evaluate()
            tensor[index] = original - eps
            loss_minus, pattern_minus = probe.evaluate()
        finally:
            tensor[index] = original
        estimate = (loss_plus - loss_minus) / (2 * eps)
        if not (probe.on_base_piece(pattern_plus) and probe.on_base_piece(pattern_minus)):
            skipped += 1
            if len(details) < show:
                unit = probe.flipped_unit(pattern_plus) or probe.flipped_unit(pattern_minus)
                details.append(
                    EntryDetail(_plain(index), float(original), loss_plus, loss_minus, estimate, float(analytic[index]), np.nan, unit)
                )
            continue
        hand_written.append(float(analytic[index]))
        numeric.append(estimate)
        if len(details) < show:
            details.append(EntryDetail(_plain(index), float(original), loss_plus, loss_minus, estimate, float(analytic[index]), np.nan))
    worst = _max_relative_error(np.array(hand_written), np.array(numeric))
    passed = len(numeric) > 0 and worst <= tolerance  # False for NaN too
    if details:
        # Each shown entry's error, judged with the same floor as the tensor's maximum.
        floor = max(FLOOR_FRACTION * float(np.max(np.abs(numeric), initial=0.0)), np.finfo(np.float64).tiny)
        for detail in details:
            if not detail.skipped:
                size = max(abs(detail.analytic) + abs(detail.numeric), floor)
                detail.rel_error = abs(detail.analytic - detail.numeric) / size
    return GradcheckResult(name=name, max_rel_error=worst, passed=passed, checked=len(numeric), skipped=skipped, entries=details)


def _plain(index: tuple) -> tuple[int, ...]:
    return tuple(int(i) for i in index)


def format_entries(results: list[GradcheckResult]) -> str:
    """Per tensor, one row per shown entry: index, θ, L(θ+ε), L(θ−ε), numeric, analytic, relative error."""
    out = []
    header = f"  {'entry':<16}{'θ':>12}{'L(θ+ε)':>20}{'L(θ−ε)':>20}{'numeric':>14}{'analytic':>14}{'rel err':>10}"
    for result in results:
        if not result.entries:
            continue
        out.append(f"{result.name}  ({'PASS' if result.passed else 'FAIL'}, max rel err {result.max_rel_error:.2e})")
        out.append(header)
        for e in result.entries:
            index = str(e.index)
            if e.skipped:
                out.append(f"  {index:<16}{e.theta:>12.5g}{e.loss_plus:>20.12f}{e.loss_minus:>20.12f}  skipped: {e.skipped}")
            else:
                out.append(
                    f"  {index:<16}{e.theta:>12.5g}{e.loss_plus:>20.12f}{e.loss_minus:>20.12f}"
                    f"{e.numeric:>14.6e}{e.analytic:>14.6e}{e.rel_error:>10.1e}"
                )
        out.append("")
    out.append("numeric = (L(θ+ε) − L(θ−ε)) / 2ε;  rel err = |a − n| / max(|a| + |n|, 1% of the tensor's largest |n|)")
    return "\n".join(out)


def _max_relative_error(hand_written: np.ndarray, numeric: np.ndarray) -> float:
    """max_k |a_k − n_k| / max(|a_k| + |n_k|, floor), floor = FLOOR_FRACTION · max_k |n_k|.

    The floor comes from the numeric side only, so a wrong backward cannot widen its own
    tolerance. NaN anywhere gives NaN; no entries give 0.
    """
    if numeric.size == 0:
        return 0.0
    floor = max(FLOOR_FRACTION * float(np.max(np.abs(numeric))), np.finfo(np.float64).tiny)
    errors = np.abs(hand_written - numeric) / np.maximum(np.abs(hand_written) + np.abs(numeric), floor)
    return float(np.max(errors)) if not np.isnan(errors).any() else float("nan")
