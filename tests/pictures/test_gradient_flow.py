"""gradients.csv: reading it (a half-written last line included) and drawing gradient_flow.png."""

from __future__ import annotations

import math

import pytest

from cnn_cli.errors import CnnError
from cnn_cli.pictures.common import figure_pixels
from cnn_cli.pictures.gradient_flow import plot_gradient_flow
from cnn_cli.runs.gradients import GRADIENT_COLUMNS, layer_order, read_gradients
from tests.support import REPO_ROOT
from tests.support.gradients import assert_picture, short_run, write_gradients_csv


@pytest.fixture(autouse=True)
def from_repo_root(monkeypatch) -> None:
    monkeypatch.chdir(REPO_ROOT)  # configs name data_dir "data"


@pytest.fixture(scope="module")
def smoke_rows(mnist_data_dir):
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(REPO_ROOT)
        return short_run("smoke", steps=12, limit=1000, log_every=4)


def test_read_gradients_round_trip(tmp_path, smoke_rows):
    path = write_gradients_csv(tmp_path / "gradients.csv", smoke_rows.rows)
    rows = read_gradients(path)
    assert len(rows) == len(smoke_rows.rows)
    assert layer_order(rows) == [(layer.name, layer.type_name) for layer in smoke_rows.model.layers]
    first_conv = rows[0]
    assert first_conv["layer"] == "conv1" and first_conv["event"] == "step" and first_conv["step"] == 1
    assert first_conv["weight_grad_norm"] == pytest.approx(smoke_rows.weight_norms[0][0], rel=1e-6)
    relu = next(r for r in rows if r["type"] == "relu")
    assert math.isnan(relu["weight_grad_norm"]) and 0 <= relu["dead_fraction"] <= 1
    assert math.isnan(first_conv["dead_fraction"])


def test_a_half_written_last_line_is_dropped(tmp_path, smoke_rows):
    path = write_gradients_csv(tmp_path / "gradients.csv", smoke_rows.rows)
    text = path.read_text()
    complete = len(read_gradients(path))
    # Cut inside the last line's last number: it would still parse, as a wrong value.
    path.write_text(text[:-4])
    assert len(read_gradients(path)) == complete - 1
    path.write_text(text[: text.rindex("\n", 0, len(text) - 1) + 6])  # the last line cut after 5 characters
    assert len(read_gradients(path)) == complete - 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("epoch,step,layer\n1,2,fc1\n", "expected the header"),
        (",".join(GRADIENT_COLUMNS) + "\n1,5,step,fc1,dense,abc,,,,\n1,5,step,fc2,dense,1,,,,\n", "line 2 is not a gradients row"),
        (",".join(GRADIENT_COLUMNS) + "\n1,5,sometimes,fc1,dense,1,,,,\n", "line 2 is not a gradients row"),
    ],
)
def test_malformed_files_are_one_clear_error(tmp_path, content, message):
    path = tmp_path / "gradients.csv"
    path.write_text(content)
    with pytest.raises(CnnError, match=message):
        read_gradients(path)


def test_empty_files(tmp_path):
    assert read_gradients(_write(tmp_path, "")) == []
    assert read_gradients(_write(tmp_path, ",".join(GRADIENT_COLUMNS) + "\n")) == []
    with pytest.raises(CnnError, match="cannot read gradients file"):
        read_gradients(tmp_path / "missing.csv")


def _write(folder, text):
    path = folder / "gradients.csv"
    path.write_text(text)
    return path


def test_gradient_flow_png(tmp_path, smoke_rows):
    path = plot_gradient_flow(read_gradients(write_gradients_csv(tmp_path / "g.csv", smoke_rows.rows)), tmp_path / "flow.png", "smoke")
    assert_picture(path, figure_pixels("gradient_flow"))
    # Only epoch rows (no step logging), and no rows at all, still draw.
    epoch_rows = [r for r in read_gradients(tmp_path / "g.csv") if r["event"] == "epoch"]
    assert_picture(plot_gradient_flow(epoch_rows, tmp_path / "epochs.png"), figure_pixels("gradient_flow"))
    blank = plot_gradient_flow([], tmp_path / "empty.png")
    assert blank.is_file()
