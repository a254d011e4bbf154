"""Issue 23, category 2: SIGTERM and SIGHUP take Ctrl-C's path in every command, and leave no temp files.

Each case signals a real ``cnn`` process (address space capped, killed after a timeout)
and checks its exit code (128 + n), its output (no traceback) and the folders it wrote
to (no ``.tmp`` left, in the run or in TMPDIR).
"""

from __future__ import annotations

import gzip
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.cli import error_line, finish, run_cli_bounded, start_cli_bounded, wait_until, write_config
from tests.support.synthetic import make_idx_dataset, tiny_config

EXIT_SIGTERM, EXIT_SIGHUP = 128 + signal.SIGTERM, 128 + signal.SIGHUP


@pytest.fixture(scope="module")
def data_paths(tmp_path_factory) -> dict[str, str]:
    return make_idx_dataset(tmp_path_factory.mktemp("data"), n_train=1500, n_test=100)


def temps(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name.endswith(".tmp"))


def status(run: Path) -> str:
    return json.loads((run / "run.json").read_text())["status"]


def test_sigterm_mid_training_saves_and_exits_143(tmp_path: Path, data_paths) -> None:
    config = write_config(tmp_path / "tiny.yaml", tiny_config(data_paths, epochs=200, plots=False))
    trainer = start_cli_bounded(["train", "--config", config, "--run-dir", "run", "-q"], cwd=tmp_path)
    wait_until(lambda: (tmp_path / "run" / "checkpoints" / "last.npz").is_file(), trainer, what="first checkpoint")
    trainer.send_signal(signal.SIGTERM)
    outcome = finish(trainer)
    assert outcome.code == EXIT_SIGTERM, outcome.output
    assert "Traceback" not in outcome.output and "cnn train --resume run" in outcome.output
    assert status(tmp_path / "run") == "interrupted" and temps(tmp_path) == []


def test_sigterm_while_a_finished_run_draws_its_plots(tmp_path: Path, data_paths) -> None:
    """The run is complete; its pictures are being drawn: exit 143 (not -15), status completed, no temp file."""
    config = write_config(tmp_path / "tiny.yaml", tiny_config(data_paths, epochs=1, plots=True))
    trainer = start_cli_bounded(["train", "--config", config, "--run-dir", "run", "-q"], cwd=tmp_path)
    wait_until(lambda: (tmp_path / "run" / "plots").is_dir(), trainer, what="plots folder")
    trainer.send_signal(signal.SIGTERM)
    outcome = finish(trainer)
    assert outcome.code == EXIT_SIGTERM, outcome.output
    assert "Traceback" not in outcome.output
    assert status(tmp_path / "run") == "completed"
    assert temps(tmp_path) == []


def test_sighup_during_plot_and_sigterm_during_lr_find(tmp_path: Path, data_paths) -> None:
    config = write_config(tmp_path / "tiny.yaml", tiny_config(data_paths, epochs=1, plots=False))
    assert run_cli_bounded(["train", "--config", config, "--run-dir", "run", "-q"], cwd=tmp_path, timeout=60).code == 0
    plotter = start_cli_bounded(["plot", "run"], cwd=tmp_path)
    wait_until(lambda: (tmp_path / "run" / "plots").is_dir(), plotter, what="plots folder")
    plotter.send_signal(signal.SIGHUP)
    outcome = finish(plotter)
    assert outcome.code == EXIT_SIGHUP, outcome.output
    assert "Traceback" not in outcome.output and temps(tmp_path) == []
    finder = start_cli_bounded(["lr-find", "--config", config, "--steps", "100000", "--out", "out/lr.png"], cwd=tmp_path)
    time.sleep(2)
    finder.send_signal(signal.SIGTERM)
    outcome = finish(finder)
    assert outcome.code == EXIT_SIGTERM, outcome.output
    assert "Traceback" not in outcome.output and temps(tmp_path) == []


