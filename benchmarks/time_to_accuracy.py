"""Wall time to 99.0% and 99.3% MNIST test accuracy: `cnn train` against the stock PyTorch example.

Side by side in one run, on this machine, each contestant in its own process, one
after the other (never two at once):

- ``cnn train --config mnist-fast`` and ``cnn train --config mnist``: a real `cnn train`
  process that keeps a checkpoint per epoch. The time to epoch k is from starting the
  process to epoch k's checkpoint on disk, plus the time of ``cnn eval`` on the
  checkpoints of epochs 1..k (a whole process each: loading, then the 10,000 test
  images), so the test after each epoch is paid for as the stock example pays for it.
- The stock PyTorch MNIST example (PyTorch's ``examples/mnist``), written here from its
  description: conv 32 3x3, conv 64 3x3, max-pool 2, dropout 0.25, fc 128, dropout 0.5,
  fc 10; Adadelta lr 1.0, StepLR gamma 0.7 per epoch, batch 64, test batch 1000, inputs
  normalised with mean 0.1307 and std 0.3081; the test set evaluated after each epoch.
  Its time is from starting its process to the end of epoch k's test.

A run stops at 99.3% or after its epochs (ours: the config's; PyTorch's: ``--torch-epochs``).

    python benchmarks/time_to_accuracy.py                # the real measurement (tens of minutes)
    python benchmarks/time_to_accuracy.py --quick        # 1,000 training images, 1 epoch: checks the wiring in seconds
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TARGETS = (0.990, 0.993)
CONFIGS = ("mnist-fast", "mnist")
QUICK_LIMIT = 1000  # training images in --quick


@dataclass
class Curve:
    """One contestant: seconds since its process started and test accuracy, after each epoch."""

    name: str
    seconds: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    total_s: float = 0.0  # the whole process (ours: training and its final test, without the evaluations)

    def time_to(self, target: float) -> tuple[float, int] | None:
        """(seconds, epoch) of the first epoch at or above ``target``, or None."""
        for epoch, (seconds, accuracy) in enumerate(zip(self.seconds, self.accuracy, strict=True), start=1):
            if accuracy >= target:
                return seconds, epoch
        return None


# ---------------------------------------------------------------- the stock PyTorch example (a child process)


def stock_net():
    """PyTorch examples/mnist's Net."""
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, 32, 3, 1)
            self.conv2 = nn.Conv2d(32, 64, 3, 1)
            self.dropout1 = nn.Dropout(0.25)
            self.dropout2 = nn.Dropout(0.5)
            self.fc1 = nn.Linear(9216, 128)
            self.fc2 = nn.Linear(128, 10)

        def forward(self, x):
            x = torch.relu(self.conv1(x))
            x = torch.relu(self.conv2(x))
            x = self.dropout1(torch.max_pool2d(x, 2))
            x = self.dropout2(torch.relu(self.fc1(torch.flatten(x, 1))))
            return torch.log_softmax(self.fc2(x), dim=1)

    return Net()


def mnist_tensors(data_dir: Path, limit: int | None):
    """Train and test images normalised as the example's transforms do (ToTensor, Normalize(0.1307, 0.3081))."""
    import torch

    from cnn_cli.data.idx import read_image_label_pair

    def split(prefix: str, keep: int | None):
        images, labels = read_image_label_pair(data_dir / f"{prefix}-images-idx3-ubyte", data_dir / f"{prefix}-labels-idx1-ubyte")
        images, labels = images[:keep], labels[:keep]
        x = (torch.from_numpy(images.reshape(-1, 1, 28, 28).astype("float32")) / 255.0 - 0.1307) / 0.3081
        return x, torch.from_numpy(labels.astype("int64"))

    return split("train", limit), split("t10k", None)


