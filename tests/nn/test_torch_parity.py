"""Every layer and loss against PyTorch autograd in float64, and the full 6-conv model.

For each layer type, N_CONFIGS random configurations (a seeded generator, so the
same ones every run) compare the forward output and every gradient (input,
weight, bias) with torch's, using a random upstream gradient. The error measure
is per tensor:

    rel err = max |ours − torch| / max |torch|

and must stay ≤ 1e-6. At the end of the module one line per layer type gives the
number of configurations and the largest error seen (a section of the terminal
summary, with or without ``-s``). For the model rows the count is the number of
comparisons (each covers the loss or every parameter).

Then notes 000's network (configs/mnist.yaml, built in float64) is copied into an
equivalent ``torch.nn.Sequential``: same loss, same gradient for every parameter,
and the same weights after 3 steps of SGD, momentum, Nesterov and Adam with
weight decay.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnn_cli.layers import (
    AvgPool2D,
    Conv2D,
    Dense,
    Flatten,
    LeakyReLU,
    MaxPool2D,
    Padding,
    ReLU,
    Sigmoid,
    Tanh,
)
from cnn_cli.model.network import Loss, Model, build_model
from cnn_cli.nn.losses import binary_cross_entropy_with_logits, softmax_cross_entropy
from cnn_cli.nn.optim import add_l2_gradient, l2_penalty, make_optimizer
from tests.support import reference as ref

N_CONFIGS = 60
MAX_REL_ERROR = 1e-6
F64 = np.float64

# layer type -> (configurations checked, largest relative error seen)
SEEN: dict[str, tuple[int, float]] = {}


class _ParitySummary:
    """A tiny pytest plugin: writes the per-layer-type summary into the terminal summary."""

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not SEEN:
            return
        terminalreporter.section("torch parity (float64, rel err = max|ours - torch| / max|torch|)")
        for kind, (count, worst) in SEEN.items():
            unit = "checks " if kind.startswith("mnist") else "configs"  # model rows count comparisons
            terminalreporter.write_line(f"{kind:<22} {count:>4} {unit}  max rel err {worst:.2e}")


@pytest.fixture(scope="module", autouse=True)
def parity_summary(request):
    """Register the summary once; it is printed at the end of the session, with or without -s."""
    plugin_name = "cnn-torch-parity-summary"
    if request.config.pluginmanager.get_plugin(plugin_name) is None:
        request.config.pluginmanager.register(_ParitySummary(), plugin_name)
    yield


def rel_err(ours: np.ndarray | float, theirs: torch.Tensor | float) -> float:
    """max |ours − torch| / max |torch| over one tensor (0 when both are all zero)."""
    expected = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else np.asarray(theirs)
    ours = np.asarray(ours, dtype=np.float64)
    if ours.shape != expected.shape:
        raise AssertionError(f"shape {ours.shape} != torch {expected.shape}")
    scale = float(np.max(np.abs(expected), initial=0.0))
    diff = float(np.max(np.abs(ours - expected), initial=0.0))
    return diff / scale if scale > 0 else diff


def compare(kind: str, config: str, pairs: dict[str, tuple]) -> None:
    """Record and check rel err of each (ours, torch) pair; name the config and tensor on failure."""
    errors = {name: rel_err(ours, theirs) for name, (ours, theirs) in pairs.items()}
    count, worst = SEEN.get(kind, (0, 0.0))
    SEEN[kind] = (count + 1, max(worst, *errors.values()))
    bad = {name: err for name, err in errors.items() if not err <= MAX_REL_ERROR}
    if bad:
        raise AssertionError(f"{kind} {config}: rel err above {MAX_REL_ERROR:g}: {bad}")


def t64(array: np.ndarray, grad: bool = True) -> torch.Tensor:
    return torch.tensor(array, dtype=torch.float64, requires_grad=grad)


def run_layer(layer, x: np.ndarray, upstream: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(output, dL/dx, {param: dL/dparam}) of one of our layers for L = Σ upstream · y."""
    out = layer.forward(x)
    grad_x = layer.backward(upstream, need_input_grad=True)
    return out, grad_x, dict(layer.grads)


