"""Cost of MLflow logging (train.mlflow) as a share of an epoch, measured side by side in one process.

The same model trains on real MNIST batches. Between its timed training steps,
what :class:`MLflowLogger` does at an epoch end (one ``log_batch`` of the metrics
row: every metrics.csv column at step = epoch) is timed too, on a run of its own
in the tracking store. Medians throughout; a busy machine slows the step and the
logging alike.

    overhead per epoch = epoch-end logging / (steps an epoch x plain step time)

Work done once per invocation is reported apart: opening the run (experiment,
run, the config as params, mlflow.json) and, at the end, the checkpoints
and records as artifacts (the plots add a few hundred KB more). The one-time
creation of a new SQLite store (``--mlflow`` alone, first run beside the runs)
and importing mlflow are reported apart as well.

    python benchmarks/mlflow_logging.py --config mnist --iterations 40            # the local SQLite store
    python benchmarks/mlflow_logging.py --config mnist --tracking-uri http://127.0.0.1:5000

On the 2-core development machine, shared with seven other jobs at the time (load
average 11-14, so the step ran at ~0.7-1.4 s instead of RESULTS.md's ~31 ms; mnist,
860 steps an epoch; MLflow 3.17.2): an epoch end's logging took a median 51 ms on the
local SQLite store and 70 ms against a local ``mlflow server``, 0.008% and 0.006% of
those slowed epochs. Against an unloaded epoch (860 x 31 ms = 26.6 s) it would be
0.2-0.3%. Once per invocation: opening the run 0.2 s (local) / 3.7 s (server; the
config as 124 params), the end 0.14 s / 0.36 s (21 MB of checkpoints); once per runs
folder, creating the SQLite store 9.5 s; once per process, ``import mlflow`` 3.5-6 s.
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
from cnn_cli.runs.folders import RunPaths, write_metrics
from cnn_cli.training.callbacks import Checkpointer
from cnn_cli.training.loop import train_step
from cnn_cli.training.mlflow_log import MLflowLogger
from cnn_cli.training.state import EpochData, TrainState
from cnn_cli.training.train import _data_splits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="mnist")
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--epoch-repeats", type=int, default=10)
    parser.add_argument("--tracking-uri", default="local", help='train.mlflow: "local" (a new SQLite store in a temp folder) or a URI')
    args = parser.parse_args()

    start = time.perf_counter()
    import mlflow  # noqa: F401

    import_seconds = time.perf_counter() - start
    config = load_config(args.config, [f"train.mlflow={args.tracking_uri}"])
    tc, oc = config.train, config.optimizer
    splits = _data_splits(config, progress=False)
    data = EpochData(config, splits)
    batches = itertools.cycle(list(itertools.islice(data.batches(0, 0), args.iterations + 1)))
    model = build_model(config, seed=tc.seed, dtype=tc.dtype)
    optimizer = make_optimizer(oc.name, oc.lr, oc.momentum, (oc.betas[0], oc.betas[1]), oc.eps)
    every = max(1, args.iterations // args.epoch_repeats)
    step_seconds, epoch_seconds = [], []
    create_seconds = 0.0
    with tempfile.TemporaryDirectory() as folder:
        paths, first = RunPaths(Path(folder) / "runs" / "bench"), RunPaths(Path(folder) / "runs" / "first")
        paths.checkpoints.mkdir(parents=True)
        first.root.mkdir()
        state = TrainState(config, model, optimizer, paths, steps_per_epoch=data.steps_per_epoch, log=print)
        state.data_info = {"mean": splits.mean, "std": splits.std, "classes": list(map(int, splits.classes))}
        logger = MLflowLogger()
        if args.tracking_uri == "local":  # the store's tables are made once, by the first run beside the runs
            start = time.perf_counter()
            MLflowLogger().on_fit_start(TrainState(config, model, optimizer, first, log=print))
            create_seconds = time.perf_counter() - start
        start = time.perf_counter()
        logger.on_fit_start(state)
        open_seconds = time.perf_counter() - start
        train_step(state, *next(batches))  # warm-up
        for index in range(args.iterations):
            x, y = next(batches)
            start = time.perf_counter()
            train_step(state, x, y)
            step_seconds.append(time.perf_counter() - start)
            if index % every == 0:
                row = {"epoch": len(state.history) + 1, "step": state.step, "lr": state.lr, "train_loss": 0.1, "train_acc": 0.9}
                state.history.append(row | {"val_loss": 0.1, "val_acc": 0.9, "seconds": 1.0, "images_per_s": 1.0})
                start = time.perf_counter()
                logger.on_epoch_end(state)
                epoch_seconds.append(time.perf_counter() - start)

        state.epoch = len(state.history)
        ckpt = Checkpointer().checkpoint(state)
        save_checkpoint(paths.last, ckpt)
        save_checkpoint(paths.best, ckpt)
        write_metrics(paths.metrics, state.history)
        state.status, state.summary = "completed", {"test_accuracy": 0.9, "test_loss": 0.1, "best_val_accuracy": 0.9}
        start = time.perf_counter()
        logger.on_finish(state)
        end_seconds = time.perf_counter() - start
        checkpoint_mb = 2 * paths.last.stat().st_size / 1e6

    steps = data.steps_per_epoch
    step, logged = statistics.median(step_seconds), statistics.median(epoch_seconds)
    plain_epoch = steps * step
    print(f"config {args.config}, tracking {args.tracking_uri}: {steps} steps an epoch")
    print(f"{args.iterations} steps: median step {step * 1000:.1f} ms (an epoch of steps {plain_epoch:.1f} s)")
    print(f"{len(epoch_seconds)} epoch ends: median MLflow logging {logged * 1000:.1f} ms = {100 * logged / plain_epoch:.3f}% of an epoch")
    print(f"once per invocation: opening the run {open_seconds:.2f} s; at the end {end_seconds:.2f} s ({checkpoint_mb:.1f} MB checkpoints)")
    if args.tracking_uri == "local":
        print(f"once per runs folder: creating the SQLite store {create_seconds:.1f} s; once per process: import {import_seconds:.1f} s")
    else:
        print(f"once per process: import mlflow {import_seconds:.1f} s")


if __name__ == "__main__":
    main()