def test_a_nohup_sighup_stays_ignored(tmp_path: Path, data_paths) -> None:
    """``nohup cnn train`` keeps training when its terminal closes: an ignored SIGHUP is not taken over."""
    config = write_config(tmp_path / "tiny.yaml", tiny_config(data_paths, epochs=2, plots=False))
    command = [sys.executable, "-c", "import signal, sys; signal.signal(signal.SIGHUP, signal.SIG_IGN); "]
    command[-1] += "from cnn_cli.cli.main import main; sys.argv[0] = 'cnn'; main()"
    from tests.support.cli import cli_environment

    child = subprocess.Popen(
        [*command, "train", "--config", str(config), "--run-dir", "run", "-q"],
        cwd=tmp_path,
        env=cli_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(lambda: (tmp_path / "run" / "checkpoints" / "last.npz").is_file(), child, what="first checkpoint")
    child.send_signal(signal.SIGHUP)
    outcome = finish(child)
    assert outcome.code == 0, outcome.output
    assert status(tmp_path / "run") == "completed"


def test_fast_dev_run_refused_or_interrupted_leaves_nothing_in_tmpdir(tmp_path: Path, data_paths) -> None:
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    env = {"TMPDIR": str(tmpdir)}
    missing = tiny_config({**data_paths, "train_images": str(tmp_path / "nowhere")}, epochs=1)
    refused = start_cli_bounded(["train", "--config", write_config(tmp_path / "bad.yaml", missing), "--fast-dev-run"], env=env)
    outcome = finish(refused)
    assert outcome.code == 2 and outcome.stderr.startswith("error: "), outcome.output
    assert list(tmpdir.iterdir()) == []
    config = write_config(tmp_path / "tiny.yaml", tiny_config(data_paths, epochs=1))
    running = start_cli_bounded(["train", "--config", config, "--fast-dev-run"], cwd=tmp_path, env=env)
    wait_until(lambda: any(tmpdir.glob("cnn-fast-dev-run-*/tiny/run.json")), running, what="the dev run's folder")
    running.send_signal(signal.SIGTERM)
    outcome = finish(running)
    assert outcome.code == EXIT_SIGTERM, outcome.output
    assert "Traceback" not in outcome.output
    assert list(tmpdir.iterdir()) == []


def test_temp_files_of_a_killed_process_are_swept_when_the_folder_is_next_opened(tmp_path: Path, data_paths) -> None:
    config = write_config(tmp_path / "tiny.yaml", tiny_config(data_paths, epochs=1, plots=False))
    assert run_cli_bounded(["train", "--config", config, "--run-dir", "run", "-q"], cwd=tmp_path, timeout=60).code == 0
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    run = tmp_path / "run"
    (run / "plots").mkdir(exist_ok=True)
    stale = [run / f".run.json.{gone.pid}-0a1b2c3d4e5f.tmp", run / "checkpoints" / f".last.npz.{gone.pid}-abcdef012345.tmp"]
    stale.append(run / "plots" / f".filters.png.{gone.pid}-00ff00ff00ff.tmp")
    live = run / f".metrics.csv.{os.getpid()}-123456abcdef.tmp"  # a writer that is still at work
    for path in [*stale, live]:
        path.write_bytes(b"x" * 1000)
    outcome = run_cli_bounded(["train", "--resume", "run", "-q"], cwd=tmp_path, timeout=60)  # all epochs done: the final test only
    assert outcome.code == 0, outcome.output
    assert [path for path in stale if path.exists()] == []
    assert live.exists()


def test_sigterm_to_a_sweep_saves_its_trials_prints_the_resume_command_and_leaves_no_temp_folder(tmp_path: Path, data_paths) -> None:
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    config = write_config(tmp_path / "tiny.yaml", tiny_config(data_paths, epochs=200, plots=False))
    sweep = {"name": "t", "base": str(config), "method": "grid", "parameters": {"optimizer.lr": [0.01, 0.02]}, "parallelism": 2}
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(yaml.safe_dump(sweep))
    child = start_cli_bounded(
        ["sweep", sweep_file, "--workers", "2", "--runs-root", "runs"], cwd=tmp_path, env={"TMPDIR": str(tmpdir)}, memory_bytes=8 << 30
    )
    wait_until(lambda: len(list(tmpdir.glob("cnn-trial-*/run/checkpoints/last.npz"))) >= 1, child, timeout=90, what="a trial's checkpoint")
    root = next((tmp_path / "runs").glob("sweep-t-*"))
    second = run_cli_bounded(["sweep", "--resume", root], cwd=tmp_path, timeout=60)  # category 1: one writer per folder
    error_line(second, 2, str(root), f"PID {child.pid}")
    child.send_signal(signal.SIGTERM)
    outcome = finish(child, timeout=90)
    assert outcome.code == EXIT_SIGTERM, outcome.output
    assert "Traceback" not in outcome.output
    assert "cnn sweep --resume" in outcome.output
    rows = (next((tmp_path / "runs").glob("sweep-t-*")) / "sweep.csv").read_text()
    assert "interrupted" in rows, rows
    assert sorted(str(p.relative_to(tmpdir)) for p in tmpdir.rglob("*")) == []


LOOPBACK_MIRROR = """
import dataclasses, sys
from cnn_cli.data import catalog
catalog.DATASETS["mnist"] = dataclasses.replace(catalog.DATASETS["mnist"], mirrors=(sys.argv.pop(1),))
from cnn_cli.cli.main import main
sys.argv[0] = "cnn"
main()
"""


@pytest.fixture
def trickling_mirror() -> Iterator[str]:
    """A loopback mirror that sends a large gzip stream a few kilobytes at a time (its base URL)."""
    body = gzip.compress(bytes(8 << 20), compresslevel=1)

    class Trickle(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for start in range(0, len(body), 2048):
                try:
                    self.wfile.write(body[start : start + 2048])
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.05)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("signame", "times"), [("SIGTERM", 1), ("SIGHUP", 1), ("SIGTERM", 3)])
def test_a_signal_during_a_download_leaves_no_temp_file(tmp_path: Path, trickling_mirror: str, signame: str, times: int) -> None:
    """Also three SIGTERMs in a row, as an impatient supervisor sends them: the first one's cleanup still runs to its end."""
    cache = tmp_path / "cache"
    child = start_cli_bounded([trickling_mirror, "data", "download", "mnist", "--data-dir", cache], script=LOOPBACK_MIRROR)
    wait_until(lambda: bool(temps(cache)), child, what="the download's temp file")
    for _ in range(times):
        child.send_signal(getattr(signal, signame))
        time.sleep(0.002)
    outcome = finish(child)
    assert outcome.code == 128 + getattr(signal, signame), outcome.output
    assert "Traceback" not in outcome.output
    assert temps(cache) == []


LOOPING_EXERCISE = """
import numpy as np


def relu_forward(x):
    return np.maximum(x, 0), x


def relu_backward(grad_out, cache):
    while True:
        pass
"""


def test_sigterm_to_exercise_check_ends_the_learners_process_and_its_temp_folder(tmp_path: Path) -> None:
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    mine = tmp_path / "mine.py"
    mine.write_text(LOOPING_EXERCISE)
    parent = start_cli_bounded(["exercise", "check", mine, "--exercise", "relu", "--timeout", "60"], env={"TMPDIR": str(tmpdir)})
    children = Path(f"/proc/{parent.pid}/task/{parent.pid}/children")
    wait_until(lambda: bool(children.read_text().split()) if children.exists() else False, parent, what="the learner's process")
    (child,) = map(int, children.read_text().split())
    time.sleep(1)
    parent.send_signal(signal.SIGTERM)
    outcome = finish(parent)
    assert outcome.code == EXIT_SIGTERM, outcome.output
    assert "Traceback" not in outcome.output
    assert not Path(f"/proc/{child}").exists(), "the learner's process outlived cnn"
    assert list(tmpdir.iterdir()) == []