def config_rng(kind: str, index: int) -> np.random.Generator:
    """One reproducible generator per (layer type, configuration index)."""
    return np.random.default_rng([sum(map(ord, kind)), index])


CONFIGS = range(N_CONFIGS)


# ---------------------------------------------------------------- layers


@pytest.mark.parametrize("index", CONFIGS)
def test_conv2d_matches_torch(index):
    rng = config_rng("conv2d", index)
    groups = int(rng.integers(1, 5))
    c_in, c_out = groups * int(rng.integers(1, 4)), groups * int(rng.integers(1, 4))
    kernel = tuple(int(k) for k in rng.integers(1, 5, size=2))
    stride = tuple(int(s) for s in rng.integers(1, 4, size=2))
    padding = tuple(int(p) for p in rng.integers(0, 3, size=2))
    dilation = tuple(int(d) for d in rng.integers(1, 3, size=2))
    bias = bool(rng.integers(0, 2))
    extent = [d * (k - 1) + 1 for d, k in zip(dilation, kernel, strict=True)]
    h, w = (max(1, e - 2 * p) + int(rng.integers(0, 6)) for e, p in zip(extent, padding, strict=True))
    n = int(rng.integers(1, 4))
    config = f"N={n} C={c_in}->{c_out} HW={h}x{w} k={kernel} s={stride} p={padding} d={dilation} g={groups} bias={bias}"

    layer = Conv2D("conv", c_in, c_out, kernel, stride, padding, dilation, groups, bias, rng, F64)
    if bias:
        layer.params["bias"][...] = rng.standard_normal(c_out)
    x = rng.standard_normal((n, c_in, h, w))
    out_shape = layer.forward(x).shape
    upstream = rng.standard_normal(out_shape)
    out, grad_x, grads = run_layer(layer, x, upstream)

    tx, tw = t64(x), t64(layer.params["weight"])
    tb = t64(layer.params["bias"]) if bias else None
    t_out = F.conv2d(tx, tw, tb, stride=stride, padding=padding, dilation=dilation, groups=groups)
    t_out.backward(torch.tensor(upstream))
    pairs = {"out": (out, t_out), "dx": (grad_x, tx.grad), "dw": (grads["weight"], tw.grad)}
    if bias:
        pairs["db"] = (grads["bias"], tb.grad)
    compare("conv2d", config, pairs)


def random_pool_config(rng: np.random.Generator):
    kernel = tuple(int(k) for k in rng.integers(1, 5, size=2))
    stride = tuple(int(s) for s in rng.integers(1, 4, size=2))
    padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)  # at most half the kernel, as torch requires
    h, w = (max(1, k - 2 * p) + int(rng.integers(0, 6)) for k, p in zip(kernel, padding, strict=True))
    return kernel, stride, padding, (int(rng.integers(1, 4)), int(rng.integers(1, 4)), h, w)


@pytest.mark.parametrize("index", CONFIGS)
def test_maxpool2d_matches_torch(index):
    rng = config_rng("maxpool2d", index)
    kernel, stride, padding, shape = random_pool_config(rng)
    x = rng.permutation(np.linspace(-3, 3, int(np.prod(shape)))).reshape(shape)  # tie-free
    layer = MaxPool2D("pool", kernel, stride, padding)
    upstream = rng.standard_normal(layer.forward(x).shape)
    out, grad_x, _ = run_layer(layer, x, upstream)
    tx = t64(x)
    t_out = F.max_pool2d(tx, kernel, stride, padding)
    t_out.backward(torch.tensor(upstream))
    compare("maxpool2d", f"x={shape} k={kernel} s={stride} p={padding}", {"out": (out, t_out), "dx": (grad_x, tx.grad)})


