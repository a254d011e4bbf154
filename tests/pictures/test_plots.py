"""Pictures: `cnn plot` and `cnn viz` on real short MNIST runs, and the saliency gradient checked numerically."""

from __future__ import annotations

import math
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cnn_cli.cli.group import CnnGroup
from cnn_cli.cli.pictures import plot_command, viz_command
from cnn_cli.config.build import config_from_dict
from cnn_cli.config.load import load_config
from cnn_cli.errors import CheckpointError, CnnError, ImageError
from cnn_cli.learn.visualize import confident_mistakes, feature_maps, saliency
from cnn_cli.model.network import build_model
from cnn_cli.pictures.common import (
    CONFUSION_MATRIX_FILE,
    FILTERS_FILE,
    GRADIENT_FLOW_FILE,
    LEARNING_CURVES_FILE,
    MISCLASSIFIED_FILE,
    SALIENCY_FILE,
    figure_pixels,
)
from cnn_cli.pictures.curves import plot_learning_curves
from cnn_cli.pictures.filters import plot_feature_vector
from cnn_cli.pictures.run import plot_run
from cnn_cli.pictures.viz import default_viz_dir, visualize_image
from cnn_cli.runs.folders import read_metrics
from cnn_cli.training.train import train
from tests.support import REPO_ROOT
from tests.support.cli import invoke_cli
from tests.support.synthetic import make_idx_dataset, tiny_config

RUN_PICTURES = {
    LEARNING_CURVES_FILE: "learning_curves",
    CONFUSION_MATRIX_FILE: "confusion_matrix",
    MISCLASSIFIED_FILE: "misclassified",
    FILTERS_FILE: "filters",
}
# The smoke config's two conv layers have 8×14×14 and 16×7×7 outputs: both drawn as grids.
SMOKE_VIZ = {"feature_maps_conv1.png": "feature_maps", "feature_maps_conv2.png": "feature_maps", SALIENCY_FILE: "saliency"}


def quiet(_line: str) -> None:
    pass


def assert_png(path: Path, kind: str) -> None:
    """A readable PNG of the fixed pixel size for its kind."""
    assert path.is_file(), path
    with Image.open(path) as image:
        image.load()
        assert image.format == "PNG"
        assert image.size == figure_pixels(kind), (path.name, image.size)


@pytest.fixture(autouse=True)
def from_repo_root(monkeypatch) -> None:
    """Configs name data_dir "data", relative to the working folder: run where the MNIST cache is."""
    monkeypatch.chdir(REPO_ROOT)


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory, mnist_data_dir) -> dict[str, Path]:
    """Two real smoke runs on MNIST: one finished single-epoch run, one interrupted after 5 steps."""
    root = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(REPO_ROOT)
        config = load_config("smoke")
        single = train(config, run_dir=root / "single", log=quiet)
        interrupted = train(config, run_dir=root / "interrupted", log=quiet, stop_after_steps=5)
    assert single.status == "completed" and interrupted.status == "interrupted"
    return {"single": single.run.root, "interrupted": interrupted.run.root}


def cli_group() -> click.Group:
    """The two commands under the main CLI's error handling (CnnError -> `error: ...`, exit 2)."""

    @click.group(cls=CnnGroup)
    def group() -> None:
        """cnn, with only the picture commands."""

    group.add_command(plot_command)
    group.add_command(viz_command)
    return group


# ---------------------------------------------------------------- cnn plot


@pytest.mark.slow
def test_plot_command_on_a_single_epoch_run(smoke_runs):
    run = smoke_runs["single"]
    assert len(read_metrics(run / "metrics.csv")) == 1
    result = CliRunner().invoke(cli_group(), ["plot", str(run)])
    assert result.exit_code == 0, result.output
    printed = [Path(line) for line in result.output.splitlines()]
    assert (run / "gradients.csv").is_file(), "train.log_gradients is on by default: every epoch end logs a row per layer"
    assert [p.name for p in printed] == [*RUN_PICTURES, GRADIENT_FLOW_FILE]
    for name, kind in RUN_PICTURES.items():
        assert_png(run / "plots" / name, kind)


