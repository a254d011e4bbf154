"""A learner's file is read within bounds by every command that takes one: a huge file, a FIFO
(which would block an ordinary read for ever) or a folder is one error line, exit 2."""

from __future__ import annotations

import os

import pytest

from cnn_cli.learn.learner_code import LEARNER_CODE_BYTES
from tests.support.cli import EXIT_BAD_INPUT, error_line, invoke_cli, write_config
from tests.support.synthetic import make_idx_dataset, tiny_config


@pytest.fixture(scope="module")
def config_path(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bounds")
    return write_config(folder / "tiny.yaml", tiny_config(make_idx_dataset(folder / "data"), epochs=1))


def commands(path, config_path, tmp_path):
    return {
        "train --impl": ["train", "--config", config_path, "--impl", path, "--run-dir", tmp_path / "run"],
        "exercise check": ["exercise", "check", path],
        "gradcheck --impl": ["gradcheck", "--impl", path],
    }


@pytest.mark.parametrize("command", ["train --impl", "exercise check", "gradcheck --impl"])
def test_a_file_over_the_limit_is_refused_unread(command, config_path, tmp_path):
    path = tmp_path / "huge.py"
    line = "# " + "x" * 98 + "\n"
    path.write_text(line * (LEARNER_CODE_BYTES // len(line) + 1), encoding="utf-8")
    outcome = invoke_cli(commands(path, config_path, tmp_path)[command], timeout=30)
    error_line(outcome, EXIT_BAD_INPUT, "huge.py", f"over the limit of {LEARNER_CODE_BYTES:,} bytes for a Python file")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["train --impl", "exercise check", "gradcheck --impl"])
@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_fifo_or_a_folder_is_not_a_file_to_read(command, kind, config_path, tmp_path):
    path = tmp_path / "layers.py"
    os.mkfifo(path) if kind == "fifo" else path.mkdir()
    outcome = invoke_cli(commands(path, config_path, tmp_path)[command], timeout=30)  # a blocking read would hang here
    error_line(outcome, EXIT_BAD_INPUT, "layers.py", "not a regular file", "FIFO" if kind == "fifo" else "folder")
    assert not (tmp_path / "run").exists()
