"""The learning-rate range test (Smith 2015, "Cyclical learning rates"; fastai's and Lightning's ``lr_find``).

A fresh model from the config trains for a few hundred steps while the learning
rate grows exponentially, step i of n using

    lr_i = lr_min · (lr_max / lr_min)^(i / (n − 1)),

so equal spans of log(lr) get equal numbers of steps. The training loss of each
step is recorded. Raw per-batch losses are noisy, so they are smoothed by an
exponential moving average with bias correction (as Adam corrects its moments):

    avg_i = β·avg_{i−1} + (1 − β)·loss_i,   avg_{−1} = 0,   ema_i = avg_i / (1 − β^(i+1)),

with β = 0.9 (an average over about the last 10 steps). Without the
correction the first points would be pulled towards 0. A one-way average lags:
it shows each loss about β/(1 − β) steps late, i.e. at a larger lr, which would
push the suggestion to the right. So the plotted curve is the same average run
forwards and then backwards over the forward result (zero lag, like a
forward-backward filter). The sweep stops early, as it runs, when the forward
average exceeds :data:`DIVERGE_FACTOR` times its minimum, or a loss is not
finite: the lr is then far too large and the rest of the curve says nothing.

The suggestion is the lr where the smoothed loss falls fastest per unit of
log10(lr) (the most negative slope), searched only before the smoothed minimum
and after the first :data:`SKIP_START` steps, where the average is still warming
up. Early spikes fool a suggestion taken from the raw curve (Lightning #1767);
the plot is the thing to read. A fresh model also learns fast in its first
steps whatever the lr (with Adam especially), so the steepest descent can sit at
the very start of the sweep; fastai's second rule, a tenth of the lr at the
minimum (:data:`MIN_DIVISOR`), is printed and marked beside it.
"""

from __future__ import annotations

import math
import time

import numpy as np

from cnn_cli.config.sections import Config
from cnn_cli.errors import CnnError, ConfigError
from cnn_cli.runs.lrfind import BETA, DIVERGE_FACTOR, SKIP_START, LrFindResult


def lr_schedule(min_lr: float, max_lr: float, steps: int) -> np.ndarray:
    """(steps,) learning rates growing exponentially from ``min_lr`` to ``max_lr``."""
    return min_lr * (max_lr / min_lr) ** (np.arange(steps) / max(steps - 1, 1))


def ema(losses: np.ndarray, beta: float = BETA) -> np.ndarray:
    """Bias-corrected exponential moving average of ``losses``, causal (each point sees only earlier ones)."""
    out = np.empty(len(losses))
    average = 0.0
    for i, loss in enumerate(losses):
        average = beta * average + (1.0 - beta) * loss
        out[i] = average / (1.0 - beta ** (i + 1))
    return out


def smooth(losses: np.ndarray, beta: float = BETA) -> np.ndarray:
    """The plotted curve: :func:`ema` forwards, then backwards over that result (no lag; see the module docstring)."""
    return ema(ema(losses, beta)[::-1], beta)[::-1]


