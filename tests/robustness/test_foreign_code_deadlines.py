"""Issue 23, category 4 (the in-process parts): deadlines for the learner's code in ``train --impl`` and for a Dask scheduler.

Real ``cnn`` processes (address space capped, killed after a timeout): a learner backward
that never returns is stopped by the step deadline or by a second signal, naming the
function; a scheduler that accepts the connection and then says nothing is given up on
within the connect deadline.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.cli import EXIT_BAD_INPUT, error_line, finish, run_cli_bounded, start_cli_bounded, wait_until, write_config
from tests.support.synthetic import make_idx_dataset, tiny_config

MY_LAYERS = Path(__file__).parents[1] / "training" / "learner_files" / "my_layers.py"

LOOPING_RELU = """

import pathlib as _pathlib


def relu_backward(grad_out, cache):  # noqa: F811 - a learner's loop that never ends, on the second relu's training batch
    if grad_out.shape[0] == 32 and grad_out.ndim == 4 and grad_out.shape[1] == 8:
        _pathlib.Path(__file__).with_suffix(".started").touch()
        while True:
            pass
    return grad_out * (cache > 0)
"""


@pytest.fixture(scope="module")
def data_paths(tmp_path_factory) -> dict[str, str]:
    return make_idx_dataset(tmp_path_factory.mktemp("data"))


def looping_file(tmp_path: Path) -> Path:
    path = tmp_path / "looping.py"
    path.write_text(MY_LAYERS.read_text(encoding="utf-8") + LOOPING_RELU, encoding="utf-8")
    return path


def test_a_looping_learner_backward_is_stopped_by_the_step_deadline_naming_it(tmp_path: Path, data_paths) -> None:
    config = write_config(tmp_path / "tiny.yaml", tiny_config(data_paths, epochs=1, plots=False))
    args = ["train", "--config", config, "--impl", looping_file(tmp_path), "--impl-check-steps", "0", "--impl-deadline", "1"]
    began = time.monotonic()
    outcome = run_cli_bounded([*args, "--run-dir", "run", "-q"], cwd=tmp_path, timeout=60)
    assert time.monotonic() - began < 30
    assert outcome.code == 1, outcome.output
    assert "ran past the 1 s deadline (--impl-deadline) while relu_backward (layer relu2) ran" in outcome.stderr
    assert "Traceback" not in outcome.output
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "interrupted"


def test_a_second_sigterm_stops_a_looping_learner_backward_naming_it(tmp_path: Path, data_paths) -> None:
    """The first signal asks for a stop between steps; the learner's loop ignores that; the second stops it where it is."""
    path = looping_file(tmp_path)
    config = write_config(tmp_path / "tiny.yaml", tiny_config(data_paths, epochs=1, plots=False))
    child = start_cli_bounded(
        ["train", "--config", config, "--impl", path, "--impl-check-steps", "0", "--run-dir", "run", "-q"], cwd=tmp_path
    )
    wait_until(path.with_suffix(".started").exists, child, what="the learner's loop")
    child.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    child.send_signal(signal.SIGTERM)
    outcome = finish(child, timeout=30)
    assert outcome.code == 128 + signal.SIGTERM, outcome.output
    assert "relu_backward (layer relu2) is running" in outcome.stdout
    assert "a second SIGTERM came while relu_backward (layer relu2) ran; checkpoint saved" in outcome.stderr
    assert "Traceback" not in outcome.output


@pytest.fixture
def silent_scheduler() -> Iterator[int]:
    """A loopback TCP server that accepts every connection and never sends a byte (its port)."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        server.close()


def test_a_scheduler_that_accepts_and_stays_silent_is_given_up_on_within_the_deadline(tmp_path: Path, data_paths, silent_scheduler) -> None:
    config = write_config(tmp_path / "tiny.yaml", tiny_config(data_paths, epochs=1, plots=False))
    sweep = {"name": "t", "base": str(config), "method": "grid", "parameters": {"optimizer.lr": [0.01, 0.02]}}
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(sweep))
    address = f"tcp://127.0.0.1:{silent_scheduler}"
    began = time.monotonic()
    outcome = run_cli_bounded(["sweep", "sweep.yaml", "--scheduler", address, "--connect-timeout", "2"], cwd=tmp_path, timeout=60)
    took = time.monotonic() - began
    error_line(outcome, EXIT_BAD_INPUT, address, "no answer within 2 s")
    assert took < 2 + 15, f"took {took:.1f} s"  # the deadline plus starting Python, NumPy and Dask on a loaded machine


STUBBORN_RELU = """

