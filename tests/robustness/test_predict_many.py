"""``cnn predict`` over a folder or several files goes on past each input it cannot use (issue 23, category 9).

The policy (cnn_cli/runs/per_input.py): each failure is one ``error:`` line on stderr naming
the input, the other images are still predicted, and the exit code comes at the end:
0 all predicted, 1 some failed, 2 none could be predicted (or bad usage). Every case runs
``cnn predict`` as a real process, under a memory cap and a time limit.

Before: a name too long for the file system, among good images, stopped the whole command
with one error and exit 2, predicting nothing; any failure at all exited 2.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnn_cli.config.build import config_from_dict
from cnn_cli.training.train import train
from tests.support.cli import EXIT_BAD_INPUT, EXIT_FAULT, Outcome, run_cli_bounded
from tests.support.synthetic import make_idx_dataset, tiny_config

LONG_NAME = "a" * 300 + ".png"  # over the 255 bytes a file name may have on common file systems
PATH_MAX = 4096


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("predict-many")
    paths = make_idx_dataset(folder / "idx", n_train=300, n_test=100)
    return train(config_from_dict(tiny_config(paths, epochs=1)), run_dir=folder / "run", log=lambda _line: None).run.best


def digit(path: Path) -> Path:
    pixels = np.zeros((28, 28), np.uint8)
    pixels[6:22, 12:16] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def predict(*args: object, cwd: Path | None = None) -> Outcome:
    return run_cli_bounded(["predict", *args], cwd=cwd, timeout=60)


def predicted(outcome: Outcome) -> list[str]:
    return [line.split(": ")[0] for line in outcome.stdout.splitlines()]


def errors(outcome: Outcome) -> list[str]:
    assert "Traceback" not in outcome.output, outcome.stderr
    return [line for line in outcome.stderr.splitlines() if line.startswith("error: ")]


def test_a_folder_with_an_unreadable_image_predicts_the_rest_and_exits_1(tmp_path: Path, checkpoint: Path) -> None:
    folder = tmp_path / "photos"
    good = [digit(folder / name) for name in ("a.png", "c.png", "sub/d.png")]
    (folder / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n then nothing an image has")  # cannot be decoded
    os.mkfifo(folder / "fifo.png")  # a name like an image that is no file: never read, never waited on
    outcome = predict(folder, "--checkpoint", checkpoint)
    assert outcome.code == EXIT_FAULT, outcome.output
    assert predicted(outcome) == [str(path) for path in good]
    lines = errors(outcome)
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"error: {folder / 'b.png'}: ") and lines[1].startswith(f"error: {folder / 'fifo.png'}: ")


def test_a_name_too_long_among_good_images_is_one_error_line(tmp_path: Path, checkpoint: Path) -> None:
    first, last = digit(tmp_path / "first.png"), digit(tmp_path / "last.png")
    outcome = predict(first, LONG_NAME, last, "--checkpoint", checkpoint, cwd=tmp_path)
    assert outcome.code == EXIT_FAULT, outcome.output
    assert predicted(outcome) == [str(first), str(last)]
    (line,) = errors(outcome)
    assert line.startswith(f"error: {LONG_NAME}: ") and "name too long" in line


def test_a_path_too_long_inside_a_folder_is_one_error_line(tmp_path: Path, checkpoint: Path) -> None:
    """A folder nested past PATH_MAX: its deepest image cannot be opened by its path; the rest is predicted."""
    folder = tmp_path / "album"
    good = digit(folder / "top.png")
    deep, depth = folder, 0
    while len(str(deep)) < PATH_MAX + 300:
        deep /= "d" * 200
        depth += 1
    os.makedirs(folder, exist_ok=True)
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        for _ in range(depth):  # one level at a time, each relative to the last: the full path is too long to name
            os.mkdir("d" * 200, dir_fd=descriptor)
            inner = os.open("d" * 200, os.O_RDONLY, dir_fd=descriptor)
            os.close(descriptor)
            descriptor = inner
    finally:
        os.close(descriptor)
    outcome = predict(folder, "--checkpoint", checkpoint)
    assert outcome.code == EXIT_FAULT, outcome.output
    assert predicted(outcome) == [str(good)]
    (line,) = errors(outcome)
    assert "too long" in line.lower()


def test_when_nothing_can_be_predicted_it_exits_2(tmp_path: Path, checkpoint: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    outcome = predict(broken, LONG_NAME, "--checkpoint", checkpoint, cwd=tmp_path)
    assert outcome.code == EXIT_BAD_INPUT, outcome.output
    assert predicted(outcome) == [] and len(errors(outcome)) == 2


def test_all_good_exits_0_and_json_names_each_failure(tmp_path: Path, checkpoint: Path) -> None:
    good = [digit(tmp_path / f"{n}.png") for n in range(3)]
    assert predict(*good, "--checkpoint", checkpoint).code == 0
    outcome = predict(good[0], LONG_NAME, "--checkpoint", checkpoint, "--json", cwd=tmp_path)
    assert outcome.code == EXIT_FAULT
    results = json.loads(outcome.stdout)
    assert [r["path"] for r in results] == [str(good[0]), LONG_NAME]
    assert results[0]["prediction"] is not None and "name too long" in results[1]["error"]


def test_help_states_the_exit_codes() -> None:
    outcome = run_cli_bounded(["predict", "--help"])
    text = " ".join(outcome.stdout.split())
    assert "Exit 0: every image predicted; 1: some failed, the rest predicted; 2: none could be predicted, or bad usage" in text
