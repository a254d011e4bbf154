"""Speed of `cnn` against PyTorch on the CPU, side by side in one run.

Both frameworks run the default model (configs/mnist.yaml), batch 64, float32,
on random data: a training step (forward, loss, backward, Adam update) and
inference (forward in evaluation mode). Each measurement runs in a fresh child
process, alternating ours and PyTorch's, so that neither framework's thread
pool (OpenBLAS's spinning threads, PyTorch's OpenMP) steals cores from the
other. Each child warms up, then times a fixed number of steps.

Also reported: peak resident memory of each child, the per-layer profile of
our training step, and the time of one real MNIST epoch through the normal
training code (`cnn_cli.training.train.train`).

Each measurement is also taken on a busy machine: ``--busy 0,1`` (the default) times
every child once on the quiet machine and once beside one spin-loop process that
holds a core, ``--busy 0,1,3`` adds three. ``--before-after`` adds ``ours-fixed``:
ours on the default threads, without the busy-machine thread policy that `cnn train`
applies when a run starts (``cnn_cli/nn/thread_policy.py``). The load average is
printed beside each case.

    python benchmarks/bench.py                 # 5 rounds, writes benchmarks/RESULTS.md
    python benchmarks/bench.py --rounds 7 --no-epoch
    python benchmarks/bench.py --busy 1,3 --before-after --no-torch --no-epoch
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import cnn_cli  # noqa: F401 - before NumPy, as the `cnn` command does: it sets up OpenBLAS (cnn_cli/blas_env.py)

BATCH = 64
HERE = Path(__file__).resolve().parent


# ---------------------------------------------------------------- workers (run in child processes)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def _time_steps(step, steps: int, warmup: int, batch: int) -> dict:
    """Run ``warmup`` untimed steps, then time ``steps`` steps; images/s and peak RSS."""
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - start
    return {"images_per_s": steps * batch / seconds, "peak_rss_mb": _peak_rss_mb()}


def worker_ours(mode: str, steps: int, warmup: int, batch: int, adapt: bool = True) -> dict:
    """Our training step or inference; ``adapt``: first set the threads for the load, as `cnn train` does before each epoch."""
    import numpy as np

    from cnn_cli import build_model
    from cnn_cli.nn.optim import make_optimizer
    from cnn_cli.nn.thread_policy import adapt_to_load
    from cnn_cli.nn.threads import thread_count

    if adapt:
        adapt_to_load()

    model = build_model("mnist", seed=0)
    optimizer = make_optimizer("adam", 1e-3)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, batch)

    def train_step() -> None:
        model.loss_and_backward(x, y)
        optimizer.step(model.params, model.grads)

    def infer_step() -> None:  # as evaluation and prediction run it: no backward caches kept
        model.forward(x, training=False, keep_cache=False)

    result = _time_steps(train_step if mode == "train" else infer_step, steps, warmup, batch)
    return {**result, "threads": thread_count()}


def torch_model(head: str):
    """configs/mnist.yaml's network in PyTorch.

    ``head="conv1x1"`` is the same graph as ours (the classifier as 1x1 convolutions);
    ``head="linear"`` is what a PyTorch user would write for it (``nn.Linear`` layers),
    the same function with a cheaper kernel.
    """
    from torch import nn

    features = [
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3),
        nn.ReLU(),
        nn.Conv2d(64, 64, 3),
        nn.ReLU(),
        nn.Flatten(),
    ]
    if head == "linear":
        classifier = [nn.Linear(6400, 128), nn.ReLU(), nn.Linear(128, 10)]
    else:
        classifier = [nn.Unflatten(1, (6400, 1, 1)), nn.Conv2d(6400, 128, 1), nn.ReLU(), nn.Conv2d(128, 10, 1), nn.Flatten()]
    return nn.Sequential(*features, *classifier)


def worker_torch(mode: str, steps: int, warmup: int, batch: int, head: str = "conv1x1") -> dict:
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = torch_model(head)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.randn(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    def infer_step() -> None:
        with torch.inference_mode():
            model(x)

    model.train(mode == "train")
    result = _time_steps(train_step if mode == "train" else infer_step, steps, warmup, batch)
    return {**result, "threads": torch.get_num_threads()}


def worker_profile(rounds: int, batch: int) -> dict:
    from cnn_cli import build_model
    from cnn_cli.learn.profile import format_profile, profile_training_step

    return {"table": format_profile(profile_training_step(build_model("mnist"), batch_size=batch, rounds=rounds))}


def worker_epoch(data_dir: str) -> dict:
    from cnn_cli.config.load import load_config
    from cnn_cli.training.train import train

    config = load_config("mnist", [f"data.data_dir={data_dir}", "train.epochs=1", "train.plots=false"])
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = train(config, run_dir=Path(tmp) / "run", log=lines.append)
        total = time.perf_counter() - start
    return {
        "epoch_wall_s": total,
        "status": result.status,
        "log": lines,
        "peak_rss_mb": _peak_rss_mb(),
        "test_accuracy": result.summary.get("test_accuracy"),
    }


def worker_torch_linear(mode: str, steps: int, warmup: int, batch: int) -> dict:
    return worker_torch(mode, steps, warmup, batch, head="linear")


def worker_ours_fixed(mode: str, steps: int, warmup: int, batch: int) -> dict:
    return worker_ours(mode, steps, warmup, batch, adapt=False)


WORKERS = {"ours": worker_ours, "ours-fixed": worker_ours_fixed, "torch": worker_torch, "torch-linear": worker_torch_linear}
LABELS = {
    "ours": "ours",
    "ours-fixed": "ours on fixed default threads (no busy-machine policy)",
    "torch": "PyTorch, same graph (1x1-conv head)",
    "torch-linear": "PyTorch as usually written (nn.Linear head)",
}
SPIN = "while True:\n    pass"


@contextlib.contextmanager
def busy_processes(count: int):
    """``count`` spin-loop processes, each holding a core, for the duration of the block."""
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(count)]
    try:
        if spinners:
            time.sleep(0.5)  # on the run queue before a child starts
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def load_text() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def run_child(args: list[str], timeout: float = 900) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, timeout=timeout, cwd=HERE.parent)
    if proc.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- the driver


def summarise(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numpy as np

    blas = "unknown"
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]["name"]
    except Exception:  # noqa: BLE001 - only a label
        pass
    return f"{cpu}; {os.cpu_count()} logical CPUs; Python {platform.python_version()}; NumPy {np.__version__} ({blas})"


def measure(frameworks: list[str], busy_cases: list[int], args) -> tuple[dict, dict]:
    """Alternating rounds of children for every busy case; results[(busy, framework, mode)] and the load seen per case."""
    results: dict[tuple[int, str, str], list[dict]] = {(b, f, m): [] for b in busy_cases for f in frameworks for m in ("train", "infer")}
    loads: dict[int, list[str]] = {b: [] for b in busy_cases}
    for round_index in range(args.rounds):
        for busy in busy_cases:
            with busy_processes(busy):
                for mode in ("train", "infer"):
                    order = frameworks if round_index % 2 == 0 else frameworks[::-1]
                    for framework in order:
                        steps = args.steps if mode == "train" else 3 * args.steps
                        result = run_child([framework, mode, str(steps), str(args.warmup)])
                        results[(busy, framework, mode)].append(result)
                        print(
                            f"round {round_index + 1}/{args.rounds} busy {busy} {mode:5s} {framework:12s} "
                            f"{result['images_per_s']:8.0f} img/s  {result['threads']} thread(s)  load {load_text()}",
                            flush=True,
                        )
                loads[busy].append(load_text())
    return results, loads


def busy_label(busy: int) -> str:
    return "no spinner added" if busy == 0 else f"{busy} busy process{'es' if busy > 1 else ''}"


def table(results: dict, frameworks: list[str], busy_cases: list[int], loads: dict) -> list[str]:
    """The img/s rows, each with the median over rounds of ours / this framework in the same round and case."""
    lines = [
        "| machine | measurement | framework | img/s (median, min–max) | threads | ratio ours / this (median of rounds) |",
        "|---|---|---|---|---|---|",
    ]
    for busy in busy_cases:
        for mode, label in (("train", "training step"), ("infer", "inference")):
            for framework in frameworks:
                runs = results[(busy, framework, mode)]
                stats = summarise([r["images_per_s"] for r in runs])
                threads = "/".join(sorted({str(r["threads"]) for r in runs}))
                speeds = f"{stats['median']:.0f} ({stats['min']:.0f}–{stats['max']:.0f})"
                row = f"| {busy_label(busy)} | {label} | {LABELS[framework]} | {speeds} | {threads} |"
                if framework == "ours":
                    row += " – |"
                else:
                    ours = results[(busy, "ours", mode)]
                    per_round = [a["images_per_s"] / b["images_per_s"] for a, b in zip(ours, runs, strict=True)]
                    row += f" {statistics.median(per_round):.2f} |"
                lines.append(row)
    if 0 in busy_cases:
        for busy in [b for b in busy_cases if b]:
            for mode in ("train", "infer"):
                for framework in frameworks:
                    quiet = statistics.median(r["images_per_s"] for r in results[(0, framework, mode)])
                    busy_speed = statistics.median(r["images_per_s"] for r in results[(busy, framework, mode)])
                    lines.append(f"- {busy_label(busy)}, {mode}: {LABELS[framework]} at {busy_speed / quiet:.2f}x of its quiet speed")
    lines += [
        "",
        "Load average (1, 5, 15 min) after each round: " + "; ".join(f"{busy_label(b)}: {', '.join(v)}" for b, v in loads.items()),
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per child")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--busy", default="0,1", help="busy-process counts to measure beside, comma-separated (default: %(default)s)")
    parser.add_argument("--before-after", action="store_true", help="also ours without the busy-machine thread policy")
    parser.add_argument("--no-epoch", action="store_true", help="skip the real MNIST epoch")
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        kind = args.child[0]
        if kind == "profile":
            print(json.dumps(worker_profile(int(args.child[1]), BATCH)))
        elif kind == "epoch":
            print(json.dumps(worker_epoch(args.child[1])))
        else:
            framework, mode, steps, warmup = args.child[0], args.child[1], int(args.child[2]), int(args.child[3])
            print(json.dumps(WORKERS[framework](mode, steps, warmup, BATCH)))
        return

    frameworks = ["ours", *(["ours-fixed"] if args.before_after else []), *([] if args.no_torch else ["torch", "torch-linear"])]
    busy_cases = [int(b) for b in args.busy.split(",") if b.strip()]
    results, loads = measure(frameworks, busy_cases, args)
    lines = [
        "# Benchmark results",
        "",
        f"Measured {datetime.now().strftime('%Y-%m-%d %H:%M')} with `python benchmarks/bench.py` "
        f"({args.rounds} alternating rounds, {args.steps} training / {3 * args.steps} inference steps per child, "
        f"batch {BATCH}, float32, default thread counts; busy cases: {', '.join(busy_label(b) for b in busy_cases)}).",
        "",
        f"Machine: {machine_description()}",
        "",
        "Every ratio is the median over rounds of ours / theirs, measured in the same round and on the same load.",
        "",
        *table(results, frameworks, busy_cases, loads),
    ]
    rss = {f: max(r["peak_rss_mb"] for r in results[(busy_cases[0], f, "train")]) for f in frameworks}
    lines += ["", "Peak RSS of a training child (random data): " + ", ".join(f"{f} {v:.0f} MB" for f, v in rss.items())]

    profile = run_child(["profile", "10"])
    lines += ["", "## Per-layer profile of our training step (batch 64, median ms)", "", "```", profile["table"], "```"]

    if not args.no_epoch:
        epoch = run_child(["epoch", args.data_dir], timeout=1800)
        lines += [
            "",
            "## One real MNIST epoch through the training code",
            "",
            f"`cnn_cli.training.train.train` with configs/mnist.yaml, 1 epoch (55,000 training images, then 5,000 "
            f"validation and 10,000 test images evaluated): {epoch['epoch_wall_s']:.1f} s wall, "
            f"peak RSS {epoch['peak_rss_mb']:.0f} MB, test accuracy {epoch['test_accuracy']:.4f}.",
            "",
            "```",
            *epoch["log"],
            "```",
        ]
    text = "\n".join(lines) + "\n"
    print(text)
    args.output.write_text(text + kept_notes(args.output))


NOTES_MARKER = "<!-- Written by hand: bench.py keeps everything below this line. -->"


def kept_notes(results_file: Path) -> str:
    """The hand-written analysis at the end of an existing RESULTS.md (from the marker on)."""
    try:
        old = results_file.read_text()
    except OSError:
        return ""
    at = old.find(NOTES_MARKER)
    return "\n" + old[at:] if at >= 0 else ""


if __name__ == "__main__":
    main()