@pytest.mark.parametrize("index", CONFIGS)
def test_avgpool2d_matches_torch(index):
    rng = config_rng("avgpool2d", index)
    kernel, stride, padding, shape = random_pool_config(rng)
    x = rng.standard_normal(shape)
    layer = AvgPool2D("pool", kernel, stride, padding)
    upstream = rng.standard_normal(layer.forward(x).shape)
    out, grad_x, _ = run_layer(layer, x, upstream)
    tx = t64(x)
    t_out = F.avg_pool2d(tx, kernel, stride, padding, count_include_pad=True)
    t_out.backward(torch.tensor(upstream))
    compare("avgpool2d", f"x={shape} k={kernel} s={stride} p={padding}", {"out": (out, t_out), "dx": (grad_x, tx.grad)})


def random_shape(rng: np.random.Generator) -> tuple[int, ...]:
    return tuple(int(s) for s in rng.integers(1, 6, size=int(rng.integers(1, 5))))


ELEMENTWISE: dict[str, tuple[Callable, Callable]] = {
    # kind: (make our layer from rng, torch function given that layer)
    "relu": (lambda rng: ReLU("relu"), lambda layer: F.relu),
    "leaky_relu": (
        lambda rng: LeakyReLU("leaky", float(rng.uniform(0.0, 0.5))),
        lambda layer: lambda t: F.leaky_relu(t, layer.negative_slope),
    ),
    "sigmoid": (lambda rng: Sigmoid("sigmoid"), lambda layer: torch.sigmoid),
    "tanh": (lambda rng: Tanh("tanh"), lambda layer: torch.tanh),
}


@pytest.mark.parametrize("kind", list(ELEMENTWISE))
@pytest.mark.parametrize("index", CONFIGS)
def test_activation_matches_torch(kind, index):
    rng = config_rng(kind, index)
    make_layer, torch_fn = ELEMENTWISE[kind]
    layer = make_layer(rng)
    shape = random_shape(rng)
    if kind in ("relu", "leaky_relu"):
        # away from the kink at 0, where the derivative is a convention
        x = rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.05, 3.0, size=shape)
    else:
        x = 4 * rng.standard_normal(shape)
    upstream = rng.standard_normal(shape)
    out, grad_x, _ = run_layer(layer, x, upstream)
    tx = t64(x)
    t_out = torch_fn(layer)(tx)
    t_out.backward(torch.tensor(upstream))
    compare(kind, f"x={shape} {layer!r}", {"out": (out, t_out), "dx": (grad_x, tx.grad)})


@pytest.mark.parametrize("index", CONFIGS)
def test_dense_matches_torch(index):
    rng = config_rng("dense", index)
    n, out_features = int(rng.integers(1, 6)), int(rng.integers(1, 9))
    sample_shape = random_shape(rng)  # (F,), (C, H, W) ...: Dense flattens whatever it gets
    in_features = int(np.prod(sample_shape))
    bias = bool(rng.integers(0, 2))
    layer = Dense("fc", in_features, out_features, bias, rng, F64)
    if bias:
        layer.params["bias"][...] = rng.standard_normal(out_features)
    x = rng.standard_normal((n, *sample_shape))
    upstream = rng.standard_normal((n, out_features))
    out, grad_x, grads = run_layer(layer, x, upstream)
    tx, tw = t64(x), t64(layer.params["weight"])
    tb = t64(layer.params["bias"]) if bias else None
    t_out = F.linear(tx.reshape(n, -1), tw, tb)
    t_out.backward(torch.tensor(upstream))
    pairs = {"out": (out, t_out), "dx": (grad_x, tx.grad), "dw": (grads["weight"], tw.grad)}
    if bias:
        pairs["db"] = (grads["bias"], tb.grad)
    compare("dense", f"x={x.shape} out={out_features} bias={bias}", pairs)


