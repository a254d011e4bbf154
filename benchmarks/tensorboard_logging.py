"""Cost of TensorBoard logging (train.tensorboard) as a share of an epoch, measured side by side in one process.

The same model trains on real MNIST batches. Each iteration times one plain
training step and, right beside it, what :class:`TensorBoardLogger` adds to that
step (three scalars). The per-epoch work (a histogram of every weight and
gradient, the filter grid, the flush) and the scalars of one logged step of
gradients.csv are timed a few times each on the same model. Medians throughout;
a busy machine slows the step and the logging alike. The event files are written
by tensorboardX's own background thread, whose time is not counted here beyond
the flush at each epoch end.

    overhead = (steps x per-step extra + logged gradient steps x their scalars + per-epoch work)
               / (steps x plain step time)

The work done once at the end of a completed run (the test split through the best
checkpoint, the two figures, the hparams) is reported apart, as a share of one epoch.

    python benchmarks/tensorboard_logging.py --config mnist --iterations 40

On the 2-core development machine (mnist, 860 steps an epoch, log_every 100): median
step 30.9 ms, TensorBoard logging of a step 0.21 ms, an epoch end 38 ms, so 0.86% of an
epoch's steps; the end of a completed run adds 8.1 s once (most of it the test split
through the best checkpoint for the misclassified digits).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
from pathlib import Path

from cnn_cli.config.load import load_config
from cnn_cli.model.network import build_model
from cnn_cli.nn.optim import make_optimizer
from cnn_cli.runs.checkpoint import save_checkpoint
from cnn_cli.runs.folders import RunPaths
from cnn_cli.training.callbacks import Checkpointer
from cnn_cli.training.gradient_logger import GradientLogger
from cnn_cli.training.loop import train_step
from cnn_cli.training.state import EpochData, TrainState
from cnn_cli.training.tensorboard import TensorBoardLogger
from cnn_cli.training.train import _data_splits


def _seconds(work, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="mnist")
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--epoch-repeats", type=int, default=5)
    args = parser.parse_args()

    config = load_config(args.config, [])
    tc, oc = config.train, config.optimizer
    splits = _data_splits(config, progress=False)
    data = EpochData(config, splits)
    batches = itertools.cycle(list(itertools.islice(data.batches(0, 0), args.iterations + 1)))
    model = build_model(config, seed=tc.seed, dtype=tc.dtype)
    optimizer = make_optimizer(oc.name, oc.lr, oc.momentum, (oc.betas[0], oc.betas[1]), oc.eps)
    step_seconds, log_seconds = [], []
    with tempfile.TemporaryDirectory() as folder:
        state = TrainState(config, model, optimizer, RunPaths(Path(folder)), steps_per_epoch=data.steps_per_epoch)
        state.data_info = {"mean": splits.mean, "std": splits.std, "classes": list(map(int, splits.classes))}
        gradients = GradientLogger(tc.log_every)
        logger = TensorBoardLogger(gradients)
        logger.on_fit_start(state)
        train_step(state, *next(batches))  # warm-up
        logger.on_step_end(state)
        for _ in range(args.iterations):
            x, y = next(batches)
            start = time.perf_counter()
            train_step(state, x, y)
            stepped = time.perf_counter()
            logger.on_step_end(state)
            logged = time.perf_counter()
            step_seconds.append(stepped - start)
            log_seconds.append(logged - stepped)

        before = {name: value.copy() for name, value in model.params.items()}
        measured = gradients.measure(state, before)

        def one_logged_gradient_step() -> None:
            state.step += 1
            gradients.rows.extend({"epoch": 1, "step": state.step, "event": "step", **row} for row in measured)
            logger._gradient_norms()

        gradient_seconds = _seconds(one_logged_gradient_step, args.epoch_repeats)
        state.history = [
            {"epoch": 1, "step": state.step, "lr": state.lr, "train_loss": 0.1, "train_acc": 0.9, "val_loss": 0.1, "val_acc": 0.9}
            | {"seconds": 1.0, "images_per_s": 1.0}
        ]
        epoch_seconds = _seconds(lambda: logger.on_epoch_end(state), args.epoch_repeats)

        state.epoch = 1
        save_checkpoint(state.paths.best, Checkpointer().checkpoint(state))
        state.summary = {"test_accuracy": 0.9, "test_loss": 0.1, "best_val_accuracy": 0.9}
        start = time.perf_counter()
        logger._figures(state)
        logger._hparams(state)
        end_seconds = time.perf_counter() - start
        logger.writer.close()

    every, steps = tc.log_every, data.steps_per_epoch
    logged_steps = len([s for s in range(1, steps + 1) if s % every == 0 or s == steps]) if tc.log_gradients else 0
    step, extra = statistics.median(step_seconds), statistics.median(log_seconds)
    plain_epoch = steps * step
    added = steps * extra + logged_steps * gradient_seconds + epoch_seconds
    print(f"config {args.config}: {steps} steps an epoch, {logged_steps} logged gradient steps an epoch (log_every {every})")
    print(f"{args.iterations} iterations: median step {step * 1000:.1f} ms, median TensorBoard logging of a step {extra * 1000:.3f} ms")
    print(
        f"per logged gradient step {gradient_seconds * 1000:.2f} ms; "
        f"per epoch end (histograms, filters, flush) {epoch_seconds * 1000:.0f} ms"
    )
    print(
        f"overhead: {100 * added / plain_epoch:.2f}% of an epoch's steps "
        f"(steps {100 * steps * extra / plain_epoch:.2f}%, gradient norms {100 * logged_steps * gradient_seconds / plain_epoch:.2f}%, "
        f"epoch end {100 * epoch_seconds / plain_epoch:.2f}%)"
    )
    print(
        f"once at the end of a completed run (test split, figures, hparams): {end_seconds:.1f} s "
        f"= {100 * end_seconds / plain_epoch:.1f}% of one epoch"
    )


if __name__ == "__main__":
    main()
