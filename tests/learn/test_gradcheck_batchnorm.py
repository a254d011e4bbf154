"""``cnn gradcheck`` on models with batch norm: training mode, the whole batch at once, dropout masks held fixed."""

from __future__ import annotations

import numpy as np
import pytest

import cnn_cli.layers.batchnorm as batchnorm_layer_module
from cnn_cli.errors import EXIT_FAULT
from cnn_cli.learn.gradcheck import gradcheck_mode, gradcheck_model
from cnn_cli.model.network import build_model
from cnn_cli.nn.batchnorm import BatchNormCache, channel_rows, from_channel_rows
from tests.support.cli import invoke_cli, write_config

BN_MODEL = {
    "input_shape": [2, 7, 6],
    "layers": [
        {"type": "conv2d", "out_channels": 3, "kernel_size": 3, "padding": 1},
        {"type": "batchnorm2d", "momentum": 0.2},
        {"type": "tanh"},
        {"type": "dropout", "p": 0.3},
        {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "stride": 2, "bias": False},
        {"type": "batchnorm2d", "affine": False},
        {"type": "sigmoid"},
        {"type": "global_avg_pool"},
        {"type": "dense", "out_features": 5},
        {"type": "batchnorm1d"},
        {"type": "tanh"},
        {"type": "dense", "out_features": 3},
    ],
}


def test_auto_mode_is_training_for_batch_norm_and_evaluation_otherwise():
    assert gradcheck_mode(build_model(BN_MODEL)) == "train"
    plain = {"input_shape": [1, 4, 4], "layers": [{"type": "flatten"}, {"type": "dense", "out_features": 2}]}
    assert gradcheck_mode(build_model(plain)) == "eval"


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_every_tensor_passes_in_both_modes(mode):
    results = gradcheck_model(BN_MODEL, seed=1, mode=mode, max_checks_per_param=8)
    assert all(r.passed and r.checked > 0 for r in results), [(r.name, r.max_rel_error) for r in results if not r.passed]
    by_name = {r.name: r for r in results}
    # In training the bias before bn1 is redundant: the batch mean removes it, its true gradient is exactly 0.
    assert (by_name["conv1.bias"].typical_gradient < 1e-9) == (mode == "train")


def test_a_batch_norm_backward_without_the_mean_term_fails_in_training_mode(monkeypatch):
    def no_mean_term(grad_out: np.ndarray, cache: BatchNormCache) -> np.ndarray:
        dy = channel_rows(grad_out)
        count = dy.shape[0]
        kept = count * dy - cache.x_hat * (dy * cache.x_hat).sum(axis=0)
        return from_channel_rows(cache.gamma / cache.std / count * kept, grad_out.shape)

    monkeypatch.setattr(batchnorm_layer_module, "batchnorm_backward", no_mean_term)
    results = {r.name: r for r in gradcheck_model(BN_MODEL, seed=1, max_checks_per_param=8)}
    assert not results["input"].passed and not results["conv1.weight"].passed
    assert results["fc2.weight"].passed  # above the last batch norm nothing changed


def test_the_command_says_it_checks_in_training_mode(tmp_path):
    config = write_config(tmp_path / "bn.yaml", {"extends": "smoke", "model": {"input_shape": [2, 7, 6], **BN_MODEL}})
    outcome = invoke_cli(["gradcheck", "--config", config], timeout=60)
    assert outcome.code == 0, outcome.stderr
    assert outcome.stdout.startswith("training mode: batch norm uses the batch's own mean and variance")
    assert "its true gradient is 0, since bn1 subtracts the batch mean" in outcome.stdout
    evaluation = invoke_cli(["gradcheck", "--config", config, "--mode", "eval", "--batch-size", "3"], timeout=60)
    assert evaluation.code == 0 and "training mode" not in evaluation.stdout
    assert invoke_cli(["gradcheck", "--config", config, "--mode", "sideways"]).code == 2


def test_the_command_fails_on_a_broken_batch_norm_backward(tmp_path, monkeypatch):
    def as_if_evaluating(grad_out: np.ndarray, cache: BatchNormCache) -> np.ndarray:
        """The evaluation-mode backward in training: the paths through the batch mean and variance forgotten."""
        return from_channel_rows(channel_rows(grad_out) * (cache.gamma / cache.std), grad_out.shape)

    monkeypatch.setattr(batchnorm_layer_module, "batchnorm_backward", as_if_evaluating)
    config = write_config(tmp_path / "bn.yaml", {"extends": "smoke", "model": {"input_shape": [2, 7, 6], **BN_MODEL}})
    outcome = invoke_cli(["gradcheck", "--config", config], timeout=60)
    assert outcome.code == EXIT_FAULT and "FAILED" in outcome.stdout
