"""Check a configured model's hand-written gradients against central differences.

This is what ``cnn gradcheck --config FILE`` runs. The model is built in float64
and fed a small random batch. Its backward gives every gradient at once; then,
for a few sampled entries of every parameter and of the input, the loss is
evaluated at θ + ε and θ − ε and

    numeric = (L(θ + ε) − L(θ − ε)) / 2ε

is compared with the hand-written value a. An entry passes when

    |a − n| ≤ atol + rtol · max(|a| + |n|, floor),  floor = FLOOR_FRACTION · (largest |n| checked in that tensor),

torch.autograd.gradcheck's rule (atol + rtol·|n|) with two guards against roundoff.
In float64 the numeric estimate carries an absolute error of about
ε_mach · |L| / ε ≈ 5e-11 (for a loss near 2.3 and ε = 1e-5), whatever the size of
the gradient:

- the floor keeps an entry that is tiny next to the rest of its tensor from being
  judged on roundoff alone (1e-7 in a tensor of 0.1s). It is taken from the
  numeric side, which does not depend on the code under test;
- the absolute floor ``atol`` (ATOL = 1e-9, twenty times that roundoff) saves a
  tensor whose gradients are *all* tiny: the first layers of a deep sigmoid net,
  where the gradient has vanished to ~1e-6 through six factors σ' ≤ 1/4. There
  |a − n| is 3e-11, pure roundoff, but a relative error of 1e-4. A real bug is off by
  a good fraction of the gradient itself, a thousand times atol or more, so the
  floor hides none of the bug zoo's mistakes (``cnn docs gradcheck``).

The table reports the largest relative error |a − n| / max(|a| + |n|, floor) of each
tensor; a tensor that passes only thanks to atol is marked PASS* and explained.
An entry whose true gradient is 0 (a dead ReLU unit) gives 0 against 0.

ReLU and max-pool are not differentiable everywhere. When a ±ε step moves a
ReLU input across 0, or changes which input wins a max-pool window, the central
difference straddles a kink and says nothing about the derivative at θ. Such
entries are detected (the sign pattern of every ReLU input and every max-pool
winner is compared with the unperturbed one), skipped, counted and replaced by
another sampled entry.

A parameter of layer k cannot change anything before layer k, so its loss
evaluations start from the stored input of layer k; only the input tensor needs
whole forward passes.

The batch is run in evaluation mode (dropout is the identity), unless the model has
batch norm: then in training mode, where each output depends on the whole batch
through its mean and variance, so every ±ε step reruns the whole batch and the check
covers those paths too. Dropout then draws the same masks on every forward, so the
loss is still a fixed function of the parameters (``mode`` chooses either way).
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
from cnn_cli.learn.probe import FixedMasks, Probe, batch_norm_after, uses_batch_statistics
from cnn_cli.model.network import Model, build_model, model_config_of
from cnn_cli.nn import optim

# Entries below 1% of the largest numeric gradient checked in their tensor are compared against that 1%.
FLOOR_FRACTION = 1e-2
# The relative tolerance, and the absolute floor: about 20x the roundoff of a central difference
# (ε_mach · |L| / ε ≈ 5e-11 for L ≈ 2.3, ε = 1e-5). An entry passes when |a − n| ≤ ATOL + RTOL · max(|a| + |n|, floor).
RTOL = 1e-5
ATOL = 1e-9
# Layers whose derivative is below 1 everywhere: the gradient shrinks through each of them.
SATURATING = {"sigmoid": ("sigmoid", "sigmoids"), "tanh": ("tanh", "tanh layers")}
# Try at most this many entries per requested check before giving up on a tensor
# whose every step crosses a kink (it is then reported as failed, checked = 0).
MAX_ATTEMPTS_PER_CHECK = 5
INPUT_NAME = "input"
MODES = ("auto", "train", "eval")
# Batch norm on (N, F) with N = 2 maps every feature to ±1 whatever its input, so gradients vanish: check more samples.
BATCH_STATISTICS_BATCH = 8


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
    on_floor: bool = False  # passes only because |a − n| ≤ atol


@dataclass
class GradcheckResult:
    """The outcome for one tensor (a parameter such as ``conv1.weight``, or ``input``).

    Attributes:
        name: dotted parameter name, or ``"input"``.
        max_rel_error: largest relative error over the checked entries (0 if none).
        passed: every checked entry within atol + rtol · max(|a| + |n|, floor), and at least one entry checked.
        checked: how many entries were compared.
        skipped: sampled entries left out because a ±ε step crossed a ReLU or max-pool kink.
        max_abs_error: largest |a − n| over the checked entries.
        on_floor: passed, but only thanks to the absolute floor atol (some relative error above rtol).
        lesson: for a tensor on the floor, why its relative error means little (printed under the table).
    """

    name: str
    max_rel_error: float
    passed: bool
    checked: int
    skipped: int = 0
    entries: list[EntryDetail] = field(default_factory=list)  # the first ``show`` entries, when asked
    max_abs_error: float = 0.0
    on_floor: bool = False
    lesson: str = ""
    typical_gradient: float = 0.0  # the median |n| of the checked entries


def gradcheck_model(
    config: Any,
    seed: int = 0,
    batch_size: int | None = None,
    eps: float = 1e-5,
    tolerance: float = RTOL,
    max_checks_per_param: int = 20,
    show: int = 0,
    weight_decay: float = 0.0,
    atol: float = ATOL,
    mode: str = "auto",
) -> list[GradcheckResult]:
    """Compare hand-written and numeric gradients for every parameter and the input.

    Args:
        config: anything :func:`cnn_cli.model.network.build_model` accepts (path, built-in
            name, dict, Config).
        seed: seeds the weights, the random batch (N, *input_shape), its labels and
            the sampled entries; the same seed gives the same report.
        batch_size: N of the random batch (None: 2, or 8 in training mode).
        eps: finite-difference step ε. The default 1e-5 ≈ ε_mach^(1/3) balances the
            curvature error of central differences (∝ ε²) against float64 roundoff
            (∝ ε_mach/ε); with 1e-6 roundoff alone reaches ~5e-6 on the input gradient
            of the shipped tanh/sigmoid configs, too close to the tolerance.
        tolerance: rtol, the largest relative error that passes. A correct model stays
            below ~1e-6 on the shipped configs; a broken backward is off by 1e-2 to 1.
        atol: the absolute floor: an entry also passes when |a − n| ≤ atol + rtol · (its size).
            The default 1e-9 is about 20x the roundoff of the numeric estimate; 0 turns it off.
        max_checks_per_param: entries sampled per tensor (all of them for smaller
            tensors), so a large weight such as conv5's stays cheap.
        show: keep the details (θ, L(θ ± ε), numeric, analytic, error) of the first
            ``show`` sampled entries of every tensor, skipped ones included, in ``entries``.
        weight_decay: λ of an L2 term ½λΣw² added to the loss (notes 001, `cnn docs l2`); the hand-written side
            then gains :func:`cnn_cli.nn.optim.add_l2_gradient`, as a training step does.
        mode: ``train`` (batch statistics, fixed dropout masks), ``eval``, or ``auto`` (:func:`gradcheck_mode`).
    Returns:
        One :class:`GradcheckResult` per parameter, in model order, then ``input``.
    """
    _check_options(seed, batch_size, eps, max_checks_per_param, atol, mode)
    if isinstance(config, (str, Path)):
        config = load_config(config)
    training = gradcheck_mode(build_model(config), mode) == "train"
    batch_size = batch_size or (BATCH_STATISTICS_BATCH if training else 2)
    # Refuse a batch whose float64 activations would not fit, before allocating anything.
    check_memory(
        model_config_of(config), config.train if isinstance(config, Config) else TrainConfig(), batch_size, "float64", "--batch-size"
    )
    model = build_model(config, seed=seed, dtype="float64")
    # A stream of its own, so the batch does not repeat the numbers that drew the weights.
    rng = np.random.default_rng([seed, 1])
    x = rng.standard_normal((batch_size, *model.input_shape))
    labels = rng.integers(0, model.loss.num_classes, size=batch_size)

    masks = FixedMasks(model) if training else None
    analytic = _analytic_gradients(model, x, labels, masks)
    optim.add_l2_gradient(model.params, analytic, weight_decay)  # looked up at call time: the bug zoo can swap it
    # The input of every layer on the unperturbed batch: a parameter of layer k only
    # changes what comes after it, so its loss evaluations start at layer k.
    layer_inputs = _layer_inputs(model, x, masks)
    owner = {f"{layer.name}.{key}": index for index, layer in enumerate(model.layers) for key in layer.params}

    results = []
    for name, tensor in [*model.params.items(), (INPUT_NAME, x)]:
        start = owner.get(name, 0)
        probe = Probe(model, start, layer_inputs[start], labels, weight_decay, masks)
        result = _check_tensor(name, tensor, analytic[name], probe, rng, eps, (tolerance, atol), max_checks_per_param, show)
        if result.on_floor:
            result.lesson = _floor_lesson(result, model, owner.get(name, -1), probe.base_loss, eps, atol)
        results.append(result)
    return results


def _check_options(seed: int, batch_size: int | None, eps: float, max_checks: int, atol: float, mode: str) -> None:
    """ConfigError for a bad seed or mode (user input), ValueError for a bad programmatic option."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed: expected an int >= 0, got {seed!r}")
    if mode not in MODES:
        raise ConfigError(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    if max_checks < 1:
        raise ValueError(f"max_checks_per_param must be >= 1, got {max_checks}")
    if not atol >= 0:
        raise ValueError(f"atol must be >= 0, got {atol}")


def _floor_lesson(result: GradcheckResult, model: Model, owner: int, loss: float, eps: float, atol: float) -> str:
    """Why a tensor that passes only on the absolute floor is right all the same: its gradients are tiny."""
    normalised_by = batch_norm_after(model, owner, result.name)
    if normalised_by:
        return (
            f"{result.name} passes on the absolute floor: its true gradient is 0, since {normalised_by} subtracts the batch mean "
            f"and with it any constant the bias adds (a bias right before batch norm is redundant)"
        )
    typical = result.typical_gradient
    magnitude = f"1e{int(np.floor(np.log10(typical)))}" if typical > 0 else "0"
    above = [layer.type_name for layer in model.layers[owner + 1 :] if layer.type_name in SATURATING]
    if not above:
        through = ""
    elif len(set(above)) > 1:
        through = f", vanishing through {len(above)} sigmoid and tanh layers"
    else:
        singular, plural = SATURATING[above[0]]
        through = f", vanishing through {len(above)} {plural if len(above) > 1 else singular}"
    roundoff = np.finfo(np.float64).eps * max(abs(loss), 1.0) / eps
    return (
        f"{result.name} passes on the absolute floor: its gradients are ~{magnitude}{through}; relative error means little "
        f"there (max |a − n| = {result.max_abs_error:.1e} ≤ atol = {_power(atol)}; the numeric estimate's roundoff is "
        f"~{_power(roundoff)})"
    )


def _power(value: float) -> str:
    """1e-09 -> 1e-9, 4.6e-11 -> 5e-11: a size, not a measurement."""
    return f"{value:.0e}".replace("e-0", "e-").replace("e+0", "e")


def format_gradcheck(results: list[GradcheckResult]) -> str:
    """A plain-text table, one row per tensor: name, entries checked and skipped, the largest relative and absolute
    errors, PASS/FAIL (PASS* on the absolute floor, each explained under the table)."""
    header = ("tensor", "checked", "skipped", "max rel err", "max |a − n|", "result")
    rows = [(r.name, str(r.checked), str(r.skipped), f"{r.max_rel_error:.2e}", f"{r.max_abs_error:.1e}", verdict(r)) for r in results]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest])

    out = [line(header), "  ".join("-" * width for width in widths)]
    out.extend(line(row) for row in rows)
    failed = sum(not r.passed for r in results)
    out.append(f"{len(results) - failed}/{len(results)} passed" + (f", {failed} FAILED" if failed else ""))
    lessons = [f"* {r.lesson}" for r in results if r.on_floor]
    if lessons:
        out.extend([*lessons, "PASS*: within the absolute floor atol only (`cnn docs gradcheck`, 'The absolute floor')"])
    return "\n".join(out)


