"""``cnn serve`` answers with the classes' names: Fashion-MNIST's, as the checkpoint keeps them."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import idx2numpy
import numpy as np
import pytest
from PIL import Image

from tests.serve.conftest import NEEDS_SERVE_EXTRA

pytest.importorskip("flask", reason=NEEDS_SERVE_EXTRA)
pytest.importorskip("threadpoolctl", reason=NEEDS_SERVE_EXTRA)

from cnn_cli.config.load import load_config
from cnn_cli.data.catalog import FASHION_MNIST
from cnn_cli.serve.app import create_app
from cnn_cli.training.train import train

FASHION_RUN = "fashion-trained"
NAMES = list(FASHION_MNIST.class_names or ())


@pytest.fixture(scope="module")
def fashion_client(tmp_path_factory: pytest.TempPathFactory, fashion_data_dir: Path) -> Iterator:
    """A Flask test client over a runs folder holding one short ``fashion`` run (3,000 images, one epoch)."""
    runs = tmp_path_factory.mktemp("runs")
    overrides = ["data.limit=3000", "data.val_size=1000", "train.epochs=1", "train.plots=false", f"data.data_dir={fashion_data_dir}"]
    result = train(load_config("fashion", overrides), run_dir=runs / FASHION_RUN, log=lambda line: None)
    assert result.status == "completed", result.message
    app = create_app(runs)
    app.testing = True
    with app.test_client() as client:
        yield client


def png_of_test_image(fashion_data_dir: Path, index: int) -> bytes:
    images = idx2numpy.convert_from_file(str(fashion_data_dir / "fashion-mnist" / "t10k-images-idx3-ubyte"))
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(images[index])).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.slow
def test_analyze_names_the_classes(fashion_client, fashion_data_dir: Path) -> None:
    result = fashion_client.post(f"/api/analyze?model={FASHION_RUN}", data=png_of_test_image(fashion_data_dir, 0)).json
    assert result["classes"] == NAMES
    assert result["prediction"] == NAMES[result["prediction_index"]]
    assert result["explained"] == NAMES[result["explained_index"]]
    explained = fashion_client.post(f"/api/analyze?model={FASHION_RUN}&class=9", data=png_of_test_image(fashion_data_dir, 0)).json
    assert explained["explained"] == "Ankle boot"


@pytest.mark.slow
def test_evaluation_names_the_classes_of_the_confusion_matrix_and_the_mistakes(fashion_client) -> None:
    result = fashion_client.get(f"/api/runs/{FASHION_RUN}/evaluation").json
    assert result["classes"] == NAMES
    assert np.array(result["confusion_matrix"]).shape == (10, 10) and result["n"] == 10_000
    assert result["mistakes"] and all(m["true"] in NAMES and m["predicted"] in NAMES for m in result["mistakes"])
