"""Batch-parallel kernels give bit-identical results for every thread count."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from cnn_cli.model.network import build_model
from cnn_cli.nn import threads
from cnn_cli.nn.activations import relu, relu_backward, relu_forward
from cnn_cli.nn.conv import conv2d_backward, conv2d_forward
from cnn_cli.nn.optim import Adam
from cnn_cli.nn.pool import maxpool2d_backward, maxpool2d_forward


@pytest.mark.parametrize("n, parts", [(1, 2), (2, 2), (5, 2), (64, 3), (7, 16), (10, 1)])
def test_batch_slices_cover_the_batch_once(n, parts):
    slices = threads.batch_slices(n, parts)
    covered = np.concatenate([np.arange(n)[s] for s in slices])
    assert covered.tolist() == list(range(n))
    assert len(slices) == min(parts, n)
    sizes = [s.stop - s.start for s in slices]
    assert max(sizes) - min(sizes) <= 1


def test_large_jobs_run_on_several_threads(monkeypatch):
    monkeypatch.setenv("CNN_NUM_THREADS", "3")
    seen = []
    lock = threading.Lock()
    all_started = threading.Barrier(3, timeout=10)  # passes only if three slices run at once

    def work(part):
        with lock:
            seen.append((threading.get_ident(), part))
        all_started.wait()

    threads.for_each_slice(work, 30, threads.MIN_ELEMENTS_TO_SPLIT)
    assert sorted(s.start for _, s in seen) == [0, 10, 20]
    assert len({ident for ident, _ in seen}) == 3


def test_small_jobs_and_one_thread_stay_on_the_caller(monkeypatch):
    calls = []
    threads.for_each_slice(lambda part: calls.append((threading.get_ident(), part)), 30, 10)
    monkeypatch.setenv("CNN_NUM_THREADS", "1")
    threads.for_each_slice(lambda part: calls.append((threading.get_ident(), part)), 30, 1 << 30)
    assert calls == [(threading.get_ident(), slice(0, 30))] * 2


def test_errors_in_a_worker_reach_the_caller(monkeypatch):
    monkeypatch.setenv("CNN_NUM_THREADS", "2")

    def work(part):
        if part.start > 0:
            raise ValueError("bad slice")

    with pytest.raises(ValueError, match="bad slice"):
        threads.for_each_slice(work, 8, threads.MIN_ELEMENTS_TO_SPLIT)


def _with_threads(monkeypatch, count, compute):
    monkeypatch.setenv("CNN_NUM_THREADS", str(count))
    return compute()


CONV_CASES = [
    dict(c_in=16, c_out=32, k=3, stride=(2, 2), padding=(1, 1), dilation=(1, 1), groups=1, hw=14),
    dict(c_in=6, c_out=4, k=3, stride=(1, 2), padding=(2, 0), dilation=(2, 1), groups=2, hw=11),
    dict(c_in=8, c_out=8, k=1, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=8, hw=9),
    dict(c_in=24, c_out=12, k=1, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1, hw=5),
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_is_bit_identical_across_thread_counts(monkeypatch, case):
    rng = np.random.default_rng(3)
    n = 37  # odd, so slices are uneven
    x = rng.standard_normal((n, case["c_in"], case["hw"], case["hw"])).astype(np.float32)
    weight = rng.standard_normal((case["c_out"], case["c_in"] // case["groups"], case["k"], case["k"])).astype(np.float32)
    bias = rng.standard_normal(case["c_out"]).astype(np.float32)

    def compute():
        out, cache = conv2d_forward(x, weight, bias, case["stride"], case["padding"], case["dilation"], case["groups"])
        grad_out = np.cos(np.arange(out.size, dtype=np.float32)).reshape(out.shape)
        return (np.ascontiguousarray(out), *conv2d_backward(grad_out, cache))

    monkeypatch.setattr(threads, "MIN_ELEMENTS_TO_SPLIT", 1)
    serial = _with_threads(monkeypatch, 1, compute)
    for count in (2, 3, 5):
        parallel = _with_threads(monkeypatch, count, compute)
        for a, b in zip(serial, parallel, strict=True):
            assert a.dtype == b.dtype and np.array_equal(a, b)


def test_relu_and_maxpool_are_bit_identical_across_thread_counts(monkeypatch):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((9, 3, 8, 8)).astype(np.float32).transpose(0, 2, 3, 1).copy().transpose(0, 3, 1, 2)
    grad = rng.standard_normal(x.shape).astype(np.float32)

    def compute():
        out, mask = relu_forward(x)
        pooled, cache = maxpool2d_forward(x, (3, 3), (2, 2), (1, 1))
        return out, mask, relu_backward(grad, mask), pooled, maxpool2d_backward(np.ones_like(pooled), cache), relu(x)

    monkeypatch.setattr(threads, "MIN_ELEMENTS_TO_SPLIT", 1)
    serial = _with_threads(monkeypatch, 1, compute)
    parallel = _with_threads(monkeypatch, 4, compute)
    for a, b in zip(serial, parallel, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert np.array_equal(serial[0], np.maximum(x, 0))
    assert np.array_equal(serial[-1], serial[0])  # evaluation's mask-free ReLU gives the same values
    assert serial[0].strides == x.strides  # channels-last in, channels-last out


def test_adam_and_a_whole_training_step_are_bit_identical_across_thread_counts(monkeypatch):
    config = {
        "input_shape": [1, 12, 12],
        "layers": [
            {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
            {"type": "relu"},
            {"type": "conv2d", "out_channels": 6, "kernel_size": 3, "stride": 2},
            {"type": "relu"},
            {"type": "flatten"},
            {"type": "conv2d", "out_channels": 10, "kernel_size": 1},
        ],
    }
    rng = np.random.default_rng(5)
    x = rng.standard_normal((21, 1, 12, 12)).astype(np.float32)
    labels = rng.integers(0, 10, 21)

    def compute():
        model = build_model(config, seed=0)
        optimizer = Adam(0.01)
        for _ in range(3):
            model.loss_and_backward(x, labels)
            optimizer.step(model.params, model.grads)
        return [p.copy() for p in model.params.values()]

    monkeypatch.setattr(threads, "MIN_ELEMENTS_TO_SPLIT", 1)
    serial = _with_threads(monkeypatch, 1, compute)
    parallel = _with_threads(monkeypatch, 3, compute)
    for a, b in zip(serial, parallel, strict=True):
        assert np.array_equal(a, b)


def _fresh_python(code: str, **env: str) -> str:
    import os
    import subprocess
    import sys

    clean = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_THREAD_TIMEOUT", "CNN_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    result = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True, check=True)
    return result.stdout.split()


REPORT = "import os; from cnn_cli.nn.threads import thread_count; print(os.environ['OPENBLAS_THREAD_TIMEOUT'], thread_count())"


def test_importing_cnn_cli_first_lets_openblas_threads_sleep():
    assert _fresh_python("import cnn_cli; " + REPORT, CNN_NUM_THREADS="")[0] == "10"


def test_a_users_openblas_setting_wins():
    import os

    cpus = str(len(os.sched_getaffinity(0)))
    assert _fresh_python("import cnn_cli; " + REPORT, OPENBLAS_THREAD_TIMEOUT="20") == ["20", cpus]
    assert _fresh_python("import numpy, cnn_cli; " + REPORT, OPENBLAS_THREAD_TIMEOUT="20") == ["20", cpus]


def test_numpy_imported_first_keeps_copies_on_one_thread():
    # OpenBLAS already read its settings, so its threads spin: splitting would only fight them.
    assert _fresh_python("import numpy, cnn_cli; " + REPORT)[1] == "1"
    assert _fresh_python("import numpy, cnn_cli; " + REPORT, CNN_NUM_THREADS="3")[1] == "3"