@pytest.mark.parametrize("index", CONFIGS)
def test_padding_and_flatten_match_torch(index):
    rng = config_rng("padding", index)
    shape = (int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 6)), int(rng.integers(1, 6)))
    padding = (int(rng.integers(0, 3)), int(rng.integers(0, 3)))
    x = rng.standard_normal(shape)

    pad = Padding("pad", padding)
    upstream = rng.standard_normal(pad.forward(x).shape)
    out, grad_x, _ = run_layer(pad, x, upstream)
    tx = t64(x)
    t_out = F.pad(tx, (padding[1], padding[1], padding[0], padding[0]))
    t_out.backward(torch.tensor(upstream))
    compare("padding", f"x={shape} p={padding}", {"out": (out, t_out), "dx": (grad_x, tx.grad)})

    flatten = Flatten("flatten")
    upstream = rng.standard_normal((shape[0], int(np.prod(shape[1:])), 1, 1))
    out, grad_x, _ = run_layer(flatten, x, upstream)
    tx = t64(x)
    t_out = tx.flatten(1)[:, :, None, None]
    t_out.backward(torch.tensor(upstream))
    compare("flatten", f"x={shape}", {"out": (out, t_out), "dx": (grad_x, tx.grad)})


# ---------------------------------------------------------------- losses


@pytest.mark.parametrize("index", CONFIGS)
def test_softmax_cross_entropy_matches_torch(index):
    rng = config_rng("softmax_cross_entropy", index)
    n, k = int(rng.integers(1, 9)), int(rng.integers(2, 13))
    logits = float(rng.uniform(0.1, 20)) * rng.standard_normal((n, k))
    labels = rng.integers(0, k, n)
    loss, grad = softmax_cross_entropy(logits, labels)
    t_logits = t64(logits)
    t_loss = F.cross_entropy(t_logits, torch.tensor(labels))
    t_loss.backward()
    compare("softmax_cross_entropy", f"N={n} K={k}", {"loss": (loss, t_loss), "dlogits": (grad, t_logits.grad)})


@pytest.mark.parametrize("index", CONFIGS)
def test_binary_cross_entropy_matches_torch(index):
    rng = config_rng("binary_cross_entropy", index)
    n = int(rng.integers(1, 9))
    shape = (n, 1) if rng.integers(0, 2) else (n,)
    logits = float(rng.uniform(0.1, 30)) * rng.standard_normal(shape)
    targets = rng.integers(0, 2, n).astype(F64)
    loss, grad = binary_cross_entropy_with_logits(logits, targets)
    t_logits = t64(logits)
    t_loss = F.binary_cross_entropy_with_logits(t_logits, torch.tensor(targets).reshape(shape))
    t_loss.backward()
    compare("binary_cross_entropy", f"logits={shape}", {"loss": (loss, t_loss), "dlogits": (grad, t_logits.grad)})


@pytest.mark.parametrize("index", CONFIGS)
def test_sum_squared_error_matches_torch(index):
    """Through Model's Loss, which one-hot encodes the labels: SSE = mse_loss(sum) / N."""
    rng = config_rng("sum_squared_error", index)
    n, k = int(rng.integers(1, 9)), int(rng.integers(2, 13))
    outputs = rng.standard_normal((n, k, 1, 1))
    labels = rng.integers(0, k, n)
    loss, grad = Loss("sum_squared_error", k)(outputs, labels)
    t_out = t64(outputs)
    one_hot = F.one_hot(torch.tensor(labels), k).to(torch.float64)[:, :, None, None]
    t_loss = F.mse_loss(t_out, one_hot, reduction="sum") / n
    t_loss.backward()
    compare("sum_squared_error", f"N={n} K={k}", {"loss": (loss, t_loss), "doutputs": (grad, t_out.grad)})


# ---------------------------------------------------------------- the loop references against torch