def run_stock_example(data_dir: Path, epochs: int, limit: int | None, seed: int) -> None:
    """Train as examples/mnist does; print a JSON line (wall clock, test accuracy) after each epoch's test."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    (train_x, train_y), (test_x, test_y) = mnist_tensors(data_dir, limit)
    model = stock_net()
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(train_y))
        for start in range(0, len(order), 64):
            batch = order[start : start + 64]
            optimizer.zero_grad()
            F.nll_loss(model(train_x[batch]), train_y[batch]).backward()
            optimizer.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for start in range(0, len(test_y), 1000):
                correct += int((model(test_x[start : start + 1000]).argmax(1) == test_y[start : start + 1000]).sum())
        scheduler.step()
        print(json.dumps({"clock": time.time(), "accuracy": correct / len(test_y)}), flush=True)
        if correct / len(test_y) >= TARGETS[-1]:
            return


def time_stock_example(data_dir: Path, epochs: int, limit: int | None, seed: int) -> Curve:
    curve = Curve("PyTorch examples/mnist")
    command = [sys.executable, __file__, "--child-torch", str(data_dir), str(epochs), str(limit or 0), str(seed)]
    started = time.time()
    proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    curve.total_s = time.time() - started
    if proc.returncode != 0:
        raise RuntimeError(f"the PyTorch example failed:\n{proc.stderr[-2000:]}")
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            curve.seconds.append(record["clock"] - started)
            curve.accuracy.append(record["accuracy"])
    return curve


# ---------------------------------------------------------------- ours: a real `cnn train` process


def cnn(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "cnn_cli", *arguments]


def time_cnn_train(config: str, data_dir: Path, workdir: Path, quick: bool, seed: int) -> Curve:
    """`cnn train --config CONFIG` with a checkpoint per epoch, then `cnn eval` on each checkpoint."""
    run_dir = workdir / config
    sets = [f"data.data_dir={data_dir}", "train.save_every_epoch=true", "train.plots=false", f"train.seed={seed}"]
    if quick:
        sets += [f"data.limit={QUICK_LIMIT}", "data.val_size=500", "train.epochs=1"]
    command = cnn("train", "--config", config, "-q", "--run-dir", str(run_dir), *(f"--set={s}" for s in sets))
    started = time.time()
    proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    curve = Curve(f"cnn train --config {config}", total_s=time.time() - started)
    if proc.returncode != 0:
        raise RuntimeError(f"cnn train --config {config} failed:\n{proc.stdout[-1000:]}{proc.stderr[-2000:]}")
    evaluations = 0.0
    for checkpoint in sorted((run_dir / "checkpoints").glob("epoch-*.npz")):
        tick = time.time()
        evaluated = subprocess.run(cnn("eval", str(checkpoint), "--json"), capture_output=True, text=True, cwd=ROOT, check=True)
        evaluations += time.time() - tick
        curve.seconds.append(checkpoint.stat().st_mtime - started + evaluations)
        curve.accuracy.append(float(json.loads(evaluated.stdout)["accuracy"]))
    return curve


# ---------------------------------------------------------------- the report


def machine_line() -> str:
    """The CPU model (lscpu), the cores and the load."""
    model = "unknown CPU"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return f"{model}; {os.cpu_count()} logical CPUs; load average {load()}"


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def report(curves: list[Curve], reference: Curve) -> str:
    """The table: per contestant, seconds (and epoch) to each target, and the ratio to the reference's time."""
    header = ["contestant", *(f"to {t:.1%} (s, epoch)" for t in TARGETS), *(f"ratio to PyTorch at {t:.1%}" for t in TARGETS)]
    header += ["test accuracy per epoch", "whole process (s)"]
    rows = [header, ["---"] * len(header)]
    for curve in curves:
        reached = [curve.time_to(t) for t in TARGETS]
        theirs = [reference.time_to(t) for t in TARGETS]
        cells = [curve.name, *(f"{r[0]:.1f} ({r[1]})" if r else "not reached" for r in reached)]
        cells += [f"{a[0] / b[0]:.2f}" if a and b else "–" for a, b in zip(reached, theirs, strict=True)]
        cells += [" ".join(f"{a:.2%}" for a in curve.accuracy), f"{curve.total_s:.1f}"]
        rows.append(cells)
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_LIMIT} training images, 1 epoch each (checks the wiring)")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="our configs, comma-separated (default: %(default)s)")
    parser.add_argument("--torch-epochs", type=int, default=14, help="the stock example's epochs at most (its default: 14)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, default=Path("data"), help="the folder holding mnist/ (default: %(default)s)")
    parser.add_argument("--child-torch", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_torch:
        data_dir, epochs, limit, seed = args.child_torch
        run_stock_example(Path(data_dir), int(epochs), int(limit) or None, int(seed))
        return
    data_dir = args.data_dir.resolve()
    print(f"machine: {machine_line()}", flush=True)
    curves = []
    with tempfile.TemporaryDirectory() as workdir:
        for config in [c for c in args.configs.split(",") if c]:
            curves.append(time_cnn_train(config, data_dir, Path(workdir), args.quick, args.seed))
            print(f"{curves[-1].name}: {curves[-1].accuracy} (load {load()})", flush=True)
    torch_epochs = 1 if args.quick else args.torch_epochs
    reference = time_stock_example(data_dir / "mnist", torch_epochs, QUICK_LIMIT if args.quick else None, args.seed)
    print(f"{reference.name}: {reference.accuracy} (load {load()})", flush=True)
    print()
    print(report([*curves, reference], reference))
    print(f"\nmachine after: {machine_line()}")


if __name__ == "__main__":
    main()