@pytest.mark.slow
def test_plot_run_on_an_interrupted_run(smoke_runs):
    run = smoke_runs["interrupted"]
    assert read_metrics(run / "metrics.csv") == []  # stopped inside epoch 1: no finished epoch
    assert not (run / "checkpoints" / "best.npz").exists()
    written = plot_run(run)
    logged = [GRADIENT_FLOW_FILE] if (run / "gradients.csv").is_file() else []  # no epoch end, no log_every step yet: no file
    assert written == [run / "plots" / name for name in [*RUN_PICTURES, *logged]]
    for name, kind in RUN_PICTURES.items():
        assert_png(run / "plots" / name, kind)


def test_learning_curves_without_validation_split(tmp_path):
    rows = [{"epoch": e, "train_loss": 1.0 / e, "train_acc": 0.5 + e / 10, "val_loss": math.nan, "val_acc": math.nan} for e in (1, 2, 3)]
    assert_png(plot_learning_curves(rows, 3, tmp_path / "curves.png"), "learning_curves")


# ---------------------------------------------------------------- cnn viz


@pytest.mark.slow
def test_viz_command_on_a_test_image_writes_into_the_run(smoke_runs):
    run = smoke_runs["single"]
    result = CliRunner().invoke(cli_group(), ["viz", str(run / "checkpoints" / "best.npz"), "test:7"])
    assert result.exit_code == 0, result.output
    out = run / "plots" / "viz" / "test-7"
    assert [Path(line) for line in result.output.splitlines()] == [out / name for name in SMOKE_VIZ]
    for name, kind in SMOKE_VIZ.items():
        assert_png(out / name, kind)


@pytest.mark.slow
def test_visualize_image_on_a_png_with_an_interrupted_checkpoint(smoke_runs, tmp_path):
    drawing = np.full((60, 40), 255, np.uint8)
    drawing[8:52, 17:24] = 0  # a dark "1" on white, as a user would draw it
    png = tmp_path / "one.png"
    Image.fromarray(drawing).save(png)
    written = visualize_image(smoke_runs["interrupted"] / "checkpoints" / "last.npz", str(png), tmp_path / "viz")
    assert written == [tmp_path / "viz" / name for name in SMOKE_VIZ]
    for name, kind in SMOKE_VIZ.items():
        assert_png(tmp_path / "viz" / name, kind)


def test_one_by_one_maps_are_drawn_as_bars(tmp_path):
    model = build_model(
        {
            "input_shape": [1, 6, 6],
            "layers": [
                {"type": "conv2d", "out_channels": 3, "kernel_size": 3},
                {"type": "flatten"},
                {"type": "conv2d", "out_channels": 4, "kernel_size": 1},
            ],
        },
        seed=0,
    )
    maps = feature_maps(model, np.random.default_rng(0).normal(size=(1, 1, 6, 6)))
    assert [(name, m.shape) for name, m in maps] == [("conv1", (3, 4, 4)), ("conv2", (4, 1, 1))]
    path = plot_feature_vector("conv2", maps[1][1][:, 0, 0], tmp_path / "bars.png", "x", ["a", "b", "c", "d"])
    assert_png(path, "feature_vector")