def suggest_lr(lrs: np.ndarray, smoothed: np.ndarray, skip_start: int = SKIP_START) -> tuple[float | None, str]:
    """(lr of the steepest descent of ``smoothed`` vs log10(lr) before its minimum, note); None when there is no descent."""
    finite = np.isfinite(smoothed)
    if not finite.any():
        return None, "the loss was never finite"
    start = min(skip_start, len(smoothed) // 10)
    if not finite[start:].any():
        return None, "the loss was not finite after the first steps"
    lowest = start + int(np.nanargmin(np.where(finite, smoothed, np.nan)[start:]))
    if lowest - start < 3:
        return None, "the smoothed loss is lowest at the very start of the sweep; lower --min-lr"
    window = slice(start, lowest + 1)
    slope = np.gradient(smoothed[window], np.log10(lrs[window]))
    steepest = int(np.argmin(slope))
    if slope[steepest] >= 0:
        return None, "the smoothed loss never falls; the model or data may be the problem"
    note = "read it with the plot: pick a value where the curve is still falling steeply"
    if lowest == len(smoothed) - 1:
        note = "the loss was still falling at --max-lr; raise --max-lr to see the whole curve"
    return float(lrs[start + steepest]), note


def lr_range_test(
    config: Config,
    min_lr: float = 1e-6,
    max_lr: float = 1.0,
    steps: int = 200,
    progress: bool = False,
    diverge_factor: float = DIVERGE_FACTOR,
) -> LrFindResult:
    """Run the range test on a fresh model built from ``config`` (its seed, data, optimizer, batch size).

    Augmentation is left off (the curve should show the lr, not the augmentation's noise);
    weight decay and gradient clipping apply as in training. Nothing is written.
    """
    from cnn_cli.data import iterate_batches
    from cnn_cli.model.network import build_model
    from cnn_cli.nn.optim import apply_update, make_optimizer
    from cnn_cli.runs.datasets import load_config_dataset

    if not (0 < min_lr < max_lr):
        raise CnnError(f"lr range: need 0 < min_lr < max_lr, got {min_lr:g} and {max_lr:g}")
    tc, oc, d = config.train, config.optimizer, config.data
    model = build_model(config, seed=tc.seed, dtype=tc.dtype)
    splits = load_config_dataset(config, mean=d.mean, std=d.std, progress=progress, train_as_pixels=True)
    if model.loss.num_classes != splits.num_classes:
        raise ConfigError(f"model has {model.loss.num_classes} classes, but the data has {splits.num_classes} ({splits.classes})")
    optimizer = make_optimizer(oc.name, min_lr, oc.momentum, (oc.betas[0], oc.betas[1]), oc.eps)
    schedule = lr_schedule(min_lr, max_lr, steps)
    losses: list[float] = []
    stopped = ""
    average, best = 0.0, math.inf
    tick = time.perf_counter()
    epoch = 0
    while len(losses) < steps and not stopped:
        train = splits.train
        batches = iterate_batches(train.images, train.labels, tc.batch_size, seed=tc.seed, epoch=epoch, normalize=splits.table)
        taken = len(losses)
        for x, y in batches:
            i = len(losses)
            optimizer.lr = float(schedule[i])
            with np.errstate(over="ignore", invalid="ignore"):
                loss, _ = model.loss_and_backward(x, y)
            losses.append(float(loss))
            if not math.isfinite(loss):
                stopped = f"loss {loss} at lr {schedule[i]:.2e}"
                break
            average = BETA * average + (1 - BETA) * loss
            smoothed = average / (1 - BETA ** (i + 1))
            best = min(best, smoothed)
            if i >= SKIP_START and smoothed > diverge_factor * best:
                stopped = f"smoothed loss {smoothed:.3g} > {diverge_factor:g}x its minimum {best:.3g} at lr {schedule[i]:.2e}"
                break
            apply_update(optimizer, model.params, model.grads, oc.weight_decay, oc.clip_grad_norm)
            if len(losses) >= steps:
                break
        if len(losses) == taken:
            raise ConfigError("lr-find: the training split is empty; there is nothing to sweep on")
        epoch += 1
    lrs = schedule[: len(losses)]
    loss_array = np.array(losses)
    smoothed_curve = smooth(np.where(np.isfinite(loss_array), loss_array, np.nan))
    suggestion, note = suggest_lr(lrs, smoothed_curve)
    finite = np.isfinite(smoothed_curve)
    min_lr_at = float(lrs[int(np.nanargmin(np.where(finite, smoothed_curve, np.nan)))]) if finite.any() else float("nan")
    return LrFindResult(
        config.name, oc.lr, lrs, loss_array, smoothed_curve, steps, stopped, suggestion, note, min_lr_at, time.perf_counter() - tick
    )
