"""Cost of gradient logging (train.log_gradients) as a share of an epoch, measured side by side in one process.

The same model trains on real MNIST batches. Each iteration times one plain
training step and, right beside it, what logging that step adds: the copy of the
weights before the step and :meth:`GradientLogger.measure` (a backward pass with
input gradients, the norms and the dead-unit count). Both are timed in the same
seconds, so a busy machine slows both alike; medians over the iterations. The
overhead is (logged steps in an epoch x extra time of one) / (steps in an epoch x
time of one step); an epoch also validates, so this overstates the share slightly.

    python benchmarks/gradient_logging.py --config mnist --iterations 40
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
from cnn_cli.runs.folders import RunPaths
from cnn_cli.training.gradient_logger import GradientLogger
from cnn_cli.training.loop import train_step
from cnn_cli.training.state import EpochData, TrainState
from cnn_cli.training.train import _data_splits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="mnist")
    parser.add_argument("--iterations", type=int, default=40)
    args = parser.parse_args()

    config = load_config(args.config, [])
    tc, oc = config.train, config.optimizer
    splits = _data_splits(config, progress=False)
    data = EpochData(config, splits)
    batches = itertools.cycle(list(data.batches(0, 0)))  # small configs have fewer batches than iterations
    model = build_model(config, seed=tc.seed, dtype=tc.dtype)
    optimizer = make_optimizer(oc.name, oc.lr, oc.momentum, (oc.betas[0], oc.betas[1]), oc.eps)
    step_seconds, log_seconds = [], []
    with tempfile.TemporaryDirectory() as folder:
        state = TrainState(config, model, optimizer, RunPaths(Path(folder)), steps_per_epoch=data.steps_per_epoch)
        logger = GradientLogger(tc.log_every)
        train_step(state, *next(batches))  # warm-up
        for _ in range(args.iterations):
            x, y = next(batches)
            start = time.perf_counter()
            before = {name: value.copy() for name, value in model.params.items()}
            copied = time.perf_counter()
            train_step(state, x, y)
            stepped = time.perf_counter()
            logger.measure(state, before)
            measured = time.perf_counter()
            step_seconds.append(stepped - copied)
            log_seconds.append((copied - start) + (measured - stepped))
    every, steps = tc.log_every, data.steps_per_epoch
    logged = len([s for s in range(1, steps + 1) if s % every == 0 or s == steps])
    step, extra = statistics.median(step_seconds), statistics.median(log_seconds)
    print(f"config {args.config}: {steps} steps an epoch, log_every {every}: {logged} logged steps an epoch")
    print(f"{args.iterations} iterations: median step {step * 1000:.1f} ms, median logging of a step {extra * 1000:.1f} ms")
    print(f"overhead: {100 * logged * extra / (steps * step):.2f}% of an epoch's steps")


if __name__ == "__main__":
    main()
