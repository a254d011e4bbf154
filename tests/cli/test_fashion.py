"""The shipped ``fashion`` config end to end as real processes: download, train, eval, predict, with Fashion-MNIST's class names."""

from __future__ import annotations

import json
from pathlib import Path

import idx2numpy
import pytest
from PIL import Image

from cnn_cli.data.catalog import FASHION_MNIST
from tests.support.cli import run_cli

# Label 0..9 of Fashion-MNIST, as its README names them.
NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def test_the_catalog_names_fashion_mnists_classes() -> None:
    assert list(FASHION_MNIST.class_names or ()) == NAMES


@pytest.fixture(scope="module")
def fashion_run(fashion_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``cnn data download fashion-mnist`` (a no-op once cached), then the fashion config on 3,000 images for one epoch."""
    outcome = run_cli(["data", "download", "fashion-mnist", "--data-dir", fashion_data_dir], timeout=600)
    assert outcome.code == 0 and "fashion-mnist: all 4 files verified" in outcome.stdout, outcome.output
    run_dir = tmp_path_factory.mktemp("fashion") / "run"
    overrides = [f"data.data_dir={fashion_data_dir}", "data.limit=3000", "data.val_size=1000", "train.epochs=1", "train.plots=false"]
    outcome = run_cli(["train", "--config", "fashion", *(f"--set={o}" for o in overrides), "--run-dir", run_dir, "--quiet"], timeout=600)
    assert outcome.code == 0, outcome.output
    return run_dir


@pytest.mark.slow
def test_fashion_trains_and_eval_names_the_classes(fashion_run: Path) -> None:
    summary = json.loads((fashion_run / "summary.json").read_text())
    assert summary["test_n"] == 10_000 and summary["test_accuracy"] > 0.6, summary
    outcome = run_cli(["eval", fashion_run], timeout=300)
    assert outcome.code == 0, outcome.output
    assert "  class 0 (T-shirt/top): " in outcome.stdout and "  class 9 (Ankle boot): " in outcome.stdout
    report = json.loads(run_cli(["eval", fashion_run, "--json"], timeout=300).stdout)
    assert (
        report["class_names"]
        == NAMES
        == ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    )
    assert report["accuracy"] == pytest.approx(summary["test_accuracy"])


@pytest.mark.slow
def test_fashion_predict_answers_with_class_names(fashion_run: Path, fashion_data_dir: Path, tmp_path: Path) -> None:
    folder = fashion_data_dir / "fashion-mnist"
    images = idx2numpy.convert_from_file(str(folder / "t10k-images-idx3-ubyte"))
    labels = idx2numpy.convert_from_file(str(folder / "t10k-labels-idx1-ubyte"))
    files = []
    for i in range(12):
        files.append(tmp_path / f"item{i}.png")
        Image.fromarray(images[i]).save(files[-1])
    outcome = run_cli(["predict", *files, "--checkpoint", fashion_run / "checkpoints" / "best.npz", "--json"], timeout=300)
    assert outcome.code == 0, outcome.output
    results = json.loads(outcome.stdout)
    assert all(r["class_name"] == NAMES[r["prediction"]] and set(r["probabilities"]) <= set(NAMES) for r in results)
    assert sum(r["prediction"] == int(label) for r, label in zip(results, labels[:12], strict=True)) >= 7, results
    assert "unlike an MNIST digit" not in outcome.stderr

    outcome = run_cli(["predict", files[0], "--checkpoint", fashion_run / "checkpoints" / "best.npz"], timeout=300)
    assert outcome.stdout.startswith(f"{files[0]}: {results[0]['class_name']}   ({results[0]['class_name']}: ")