@pytest.mark.parametrize("index", range(12))
def test_loop_reference_matches_torch(index):
    """The slow references are the yardstick for the fast code, so they answer to torch too."""
    rng = config_rng("reference", index)
    groups = int(rng.integers(1, 3))
    kernel = tuple(int(k) for k in rng.integers(1, 4, size=2))
    stride = tuple(int(s) for s in rng.integers(1, 3, size=2))
    padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
    dilation = tuple(int(d) for d in rng.integers(1, 3, size=2))
    x = rng.standard_normal((2, 2 * groups, 6, 5))
    weight = rng.standard_normal((2 * groups, 2, *kernel))
    bias = rng.standard_normal(2 * groups)
    geometry = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    out = ref.conv2d_forward(x, weight, bias, **geometry)
    upstream = rng.standard_normal(out.shape)
    grad_x, grad_w, grad_b = ref.conv2d_backward(x, weight, upstream, True, **geometry)
    tx, tw, tb = t64(x), t64(weight), t64(bias)
    t_out = F.conv2d(tx, tw, tb, **geometry)
    t_out.backward(torch.tensor(upstream))
    for ours, theirs in ((out, t_out), (grad_x, tx.grad), (grad_w, tw.grad), (grad_b, tb.grad)):
        assert rel_err(ours, theirs) <= 1e-12

    pooled = rng.permutation(np.linspace(-1, 1, 60)).reshape(1, 3, 4, 5)
    pool_up = None
    for ref_forward, torch_pool in (
        (ref.maxpool2d_forward, lambda t: F.max_pool2d(t, kernel, stride, padding)),
        (ref.avgpool2d_forward, lambda t: F.avg_pool2d(t, kernel, stride, padding, count_include_pad=True)),
    ):
        tp = t64(pooled)
        t_out = torch_pool(tp)
        pool_up = rng.standard_normal(tuple(t_out.shape))
        t_out.backward(torch.tensor(pool_up))
        ours = ref_forward(pooled, kernel, stride, padding)
        if ref_forward is ref.maxpool2d_forward:
            grad = ref.maxpool2d_backward(pooled, pool_up, kernel, stride, padding)
        else:
            grad = ref.avgpool2d_backward(pooled.shape, pool_up, kernel, stride, padding)
        assert rel_err(ours, t_out) <= 1e-12
        assert rel_err(grad, tp.grad) <= 1e-12


# ---------------------------------------------------------------- the full 6-conv model


def to_torch(model: Model) -> tuple[nn.Sequential, dict[str, nn.Parameter]]:
    """An equivalent torch model with our weights copied in, and our dotted names -> its parameters."""
    modules: list[nn.Module] = []
    by_name: dict[str, nn.Parameter] = {}
    for layer in model.layers:
        if isinstance(layer, Conv2D):
            module = nn.Conv2d(
                layer.in_channels,
                layer.out_channels,
                layer.kernel_size,
                layer.stride,
                layer.padding,
                layer.dilation,
                layer.groups,
                bias="bias" in layer.params,
                dtype=torch.float64,
            )
        elif isinstance(layer, Dense):
            module = nn.Linear(layer.in_features, layer.out_features, "bias" in layer.params, dtype=torch.float64)
            modules.append(nn.Flatten())
        elif isinstance(layer, ReLU):
            module = nn.ReLU()
        elif isinstance(layer, Flatten):
            modules.append(nn.Flatten())
            module = nn.Unflatten(1, (int(np.prod(layer.input_shape)), 1, 1))  # ours keeps (N, F, 1, 1)
        else:
            raise NotImplementedError(f"no torch twin for {layer!r}")
        with torch.no_grad():
            for key, value in layer.params.items():
                parameter = getattr(module, key)
                parameter.copy_(torch.from_numpy(value))
                by_name[f"{layer.name}.{key}"] = parameter
        modules.append(module)
    return nn.Sequential(*modules), by_name


