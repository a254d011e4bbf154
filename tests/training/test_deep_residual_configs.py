"""deep-plain vs deep-residual: the same 20-conv net without and with skips, and only the residual one trains.

One short real run of each (real MNIST, 10,600 training images: 332 steps of 32, SGD with
momentum, the configs' own settings) through ``train()``, then ``cnn compare`` of the two:
the residual net ends far lower in loss and far higher in accuracy. The plain net is unstable at
these settings, so how badly it ends depends on rounding; the margins leave room for that.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from cnn_cli.config.build import config_from_dict
from cnn_cli.config.load import load_config
from cnn_cli.pictures.common import DPI
from cnn_cli.runs.folders import read_metrics
from cnn_cli.runs.gradients import read_gradients
from cnn_cli.training.train import train
from tests.support.cli import invoke_cli
from tests.support.gradients import assert_picture


def inner_layers_as_a_plain_stack(layers: list[dict]) -> list[dict]:
    """The residual config's layers with each block replaced by its inner layers (names and inits dropped)."""
    flat = []
    for layer in layers:
        for inner in layer["layers"] if layer["type"] == "residual" else [layer]:
            flat.append({key: value for key, value in inner.items() if key not in ("name", "init")})
    return flat


def test_the_two_configs_differ_only_in_the_skips_and_the_blocks_last_init():
    plain, residual = load_config("deep-plain").as_dict(), load_config("deep-residual").as_dict()
    assert inner_layers_as_a_plain_stack(residual["model"]["layers"]) == inner_layers_as_a_plain_stack(plain["model"]["layers"])
    assert sum(layer["type"] == "conv2d" for layer in plain["model"]["layers"]) == 20
    blocks = [layer for layer in residual["model"]["layers"] if layer["type"] == "residual"]
    assert len(blocks) == 9 and all(block["layers"][-1]["init"] == "small" and not block["projection"] for block in blocks)
    for config in (plain, residual):
        config.pop("name"), config.pop("description"), config.pop("model")
    assert plain == residual


def short_run(name: str, root: Path, data_dir: Path) -> Path:
    config = copy.deepcopy(load_config(name).as_dict())
    config["data"].update(data_dir=str(data_dir), limit=10600, val_size=1000)
    config["train"]["plots"] = False
    run = root / name
    assert train(config_from_dict(config), run_dir=run, log=lambda line: None).status == "completed"
    return run


def conv1_over_fc1(run: Path) -> float:
    """‖dL/dW‖ of the input-side conv1 over that of the output layer fc1, at the last logged moment."""
    rows = [row for row in read_gradients(run / "gradients.csv") if row["event"] == "epoch"]
    norms = {row["layer"]: row["weight_grad_norm"] for row in rows}
    return norms["conv1"] / norms["fc1"]


@pytest.mark.slow
def test_after_a_short_run_only_the_residual_net_has_learned_and_compare_draws_both(mnist_data_dir, tmp_path, capsys):
    plain, residual = (short_run(name, tmp_path, mnist_data_dir) for name in ("deep-plain", "deep-residual"))
    plain_end, residual_end = read_metrics(plain.joinpath("metrics.csv"))[-1], read_metrics(residual.joinpath("metrics.csv"))[-1]
    plain_ratio, residual_ratio = conv1_over_fc1(plain), conv1_over_fc1(residual)
    with capsys.disabled():
        print(
            f"\nafter 332 steps: deep-plain val_acc {plain_end['val_acc']:.3f} (loss {plain_end['train_loss']:.3f}), conv1/fc1 "
            f"‖dL/dW‖ {plain_ratio:.4f}; deep-residual val_acc {residual_end['val_acc']:.3f} (loss "
            f"{residual_end['train_loss']:.3f}), conv1/fc1 {residual_ratio:.4f}"
        )
    assert plain_end["train_loss"] > 2.0 and residual_end["train_loss"] < 1.0 and residual_end["val_acc"] > 0.8
    assert residual_end["val_acc"] > plain_end["val_acc"] + 0.2  # the plain net is chaotic: BLAS rounding (thread count) moves it
    # The conv1/fc1 ratio is printed, not asserted: where the unstable plain run ends (and so its ratio) moves with the
    # BLAS thread count's rounding (0.0033 with one OpenBLAS thread, 0.058 with two, against 0.086 and 0.068).
    outcome = invoke_cli(["compare", plain, residual, "--out", tmp_path / "compare.png"])
    assert outcome.code == 0, outcome.output
    assert_picture(tmp_path / "compare.png", (13 * DPI, 11 * DPI))
