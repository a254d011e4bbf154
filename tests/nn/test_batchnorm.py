"""Batch norm: numeric gradients of the whole batch, the two backwards agreeing, PyTorch parity, a loop reference.

BN couples the batch (every output of a channel depends on every input of it through
μ and v), so each check perturbs one input at a time and re-runs the forward on the
whole batch: the numeric gradient then carries the mean and variance paths as well.
Upstream gradients are random, never all ones: with all ones Σdy·x̂ = 0 and the
variance path would vanish from the check.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import cnn_cli.layers.batchnorm as batchnorm_layer_module
from cnn_cli.layers import BatchNorm1D, BatchNorm2D
from cnn_cli.nn.batchnorm import (
    BatchNormCache,
    batchnorm_backward,
    batchnorm_backward_staged,
    batchnorm_forward,
    channel_rows,
    from_channel_rows,
)
from tests.support.gradcheck import check_layer

F64 = np.float64
MAX_REL_ERROR = 1e-6
N_CONFIGS = 25


def random_bn(rng: np.random.Generator, two_d: bool, affine: bool = True) -> tuple[BatchNorm1D | BatchNorm2D, np.ndarray]:
    """A float64 batch-norm layer with random γ, β and running statistics, and a random input for it."""
    channels = int(rng.integers(1, 5))
    momentum, eps = float(rng.uniform(0.05, 0.5)), float(rng.choice([1e-5, 1e-3, 0.1]))
    layer: BatchNorm1D | BatchNorm2D
    if two_d:
        layer = BatchNorm2D("bn", channels, eps, momentum, affine, F64)
        shape: tuple[int, ...] = (int(rng.integers(1, 4)), channels, int(rng.integers(1, 5)), int(rng.integers(2, 5)))
    else:
        layer = BatchNorm1D("bn", channels, eps, momentum, affine, F64)
        shape = (int(rng.integers(3, 8)), channels)  # N = 2 would make x̂ = ±1 and dx ≈ 0: nothing to check
    if affine:
        layer.params["weight"][...] = rng.uniform(0.5, 2.0, channels) * rng.choice([-1.0, 1.0], channels)
        layer.params["bias"][...] = rng.standard_normal(channels)
    layer.buffers["running_mean"][...] = rng.standard_normal(channels)
    layer.buffers["running_var"][...] = rng.uniform(0.5, 2.0, channels)
    # Per-channel offsets and scales, so the statistics are far from the initial 0 and 1.
    x = rng.standard_normal(shape) * rng.uniform(0.5, 3.0) + rng.standard_normal()
    return layer, x


def rel_err(ours: np.ndarray, theirs: torch.Tensor | np.ndarray) -> float:
    expected = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else np.asarray(theirs)
    assert np.shape(ours) == expected.shape, (np.shape(ours), expected.shape)
    scale = float(np.max(np.abs(expected), initial=0.0))
    diff = float(np.max(np.abs(np.asarray(ours) - expected), initial=0.0))
    return diff / scale if scale > 0 else diff


@pytest.mark.parametrize("two_d", [True, False], ids=["2d", "1d"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("index", range(4))
def test_batchnorm_numeric_gradient_whole_batch(two_d, training, affine, index):
    rng = np.random.default_rng([7, index, two_d, training, affine])
    layer, x = random_bn(rng, two_d, affine)
    layer.training = training
    errors = check_layer(layer, x, rng)
    assert set(errors) == ({"input", "weight", "bias"} if affine else {"input"})


@pytest.mark.parametrize("index", range(N_CONFIGS))
def test_staged_and_one_line_backward_agree(index):
    rng = np.random.default_rng([11, index])
    layer, x = random_bn(rng, two_d=bool(index % 2))
    _, cache = batchnorm_forward(
        x, layer.params["weight"], layer.params["bias"], layer.buffers["running_mean"], layer.buffers["running_var"], True, 0.1, layer.eps
    )
    upstream = rng.standard_normal(x.shape)
    staged, one_line = batchnorm_backward_staged(upstream, cache), batchnorm_backward(upstream, cache)
    assert rel_err(one_line, staged) <= 1e-12
    assert np.abs(staged).max() > 1e-3  # a real gradient, not 0 against 0


def test_a_backward_without_the_mean_term_fails_the_check(monkeypatch):
    """The check can fail: drop the Σdy term (the path through μ) and the input gradient is off."""

    def no_mean_term(grad_out: np.ndarray, cache: BatchNormCache) -> np.ndarray:
        dy = channel_rows(grad_out)
        count = dy.shape[0]
        scale = cache.gamma / cache.std / count
        return from_channel_rows(scale * (count * dy - cache.x_hat * (dy * cache.x_hat).sum(axis=0)), grad_out.shape)

    monkeypatch.setattr(batchnorm_layer_module, "batchnorm_backward", no_mean_term)
    rng = np.random.default_rng(3)
    layer, x = random_bn(rng, two_d=True)
    layer.training = True
    with pytest.raises(AssertionError, match=r"bn dL/dx: relative error"):
        check_layer(layer, x, rng)


def test_too_few_values_per_channel_in_training_is_refused():
    layer = BatchNorm1D("bn", 3, dtype=F64)
    layer.training = True
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        layer.forward(np.ones((1, 3)))


def loop_reference_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    """Training-mode batch norm with explicit loops: per channel, the mean and biased variance over (N, H, W)."""
    n, c, h, w = x.shape
    out = np.empty_like(x)
    for channel in range(c):
        values = [x[i, channel, r, s] for i in range(n) for r in range(h) for s in range(w)]
        mean = sum(values) / len(values)
        var = sum((v - mean) ** 2 for v in values) / len(values)
        for i in range(n):
            for r in range(h):
                for s in range(w):
                    out[i, channel, r, s] = gamma[channel] * (x[i, channel, r, s] - mean) / np.sqrt(var + eps) + beta[channel]
    return out


def test_forward_matches_the_loop_reference():
    rng = np.random.default_rng(5)
    layer, x = random_bn(rng, two_d=True)
    layer.training = True
    expected = loop_reference_forward(x, layer.params["weight"], layer.params["bias"], layer.eps)
    assert rel_err(layer.forward(x), expected) <= 1e-12


def torch_twin(layer: BatchNorm1D | BatchNorm2D) -> nn.Module:
    """The same layer in PyTorch: same eps, momentum, affine, γ, β and running statistics, in float64."""
    kind = nn.BatchNorm2d if isinstance(layer, BatchNorm2D) else nn.BatchNorm1d
    twin = kind(layer.channels, eps=layer.eps, momentum=layer.momentum, affine=bool(layer.params)).double()
    with torch.no_grad():
        if layer.params:
            twin.weight.copy_(torch.from_numpy(layer.params["weight"]))
            twin.bias.copy_(torch.from_numpy(layer.params["bias"]))
        twin.running_mean.copy_(torch.from_numpy(layer.buffers["running_mean"]))
        twin.running_var.copy_(torch.from_numpy(layer.buffers["running_var"]))
    return twin


@pytest.mark.parametrize("index", range(N_CONFIGS))
@pytest.mark.parametrize("two_d", [True, False], ids=["2d", "1d"])
def test_train_then_eval_mode_match_torch(two_d, index):
    """Several training steps (output, dx, dγ, dβ and the running statistics after each), then evaluation mode."""
    rng = np.random.default_rng([13, index, two_d])
    layer, x = random_bn(rng, two_d, affine=bool(index % 3))
    twin = torch_twin(layer)
    errors: dict[str, float] = {}
    for step in range(4):
        batch = x + rng.standard_normal(x.shape) * 0.5 * step
        upstream = rng.standard_normal(x.shape)
        for training in (True, False):
            layer.training = training
            twin.train(training)
            ours_out = layer.forward(batch)
            ours_dx = layer.backward(upstream)
            x_t = torch.tensor(batch, requires_grad=True)
            out_t = twin(x_t)
            out_t.backward(torch.from_numpy(upstream))
            mode = "train" if training else "eval"
            errors[f"{mode} step {step} y"] = rel_err(ours_out, out_t)
            errors[f"{mode} step {step} dx"] = rel_err(ours_dx, x_t.grad)
            if layer.params:
                errors[f"{mode} step {step} dγ"] = rel_err(layer.grads["weight"], twin.weight.grad)
                errors[f"{mode} step {step} dβ"] = rel_err(layer.grads["bias"], twin.bias.grad)
                twin.weight.grad, twin.bias.grad = None, None
        errors[f"step {step} running_mean"] = rel_err(layer.buffers["running_mean"], twin.running_mean)
        errors[f"step {step} running_var"] = rel_err(layer.buffers["running_var"], twin.running_var)
    bad = {name: error for name, error in errors.items() if not error <= MAX_REL_ERROR}
    assert not bad, f"rel err above {MAX_REL_ERROR:g}: {bad}"
