"""Optimizers, learning-rate schedules, gradient clipping and L2 (notes 001), on plain dicts of arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cnn_cli.nn.optim import (
    OPTIMIZERS,
    SGD,
    Adam,
    Momentum,
    OneCycle,
    add_l2_gradient,
    clip_grad_norm,
    is_weight,
    l2_penalty,
    learning_rate,
    make_optimizer,
    one_cycle_lr,
)

# ---------------------------------------------------------------- schedules


def test_constant_schedule():
    for step in (0, 1, 99, 1000):
        assert learning_rate(0.1, step, steps_per_epoch=10, total_epochs=5) == 0.1


def test_step_schedule_multiplies_by_gamma_every_step_size_epochs():
    """base · γ^⌊epoch / step_size⌋ with epoch = ⌊step / steps_per_epoch⌋."""
    expected_by_epoch = [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]
    for epoch, expected in enumerate(expected_by_epoch):
        for step in (epoch * 10, epoch * 10 + 9):
            lr = learning_rate(0.1, step, 10, 6, schedule="step", step_size=2, gamma=0.5)
            assert lr == pytest.approx(expected, rel=1e-15), (step, lr)


def test_cosine_schedule_values():
    """min + ½(base − min)(1 + cos(π · step / total_steps)): base at 0, midpoint halfway, min at the end."""
    kwargs = dict(steps_per_epoch=10, total_epochs=4, schedule="cosine", min_lr=0.01)
    assert learning_rate(0.1, 0, **kwargs) == pytest.approx(0.1, rel=1e-15)
    assert learning_rate(0.1, 20, **kwargs) == pytest.approx(0.055, rel=1e-12)
    assert learning_rate(0.1, 10, **kwargs) == pytest.approx(0.01 + 0.045 * (1 + math.cos(math.pi / 4)), rel=1e-12)
    assert learning_rate(0.1, 40, **kwargs) == pytest.approx(0.01, rel=1e-12)
    assert learning_rate(0.1, 500, **kwargs) == pytest.approx(0.01, rel=1e-12)  # stays at the floor
    values = [learning_rate(0.1, step, **kwargs) for step in range(41)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


def test_warmup_ramps_linearly_then_follows_the_schedule():
    """Warm-up over 2 epochs of 5 steps: base·(step + 1)/10 for the first 10 steps, then the schedule."""
    kwargs = dict(steps_per_epoch=5, total_epochs=10, warmup_epochs=2)
    ramp = [learning_rate(0.2, step, **kwargs) for step in range(10)]
    np.testing.assert_allclose(ramp, [0.2 * (step + 1) / 10 for step in range(10)], rtol=1e-14)
    assert learning_rate(0.2, 10, **kwargs) == 0.2
    assert learning_rate(0.2, 49, **kwargs) == 0.2


def test_warmup_scales_the_scheduled_value():
    """During warm-up the ramp multiplies whatever the schedule gives at that step."""
    kwargs = dict(steps_per_epoch=4, total_epochs=8, schedule="cosine", warmup_epochs=1)
    for step in range(4):
        plain = learning_rate(1.0, step, 4, 8, schedule="cosine")
        assert learning_rate(1.0, step, **kwargs) == pytest.approx(plain * (step + 1) / 4, rel=1e-14)


def test_fractional_warmup_epochs():
    assert learning_rate(1.0, 0, 10, 3, warmup_epochs=0.5) == pytest.approx(1 / 5)
    assert learning_rate(1.0, 5, 10, 3, warmup_epochs=0.5) == 1.0


def test_unknown_schedule_is_rejected():
    with pytest.raises(ValueError, match="unknown schedule 'linear'"):
        learning_rate(0.1, 0, 10, 1, schedule="linear")


def torch_one_cycle_rates(max_lr: float, total_steps: int, cycle: OneCycle) -> list[float]:
    """The rate PyTorch's OneCycleLR gives each of ``total_steps`` steps (momentum cycling off)."""
    torch = pytest.importorskip("torch")
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=max_lr)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=max_lr,
        total_steps=total_steps,
        pct_start=cycle.pct_start,
        anneal_strategy=cycle.anneal,
        cycle_momentum=False,
        div_factor=cycle.div_factor,
        final_div_factor=cycle.final_div_factor,
    )
    rates = []
    for _ in range(total_steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


@pytest.mark.parametrize(
    ("steps_per_epoch", "epochs", "cycle"),
    [
        (10, 3, OneCycle()),
        (469, 2, OneCycle(pct_start=0.25, div_factor=10.0, final_div_factor=100.0)),
        (7, 5, OneCycle(pct_start=0.5, anneal="linear")),
        (3, 1, OneCycle(pct_start=0.1)),  # a first phase shorter than one step
    ],
)
def test_onecycle_matches_torch_step_by_step(steps_per_epoch, epochs, cycle):
    total = steps_per_epoch * epochs
    ours = [learning_rate(0.02, step, steps_per_epoch, epochs, schedule="onecycle", cycle=cycle) for step in range(total)]
    np.testing.assert_allclose(ours, torch_one_cycle_rates(0.02, total, cycle), rtol=1e-12, atol=0)


def test_onecycle_shape():
    """Starts at max/div, peaks at max at the end of phase 1, ends at max/div/final_div, and stays there."""
    cycle = OneCycle(pct_start=0.3, div_factor=25.0, final_div_factor=1e4)
    assert one_cycle_lr(0.1, 0, 100, cycle) == pytest.approx(0.1 / 25, rel=1e-15)
    assert one_cycle_lr(0.1, 29, 100, cycle) == pytest.approx(0.1, rel=1e-15)
    assert one_cycle_lr(0.1, 99, 100, cycle) == pytest.approx(0.1 / 25 / 1e4, rel=1e-12)
    assert one_cycle_lr(0.1, 150, 100, cycle) == pytest.approx(0.1 / 25 / 1e4, rel=1e-12)  # past the end: the floor
    rates = [one_cycle_lr(0.1, step, 100, cycle) for step in range(100)]
    assert rates.index(max(rates)) == 29
    assert all(a < b for a, b in zip(rates[:29], rates[1:30], strict=True))
    assert all(a > b for a, b in zip(rates[29:-1], rates[30:], strict=True))


# ---------------------------------------------------------------- clipping


def test_clip_grad_norm_scales_to_max_norm():
    grads = {"a.weight": np.array([3.0, 0.0]), "a.bias": np.array([[0.0], [4.0]])}  # global norm 5
    before = clip_grad_norm(grads, 1.0)
    assert before == pytest.approx(5.0)
    total = math.sqrt(sum(float(np.sum(g**2)) for g in grads.values()))
    assert total == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(grads["a.weight"], [0.6, 0.0], rtol=1e-5)
    np.testing.assert_allclose(grads["a.bias"], [[0.0], [0.8]], rtol=1e-5)


def test_clip_grad_norm_leaves_small_gradients_alone():
    grads = {"w.weight": np.array([0.3, -0.4])}
    assert clip_grad_norm(grads, 1.0) == pytest.approx(0.5)
    np.testing.assert_array_equal(grads["w.weight"], [0.3, -0.4])


def test_clip_grad_norm_keeps_dtype_and_direction():
    rng = np.random.default_rng(0)
    grads = {"x.weight": rng.standard_normal((4, 3)).astype(np.float32)}
    direction = grads["x.weight"] / np.linalg.norm(grads["x.weight"])
    clip_grad_norm(grads, 0.1)
    assert grads["x.weight"].dtype == np.float32
    np.testing.assert_allclose(grads["x.weight"] / np.linalg.norm(grads["x.weight"]), direction, rtol=1e-5)


# ---------------------------------------------------------------- L2 (notes 001)


def test_l2_only_touches_weights():
    assert is_weight("conv1.weight") and is_weight("fc.weight")
    assert not is_weight("conv1.bias")


def test_l2_penalty_value():
    """½λ Σ w² over weights only."""
    params = {"a.weight": np.array([1.0, 2.0]), "a.bias": np.array([10.0]), "b.weight": np.array([[3.0]])}
    assert l2_penalty(params, 0.1) == pytest.approx(0.5 * 0.1 * (1 + 4 + 9))
    assert l2_penalty(params, 0.0) == 0.0


def test_add_l2_gradient_is_the_derivative_of_the_penalty():
    """λw, checked against central differences of l2_penalty."""
    rng = np.random.default_rng(1)
    params = {"a.weight": rng.standard_normal((2, 3)), "a.bias": rng.standard_normal(2)}
    grads = {name: np.zeros_like(value) for name, value in params.items()}
    add_l2_gradient(params, grads, 0.3)
    eps = 1e-6
    for name, value in params.items():
        numeric = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            original = value[index]
            value[index] = original + eps
            plus = l2_penalty(params, 0.3)
            value[index] = original - eps
            minus = l2_penalty(params, 0.3)
            value[index] = original
            numeric[index] = (plus - minus) / (2 * eps)
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-7, atol=1e-10, err_msg=name)
    np.testing.assert_array_equal(grads["a.bias"], 0.0)


