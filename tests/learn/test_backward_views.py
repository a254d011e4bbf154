"""The arrays behind `cnn viz --backward`, each checked against an independent calculation."""

from __future__ import annotations

import numpy as np
import pytest

from cnn_cli.learn.backward_views import backward_views, col2im_overlap, layer_overlap, maxpool_winners, relu_mask
from cnn_cli.model.network import build_model
from tests.support.gradcheck import away_from_zero, numeric_gradient, relative_error, shuffled_linspace


def overlap_by_loop(h: int, w: int, k: int, s: int, p: int, d: int = 1) -> np.ndarray:
    """Count, window by window, the input pixels each window reads (padding pixels are not counted)."""
    counts = np.zeros((h, w), dtype=np.int64)
    out_h = (h + 2 * p - d * (k - 1) - 1) // s + 1
    out_w = (w + 2 * p - d * (k - 1) - 1) // s + 1
    for i in range(out_h):
        for j in range(out_w):
            for a in range(k):
                for b in range(k):
                    row, col = i * s + a * d - p, j * s + b * d - p
                    if 0 <= row < h and 0 <= col < w:
                        counts[row, col] += 1
    return counts


@pytest.mark.parametrize(
    ("h", "w", "k", "s", "p", "d"),
    [(28, 28, 3, 2, 1, 1), (9, 7, 3, 2, 0, 1), (8, 8, 2, 2, 0, 1), (10, 10, 3, 1, 1, 1), (12, 11, 5, 3, 2, 1), (11, 11, 3, 2, 1, 2)],
)
def test_col2im_overlap_matches_a_direct_loop(h, w, k, s, p, d):
    assert np.array_equal(col2im_overlap((h, w), (k, k), (s, s), (p, p), (d, d)), overlap_by_loop(h, w, k, s, p, d))


def test_kernel_3_stride_2_gives_the_checkerboard_counts():
    counts = col2im_overlap((28, 28), (3, 3), (2, 2), (1, 1))
    # Away from the last row/column, odd rows are read by 2 windows and even rows by 1 (padding 1 shifts the windows).
    assert counts[0, 0] == 1 and counts[1, 1] == 4 and counts[0, 1] == 2 and counts[1, 0] == 2
    assert set(np.unique(counts)) == {1, 2, 4}
    # Stride = kernel: no window overlaps another, every pixel is read once.
    assert np.array_equal(col2im_overlap((8, 8), (2, 2), (2, 2)), np.ones((8, 8), dtype=np.int64))


POOL_MODEL = {
    "input_shape": [1, 12, 12],
    "layers": [
        {"type": "conv2d", "out_channels": 3, "kernel_size": 3, "stride": 2, "padding": 1},  # 3x6x6
        {"type": "relu"},
        {"type": "maxpool2d", "kernel_size": 3, "stride": 2, "padding": 1},  # overlapping windows: 3x3x3
        {"type": "conv2d", "out_channels": 4, "kernel_size": 2},  # 4x2x2
        {"type": "relu"},
        {"type": "maxpool2d", "kernel_size": 2},  # 4x1x1
        {"type": "flatten"},
        {"type": "dense", "out_features": 5},
        {"type": "relu"},
        {"type": "dense", "out_features": 3},
    ],
}


def test_relu_masks_are_the_sign_of_the_relu_input():
    model = build_model(POOL_MODEL, seed=1, dtype="float64")
    x = np.random.default_rng(0).normal(size=(1, 1, 12, 12))
    view = backward_views(model, x, class_index=2)
    relus = [step for step in view.forward if step.layer.type_name == "relu"]
    assert len(relus) == 3
    for step in relus:
        mask = relu_mask(step.layer, step.output.shape)
        assert mask.dtype == bool and mask.shape == step.input.shape
        assert np.array_equal(mask, step.input > 0), step.layer.name
        assert 0 < mask.mean() < 1  # some units pass, some are cut: the test can tell them apart


