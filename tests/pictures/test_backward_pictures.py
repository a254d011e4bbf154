"""`cnn viz --backward` and `cnn plot`'s gradient_flow.png on real short MNIST runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from cnn_cli.cli.group import CnnGroup
from cnn_cli.cli.pictures import plot_command, viz_command
from cnn_cli.config.build import config_from_dict
from cnn_cli.config.load import load_config
from cnn_cli.pictures.common import COL2IM_OVERLAP_FILE, GRADIENT_FLOW_FILE, SALIENCY_FILE, figure_pixels
from cnn_cli.training.train import train
from tests.support import REPO_ROOT
from tests.support.gradients import assert_picture, short_run, write_gradients_csv
from tests.support.pictures import captured_figures, cut_texts, title_text

POOL_LAYERS = [
    {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "stride": 2, "padding": 1},  # 4x14x14
    {"type": "relu"},
    {"type": "maxpool2d", "kernel_size": 2},  # 4x7x7
    {"type": "conv2d", "out_channels": 8, "kernel_size": 3},  # 8x5x5
    {"type": "relu"},
    {"type": "flatten"},
    {"type": "dense", "out_features": 16},
    {"type": "relu"},
    {"type": "dense", "out_features": 10},
]
POOL_BACKWARD = {
    "backward_01_conv1.png": "backward_maps",
    "backward_02_relu1.png": "backward_maps",
    "backward_03_maxpool2d1.png": "backward_maps",
    "backward_04_conv2.png": "backward_maps",
    "backward_05_relu2.png": "backward_maps",
    "backward_06_flatten1.png": "backward_vector",
    "backward_07_fc1.png": "backward_vector",
    "backward_08_relu3.png": "backward_vector",
    "backward_09_fc2.png": "backward_vector",
    "relu_mask_relu1.png": "relu_mask",
    "maxpool_winners_maxpool2d1.png": "maxpool_winners",
    "relu_mask_relu2.png": "relu_mask",
    "relu_mask_relu3.png": "relu_mask_vector",
    COL2IM_OVERLAP_FILE: "col2im_overlap_2",
}


def quiet(_line: str) -> None:
    pass


@pytest.fixture(autouse=True)
def from_repo_root(monkeypatch) -> None:
    monkeypatch.chdir(REPO_ROOT)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, mnist_data_dir) -> dict:
    """A finished one-epoch run of a small net with a max-pool on real MNIST (1,000 training images)."""
    root = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(REPO_ROOT)
        pool_config = load_config("smoke").as_dict()
        pool_config["model"]["layers"] = POOL_LAYERS
        pool_config["data"]["limit"] = 1000
        pool = train(config_from_dict(pool_config), run_dir=root / "pool", log=quiet)
    assert pool.status == "completed"
    return {"pool": pool.run.root, "pool_config": config_from_dict(pool_config)}


def cli_group() -> click.Group:
    @click.group(cls=CnnGroup)
    def group() -> None:
        """cnn, with only the picture commands."""

    group.add_command(plot_command)
    group.add_command(viz_command)
    return group


@pytest.mark.slow
def test_viz_backward_draws_every_layer_of_a_net_with_a_max_pool(runs, tmp_path):
    result = CliRunner().invoke(cli_group(), ["viz", str(runs["pool"] / "checkpoints" / "best.npz"), "test:3", "--backward"])
    assert result.exit_code == 0, result.output
    out = runs["pool"] / "plots" / "viz" / "test-3"
    printed = [Path(line) for line in result.output.splitlines()]
    assert printed[: printed.index(out / SALIENCY_FILE) + 1] == [
        out / "feature_maps_conv1.png",
        out / "feature_maps_conv2.png",
        out / SALIENCY_FILE,
    ]
    assert [p.name for p in printed[3:]] == list(POOL_BACKWARD)
    for name, kind in POOL_BACKWARD.items():
        assert_picture(out / name, figure_pixels(kind))


def test_viz_help_names_the_backward_flag():
    result = CliRunner().invoke(cli_group(), ["viz", "--help"])
    assert result.exit_code == 0
    assert "--backward" in result.output and "test:0 --backward" in result.output


@pytest.mark.slow
def test_plot_draws_gradient_flow_when_the_run_has_gradients_csv(runs, monkeypatch):
    run = runs["pool"]  # tests/pictures/test_plots.py checks that a run without gradients.csv gets no gradient_flow.png
    logged = short_run(runs["pool_config"], steps=10, limit=1000, log_every=2)
    write_gradients_csv(run / "gradients.csv", logged.rows)
    with captured_figures(monkeypatch) as figures:
        result = CliRunner().invoke(cli_group(), ["plot", str(run)])
    assert result.exit_code == 0, result.output
    assert Path(result.output.splitlines()[-1]) == run / "plots" / GRADIENT_FLOW_FILE
    title = title_text(figures[-1])  # drawn from gradients.csv: the title names it, not the checkpoint
    assert title.startswith("Gradient flow (from gradients.csv): run pool (completed)") and ".npz" not in title
    assert_picture(run / "plots" / GRADIENT_FLOW_FILE, figure_pixels("gradient_flow"))


@pytest.mark.slow
def test_plot_with_a_broken_gradients_csv_is_one_error_line(runs, tmp_path):
    run = Path(shutil.copytree(runs["pool"], tmp_path / "run"))
    (run / "gradients.csv").write_text("not,a,gradients,file\n1,2\n")
    result = CliRunner().invoke(cli_group(), ["plot", str(run)])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and result.output.startswith("error: ") and "gradients.csv" in result.output


def test_backward_pictures_of_a_binary_model_without_training(tmp_path):
    """A binary cross-entropy model (one logit, notes 004's net on 6x6) through every drawing path, no checkpoint needed."""
    from cnn_cli.model.network import build_model
    from cnn_cli.pictures.backward import plot_backward_pass

    model = build_model(
        {
            "input_shape": [1, 6, 6],
            "loss": "binary_cross_entropy",
            "layers": [
                {"type": "conv2d", "out_channels": 2, "kernel_size": 3},
                {"type": "relu"},
                {"type": "maxpool2d", "kernel_size": 2},
                {"type": "flatten"},
                {"type": "dense", "out_features": 1},
            ],
        },
        seed=2,
    )
    x = np.random.default_rng(0).normal(size=(1, 1, 6, 6)).astype(np.float32)
    written = plot_backward_pass(model, x, np.zeros((6, 6)), ["3", "8"], "a random 6x6 input", "header", tmp_path)
    kinds = {
        "backward_01_conv1.png": "backward_maps",
        "backward_02_relu1.png": "backward_maps",
        "backward_03_maxpool2d1.png": "backward_maps",
        "backward_04_flatten1.png": "backward_vector",
        "backward_05_fc1.png": "backward_vector",
        "relu_mask_relu1.png": "relu_mask",
        "maxpool_winners_maxpool2d1.png": "maxpool_winners",
        COL2IM_OVERLAP_FILE: "col2im_overlap_1",
    }
    assert [p.name for p in written] == list(kinds)
    for name, kind in kinds.items():
        assert_picture(tmp_path / name, figure_pixels(kind))


STRIDE_ONE_LAYERS = [  # LeNet-like: no conv with a stride, so col2im reads every interior pixel equally often
    {"type": "conv2d", "out_channels": 16, "kernel_size": 5, "padding": 2},
    {"type": "relu"},
    {"type": "maxpool2d", "kernel_size": 2},
    {"type": "conv2d", "out_channels": 4, "kernel_size": 5},
    {"type": "relu"},
    {"type": "flatten"},
    {"type": "dense", "out_features": 10},
]
STRIDE_TWO_LAYERS = [
    {"type": "conv2d", "out_channels": 16, "kernel_size": 3, "padding": 1},
    {"type": "relu"},
    {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "stride": 2, "padding": 1},
    {"type": "relu"},
    {"type": "flatten"},
    {"type": "dense", "out_features": 10},
]


@pytest.mark.parametrize(("layers", "checkerboard"), [(STRIDE_ONE_LAYERS, False), (STRIDE_TWO_LAYERS, True)])
def test_backward_pictures_fit_their_words_and_col2im_says_what_the_net_has(tmp_path, monkeypatch, layers, checkerboard):
    from cnn_cli.model.network import build_model
    from cnn_cli.pictures.backward import plot_backward_pass

    model = build_model({"input_shape": [1, 28, 28], "layers": layers}, seed=0)
    x = np.random.default_rng(0).normal(size=(1, 1, 28, 28)).astype(np.float32)
    caption = "test image #12345 of the test split, as the network sees it"
    with captured_figures(monkeypatch) as figures:
        written = plot_backward_pass(model, x, np.zeros((28, 28)), [str(c) for c in range(10)], caption, "header", tmp_path)
    for path, fig in zip(written, figures, strict=True):
        assert cut_texts(fig) == [], f"{path.name}: words cut at the edges"
        renderer = fig.canvas.get_renderer()
        title_bottom = fig._suptitle.get_window_extent(renderer).y0
        panel_tops = [ax.get_tightbbox(renderer).y1 for ax in fig.axes if ax.get_visible()]
        assert title_bottom >= max(panel_tops) - 1, f"{path.name}: the title runs into the panels"
    claim = title_text(figures[-1])
    assert written[-1].name == COL2IM_OVERLAP_FILE
    if checkerboard:
        assert "conv2 reads pixels with 1, 2, 4 windows: expect a regular grid" in claim
    else:
        assert "checkerboard" in claim and "draws no checkerboard" in claim and "expect" not in claim
        assert "(conv1: 25, conv2: 25 windows)" in claim