def test_zero_weight_decay_adds_nothing():
    grads = {"a.weight": np.array([1.0])}
    add_l2_gradient({"a.weight": np.array([5.0])}, grads, 0.0)
    np.testing.assert_array_equal(grads["a.weight"], [1.0])


# ---------------------------------------------------------------- update rules, by hand


def test_sgd_step():
    params = {"w.weight": np.array([1.0, -2.0])}
    SGD(0.1).step(params, {"w.weight": np.array([0.5, 0.25])})
    np.testing.assert_allclose(params["w.weight"], [0.95, -2.025], rtol=1e-15)


def test_momentum_and_nesterov_steps():
    """v ← μv + g (v₁ = g); heavy ball w ← w − ηv, Nesterov w ← w − η(g + μv)."""
    g1, g2 = np.array([1.0]), np.array([2.0])
    heavy, nesterov = {"w.weight": np.array([0.0])}, {"w.weight": np.array([0.0])}
    heavy_opt, nesterov_opt = Momentum(0.1, 0.9), Momentum(0.1, 0.9, nesterov=True)
    for g in (g1, g2):
        heavy_opt.step(heavy, {"w.weight": g})
        nesterov_opt.step(nesterov, {"w.weight": g})
    v1, v2 = 1.0, 0.9 * 1.0 + 2.0
    assert heavy["w.weight"][0] == pytest.approx(-0.1 * v1 - 0.1 * v2, rel=1e-14)
    assert nesterov["w.weight"][0] == pytest.approx(-0.1 * (1.0 + 0.9 * v1) - 0.1 * (2.0 + 0.9 * v2), rel=1e-14)


