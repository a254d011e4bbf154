"""Cost of gradient logging (train.log_gradients) as a share of an epoch, measured side by side in one process.

The same model trains on the same real MNIST batches in alternating blocks of
``log_every`` steps, without and with the GradientLogger (one logged step per
block, like every ``log_every``-th step of an epoch). The difference per block,
scaled to the logged steps of one epoch (every ``log_every``-th step plus the
epoch's last), over the time of an epoch's steps, is the overhead.

    python benchmarks/gradient_logging.py --config mnist --blocks 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from cnn_cli.callbacks import GradientLogger
from cnn_cli.config import load_config
from cnn_cli.loop import EpochData, TrainState, train_step
from cnn_cli.model import build_model
from cnn_cli.optim import make_optimizer
from cnn_cli.runs import RunPaths
from cnn_cli.train import _data_splits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="mnist")
    parser.add_argument("--blocks", type=int, default=3, help="pairs of (without, with) blocks")
    args = parser.parse_args()

    config = load_config(args.config, [])
    tc, oc = config.train, config.optimizer
    every = tc.log_every
    splits = _data_splits(config, progress=False)
    data = EpochData(config, splits)
    steps_per_epoch = data.steps_per_epoch
    batches = []
    for x, y in data.batches(0, 0):
        batches.append((x, y))
        if len(batches) == every:
            break
    model = build_model(config, seed=tc.seed, dtype=tc.dtype)
    optimizer = make_optimizer(oc.name, oc.lr, oc.momentum, (oc.betas[0], oc.betas[1]), oc.eps)
    with tempfile.TemporaryDirectory() as folder:
        state = TrainState(config, model, optimizer, RunPaths(Path(folder)), steps_per_epoch=steps_per_epoch)
        logger = GradientLogger(every)
        logger.on_fit_start(state)
        times: dict[bool, list[float]] = {False: [], True: []}
        for block in range(2 * args.blocks):
            logging = block % 2 == 1
            start = time.perf_counter()
            for x, y in batches:
                train_step(state, x, y)
                if logging:
                    logger.on_step_end(state)
            times[logging].append(time.perf_counter() - start)
            if not logging:
                logger._remember_weights_if_next_is_logged(state)  # as if the logger had seen the block
        logged = len([s for s in range(1, steps_per_epoch + 1) if s % every == 0 or s == steps_per_epoch])
    off, on = statistics.median(times[False]), statistics.median(times[True])
    per_logged_step = on - off
    epoch_steps = off / every * steps_per_epoch
    print(f"config {args.config}: {steps_per_epoch} steps an epoch, log_every {every}: {logged} logged steps an epoch")
    print(f"blocks of {every} steps, seconds without: {[round(t, 2) for t in times[False]]}, with: {[round(t, 2) for t in times[True]]}")
    print(f"one logged step costs {per_logged_step * 1000:.0f} ms more ({per_logged_step / (off / every):.2f} plain steps)")
    print(f"overhead: {100 * logged * per_logged_step / epoch_steps:.2f}% of an epoch's steps")


if __name__ == "__main__":
    main()
