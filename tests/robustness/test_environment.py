"""The environment a user really has (issue 23, category 6), tried with real ``cnn`` processes.

No HOME and no passwd entry (a container started with ``--user``), a read-only HOME, a
``MPLBACKEND`` meant for another program, a huge ``CNN_NUM_THREADS``, ``~user`` paths of
users that do not exist. The policy lives in ``cnn_cli/environment.py``.

A uid without a passwd entry is made with ``unshare --user --map-user=UID`` where the kernel
allows it: the child then really is a user the system does not know, and (being outside its
namespace's owner) is refused writes to a folder that is read-only to it, even when the tests
run as root.
"""

from __future__ import annotations

import json
import os
import pwd
import resource
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.cli import EXIT_BAD_INPUT, EXIT_FAULT, Outcome, cli_command, cli_environment, error_line, run_cli, write_config
from tests.support.synthetic import make_idx_dataset, tiny_config

DEADLINE = 60


def unknown_uid() -> int:
    """A uid with no passwd entry."""
    uid = 54321
    while True:
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid
        uid += 1


def can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--user", f"--map-user={unknown_uid()}", "true"], capture_output=True, timeout=10, check=False)
    return probe.returncode == 0


UNSHARE = can_unshare()


def run_as(
    args: list[object],
    *,
    cwd: Path,
    env: dict[str, str] | None = None,
    unset: tuple[str, ...] = (),
    stranger: bool = False,
    memory_bytes: int | None = None,
) -> Outcome:
    """``cnn ARGS`` as a real process with ``env`` set and ``unset`` removed; ``stranger``: as a uid with no passwd entry."""
    environment = {k: v for k, v in cli_environment(env).items() if k not in unset}
    command = cli_command(args)
    if stranger:
        command = ["unshare", "--user", f"--map-user={unknown_uid()}", *command]

    def cap_memory() -> None:
        if memory_bytes is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))

    completed = subprocess.run(
        command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=DEADLINE, check=False, preexec_fn=cap_memory
    )
    return Outcome(completed.returncode, completed.stdout, completed.stderr)


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("environment")
    paths = make_idx_dataset(folder / "idx", n_train=300, n_test=100)
    return write_config(folder / "tiny.yaml", tiny_config(paths, epochs=1))


@pytest.fixture(scope="module")
def trained(config: Path) -> Path:
    """A finished run without pictures; a test draws its comparison (one figure) with ``cnn compare``."""
    run = config.parent / "run"
    outcome = run_cli(["train", "--config", config, "--run-dir", run])
    assert outcome.code == 0, outcome.output
    return run


def quiet(outcome: Outcome) -> None:
    """Exit 0, no traceback, no warning from matplotlib."""
    assert outcome.code == 0, outcome.output
    assert "Traceback" not in outcome.output and "atplotlib" not in outcome.output, outcome.output


@pytest.mark.skipif(not UNSHARE, reason="needs `unshare --user` to run as a uid with no passwd entry")
def test_no_home_and_no_passwd_entry(trained: Path, tmp_path: Path) -> None:
    """The data cache goes to a per-user temp folder; pictures are drawn without a word from matplotlib."""
    tmp_path.chmod(0o777)  # the stranger's temp folder (TMPDIR): its private folders land here, not in /tmp
    clean_env = {"XDG_CACHE_HOME": "", "XDG_CONFIG_HOME": "", "MPLCONFIGDIR": "", "CNN_DATA_DIR": "", "TMPDIR": str(tmp_path)}
    outcome = run_as(["data", "info", "mnist"], cwd=tmp_path, env=clean_env, unset=("HOME",), stranger=True)
    quiet(outcome)
    assert str(tmp_path / f"cnn-cache-{unknown_uid()}") in outcome.stdout
    picture = tmp_path / "compare.png"
    quiet(run_as(["compare", trained, "--out", picture], cwd=tmp_path, env=clean_env, unset=("HOME",), stranger=True))
    assert picture.stat().st_size > 0