def test_adam_steps_by_hand():
    """m̂ = m/(1 − β1^t), v̂ = v/(1 − β2^t), w ← w − η m̂/(√v̂ + ε)."""
    beta1, beta2, eps, lr = 0.9, 0.999, 1e-8, 0.01
    w = np.array([0.5, -1.0])
    params = {"w.weight": w.copy()}
    optimizer = Adam(lr, (beta1, beta2), eps)
    m = v = np.zeros(2)
    for t, g in enumerate([np.array([0.1, -0.3]), np.array([0.2, 0.4]), np.array([-0.5, 0.05])], start=1):
        optimizer.step(params, {"w.weight": g})
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        w = w - lr * (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + eps)
        np.testing.assert_allclose(params["w.weight"], w, rtol=1e-12)


def test_first_adam_step_moves_each_weight_by_about_lr():
    params = {"w.weight": np.zeros(3)}
    Adam(0.01).step(params, {"w.weight": np.array([1e-3, -5.0, 200.0])})
    np.testing.assert_allclose(params["w.weight"], [-0.01, 0.01, -0.01], rtol=1e-4)


def test_optimizers_keep_float32():
    for name in OPTIMIZERS:
        params = {"w.weight": np.ones(4, dtype=np.float32)}
        optimizer = make_optimizer(name, 0.1)
        for _ in range(2):
            optimizer.step(params, {"w.weight": np.full(4, 0.5, dtype=np.float32)})
        assert params["w.weight"].dtype == np.float32, name
        assert all(state.dtype == np.float32 for state in optimizer.state.values()), name