def verdict(result: GradcheckResult) -> str:
    if not result.passed:
        return "FAIL"
    return "PASS*" if result.on_floor else "PASS"


def gradcheck_mode(model: Model, mode: str = "auto") -> str:
    """``train`` or ``eval``: ``mode`` itself, or for ``auto`` ``train`` exactly when the model has batch norm."""
    if mode != "auto":
        return mode
    return "train" if uses_batch_statistics(model) else "eval"


def _analytic_gradients(model: Model, x: np.ndarray, labels: np.ndarray, masks: FixedMasks | None) -> dict[str, np.ndarray]:
    """The hand-written backward: dL/dparam for every parameter and dL/dx (N, *input_shape)."""
    if masks is not None:
        masks.rewind()
    logits = model.forward(x, training=masks is not None)
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


def _layer_inputs(model: Model, x: np.ndarray, masks: FixedMasks | None) -> list[np.ndarray]:
    """[input of layer 0, input of layer 1, ...] for the batch x, in the check's mode."""
    if masks is not None:
        masks.rewind()
    return [step.input for step in model.trace(x, training=masks is not None)]


def _check_tensor(
    name: str,
    tensor: np.ndarray,
    analytic: np.ndarray,
    probe: Probe,
    rng: np.random.Generator,
    eps: float,
    tolerances: tuple[float, float],
    max_checks: int,
    show: int = 0,
) -> GradcheckResult:
    """Central differences on up to ``max_checks`` sampled entries of ``tensor`` (perturbed in place, restored).

    ``tolerances`` is (rtol, atol): an entry passes when |a − n| ≤ atol + rtol · max(|a| + |n|, floor).
    """
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
    rtol, atol = tolerances
    a, n = np.array(hand_written), np.array(numeric)
    worst = _max_relative_error(a, n)
    size = np.maximum(np.abs(a) + np.abs(n), _floor(n))
    difference = np.abs(a - n)
    within = bool(np.all(difference <= atol + rtol * size))  # False for NaN too
    passed = len(numeric) > 0 and within
    for detail in details:  # each shown entry judged like the tensor
        if not detail.skipped:
            detail_size = max(abs(detail.analytic) + abs(detail.numeric), _floor(n))
            detail.rel_error = abs(detail.analytic - detail.numeric) / detail_size
            detail.on_floor = detail.rel_error > rtol and abs(detail.analytic - detail.numeric) <= atol + rtol * detail_size
    return GradcheckResult(
        name=name,
        max_rel_error=worst,
        passed=passed,
        checked=len(numeric),
        skipped=skipped,
        entries=details,
        max_abs_error=float(difference.max(initial=0.0)),
        on_floor=passed and not worst <= rtol,
        typical_gradient=float(np.median(np.abs(n))) if n.size else 0.0,
    )


def _floor(numeric: np.ndarray) -> float:
    """FLOOR_FRACTION of the largest |n| checked in a tensor (at least the smallest positive float)."""
    return max(FLOOR_FRACTION * float(np.max(np.abs(numeric), initial=0.0)), np.finfo(np.float64).tiny)


def _plain(index: tuple) -> tuple[int, ...]:
    return tuple(int(i) for i in index)


def _max_relative_error(hand_written: np.ndarray, numeric: np.ndarray) -> float:
    """max_k |a_k − n_k| / max(|a_k| + |n_k|, floor), floor = FLOOR_FRACTION · max_k |n_k|.

    The floor comes from the numeric side only, so a wrong backward cannot widen its own
    tolerance. NaN anywhere gives NaN; no entries give 0.
    """
    if numeric.size == 0:
        return 0.0
    errors = np.abs(hand_written - numeric) / np.maximum(np.abs(hand_written) + np.abs(numeric), _floor(numeric))
    return float(np.max(errors)) if not np.isnan(errors).any() else float("nan")