def residual_net(*head: dict) -> list[dict]:
    """A conv, then a residual block (conv with stride 2, ReLU, conv; a projected skip), then ``head``."""
    block = {
        "type": "residual",
        "projection": True,
        "layers": [
            {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1, "stride": 2},
            {"type": "relu"},
            {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
        ],
    }
    return [{"type": "conv2d", "out_channels": 2, "kernel_size": 3, "padding": 1}, block, *head]


def test_feature_maps_include_the_convolutions_inside_residual_blocks():
    """A block's inner convs and its projection are in the list, in order, each the output it really gave:
    with no activation after the block's last conv, the block's output is that conv's map plus the projection's."""
    layers = residual_net({"type": "flatten"}, {"type": "dense", "out_features": 10})
    model = build_model({"input_shape": [1, 8, 8], "layers": layers}, seed=0)
    x = np.random.default_rng(0).normal(size=(1, 1, 8, 8))
    maps = dict(feature_maps(model, x))
    assert list(maps) == ["conv1", "res1.conv1", "res1.conv2", "res1.proj"]
    assert [m.shape for m in maps.values()] == [(2, 8, 8), (4, 4, 4), (4, 4, 4), (4, 4, 4)]
    trace = model.trace(x.astype(model.dtype), training=False)
    np.testing.assert_array_equal(maps["conv1"], trace[0].output[0])
    np.testing.assert_allclose(maps["res1.conv2"] + maps["res1.proj"], trace[1].output[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(maps["res1.conv1"], model.layers[1].inner[0].forward(trace[1].input)[0], rtol=0, atol=0)


def test_viz_draws_the_maps_of_the_convolutions_inside_a_block(tmp_path):
    """`cnn viz --backward` on a trained net with a residual block: a picture for every convolution, inside the block too."""
    config = tiny_config(make_idx_dataset(tmp_path / "data"), epochs=1)
    config["model"]["layers"] = residual_net({"type": "relu"}, {"type": "global_avg_pool"}, {"type": "dense", "out_features": 10})
    run = train(config_from_dict(config), run_dir=tmp_path / "run", log=lambda _: None).run.root
    out = tmp_path / "viz"
    outcome = invoke_cli(["viz", run / "checkpoints" / "best.npz", "test:0", "--backward", "--out", out], timeout=120)
    assert outcome.code == 0, outcome.output
    for layer in ("conv1", "res1.conv1", "res1.conv2", "res1.proj"):
        assert (out / f"feature_maps_{layer}.png").stat().st_size > 0, sorted(p.name for p in out.iterdir())


def test_default_viz_dir(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("name: x\n")
    assert default_viz_dir(run / "checkpoints" / "best.npz", "test:12") == run / "plots" / "viz" / "test-12"
    assert default_viz_dir(tmp_path / "elsewhere.npz", "digits/my seven.png") == Path("viz") / "my_seven"


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "run folder not found"),
        ("empty", "not a run folder (no config.yaml)"),
        ("no_checkpoint", "no checkpoint (best.npz or last.npz)"),
    ],
)
def test_plot_errors_are_one_clear_line(tmp_path, setup, message):
    run = tmp_path / "run"
    if setup != "missing":
        run.mkdir()
    if setup == "no_checkpoint":
        (run / "config.yaml").write_text("name: x\n")
    with pytest.raises(CnnError, match=message.replace("(", r"\(").replace(")", r"\)")):
        plot_run(run)
    result = CliRunner().invoke(cli_group(), ["plot", str(run)])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and result.output.startswith("error: ") and message in result.output


def test_viz_with_a_missing_checkpoint(tmp_path):
    missing = tmp_path / "nope.npz"
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        visualize_image(missing, "test:0", tmp_path / "out")
    result = CliRunner().invoke(cli_group(), ["viz", str(missing), "test:0"])
    assert result.exit_code == 2
    assert result.output == f"error: {missing}: checkpoint not found\n"
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("image", "message"),
    [
        ("test:10000", "test:10000: expected test:INDEX with INDEX in 0..9999"),
        ("test:-1", "test:-1: expected test:INDEX"),
        ("test:seven", "test:seven: expected test:INDEX"),
        ("no-such.png", "no-such.png: image not found"),
    ],
)
def test_viz_with_a_bad_image(smoke_runs, tmp_path, image, message):
    checkpoint = smoke_runs["single"] / "checkpoints" / "last.npz"
    with pytest.raises(ImageError) as caught:
        visualize_image(checkpoint, image, tmp_path / "out")
    assert message in str(caught.value) and "\n" not in str(caught.value)


# ---------------------------------------------------------------- saliency = numeric gradient


def small_model(loss: str, outputs: int):
    """A float64 model with conv, tanh, max-pool and dense: smooth almost everywhere, tie-free on random input."""
    return build_model(
        {
            "input_shape": [1, 8, 8],
            "loss": loss,
            "layers": [
                {"type": "conv2d", "out_channels": 3, "kernel_size": 3, "padding": 1},
                {"type": "tanh"},
                {"type": "maxpool2d", "kernel_size": 2},
                {"type": "conv2d", "out_channels": 4, "kernel_size": 3},
                {"type": "sigmoid"},
                {"type": "flatten"},
                {"type": "dense", "out_features": outputs},
            ],
        },
        seed=3,
        dtype="float64",
    )


def class_score(model, x: np.ndarray, class_index: int) -> float:
    """The score the saliency differentiates: the logit, or ±z for a single-logit binary model."""
    logits = model.forward(x).reshape(-1)
    if model.loss.name == "binary_cross_entropy":
        return float(logits[0] if class_index == 1 else -logits[0])
    return float(logits[class_index])


