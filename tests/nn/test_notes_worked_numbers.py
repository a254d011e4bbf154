"""The worked numbers and formulas of the seed documents, through the library.

Notes 000: convolution forward/backward on the 4x4 slide, max-pool and ReLU routing,
softmax cross-entropy gradient. Notes 001: p − y with p = [0.3, 0.7], L2 and the
update w ← w − α(∂L/∂w + λw) with its seesaw numbers. Notes 002: p − y and
dz_kl/dw_ij. Notes 003: the 3x3 ⋆ 2x2 cross-correlation and convolution, and
dE/dK, dE/dB, dE/dX. Notes 004: the 15-parameter net and dL/dW2 = (A2 − Y)Fᵀ.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from cnn_cli.model.network import build_model
from cnn_cli.nn.activations import relu_backward, relu_forward
from cnn_cli.nn.conv import conv2d_backward, conv2d_forward
from cnn_cli.nn.losses import softmax, softmax_cross_entropy
from cnn_cli.nn.optim import SGD, add_l2_gradient, l2_penalty, make_optimizer
from cnn_cli.nn.pool import maxpool2d_backward, maxpool2d_forward
from tests.support import reference as ref

# Notes 003, "Convolution walk through".
SEED3_X = np.array([[1.0, 6.0, 2.0], [5.0, 3.0, 1.0], [7.0, 0.0, 4.0]])
SEED3_K = np.array([[1.0, 2.0], [-1.0, 0.0]])


def as_nchw(matrix: np.ndarray) -> np.ndarray:
    """A single-channel 2-D map as (1, 1, H, W), or a kernel as (1, 1, kH, kW)."""
    return matrix[None, None, :, :]


def rot180(kernel: np.ndarray) -> np.ndarray:
    return kernel[::-1, ::-1]


def cross_correlate_valid(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Notes 003's ⋆ ('valid'): out[i, j] = Σ_{a,b} image[i + a, j + b] · kernel[a, b]."""
    out_h, out_w = image.shape[0] - kernel.shape[0] + 1, image.shape[1] - kernel.shape[1] + 1
    out = np.zeros((out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            out[i, j] = np.sum(image[i : i + kernel.shape[0], j : j + kernel.shape[1]] * kernel)
    return out


def convolve_full(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Notes 003's 'full' convolution: zero-pad by k − 1 on every side, then cross-correlate with rot180(kernel)."""
    k_h, k_w = kernel.shape
    padded = np.pad(image, ((k_h - 1, k_h - 1), (k_w - 1, k_w - 1)))
    return cross_correlate_valid(padded, rot180(kernel))


# ---------------------------------------------------------------- notes 003: cross-correlation and convolution


def test_seed003_cross_correlation_worked_example():
    """[[1,6,2],[5,3,1],[7,0,4]] ⋆ [[1,2],[-1,0]] = [[8,7],[4,5]]; e.g. step 1: 1·1 + 6·2 + 5·(−1) + 3·0 = 8."""
    out, _ = conv2d_forward(as_nchw(SEED3_X), as_nchw(SEED3_K), None)
    np.testing.assert_array_equal(out[0, 0], [[8.0, 7.0], [4.0, 5.0]])
    np.testing.assert_array_equal(ref.conv2d_forward(as_nchw(SEED3_X), as_nchw(SEED3_K), None)[0, 0], out[0, 0])
    np.testing.assert_array_equal(cross_correlate_valid(SEED3_X, SEED3_K), out[0, 0])


def test_seed003_true_convolution_is_cross_correlation_with_rot180():
    """Conv(I, K) = I ⋆ rot180(K): with rot180 = [[0,-1],[2,1]] the output is [[7,5],[11,3]]."""
    np.testing.assert_array_equal(rot180(SEED3_K), [[0.0, -1.0], [2.0, 1.0]])
    out, _ = conv2d_forward(as_nchw(SEED3_X), as_nchw(rot180(SEED3_K)), None)
    np.testing.assert_array_equal(out[0, 0], [[7.0, 5.0], [11.0, 3.0]])


def test_seed003_output_size_is_input_minus_kernel_plus_one():
    """Y = I − K + 1: 2 = 3 − 2 + 1."""
    out, _ = conv2d_forward(as_nchw(SEED3_X), as_nchw(SEED3_K), None)
    assert out.shape[2:] == (3 - 2 + 1, 3 - 2 + 1)


def test_seed003_bias_is_added_to_every_output():
    """Y_i = B_i + Σ_j X_j ⋆ K_ij with a single channel: every output moves by the bias."""
    out, _ = conv2d_forward(as_nchw(SEED3_X), as_nchw(SEED3_K), np.array([0.5]))
    np.testing.assert_array_equal(out[0, 0], [[8.5, 7.5], [4.5, 5.5]])


def test_seed003_multichannel_output_is_a_sum_over_input_channels():
    """Notes 003: O_1 + O_2 + O_3 + B = y, one kernel per input channel, per output channel."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 3, 4, 4))
    weight = rng.standard_normal((2, 3, 2, 2))
    bias = rng.standard_normal(2)
    out, _ = conv2d_forward(x, weight, bias)
    for i in range(2):
        expected = bias[i] + sum(cross_correlate_valid(x[0, j], weight[i, j]) for j in range(3))
        np.testing.assert_allclose(out[0, i], expected, rtol=1e-13)


# dE/dY for the seed-003 example, any numbers will do; these are small and exact in binary.
SEED3_GRAD_Y = np.array([[1.0, -1.0], [2.0, 0.5]])


def test_seed003_kernel_gradient_is_input_correlated_with_output_gradient():
    """dE/dK = X ⋆ dE/dY. By hand: dE/dk11 = 1·1 + 6·(−1) + 5·2 + 3·0.5 = 6.5, and so on."""
    _, cache = conv2d_forward(as_nchw(SEED3_X), as_nchw(SEED3_K), np.array([0.0]))
    _, grad_k, grad_b = conv2d_backward(as_nchw(SEED3_GRAD_Y), cache)
    np.testing.assert_array_equal(grad_k[0, 0], [[6.5, 10.5], [16.0, 4.0]])
    np.testing.assert_array_equal(grad_k[0, 0], cross_correlate_valid(SEED3_X, SEED3_GRAD_Y))
    # dE/dB = dE/dY summed over the output positions: 1 − 1 + 2 + 0.5
    np.testing.assert_array_equal(grad_b, [2.5])


def test_seed003_input_gradient_is_full_convolution_of_output_gradient_with_kernel():
    """dE/dX = dE/dY full-conv K (= full cross-correlation with rot180(K)). E.g. dE/dx22 = 0 + 1 + 4 + 0.5 = 5.5."""
    _, cache = conv2d_forward(as_nchw(SEED3_X), as_nchw(SEED3_K), None)
    grad_x, _, _ = conv2d_backward(as_nchw(SEED3_GRAD_Y), cache)
    expected = np.array([[1.0, 1.0, -2.0], [1.0, 5.5, 1.0], [-2.0, -0.5, 0.0]])
    np.testing.assert_array_equal(grad_x[0, 0], expected)
    np.testing.assert_array_equal(convolve_full(SEED3_GRAD_Y, SEED3_K), expected)


# ---------------------------------------------------------------- notes 000 and 002: conv gradients on the slides


def test_seed000_input_gradient_of_one_output_is_the_kernel_in_its_window():
    """§2.5: ∂y00/∂input is the 3x3 kernel in the top-left of a 4x4 zero map, ∂y01/∂input shifted right by one."""
    kernel = np.arange(1.0, 10.0).reshape(3, 3)
    _, cache = conv2d_forward(np.zeros((1, 1, 4, 4)), as_nchw(kernel), np.array([0.0]))
    for i, j in [(0, 0), (0, 1), (1, 0), (1, 1)]:
        one_hot = np.zeros((1, 1, 2, 2))
        one_hot[0, 0, i, j] = 1.0
        grad_x, _, _ = conv2d_backward(one_hot, cache)
        expected = np.zeros((4, 4))
        expected[i : i + 3, j : j + 3] = kernel
        np.testing.assert_array_equal(grad_x[0, 0], expected)


def test_seed000_weight_and_bias_gradients_sum_over_output_pixels():
    """§2.3: dL/dw = Σ_ij dL/dy_ij · (window that produced y_ij);  §2.4: dL/db = Σ_ij dL/dy_ij."""
    x = np.arange(16.0).reshape(4, 4)
    grad_y = np.array([[0.5, -1.0], [2.0, 3.0]])
    _, cache = conv2d_forward(as_nchw(x), np.zeros((1, 1, 3, 3)), np.array([0.0]))
    _, grad_w, grad_b = conv2d_backward(as_nchw(grad_y), cache)
    expected = sum(grad_y[i, j] * x[i : i + 3, j : j + 3] for i in range(2) for j in range(2))
    np.testing.assert_array_equal(grad_w[0, 0], expected)
    np.testing.assert_array_equal(grad_b, [grad_y.sum()])


def test_seed002_dz_kl_dw_ij_is_the_input_under_the_tap():
    """Notes 002 (17): ∂z_kl/∂w_ij = x_(i+k−1)(j+l−1): with dL/dz one-hot at (k, l), dL/dW is the window at (k, l)."""
    x = np.array([[11.0, 12.0, 13.0], [21.0, 22.0, 23.0], [31.0, 32.0, 33.0]])  # x_rc holds the number "rc"
    _, cache = conv2d_forward(as_nchw(x), np.zeros((1, 1, 2, 2)), None)
    for k in range(2):
        for l in range(2):
            one_hot = np.zeros((1, 1, 2, 2))
            one_hot[0, 0, k, l] = 1.0
            _, grad_w, _ = conv2d_backward(one_hot, cache)
            np.testing.assert_array_equal(grad_w[0, 0], x[k : k + 2, l : l + 2])


# ---------------------------------------------------------------- notes 000 §2.7, §2.8 and notes 001: routing


def test_seed000_maxpool_gradient_lands_only_on_each_window_max():
    """§2.7's slide: the maxima of the four 2x2 windows sit at (0,0), (1,2), (3,1), (2,3); the rest get 0."""
    x = np.array(
        [
            [0.9, 0.1, 0.2, 0.3],
            [0.4, 0.5, 0.8, 0.6],
            [0.11, 0.12, 0.13, 0.7],
            [0.14, 0.95, 0.15, 0.16],
        ]
    )
    grad_y = np.array([[1.5, -2.0], [3.0, 0.25]])  # dLoss/dy00, dy01, dy10, dy11
    out, cache = maxpool2d_forward(as_nchw(x), (2, 2), (2, 2))
    np.testing.assert_array_equal(out[0, 0], [[0.9, 0.8], [0.95, 0.7]])
    grad_x = maxpool2d_backward(as_nchw(grad_y), cache)[0, 0]
    expected = np.array(
        [
            [1.5, 0.0, 0.0, 0.0],
            [0.0, 0.0, -2.0, 0.0],
            [0.0, 0.0, 0.0, 0.25],
            [0.0, 3.0, 0.0, 0.0],
        ]
    )
    np.testing.assert_array_equal(grad_x, expected)


def test_seed000_relu_passes_gradient_only_where_input_was_positive():
    """§2.8's slide: the gradient is blocked at (0,3), (1,2), (2,1), (2,3), (3,1), (3,2), where x < 0."""
    blocked = [(0, 3), (1, 2), (2, 1), (2, 3), (3, 1), (3, 2)]
    x = np.arange(1.0, 17.0).reshape(4, 4)
    for i, j in blocked:
        x[i, j] = -x[i, j]
    grad_y = np.arange(101.0, 117.0).reshape(4, 4)
    out, positive = relu_forward(x)
    np.testing.assert_array_equal(out, np.maximum(x, 0))
    grad_x = relu_backward(grad_y, positive)
    expected = grad_y.copy()
    for i, j in blocked:
        expected[i, j] = 0.0
    np.testing.assert_array_equal(grad_x, expected)


# ---------------------------------------------------------------- softmax cross-entropy: p − y


def test_seed001_softmax_gradient_example():
    """Notes 001: p = [0.3, 0.7], target p2: ∂L/∂f_p1 = 0.3 (unchanged), ∂L/∂f_p2 = 0.7 − 1 = −0.3."""
    logits = np.log(np.array([[0.3, 0.7]]))
    loss, grad = softmax_cross_entropy(logits, np.array([1]))
    np.testing.assert_allclose(softmax(logits), [[0.3, 0.7]], rtol=1e-14)
    np.testing.assert_allclose(grad, [[0.3, -0.3]], rtol=1e-14)
    assert loss == pytest.approx(-math.log(0.7), rel=1e-14)  # L_i = −log(e^{f_target} / Σ e^{f_j})


def test_seeds_000_001_002_softmax_cross_entropy_gradient_is_p_minus_y():
    """∂Loss/∂x[k] = p[k] − 1 for the target, p[i] elsewhere; the mean over N divides by N."""
    rng = np.random.default_rng(2)
    logits = 2 * rng.standard_normal((5, 7))
    labels = rng.integers(0, 7, 5)
    loss, grad = softmax_cross_entropy(logits, labels)
    exp = np.exp(logits)
    p = exp / exp.sum(axis=1, keepdims=True)  # the seeds' softmax, written plainly (safe for these small logits)
    one_hot = np.eye(7)[labels]
    np.testing.assert_allclose(grad, (p - one_hot) / 5, rtol=1e-12, atol=1e-15)
    assert loss == pytest.approx(float(np.mean(-np.log(p[np.arange(5), labels]))), rel=1e-12)


# ---------------------------------------------------------------- notes 001: L2 and the update rule


def test_seed001_l2_penalty_and_gradient_cover_weights_not_biases():
    """L = L_i + ½λ Σ w²;  ∂/∂w of the penalty = λw; biases are not regularised."""
    params = {"fc.weight": np.array([[0.1, -0.2], [0.3, 0.0]]), "fc.bias": np.array([5.0, 6.0])}
    grads = {"fc.weight": np.zeros((2, 2)), "fc.bias": np.zeros(2)}
    assert l2_penalty(params, 0.1) == pytest.approx(0.5 * 0.1 * (0.01 + 0.04 + 0.09))
    add_l2_gradient(params, grads, 0.1)
    np.testing.assert_allclose(grads["fc.weight"], 0.1 * params["fc.weight"], rtol=1e-15)
    np.testing.assert_array_equal(grads["fc.bias"], [0.0, 0.0])


def test_seed001_update_rule_through_sgd_and_l2():
    """w ← w − α(∂L/∂w + λw): SGD on the L2-augmented gradient, for any w, gradient, α, λ."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal((3, 4))
    g = rng.standard_normal((3, 4))
    alpha, lam = 0.05, 0.2
    params, grads = {"layer.weight": w.copy()}, {"layer.weight": g.copy()}
    add_l2_gradient(params, grads, lam)
    SGD(alpha).step(params, grads)
    np.testing.assert_allclose(params["layer.weight"], w - alpha * (g + lam * w), rtol=1e-14)


def seesaw_output_model():
    """Notes 001's seesaw CNN from the pooling layer on: Out_A → (w5) → sigmoid node c → (w1, w2) → softmax.

    Numbers from the slides: Out_A = 0.1, w5 = −0.1, f@c = 0.49; the target class has weight 0.1 and
    p_target = 0.51, the other class has weight 0.2 and p = 0.49. Biases are set to produce those values.
    """
    model = build_model(
        {
            "input_shape": [1],
            "loss": "softmax_cross_entropy",
            "layers": [
                {"type": "dense", "out_features": 1},  # fc1: w5
                {"type": "sigmoid"},  # f@c
                {"type": "dense", "out_features": 2},  # fc2: w2 (other class), w1 (target class)
            ],
        },
        dtype="float64",
    )
    f_c, out_a, w5 = 0.49, 0.1, -0.1
    logit_of_f_c = math.log(f_c / (1 - f_c))
    model.load_params(
        {
            "fc1.weight": np.array([[w5]]),
            "fc1.bias": np.array([logit_of_f_c - w5 * out_a]),
            "fc2.weight": np.array([[0.2], [0.1]]),
            # z_target − z_other = log(0.51/0.49), so softmax gives [0.49, 0.51]
            "fc2.bias": np.array([0.0, math.log(0.51 / 0.49) + (0.2 - 0.1) * f_c]),
        }
    )
    return model, np.array([[out_a]]), np.array([1])


def test_seed001_seesaw_weight_updates():
    """α = λ = 0.1:  Δw = −0.1·(−0.49·0.49 + 0.1·0.1) = 0.023 for an output weight, and
    Δw5 = −0.1·((−0.49·0.1 + 0.49·0.2)·0.49·(1 − 0.49)·0.1 + 0.1·(−0.1)) = 0.000878 for the inner one."""
    model, x, target = seesaw_output_model()
    logits = model.forward(x, training=True)
    np.testing.assert_allclose(softmax(logits), [[0.49, 0.51]], rtol=1e-12)
    _, grad_logits = model.loss(logits, target)
    np.testing.assert_allclose(grad_logits, [[0.49, -0.49]], rtol=1e-12)  # p − y
    model.backward(grad_logits)
    before = {name: value.copy() for name, value in model.params.items()}
    grads = model.grads
    add_l2_gradient(model.params, grads, 0.1)
    make_optimizer("sgd", 0.1).step(model.params, grads)
    delta = {name: model.params[name] - before[name] for name in before}

    delta_w_target = -0.1 * (-0.49 * 0.49 + 0.1 * 0.1)
    delta_w5 = -0.1 * ((-0.49 * 0.1 + 0.49 * 0.2) * 0.49 * (1 - 0.49) * 0.1 + 0.1 * (-0.1))
    assert delta["fc2.weight"][1, 0] == pytest.approx(delta_w_target, rel=1e-10)
    assert delta["fc2.weight"][1, 0] == pytest.approx(0.023, abs=5e-4)  # the slide's rounding
    assert delta["fc1.weight"][0, 0] == pytest.approx(delta_w5, rel=1e-10)
    assert delta["fc1.weight"][0, 0] == pytest.approx(0.000878, abs=5e-7)


def test_seed001_seesaw_conv_filter_update():
    """The 1-D conv filter [w1, w2] over In = [1, 1, 0, 0, 0] with ∂L/∂f = [0, −0.0147, 0.0196, 0.0196]:
    ∂L/∂w1 = Σ ∂L/∂f_i · In_i = −0.0147, ∂L/∂w2 = Σ ∂L/∂f_i · In_(i+1) = 0;
    Δw1 = −0.1(−0.0147 + 0.1·0.1) = 0.00047, Δw2 = −0.1(0 + 0.1·0.1) = −0.001."""
    inputs = np.array([[[[1.0, 1.0, 0.0, 0.0, 0.0]]]])  # (N, C, H, W) = (1, 1, 1, 5)
    w = np.array([[[[0.1, 0.1]]]])  # kernel 1x2, stride 1
    _, cache = conv2d_forward(inputs, w, None)
    _, grad_w, _ = conv2d_backward(np.array([[[[0.0, -0.0147, 0.0196, 0.0196]]]]), cache)
    np.testing.assert_allclose(grad_w[0, 0, 0], [-0.0147, 0.0], atol=1e-16)

    params, grads = {"conv.weight": w.copy()}, {"conv.weight": grad_w}
    add_l2_gradient(params, grads, 0.1)
    SGD(0.1).step(params, grads)
    np.testing.assert_allclose((params["conv.weight"] - w)[0, 0, 0], [0.00047, -0.001], rtol=1e-10)


# ---------------------------------------------------------------- notes 004: the 15-parameter network

SEED4_CONFIG = {
    "input_shape": [1, 6, 6],
    "loss": "binary_cross_entropy",
    "layers": [
        {"type": "conv2d", "out_channels": 1, "kernel_size": 3},  # Z1 = Conv(X, W1) + b1   (4x4)
        {"type": "relu"},  # A1 = relu(Z1)
        {"type": "maxpool2d", "kernel_size": 2},  # P1 = maxpool(A1)          (2x2)
        {"type": "flatten"},  # F = flatten(P1)          (4)
        {"type": "dense", "out_features": 1},  # Z2 = W2 F + b2; A2 = σ(Z2) inside the BCE loss
    ],
}


def test_seed004_net_has_exactly_15_trainable_parameters():
    """W1 (3,3) + b1 (1) + W2 (1,4) + b2 (1) = 15."""
    model = build_model(SEED4_CONFIG)
    assert {name: p.shape for name, p in model.params.items()} == {
        "conv1.weight": (1, 1, 3, 3),
        "conv1.bias": (1,),
        "fc1.weight": (1, 4),
        "fc1.bias": (1,),
    }
    assert model.num_params() == 15


def seed004_batch(n: int, seed: int):
    model = build_model(SEED4_CONFIG, seed=seed, dtype="float64")
    rng = np.random.default_rng(seed)
    model.params["conv1.bias"][...] = 0.3  # so that some but not all of Z1 is positive
    model.params["fc1.bias"][...] = -0.2
    x = rng.permutation(np.linspace(-1, 1, n * 36)).reshape(n, 1, 6, 6)  # tie-free for the max-pool
    y = rng.integers(0, 2, n)
    return model, x, y


@pytest.mark.parametrize("n", [1, 5])
def test_seed004_dL_dW2_is_A2_minus_Y_times_F_transposed(n):
    """dL/dW2 = (A2 − Y) Fᵀ and dL/db2 = (A2 − Y), with A2 and F computed by hand from the layer outputs.

    For a batch of m images the loss is the mean, so both are divided by m (notes 004, "m images").
    """
    model, x, y = seed004_batch(n, seed=n)
    conv, relu, pool, flatten, dense = model.layers
    z1 = conv.forward(x)
    a1 = relu.forward(z1)
    p1 = pool.forward(a1)
    f = flatten.forward(p1).reshape(n, 4).T  # F: (4, m), one column per image
    w2, b2 = model.params["fc1.weight"], model.params["fc1.bias"]
    z2 = w2 @ f + b2[:, None]  # (1, m)
    a2 = 1.0 / (1.0 + np.exp(-z2))  # σ
    y_row = y[None, :].astype(float)  # Y: (1, m)

    loss, grad_logits = model.loss(model.forward(x, training=True), y)
    model.backward(grad_logits)
    expected_loss = np.mean(-y_row * np.log(a2) - (1 - y_row) * np.log(1 - a2))
    assert loss == pytest.approx(float(expected_loss), rel=1e-12)
    np.testing.assert_allclose(model.grads["fc1.weight"], (a2 - y_row) @ f.T / n, rtol=1e-12)
    np.testing.assert_allclose(model.grads["fc1.bias"], np.sum(a2 - y_row, axis=1) / n, rtol=1e-12)


def test_seed004_chain_rule_through_every_layer():
    """dL/dW1 = dL/dA2 · dA2/dZ2 · dZ2/dF · dF/dP1 · dP1/dA1 · dA1/dZ1 · dZ1/dW1, one factor at a time."""
    model, x, y = seed004_batch(1, seed=7)
    conv, relu, _, _, _ = model.layers
    z1 = conv.forward(x)
    a1 = np.maximum(z1, 0)
    p1 = ref.maxpool2d_forward(a1, (2, 2), (2, 2))
    f = p1.reshape(1, 4)
    a2 = 1.0 / (1.0 + np.exp(-(f @ model.params["fc1.weight"].T + model.params["fc1.bias"])))

    dl_dz2 = a2 - y[:, None]  # (a2 − y)/(a2(1 − a2)) · a2(1 − a2)
    dl_df = dl_dz2 @ model.params["fc1.weight"]  # dZ2/dF = W2
    dl_dp1 = dl_df.reshape(p1.shape)  # flatten is a reshape
    dl_da1 = ref.maxpool2d_backward(a1, dl_dp1, (2, 2), (2, 2))  # to each window's max only
    dl_dz1 = dl_da1 * (z1 > 0)  # ReLU
    dl_dx, dl_dw1, dl_db1 = ref.conv2d_backward(x, model.params["conv1.weight"], dl_dz1, True)

    _, grad_logits = model.loss(model.forward(x, training=True), y)
    grad_input = model.backward(grad_logits, need_input_grad=True)
    assert np.count_nonzero(dl_dz1) > 0, "pick a batch where some gradient reaches the conv"
    np.testing.assert_allclose(model.grads["conv1.weight"], dl_dw1, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(model.grads["conv1.bias"], dl_db1, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(grad_input, dl_dx, rtol=1e-12, atol=1e-15)


def test_seed004_gradient_descent_step():
    """W ← W − η dL/dW for all four parameters (notes 004's update, no weight decay)."""
    model, x, y = seed004_batch(3, seed=11)
    _, grad_logits = model.loss(model.forward(x, training=True), y)
    model.backward(grad_logits)
    expected = {name: model.params[name] - 0.5 * grad for name, grad in model.grads.items()}
    SGD(0.5).step(model.params, model.grads)
    for name, value in expected.items():
        np.testing.assert_array_equal(model.params[name], value)
