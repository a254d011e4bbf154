"""Global average pooling: numeric gradient, PyTorch parity on random shapes, a loop reference, a broken backward."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import cnn_cli.layers.pool as pool_layer_module
from cnn_cli.layers import GlobalAvgPool
from cnn_cli.nn.pool import global_avgpool_backward, global_avgpool_forward
from tests.support.gradcheck import check_layer


def random_input(rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal((int(rng.integers(1, 4)), int(rng.integers(1, 5)), int(rng.integers(1, 6)), int(rng.integers(1, 6))))


@pytest.mark.parametrize("index", range(5))
def test_numeric_gradient(index):
    rng = np.random.default_rng([17, index])
    assert check_layer(GlobalAvgPool("gap"), random_input(rng), rng)["input"] <= 1e-6


@pytest.mark.parametrize("index", range(30))
def test_matches_torch(index):
    rng = np.random.default_rng([19, index])
    x = random_input(rng)
    upstream = rng.standard_normal(x.shape[:2])
    x_t = torch.tensor(x, requires_grad=True)
    out_t = F.adaptive_avg_pool2d(x_t, 1).flatten(1)
    out_t.backward(torch.from_numpy(upstream))
    out = global_avgpool_forward(x)
    grad = global_avgpool_backward(upstream, (x.shape[2], x.shape[3]))
    for ours, theirs in ((out, out_t), (grad, x_t.grad)):
        expected = theirs.detach().numpy()
        assert ours.shape == expected.shape
        assert np.max(np.abs(ours - expected)) <= 1e-6 * np.max(np.abs(expected))


def test_matches_the_loop_reference():
    rng = np.random.default_rng(23)
    x = random_input(rng)
    n, c, h, w = x.shape
    expected = np.array([[sum(x[i, k, r, s] for r in range(h) for s in range(w)) / (h * w) for k in range(c)] for i in range(n)])
    assert np.allclose(global_avgpool_forward(x), expected, rtol=1e-12, atol=0)


def test_a_backward_without_the_division_fails_the_check(monkeypatch):
    """Each input's share is dy/(H·W); handing every input the whole dy is caught."""
    monkeypatch.setattr(
        pool_layer_module, "global_avgpool_backward", lambda grad, hw: np.broadcast_to(grad[:, :, None, None], (*grad.shape, *hw))
    )
    rng = np.random.default_rng(29)
    x = rng.standard_normal((2, 3, 3, 4))
    with pytest.raises(AssertionError, match="gap dL/dx: relative error"):
        check_layer(GlobalAvgPool("gap"), x, rng)