def winners_by_loop(x: np.ndarray, k: int, s: int, p: int) -> np.ndarray:
    """For every window, find its maximum with argmax and count one win for that input."""
    c, h, w = x.shape
    padded = np.full((c, h + 2 * p, w + 2 * p), -np.inf)
    padded[:, p : p + h, p : p + w] = x
    out_h, out_w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    wins = np.zeros((c, h + 2 * p, w + 2 * p), dtype=np.int64)
    for ch in range(c):
        for i in range(out_h):
            for j in range(out_w):
                window = padded[ch, i * s : i * s + k, j * s : j * s + k]
                a, b = np.unravel_index(np.argmax(window), window.shape)
                wins[ch, i * s + a, j * s + b] += 1
    return wins[:, p : p + h, p : p + w]


@pytest.mark.parametrize(("k", "s", "p"), [(2, 2, 0), (3, 2, 1), (3, 1, 0)])
def test_maxpool_winners_match_the_argmax_of_each_window(k, s, p):
    model = build_model({"input_shape": [2, 7, 7], "layers": [{"type": "maxpool2d", "kernel_size": k, "stride": s, "padding": p}]}, seed=0)
    x = shuffled_linspace((1, 2, 7, 7), np.random.default_rng(3))  # no ties: one clear maximum per window
    steps = model.trace(x)
    winners = maxpool_winners(steps[0].layer, steps[0].output.shape)
    assert np.array_equal(winners[0], winners_by_loop(x[0], k, s, p))
    out_h = steps[0].output.shape[2]
    assert winners.sum() == 2 * out_h * out_h  # every window has exactly one winner
    if s < k:
        assert winners.max() >= 2  # overlapping windows: one input wins several


def test_the_backward_of_every_layer_starts_from_the_class_score():
    model = build_model(POOL_MODEL, seed=1, dtype="float64")
    x = away_from_zero((1, 1, 12, 12), np.random.default_rng(4))
    view = backward_views(model, x, class_index=1)
    assert [g.layer.name for g in view.backward] == [layer.name for layer in model.layers]
    assert np.array_equal(view.backward[-1].grad_output, np.array([[0.0, 1.0, 0.0]]))
    for step, grad in zip(view.forward, view.backward, strict=True):
        assert grad.grad_output.shape == step.output.shape and grad.grad_input.shape == step.input.shape
    for earlier, later in zip(view.backward, view.backward[1:], strict=False):
        assert np.array_equal(earlier.grad_output, later.grad_input)  # the chain: one layer's dL/dinput is the next's dL/doutput

    def score() -> float:
        return float(model.forward(x)[0, 1])

    numeric = numeric_gradient(score, x)
    assert relative_error(view.saliency[None], numeric) < 1e-6


def test_predicted_class_and_bad_inputs():
    model = build_model(POOL_MODEL, seed=1)
    x = np.random.default_rng(0).normal(size=(1, 1, 12, 12))
    view = backward_views(model, x)
    assert view.class_index == int(np.argmax(view.logits))
    with pytest.raises(ValueError, match="class_index must be in 0..2"):
        backward_views(model, x, class_index=3)
    with pytest.raises(ValueError, match="expected one input of shape"):
        backward_views(model, np.zeros((2, 1, 12, 12)))
    relu_layer, conv_layer = model.layers[1], model.layers[0]
    with pytest.raises(ValueError, match="expected a relu layer"):
        relu_mask(conv_layer, (1, 3, 6, 6))
    with pytest.raises(ValueError, match="expected a maxpool2d layer"):
        maxpool_winners(relu_layer, (1, 3, 6, 6))
    with pytest.raises(ValueError, match="expected a conv2d layer"):
        layer_overlap(relu_layer)
    assert np.array_equal(layer_overlap(conv_layer), overlap_by_loop(12, 12, 3, 2, 1))
