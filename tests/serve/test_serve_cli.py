"""``cnn serve`` as a command: the missing-extra message, the network warning, a real process that stops cleanly on Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from cnn_cli.serve import INSTALL_COMMAND, SERVE_PACKAGES, is_loopback, serve_extra_installed
from tests.serve.conftest import NEEDS_SERVE_EXTRA, TRAINED_RUN
from tests.support.cli import EXIT_BAD_INPUT, cli_command, cli_environment, error_line, invoke_cli, run_cli


def test_help_has_an_example() -> None:
    outcome = invoke_cli(["serve", "--help"])
    assert outcome.code == 0
    assert "Examples:" in outcome.stdout and "cnn serve --runs runs --port 8080" in outcome.stdout
    assert "127.0.0.1" in outcome.stdout


@pytest.mark.parametrize("module", ["flask", "threadpoolctl"])
def test_without_the_serve_extra_it_prints_the_install_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, module: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # importing it now fails, as on an install without the extra
    outcome = invoke_cli(["serve", "--runs", tmp_path])
    message = error_line(outcome, EXIT_BAD_INPUT, SERVE_PACKAGES[module], INSTALL_COMMAND)
    assert message.endswith('pip install ".[serve]"')


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False), ("::", False)])
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.skipif(not serve_extra_installed(), reason=NEEDS_SERVE_EXTRA)
def test_a_network_host_warns(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """--host 0.0.0.0 prints the warning; the server is replaced so that nothing listens beyond loopback in tests."""
    import cnn_cli.serve as serve_module

    started = []

    class NoNetworkServer:
        def __init__(self, runs_root, checkpoint, host, port, allow_hosts=()) -> None:
            started.append(host)
            self.address = (host, 8123 if port == 0 else port)  # as if port 0 had been given 8123
            self.url = f"http://{host}:{self.address[1]}/"

        def serve_forever(self) -> None:
            raise KeyboardInterrupt  # Ctrl-C at once

        def shutdown(self) -> None:
            started.append("shutdown")

    monkeypatch.setattr(serve_module, "Server", NoNetworkServer)
    outcome = invoke_cli(["serve", "--runs", tmp_path, "--host", "0.0.0.0", "--port", "8123"])
    assert outcome.code == 130, outcome.output  # Ctrl-C's exit code (cnn_cli.signals)
    assert started == ["0.0.0.0", "shutdown"]
    (warning,) = outcome.stderr.splitlines()
    assert warning.startswith("warning: listening on 0.0.0.0") and "see the runs" in warning
    assert "stopped" in outcome.stdout
    quiet = invoke_cli(["serve", "--runs", tmp_path])
    assert quiet.code == 130 and quiet.stderr == ""


@pytest.mark.skipif(not serve_extra_installed(), reason=NEEDS_SERVE_EXTRA)
def test_a_missing_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    error_line(invoke_cli(["serve", "--runs", tmp_path, "--checkpoint", tmp_path / "nope.npz", "--port", "0"]), EXIT_BAD_INPUT, "nope.npz")


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # what a shell does to a job it starts in the background


@pytest.mark.skipif(not serve_extra_installed(), reason=NEEDS_SERVE_EXTRA)
@pytest.mark.parametrize(
    ("started_with_sigint_ignored", "signame"),
    [(False, "SIGINT"), (True, "SIGINT"), (False, "SIGTERM"), (False, "SIGHUP")],
    ids=["plain", "sigint-ignored", "sigterm", "sighup"],
)
def test_a_real_server_answers_and_stops_cleanly_on_a_signal(runs_root: Path, started_with_sigint_ignored: bool, signame: str) -> None:
    """Ctrl-C, SIGTERM and SIGHUP stop the server the same way (cnn_cli.signals): "stopped", exit 128 + the signal."""
    process = subprocess.Popen(
        cli_command(["serve", "--runs", runs_root, "--port", "0"]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_environment(),
        preexec_fn=_ignore_sigint if started_with_sigint_ignored else None,
    )
    try:
        line = process.stdout.readline()  # the URL line, printed once the socket is bound
        assert line.startswith("cnn serve: http://127.0.0.1:"), line + process.stderr.read()
        url = line.split()[2]
        with urllib.request.urlopen(url + "api/runs", timeout=10) as response:
            runs = json.load(response)["runs"]
        assert [run["name"] for run in runs] == [TRAINED_RUN]
        with urllib.request.urlopen(url, timeout=10) as response:
            assert b'id="pad"' in response.read()
        time.sleep(0.1)
        process.send_signal(getattr(signal, signame))
        stdout, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
    assert process.returncode == 128 + getattr(signal, signame), stderr
    assert "stopped" in stdout and "Traceback" not in stderr


@pytest.mark.skipif(not serve_extra_installed(), reason=NEEDS_SERVE_EXTRA)
def test_a_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        outcome = run_cli(["serve", "--runs", tmp_path, "--port", port], timeout=30)
    error_line(outcome, EXIT_BAD_INPUT, f"127.0.0.1:{port}", "in use", "--port 0")


@pytest.mark.skipif(not serve_extra_installed(), reason=NEEDS_SERVE_EXTRA)
def test_a_host_that_does_not_resolve_is_one_line_and_exit_2(tmp_path: Path) -> None:
    outcome = invoke_cli(["serve", "--runs", tmp_path, "--host", "no-such-host.invalid", "--port", "0"])
    message = error_line(outcome, EXIT_BAD_INPUT, "--host no-such-host.invalid", "resolve")
    assert "Name or service" not in message


SHORT_FORMS = [("127.1", True), ("LOCALHOST", True), ("[::1]", True), ("127.0.0.2", True), ("10.1", False)]


@pytest.mark.parametrize(("host", "loopback"), SHORT_FORMS)
def test_short_and_upper_case_loopback_forms(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.skipif(not serve_extra_installed(), reason=NEEDS_SERVE_EXTRA)
@pytest.mark.parametrize("host", ["127.1", "LOCALHOST"])
def test_loopback_written_otherwise_serves_without_a_warning(runs_root: Path, host: str) -> None:
    process = subprocess.Popen(
        cli_command(["serve", "--runs", runs_root, "--host", host, "--port", "0"]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_environment(),
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("cnn serve: http://"), line + process.stderr.read()
        url = line.split()[2]
        assert ":0/" not in url
        with urllib.request.urlopen(url + "api/runs", timeout=10) as response:
            assert [run["name"] for run in json.load(response)["runs"]] == [TRAINED_RUN]
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
    assert "warning" not in stderr


@pytest.mark.skipif(not serve_extra_installed(), reason=NEEDS_SERVE_EXTRA)
def test_the_network_warning_names_the_real_port(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import cnn_cli.serve as serve_module

    class PortZeroServer:
        def __init__(self, runs_root, checkpoint, host, port, allow_hosts=()) -> None:
            self.address = ("0.0.0.0", 54321)  # what binding port 0 gave
            self.url = "http://0.0.0.0:54321/"

        def serve_forever(self) -> None:
            raise KeyboardInterrupt

        def shutdown(self) -> None:
            pass

    monkeypatch.setattr(serve_module, "Server", PortZeroServer)
    outcome = invoke_cli(["serve", "--runs", tmp_path, "--host", "0.0.0.0", "--port", "0"])
    assert "port 54321" in outcome.stderr and "port 0" not in outcome.stderr