def test_make_optimizer_builds_each_kind_and_rejects_unknown():
    assert isinstance(make_optimizer("sgd", 0.1), SGD)
    assert isinstance(make_optimizer("momentum", 0.1), Momentum) and not make_optimizer("momentum", 0.1).nesterov
    assert make_optimizer("nesterov", 0.1).nesterov
    assert isinstance(make_optimizer("adam", 0.1), Adam)
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        make_optimizer("rmsprop", 0.1)


# ---------------------------------------------------------------- state save / load


def random_problem(seed: int) -> tuple[dict[str, np.ndarray], list[dict[str, np.ndarray]]]:
    """Parameters and a sequence of 6 gradient dicts."""
    rng = np.random.default_rng(seed)
    params = {"conv1.weight": rng.standard_normal((2, 1, 3, 3)), "conv1.bias": rng.standard_normal(2)}
    grads = [{name: rng.standard_normal(p.shape) for name, p in params.items()} for _ in range(6)]
    return params, grads


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_state_round_trip_continues_identically(name, tmp_path):
    """Run 3 steps, save the state (through an .npz file, as a checkpoint would), load it into a fresh
    optimizer, run 3 more: bit-identical to 6 uninterrupted steps."""
    params, grads = random_problem(7)
    straight = {k: v.copy() for k, v in params.items()}
    uninterrupted = make_optimizer(name, 0.05)
    for g in grads:
        uninterrupted.step(straight, {k: v.copy() for k, v in g.items()})

    resumed = {k: v.copy() for k, v in params.items()}
    first = make_optimizer(name, 0.05)
    for g in grads[:3]:
        first.step(resumed, {k: v.copy() for k, v in g.items()})
    np.savez(tmp_path / "optimizer.npz", **first.state_arrays())
    del first
    with np.load(tmp_path / "optimizer.npz") as saved:
        second = make_optimizer(name, 0.05)
        second.load_state_arrays(dict(saved))
    assert second.steps == 3
    for g in grads[3:]:
        second.step(resumed, {k: v.copy() for k, v in g.items()})

    for key in params:
        assert resumed[key].tobytes() == straight[key].tobytes(), (name, key)
    assert second.steps == uninterrupted.steps == 6


def test_saved_state_is_a_copy():
    """state_arrays() is a snapshot: later steps must not change what was saved."""
    params, grads = random_problem(8)
    optimizer = make_optimizer("adam", 0.01)
    optimizer.step(params, grads[0])
    saved = optimizer.state_arrays()
    snapshot = {k: np.array(v, copy=True) for k, v in saved.items()}
    optimizer.step(params, grads[1])
    for key, value in saved.items():
        np.testing.assert_array_equal(value, snapshot[key])


def test_adam_without_restored_step_count_would_differ():
    """Why ``steps`` is part of the state: Adam's bias correction depends on it."""
    params, grads = random_problem(9)
    optimizer = make_optimizer("adam", 0.05)
    for g in grads[:3]:
        optimizer.step(params, g)
    state = optimizer.state_arrays()
    with_steps, without_steps = {k: v.copy() for k, v in params.items()}, {k: v.copy() for k, v in params.items()}
    good, bad = make_optimizer("adam", 0.05), make_optimizer("adam", 0.05)
    good.load_state_arrays(state)
    bad.load_state_arrays({k: v for k, v in state.items() if k != "steps"})
    good.step(with_steps, grads[3])
    bad.step(without_steps, grads[3])
    assert not np.array_equal(with_steps["conv1.weight"], without_steps["conv1.weight"])