import pathlib as _pathlib


def relu_backward(grad_out, cache):  # noqa: F811 - a loop that catches every stop it is given
    if grad_out.shape[0] == 32 and grad_out.ndim == 4 and grad_out.shape[1] == 8:
        _pathlib.Path(__file__).with_suffix(".started").touch()
        while True:
            try:
                while True:
                    pass
            except BaseException:  # noqa: BLE001, S110
                pass
    return grad_out * (cache > 0)
"""


def test_learner_code_that_catches_the_stop_is_ended_naming_the_function(tmp_path: Path, data_paths) -> None:
    """Past the deadline, then past the grace period: the process ends with one line naming the function; the checkpoint stays."""
    path = tmp_path / "stubborn.py"
    path.write_text(MY_LAYERS.read_text(encoding="utf-8") + STUBBORN_RELU, encoding="utf-8")
    config = write_config(tmp_path / "tiny.yaml", tiny_config(data_paths, epochs=1, plots=False))
    args = ["train", "--config", config, "--impl", path, "--impl-check-steps", "0", "--impl-deadline", "1", "--run-dir", "run", "-q"]
    outcome = run_cli_bounded(args, cwd=tmp_path, timeout=60)
    assert outcome.code == 1, outcome.output
    assert "Traceback" not in outcome.output
    (line,) = [line for line in outcome.stderr.splitlines() if line.startswith("error: ")]
    assert "ran past the 1 s deadline" in line and "relu_backward (layer relu2)" in line and "caught the stop" in line, line
    path.with_suffix(".started").unlink()
    child = start_cli_bounded(
        ["train", "--config", config, "--impl", path, "--impl-check-steps", "0", "--run-dir", "run2", "-q"], cwd=tmp_path
    )
    wait_until(path.with_suffix(".started").exists, child, what="the learner's loop")
    for _ in range(3):
        time.sleep(0.5)
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    outcome = finish(child, timeout=30)
    assert outcome.code == 128 + signal.SIGTERM, outcome.output
    assert "relu_backward (layer relu2) did not stop at the second SIGTERM" in outcome.stderr


EXITING_RELU = """

import sys as _sys


def relu_backward(grad_out, cache):  # noqa: F811 - a learner's function that ends the program, on a training batch
    if grad_out.shape[0] == 32 and grad_out.ndim == 4 and grad_out.shape[1] == 8:
        STATEMENT
    return grad_out * (cache > 0)
"""


@pytest.mark.parametrize(
    ("statement", "said"), [("_sys.exit(0)", "called sys.exit(0)"), ("raise KeyboardInterrupt", "raised KeyboardInterrupt")]
)
def test_a_learner_function_ending_the_program_fails_the_run_naming_it(tmp_path: Path, data_paths, statement: str, said: str) -> None:
    """exit 0 with no word would look like a pass, and 130 like a Ctrl-C: it is the learner's failure, named."""
    path = tmp_path / "exiting.py"
    path.write_text(MY_LAYERS.read_text(encoding="utf-8") + EXITING_RELU.replace("STATEMENT", statement), encoding="utf-8")
    config = write_config(tmp_path / "tiny.yaml", tiny_config(data_paths, epochs=1, plots=False))
    outcome = run_cli_bounded(["train", "--config", config, "--impl", path, "--impl-check-steps", "0", "--run-dir", "run"], cwd=tmp_path)
    assert outcome.code == 1, outcome.output
    assert f"relu_backward (layer relu2) {said}" in outcome.stderr, outcome.output
    assert "Traceback" not in outcome.output
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] != "completed"
