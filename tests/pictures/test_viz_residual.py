"""`cnn viz` on a net with residual blocks: a picture for every convolution, inside the blocks too, and the backward pass."""

from __future__ import annotations

from cnn_cli.config.build import config_from_dict
from cnn_cli.training.train import train
from tests.support.cli import invoke_cli
from tests.support.synthetic import make_idx_dataset, tiny_config


def test_viz_draws_the_maps_of_the_convolutions_inside_a_block(tmp_path):
    config = tiny_config(make_idx_dataset(tmp_path / "data"), epochs=1)
    config["model"]["layers"] = [
        {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
        {"type": "relu"},
        {
            "type": "residual",
            "projection": True,
            "layers": [
                {"type": "conv2d", "out_channels": 8, "kernel_size": 3, "stride": 2, "padding": 1},
                {"type": "relu"},
                {"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1},
            ],
        },
        {"type": "relu"},
        {"type": "global_avg_pool"},
        {"type": "dense", "out_features": 10},
    ]
    run = train(config_from_dict(config), run_dir=tmp_path / "run", log=lambda _: None).run.root
    out = tmp_path / "viz"
    outcome = invoke_cli(["viz", run / "checkpoints" / "best.npz", "test:0", "--backward", "--out", out], timeout=120)
    assert outcome.code == 0, outcome.output
    for layer in ("conv1", "res1.conv1", "res1.conv2", "res1.proj"):
        assert (out / f"feature_maps_{layer}.png").stat().st_size > 0, sorted(p.name for p in out.iterdir())
