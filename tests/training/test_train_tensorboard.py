"""cnn train --tensorboard: the event files, read back with TensorBoard's own EventAccumulator, hold what the run recorded."""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorboardX")
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

from cnn_cli.config.build import config_from_dict  # noqa: E402
from cnn_cli.runs.folders import read_metrics  # noqa: E402
from cnn_cli.training.train import train  # noqa: E402
from tests.support.cli import EXIT_BAD_INPUT, error_line, invoke_cli, write_config  # noqa: E402
from tests.support.synthetic import make_idx_dataset, tiny_config  # noqa: E402

EPOCH_COLUMNS = ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "images_per_s")
STEPS_PER_EPOCH = 16  # 500 training images in batches of 32


def quiet(_line: str) -> None:
    pass


def f32(value: float) -> float:
    """What a TensorBoard scalar (a float32) holds of ``value``."""
    return float(np.float32(value))


def events(run: Path):
    accumulator = event_accumulator.EventAccumulator(
        str(run / "tensorboard"), size_guidance={"scalars": 0, "histograms": 0, "images": 0, "tensors": 0}
    )
    accumulator.Reload()
    return accumulator


@pytest.fixture(scope="module")
def config_dict(tmp_path_factory) -> dict:
    base = tiny_config(make_idx_dataset(tmp_path_factory.mktemp("tb")), epochs=2, log_every=5, tensorboard=True, save_every_epoch=True)
    base["optimizer"]["weight_decay"] = 1e-3
    return base


@pytest.fixture(scope="module")
def finished(config_dict, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "run"
    result = train(config_from_dict(config_dict), run_dir=run, log=quiet)
    assert result.status == "completed"
    return run


def scalar_series(accumulator, tag: str) -> list[tuple[int, float]]:
    return [(event.step, event.value) for event in accumulator.Scalars(tag)]


def test_epoch_scalars_equal_metrics_csv(finished):
    accumulator = events(finished)
    rows = read_metrics(finished / "metrics.csv")
    assert len(rows) == 2
    for column in EPOCH_COLUMNS:
        expected = [(row["step"], f32(row[column])) for row in rows]
        assert scalar_series(accumulator, f"epoch/{column}") == expected, column
    assert scalar_series(accumulator, "epoch/epoch") == [(row["step"], float(row["epoch"])) for row in rows]


def test_every_step_is_logged_once_with_its_loss_accuracy_and_lr(finished):
    accumulator = events(finished)
    steps = list(range(1, 2 * STEPS_PER_EPOCH + 1))
    for tag in ("step/loss", "step/accuracy", "step/lr"):
        assert [step for step, _ in scalar_series(accumulator, tag)] == steps, tag
    accuracy = [value for _, value in scalar_series(accumulator, "step/accuracy")]
    assert all(0.0 <= value <= 1.0 for value in accuracy)
    lr = dict(scalar_series(accumulator, "step/lr"))
    assert lr[1] == f32(0.01) and lr[STEPS_PER_EPOCH + 1] == f32(0.005)  # the step schedule halves it each epoch
    losses = [value for _, value in scalar_series(accumulator, "step/loss")]
    train_loss = read_metrics(finished / "metrics.csv")[0]["train_loss"]
    assert np.mean(losses[:STEPS_PER_EPOCH]) == pytest.approx(train_loss, rel=0.05)  # unequal last batch: a weighted mean


def test_gradient_norms_equal_gradients_csv(finished):
    accumulator = events(finished)
    with (finished / "gradients.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    expected: dict[str, dict[int, float]] = {}
    for row in rows:
        for column in ("weight_grad_norm", "bias_grad_norm", "input_grad_norm", "update_ratio", "dead_fraction"):
            if row[column] != "":
                expected.setdefault(f"gradient_norms/{row['layer']}/{column}", {})[int(row["step"])] = f32(float(row[column]))
    assert "gradient_norms/conv1/weight_grad_norm" in expected and "gradient_norms/relu1/dead_fraction" in expected
    for tag, values in expected.items():
        assert dict(scalar_series(accumulator, tag)) == values, tag
        assert len(accumulator.Scalars(tag)) == len(values), f"{tag}: a step logged twice"


def test_histograms_of_every_weight_and_gradient_at_each_epoch_end(finished):
    accumulator = events(finished)
    names = ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "fc1.weight", "fc1.bias"]
    tags = accumulator.Tags()["histograms"]
    from cnn_cli.runs.checkpoint import load_checkpoint

    ckpt, _ = load_checkpoint(finished / "checkpoints" / "last.npz")
    for name in names:
        for kind in ("weights", "gradients"):
            assert f"{kind}/{name}" in tags
            assert [event.step for event in accumulator.Histograms(f"{kind}/{name}")] == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]
        last = accumulator.Histograms(f"weights/{name}")[-1].histogram_value
        weights = ckpt.params[name]
        assert last.num == weights.size
        assert last.min == pytest.approx(float(weights.min())) and last.max == pytest.approx(float(weights.max()))