def numeric_gradient(model, x: np.ndarray, class_index: int, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the class score with respect to every input pixel, (H, W)."""
    grad = np.zeros(x.shape[2:])
    for index in np.ndindex(*x.shape[2:]):
        plus, minus = x.copy(), x.copy()
        plus[(0, 0, *index)] += eps
        minus[(0, 0, *index)] -= eps
        grad[index] = (class_score(model, plus, class_index) - class_score(model, minus, class_index)) / (2 * eps)
    return grad


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(a).max(), np.abs(b).max(), 1e-12))


@pytest.mark.parametrize(
    ("loss", "outputs", "class_index"),
    [
        ("softmax_cross_entropy", 5, None),
        ("softmax_cross_entropy", 5, 3),
        ("sum_squared_error", 5, 1),
        ("binary_cross_entropy", 1, 0),
        ("binary_cross_entropy", 1, 1),
    ],
)
def test_saliency_equals_the_numeric_gradient(loss, outputs, class_index):
    model = small_model(loss, outputs)
    x = np.random.default_rng(11).normal(size=(1, 1, 8, 8))
    before = {name: value.copy() for name, value in model.params.items()}
    gradient, chosen = saliency(model, x, class_index)
    if class_index is None:
        assert chosen == int(np.argmax(model.forward(x).reshape(-1)))
    else:
        assert chosen == class_index
    numeric = numeric_gradient(model, x, chosen)
    assert gradient.shape == (8, 8) and gradient.dtype == np.float64
    error = relative_error(gradient, numeric)
    assert error < 1e-6, f"relative error {error:.2e}"
    assert np.abs(gradient).max() > 1e-4  # a real signal, not zeros compared with zeros
    assert all(np.array_equal(before[name], value) for name, value in model.params.items())


def test_the_numeric_check_catches_a_wrong_class():
    """The check can fail: another class's gradient does not pass for this one's."""
    model = small_model("softmax_cross_entropy", 5)
    x = np.random.default_rng(11).normal(size=(1, 1, 8, 8))
    gradient, _ = saliency(model, x, 2)
    assert relative_error(gradient, numeric_gradient(model, x, 3)) > 1e-2


def test_saliency_rejects_a_batch_and_a_bad_class():
    model = small_model("softmax_cross_entropy", 5)
    with pytest.raises(ValueError, match="one input of shape"):
        saliency(model, np.zeros((2, 1, 8, 8)))
    with pytest.raises(ValueError, match="class_index must be in 0..4"):
        saliency(model, np.zeros((1, 1, 8, 8)), 5)


def test_confident_mistakes_are_the_surest_wrong_answers():
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.05, 0.95], [0.7, 0.3]])
    labels = np.array([0, 0, 0, 0, 1])
    predicted = probabilities.argmax(axis=1)
    assert confident_mistakes(probabilities, predicted, labels, 10).tolist() == [3, 1, 4, 2]
    assert confident_mistakes(probabilities, predicted, labels, 2).tolist() == [3, 1]


def test_filters_of_a_net_without_conv_layers_are_its_first_dense_layers_weights(tmp_path, monkeypatch):
    """deep-relu has no conv layer: filters.png draws each fc1 unit's 784 weights as a 28x28 image, not an empty page."""
    from cnn_cli.pictures.filters import plot_filters
    from tests.support.gradients import assert_picture
    from tests.support.pictures import captured_figures, cut_texts, title_text

    model = build_model(load_config("deep-relu").model, seed=0)
    with captured_figures(monkeypatch) as figures:
        path = plot_filters(model, tmp_path / FILTERS_FILE, "run r")
    assert_picture(path, figure_pixels("filters"))
    (fig,) = figures
    shown = [ax.get_images()[0].get_array() for ax in fig.axes if ax.get_images()]
    weight = model.params["fc1.weight"]
    assert len(shown) == 64 and all(image.shape == (28, 28) for image in shown)
    np.testing.assert_array_equal(shown[5], weight[5].reshape(28, 28))
    assert "First layer (fc1, dense) weights, 64×784" in title_text(fig) and cut_texts(fig) == []

    pooled = build_model(
        {"layers": [{"type": "avgpool2d", "kernel_size": 2}, {"type": "flatten"}, {"type": "dense", "out_features": 10}]}, seed=0
    )
    with captured_figures(monkeypatch) as figures:
        plot_filters(pooled, tmp_path / "pooled.png")
    (note,) = [text.get_text() for ax in figures[0].axes for text in ax.texts]
    assert "no conv2d layer" in note and "avgpool2d" in note
