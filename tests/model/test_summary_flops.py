"""``cnn summary`` prints a tiny net's FLOPs as a count, not as "0.0 M" (issue 12)."""

from __future__ import annotations

from cnn_cli.model.network import build_model
from tests.support.cli import invoke_cli, write_config

TINY = {
    "name": "tiny",
    "model": {
        "input_shape": [1, 6, 6],
        "layers": [{"type": "conv2d", "out_channels": 1, "kernel_size": 3}, {"type": "flatten"}, {"type": "dense", "out_features": 2}],
    },
}


def test_tiny_net_flops_are_exact(tmp_path):
    path = write_config(tmp_path / "tiny.yaml", TINY)
    outcome = invoke_cli(["summary", "--config", path])
    assert outcome.code == 0, outcome.output
    last = outcome.stdout.splitlines()[-1]
    total = sum(row.flops for row in build_model(TINY["model"]).summary())
    assert 0 < total < 1_000_000
    assert "0.0 M" not in last
    assert f"forward FLOPs per image {total:,};" in last
    assert f"about {3 * total:,}" in last


def test_a_large_net_still_uses_millions():
    last = invoke_cli(["summary", "--config", "mnist"]).stdout.splitlines()[-1]
    assert last.startswith("forward FLOPs per image ") and last.endswith(" M")