def test_images_filters_and_misclassified(finished):
    accumulator = events(finished)
    images = accumulator.Tags()["images"]
    assert {"filters/conv1", "plots/filters", "plots/misclassified"} <= set(images)
    filters = accumulator.Images("filters/conv1")
    assert [image.step for image in filters] == [0, STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]
    assert filters[0].width > 0 and filters[0].height > 0 and filters[0].encoded_image_string[:4] == b"\x89PNG"
    misclassified = accumulator.Images("plots/misclassified")[-1]
    assert misclassified.width == 1200 and misclassified.height == 1000  # cnn plot's figure size


def test_hparams_hold_the_config_and_final_metrics(finished):
    from tensorboard.plugins.hparams import plugin_data_pb2

    accumulator = events(finished)
    content = accumulator.PluginTagToContent("hparams")
    assert {"_hparams_/experiment", "_hparams_/session_start_info", "_hparams_/session_end_info"} <= set(content)
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["optimizer.lr"].number_value == 0.01
    assert start.hparams["optimizer.name"].string_value == "adam"
    assert start.hparams["train.batch_size"].number_value == 32
    summary = json.loads((finished / "summary.json").read_text())
    assert scalar_series(accumulator, "hparams/test_accuracy") == [(2 * STEPS_PER_EPOCH, f32(summary["test_accuracy"]))]
    assert scalar_series(accumulator, "hparams/best_val_accuracy") == [(2 * STEPS_PER_EPOCH, f32(summary["best_val_accuracy"]))]


def _unique_steps(accumulator, tag: str) -> list[int]:
    steps = [event.step for event in accumulator.Scalars(tag)]
    assert len(steps) == len(set(steps)), f"{tag}: duplicated steps {steps}"
    return steps


def test_resume_after_an_interrupt_appends_without_duplicates(config_dict, finished, tmp_path):
    run = tmp_path / "run"
    first = train(config_from_dict(config_dict), run_dir=run, log=quiet, stop_after_steps=STEPS_PER_EPOCH + 4)
    assert first.status == "interrupted"
    assert train(None, resume=run, log=quiet).status == "completed"
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 2
    resumed, whole = events(run), events(finished)
    for tag in ("step/loss", "step/lr", "epoch/train_loss", "epoch/val_acc", "gradient_norms/conv2/weight_grad_norm"):
        assert _unique_steps(resumed, tag) == [event.step for event in whole.Scalars(tag)], tag
        assert scalar_series(resumed, tag) == scalar_series(whole, tag), tag  # resuming trains bit-identically
    assert [event.step for event in resumed.Histograms("weights/conv1.weight")] == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]


def test_resume_after_a_crash_drops_the_steps_logged_after_the_checkpoint(config_dict, finished, tmp_path):
    """A crash after epoch 1's checkpoint leaves epoch 2 in the event file; the resumed process purges and relogs it."""
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    (run / "checkpoints" / "epoch-001.npz").replace(run / "checkpoints" / "last.npz")  # as if killed during epoch 2
    assert train(None, resume=run, log=quiet).status == "completed"
    resumed, whole = events(run), events(finished)
    for tag in ("step/loss", "epoch/train_loss", "epoch/val_loss", "hparams/test_accuracy"):
        assert _unique_steps(resumed, tag) == [event.step for event in whole.Scalars(tag)], tag
        assert scalar_series(resumed, tag) == scalar_series(whole, tag), tag
    assert [event.step for event in resumed.Histograms("gradients/fc1.weight")] == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]


def test_without_tensorboardx_one_line_exit_2_and_nothing_created(config_dict, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # import tensorboardX now raises ImportError
    monkeypatch.chdir(tmp_path)
    plain = {**config_dict, "train": {**config_dict["train"], "tensorboard": False}}
    path = write_config(tmp_path / "tiny.yaml", plain)
    outcome = invoke_cli(["train", "--config", path, "--tensorboard"])
    error_line(outcome, EXIT_BAD_INPUT, 'pip install ".[tensorboard]"')
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yaml"]  # no run folder, no runs/


def test_help_names_the_option():
    outcome = invoke_cli(["train", "--help"])
    assert outcome.code == 0
    assert "--tensorboard" in outcome.stdout and "tensorboard --logdir runs" in outcome.stdout