def test_a_read_only_home_adds_no_matplotlib_noise(trained: Path, tmp_path: Path) -> None:
    if os.geteuid() == 0 and not UNSHARE:
        pytest.skip("root may write anywhere; a read-only home needs `unshare --user`")
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o555)
    env = {"HOME": str(home), "XDG_CACHE_HOME": "", "XDG_CONFIG_HOME": "", "MPLCONFIGDIR": "", "TMPDIR": str(tmp_path)}
    picture = tmp_path / "compare.png"
    tmp_path.chmod(0o777)
    quiet(run_as(["compare", trained, "--out", picture], cwd=tmp_path, env=env, stranger=os.geteuid() == 0))
    assert picture.stat().st_size > 0


def test_a_bogus_mplbackend_still_draws_with_agg(trained: Path, tmp_path: Path) -> None:
    picture = tmp_path / "compare.png"
    quiet(run_as(["compare", trained, "--out", picture], cwd=tmp_path, env={"MPLBACKEND": "bogus"}))
    assert picture.stat().st_size > 0


def test_a_huge_thread_count_is_clamped(config: Path, tmp_path: Path) -> None:
    """10^9 threads asked, with a big batch to split, under a 1 GiB cap (each thread reserves a stack): clamped, completed."""
    run = tmp_path / "run"
    outcome = run_as(
        ["train", "--config", config, "--run-dir", run, "--set", "train.batch_size=200", "--set", "train.plots=false"],
        cwd=tmp_path,
        env={"CNN_NUM_THREADS": str(10**9)},
        memory_bytes=1 << 30,
    )
    assert outcome.code == 0 and "Traceback" not in outcome.output, outcome.output
    assert json.loads((run / "run.json").read_text())["status"] == "completed"


def test_paths_of_a_user_that_does_not_exist_are_one_line(tmp_path: Path) -> None:
    missing = "~nosuchuser-cnn/data"
    expected = "cannot expand ~nosuchuser-cnn: no user 'nosuchuser-cnn' on this machine"
    error_line(run_cli(["data", "download", "mnist", "--data-dir", missing], cwd=tmp_path), EXIT_BAD_INPUT, missing, expected)
    outcome = run_as(["data", "info", "mnist"], cwd=tmp_path, env={"CNN_DATA_DIR": missing})
    error_line(outcome, EXIT_BAD_INPUT, missing, expected)
    outcome = run_cli(["train", "--config", "mnist", "--set", f"data.data_dir={missing}", "--run-dir", tmp_path / "run"], cwd=tmp_path)
    error_line(outcome, EXIT_BAD_INPUT, missing, expected)
    assert not (tmp_path / "run").exists()


def test_a_run_that_runs_out_of_memory_is_one_line_and_marked_failed(tmp_path: Path) -> None:
    """A container's memory limit, below what the estimate allows: the step's allocation fails; the run is not left
    "running" (the same path takes a thread that cannot start)."""
    config = tiny_config(make_idx_dataset(tmp_path / "idx", n_train=1200, n_test=100), epochs=1, batch_size=1000)
    config["model"]["layers"][0].update(out_channels=64, stride=1)  # im2col of one batch: 431 MiB; with the rest, over 1 GiB
    run = tmp_path / "run"
    outcome = run_as(
        ["train", "--config", write_config(tmp_path / "big.yaml", config), "--run-dir", run], cwd=tmp_path, memory_bytes=1 << 30
    )
    error_line(outcome, EXIT_FAULT, "out of memory: Unable to allocate", "use a smaller batch (train.batch_size)")
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "failed" and "MemoryError" in record["stopped"]["message"]


@pytest.mark.parametrize(("value", "expected"), [("1000000000", "max"), ("-5", 1), ("0", 1), ("3", 3), ("lots", None), ("", None)])
def test_the_thread_setting_is_clamped(monkeypatch: pytest.MonkeyPatch, value: str, expected: object) -> None:
    from cnn_cli import environment

    monkeypatch.setenv("CNN_NUM_THREADS", value)
    assert environment.thread_setting() == (environment.max_threads() if expected == "max" else expected)
