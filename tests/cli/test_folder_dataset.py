"""A folder of your own images, end to end through the command line: train, eval, predict and plot, with class names.

The dataset is drawn on the fly (tests/support/folders.py): 10 classes of digits named
``zero`` ... ``nine``, in PNG, JPEG, BMP, GIF and WebP, plus three files that are no image.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from cnn_cli.config.load import resolve_config_path
from cnn_cli.pictures import run as run_pictures
from tests.support.cli import error_line, run_cli, write_config
from tests.support.folders import DIGIT_NAMES, write_bad_files, write_digit_folder, write_digit_images

SORTED_NAMES = sorted(DIGIT_NAMES)
PER_CLASS = 40


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, object]:
    """The shipped folder-example config on 400 drawn digits (+ 3 bad files), trained for a few epochs."""
    root = tmp_path_factory.mktemp("folder-run")
    images = write_digit_folder(root / "digits", per_class=PER_CLASS)
    write_bad_files(images / "five")
    config = yaml.safe_load(resolve_config_path("folder-example")[1])
    config["data"].update(path=str(images), val_size=40)
    config["model"]["layers"][-1]["out_features"] = 10
    config["train"].update(epochs=4, plots=True)
    run_dir = root / "run"
    outcome = run_cli(["train", "--config", write_config(root / "folder.yaml", config), "--run-dir", run_dir, "--quiet"], timeout=600)
    return images, run_dir, outcome


def test_training_skips_the_bad_files_says_so_and_goes_on(folder_run) -> None:
    images, run_dir, outcome = folder_run
    assert outcome.code == 0, outcome.output
    assert f"skipped: {images / 'five' / 'notes.txt'}: not an image Pillow can read" in outcome.stderr
    assert f"{images}: 3 of 403 files skipped (not an image, truncated or unreadable); going on with the rest" in outcome.stderr
    first = outcome.stdout.splitlines()[0]
    assert "280 training / 40 validation / 80 test images" in first, first
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["test_n"] == 80 and summary["test_accuracy"] > 0.5, summary


def test_eval_shows_the_class_names(folder_run) -> None:
    _, run_dir, _ = folder_run
    outcome = run_cli(["eval", run_dir], timeout=120)
    assert outcome.code == 0, outcome.output
    for index, name in enumerate(SORTED_NAMES):
        assert f"  class {index} ({name}): " in outcome.stdout
    report = json.loads(run_cli(["eval", run_dir, "--json"], timeout=120).stdout)
    assert report["class_names"] == SORTED_NAMES and report["n"] == 80


def test_predict_answers_with_class_names(folder_run, tmp_path: Path) -> None:
    _, run_dir, _ = folder_run
    fresh = write_digit_images(tmp_path / "new", per_class=2, seed=99)  # digits it has never seen
    files = [path for name in DIGIT_NAMES for path in fresh[name]]
    best = run_dir / "checkpoints" / "best.npz"

    outcome = run_cli(["predict", *files, "--checkpoint", best, "--json", "--top-k", "3"], timeout=120)
    assert outcome.code == 0, outcome.output
    results = json.loads(outcome.stdout)
    assert [r["class_name"] for r in results] == [SORTED_NAMES[r["prediction"]] for r in results]
    assert all(set(r["probabilities"]) <= set(SORTED_NAMES) and len(r["probabilities"]) == 3 for r in results)
    assert all(list(r["probabilities"])[0] == r["class_name"] for r in results)
    right = sum(r["class_name"] == Path(r["path"]).parent.name for r in results)
    assert right >= 12, results  # of 20
    assert "unlike an MNIST digit" not in outcome.stderr, "the digit check is for MNIST models"

    outcome = run_cli(["predict", files[14], "--checkpoint", best], timeout=120)
    name = json.loads(run_cli(["predict", files[14], "--checkpoint", best, "--json"], timeout=120).stdout)[0]["class_name"]
    assert outcome.code == 0 and outcome.stdout.startswith(f"{files[14]}: {name}   ({name}: ")


def test_the_confusion_matrix_picture_is_labelled_with_the_names(folder_run, monkeypatch: pytest.MonkeyPatch) -> None:
    _, run_dir, _ = folder_run
    assert (run_dir / "plots" / "confusion_matrix.png").is_file()
    drawn: list[list[str]] = []
    original = run_pictures.plot_confusion_matrix

    def recording(labels: np.ndarray, predicted: np.ndarray, names: list[str], path: Path, title: str = "") -> Path:
        drawn.append(names)
        return original(labels, predicted, names, path, title)

    monkeypatch.setattr(run_pictures, "plot_confusion_matrix", recording)
    run_pictures.plot_run(run_dir)
    assert drawn == [SORTED_NAMES]


def test_a_model_with_the_wrong_number_of_outputs_names_the_classes(tmp_path: Path) -> None:
    images = write_digit_folder(tmp_path / "digits", per_class=2)
    config = yaml.safe_load(resolve_config_path("folder-example")[1])
    config["data"].update(path=str(images), val_size=2)
    outcome = run_cli(["train", "--config", write_config(tmp_path / "c.yaml", config), "--run-dir", tmp_path / "run"], timeout=120)
    error_line(outcome, 2, "model has 3 output(s) for 3 classes, but the data has 10 classes (eight, five, four", "one score per class")


def test_the_shipped_example_points_at_a_folder_to_fill_in(tmp_path: Path) -> None:
    outcome = run_cli(["train", "--config", "folder-example"], timeout=120, cwd=tmp_path)
    error_line(outcome, 2, "my-images: no such folder; a folder dataset is a folder with one sub-folder of images per class")
