"""gradients.csv: reading it (a half-written last line included) and drawing gradient_flow.png (what its words claim included)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cnn_cli.errors import CnnError
from cnn_cli.pictures.common import figure_pixels
from cnn_cli.pictures.gradient_flow import LrChange, ema, lr_changes, plot_gradient_flow
from cnn_cli.runs.gradients import GRADIENT_COLUMNS, layer_order, read_gradients
from tests.support import REPO_ROOT
from tests.support.gradients import assert_picture, short_run, write_gradients_csv
from tests.support.pictures import captured_figures, cut_texts, title_text


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


def synthetic_rows(first_norm: float, last_norm: float, steps: int = 20) -> list[dict]:
    """conv1 → relu1 → fc1 logged every 10 steps, with ‖dL/dW‖ of conv1 and fc1 near the given values (and some noise)."""
    noise = np.random.default_rng(0).uniform(0.8, 1.2, size=(steps, 2))
    rows = []
    for index in range(steps):
        step = 10 * (index + 1)
        for layer, kind, norm, ratio in (
            ("conv1", "conv2d", first_norm, 1e-3),
            ("relu1", "relu", math.nan, math.nan),
            ("fc1", "dense", last_norm, 2e-3),
        ):
            weighted = kind != "relu"
            rows.append(
                {
                    "epoch": 1 + step // 100,
                    "step": step,
                    "event": "step",
                    "layer": layer,
                    "type": kind,
                    "weight_grad_norm": norm * noise[index, int(layer == "fc1")] if weighted and index < steps - 1 else norm,
                    "bias_grad_norm": 0.1 if weighted else math.nan,
                    "input_grad_norm": 0.05,
                    "update_ratio": ratio if weighted else math.nan,
                    "dead_fraction": math.nan if weighted else 0.25,
                }
            )
    return rows


METRIC_ROWS = [
    {"epoch": 1, "step": 100, "lr": 1e-3},
    {"epoch": 2, "step": 200, "lr": 5e-4},  # a step schedule: halved after epoch 1, then kept
]


@pytest.mark.parametrize(("first", "last", "ratio", "side"), [(0.25, 1.0, "0.25×", "smaller"), (2.0, 0.5, "4×", "larger")])
def test_the_caption_states_what_the_data_shows(tmp_path, monkeypatch, first, last, ratio, side):
    with captured_figures(monkeypatch) as figures:
        plot_gradient_flow(synthetic_rows(first, last), tmp_path / "flow.png", "run r (completed)", METRIC_ROWS)
    (fig,) = figures
    title = title_text(fig)
    assert title.startswith("Gradient flow (from gradients.csv): run r (completed)") and "best.npz" not in title
    assert f"conv1 is {ratio} that of the output-side layer fc1" in title
    time_ax, profile_ax, signal_ax, update_ax = fig.axes
    caption = profile_ax.get_xlabel()
    assert f"conv1 gets {ratio} the ‖dL/dW‖ of fc1: {side} on the input side" in caption
    assert ({"smaller", "larger"} - {side}).pop() not in caption
    assert cut_texts(fig) == [], "every title, caption and label fits inside the picture"


def test_lines_over_time_are_smoothed_and_lr_changes_are_marked(tmp_path, monkeypatch):
    with captured_figures(monkeypatch) as figures:
        plot_gradient_flow(synthetic_rows(0.25, 1.0), tmp_path / "flow.png", "r", METRIC_ROWS)
    time_ax, _, _, update_ax = figures[0].axes
    for ax in (time_ax, update_ax):
        by_label = {line.get_label(): line for line in ax.get_lines()}
        assert by_label["conv1"].get_linewidth() > 1.5 and "fc1" in by_label
        raw = [line for line in ax.get_lines() if (line.get_alpha() or 1) < 0.5]
        assert len(raw) == 2, "one faint raw line per weighted layer"
        np.testing.assert_allclose(by_label["conv1"].get_ydata(), ema(raw[0].get_ydata()))
        marks = [line for line in ax.get_lines() if line.get_label() == "lr changed"]
        assert len(marks) == 1 and marks[0].get_xdata()[0] == 100.5  # between the last step of epoch 1 and the first of epoch 2
        assert "lr 0.0005" in [text.get_text() for text in ax.texts]


def test_ema_is_bias_corrected_and_skips_missing_values():
    np.testing.assert_allclose(ema(np.array([2.0, 2.0, 2.0])), [2.0, 2.0, 2.0])  # no pull toward 0 at the start
    smoothed = ema(np.array([math.nan, 1.0, math.nan, 3.0]), beta=0.5)
    assert math.isnan(smoothed[0]) and smoothed[1] == 1.0 and smoothed[2] == 1.0
    assert smoothed[3] == pytest.approx((0.5 * 0.5 * 1.0 + 0.5 * 3.0) / (1 - 0.25))


def test_lr_changes_from_metrics_rows():
    assert lr_changes(METRIC_ROWS + [{"epoch": 3, "step": 300, "lr": 5e-4}]) == [LrChange(100.5, 1e-3, 5e-4)]
    assert lr_changes([]) == [] and lr_changes(METRIC_ROWS[:1]) == []


def test_a_few_logged_steps_are_drawn_as_they_are(tmp_path, monkeypatch):
    """An average over 5 points lags behind them: below 10 logged steps the lines are the values themselves."""
    rows = synthetic_rows(0.25, 1.0, steps=5)
    with captured_figures(monkeypatch) as figures:
        plot_gradient_flow(rows, tmp_path / "flow.png", "r")
    time_ax = figures[0].axes[0]
    assert [line.get_label() for line in time_ax.get_lines()] == ["conv1", "fc1"], "no faint raw copies"
    conv1 = [r["weight_grad_norm"] for r in rows if r["layer"] == "conv1"]
    np.testing.assert_allclose(time_ax.get_lines()[0].get_ydata(), conv1)
    assert "too few to smooth" in time_ax.get_xlabel()