def mnist_batch(n: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Image-like input in [0, 1] (N, 1, 28, 28) and labels (N,)."""
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, 28, 28)), rng.integers(0, 10, n)


def test_mnist_model_loss_and_every_gradient_match_torch():
    model = build_model("mnist", dtype="float64")
    torch_model, by_name = to_torch(model)
    assert set(by_name) == set(model.params)
    x, labels = mnist_batch()

    logits = model.forward(x, training=True)
    loss, grad_logits = model.loss(logits, labels)
    grad_input = model.backward(grad_logits, need_input_grad=True)

    tx = t64(x)
    t_logits = torch_model(tx)
    t_loss = F.cross_entropy(t_logits.flatten(1), torch.tensor(labels))
    t_loss.backward()

    pairs = {"logits": (logits, t_logits), "loss": (loss, t_loss), "input": (grad_input, tx.grad)}
    pairs.update({name: (model.grads[name], parameter.grad) for name, parameter in by_name.items()})
    compare("mnist model", "loss + all gradients", pairs)
    assert len(pairs) == 3 + 12  # 6 convs x (weight, bias)


def test_mnist_l2_gradient_matches_torch_autograd_of_the_penalised_loss():
    """Notes 001: L = data loss + ½λΣw² over weights only; autograd of that L equals our grads after add_l2_gradient."""
    weight_decay = 0.05
    model = build_model("mnist", dtype="float64")
    torch_model, by_name = to_torch(model)
    x, labels = mnist_batch(seed=1)

    data_loss, grad_logits = model.loss(model.forward(x, training=True), labels)
    model.backward(grad_logits)
    grads = model.grads
    add_l2_gradient(model.params, grads, weight_decay)
    total = data_loss + l2_penalty(model.params, weight_decay)

    t_loss = F.cross_entropy(torch_model(t64(x, grad=False)).flatten(1), torch.tensor(labels))
    penalty = sum((p**2).sum() for name, p in by_name.items() if name.endswith(".weight"))
    t_total = t_loss + 0.5 * weight_decay * penalty
    t_total.backward()

    pairs = {"total loss": (total, t_total)}
    pairs.update({name: (grads[name], parameter.grad) for name, parameter in by_name.items()})
    compare("mnist model", "L2-penalised loss", pairs)


TORCH_OPTIMIZERS = {
    "sgd": (0.05, lambda groups, lr: torch.optim.SGD(groups, lr=lr)),
    "momentum": (0.05, lambda groups, lr: torch.optim.SGD(groups, lr=lr, momentum=0.9)),
    "nesterov": (0.05, lambda groups, lr: torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True)),
    "adam": (1e-3, lambda groups, lr: torch.optim.Adam(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8)),
}


@pytest.mark.parametrize("name", list(TORCH_OPTIMIZERS))
def test_mnist_weights_after_three_optimizer_steps_match_torch(name):
    """Three steps with weight decay λ = 0.01. Ours applies L2 to ``.weight`` only, so torch gets two groups."""
    weight_decay, steps = 0.01, 3
    lr, make_torch_optimizer = TORCH_OPTIMIZERS[name]
    model = build_model("mnist", dtype="float64")
    torch_model, by_name = to_torch(model)
    initial = {key: value.copy() for key, value in model.params.items()}
    optimizer = make_optimizer(name, lr)
    torch_optimizer = make_torch_optimizer(
        [
            {"params": [p for key, p in by_name.items() if key.endswith(".weight")], "weight_decay": weight_decay},
            {"params": [p for key, p in by_name.items() if not key.endswith(".weight")], "weight_decay": 0.0},
        ],
        lr,
    )

    for step in range(steps):
        x, labels = mnist_batch(seed=10 + step)
        loss, grad_logits = model.loss(model.forward(x, training=True), labels)
        model.backward(grad_logits)
        grads = model.grads
        add_l2_gradient(model.params, grads, weight_decay)
        optimizer.step(model.params, grads)

        torch_optimizer.zero_grad()
        t_loss = F.cross_entropy(torch_model(t64(x, grad=False)).flatten(1), torch.tensor(labels))
        t_loss.backward()
        torch_optimizer.step()
        compare(f"mnist {name} steps", f"loss at step {step}", {"loss": (loss, t_loss)})

    pairs = {key: (model.params[key], parameter) for key, parameter in by_name.items()}
    compare(f"mnist {name} steps", f"weights after {steps} steps", pairs)
    moved = max(float(np.max(np.abs(model.params[key] - initial[key]))) for key in initial)
    assert moved > 1e-4, "the optimizer did not move the weights; the comparison would be vacuous"
