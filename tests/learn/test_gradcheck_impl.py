"""``cnn gradcheck --impl FILE.py``: a learner's own backward passes, checked tensor by tensor.

The learner files are the skeleton from ``cnn explain --exercise conv`` with the TODOs filled
in: once correctly, and three times with the mistakes learners make most.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cnn_cli.learn.explain import write_exercise
from cnn_cli.learn.impl_check import check_learner_file
from tests.support.cli import EXIT_BAD_INPUT, EXIT_FAULT, error_line, invoke_cli, run_cli

CONV_SOLUTION = """
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dx_pad = np.zeros_like(x_pad)
    _, _, k_h, k_w = w.shape
    _, _, out_h, out_w = grad_out.shape
    for i in range(out_h):
        for j in range(out_w):
            rows = slice(i * stride, i * stride + k_h)
            cols = slice(j * stride, j * stride + k_w)
            g = grad_out[:, :, i, j]  # (N, C_out)
            dw += np.tensordot(g, x_pad[:, :, rows, cols], axes=([0], [0]))
            dx_pad[:, :, rows, cols] += np.tensordot(g, w, axes=([1], [0]))
    db = grad_out.sum(axis=(0, 2, 3))
    dx = dx_pad[:, :, pad : pad + x.shape[2], pad : pad + x.shape[3]]
    return dx, dw, db
"""
RELU_SOLUTION = """
    dx = grad_out * (x > 0)
    return dx
"""
POOL_SOLUTION = """
    _, _, out_h, out_w = grad_out.shape
    for i in range(out_h):
        for j in range(out_w):
            window = x[:, :, i * stride : i * stride + size, j * stride : j * stride + size]
            winner = window == window.max(axis=(2, 3), keepdims=True)
            dx[:, :, i * stride : i * stride + size, j * stride : j * stride + size] += winner * grad_out[:, :, i, j][:, :, None, None]
    return dx
"""


def learner_file(tmp_path: Path, name: str = "mine.py", **replacements: str) -> Path:
    """The exercise skeleton with every TODO filled in (then ``replacements`` applied: old=new)."""
    path = write_exercise("conv", tmp_path / name)
    text = path.read_text(encoding="utf-8")
    text = text.replace(
        '    # TODO: fill in dx, dw and db.\n    raise NotImplementedError("conv2d_backward: fill me in")\n    return dx, dw, db\n',
        CONV_SOLUTION,
    )
    text = text.replace('    # TODO\n    raise NotImplementedError("relu_backward: fill me in")\n    return dx\n', RELU_SOLUTION)
    text = text.replace('    # TODO\n    raise NotImplementedError("maxpool2d_backward: fill me in")\n    return dx\n', POOL_SOLUTION)
    assert "NotImplementedError" not in text
    for old, new in replacements.values():
        assert old in text, old
        text = text.replace(old, new)
    path.write_text(text, encoding="utf-8")
    return path


def failed(path: Path) -> set[str]:
    return {f"{r.function} {r.tensor}" for r in check_learner_file(path) if not r.passed}


def test_a_correct_learner_file_passes(tmp_path):
    path = learner_file(tmp_path)
    results = check_learner_file(path)
    assert [f"{r.function} {r.tensor}" for r in results] == [
        "conv2d_backward dx",
        "conv2d_backward dw",
        "conv2d_backward db",
        "relu_backward dx",
        "maxpool2d_backward dx",
    ]
    assert all(r.passed for r in results), results
    assert all(r.vs_cnn < 1e-8 for r in results)
    outcome = run_cli(["gradcheck", "--impl", path], timeout=60)
    assert outcome.code == 0, outcome.output
    assert "5/5 passed" in outcome.stdout


@pytest.mark.parametrize(
    ("mistake", "wrong"),
    [
        # col2im with = : overlapping windows (3x3 kernel, stride 2) overwrite each other
        (("dx_pad[:, :, rows, cols] += np.tensordot", "dx_pad[:, :, rows, cols] = np.tensordot"), {"conv2d_backward dx"}),
        # the bias gradient averaged over the batch instead of summed
        (("db = grad_out.sum(axis=(0, 2, 3))", "db = grad_out.sum(axis=(2, 3)).mean(axis=0)"), {"conv2d_backward db"}),
        # ReLU without its mask
        (("dx = grad_out * (x > 0)", "dx = grad_out.copy()"), {"relu_backward dx"}),
        # max-pool gradient to every input of the window
        (("+= winner * grad_out", "+= np.ones_like(winner) * grad_out"), {"maxpool2d_backward dx"}),
    ],
)
def test_typical_mistakes_fail_with_the_right_tensor_named(tmp_path, mistake, wrong):
    path = learner_file(tmp_path, mistake=mistake)
    assert failed(path) == wrong
    outcome = invoke_cli(["gradcheck", "--impl", path], timeout=60)
    assert outcome.code == EXIT_FAULT
    assert f"wrong: {', '.join(sorted(wrong))}" in outcome.stdout


def test_the_untouched_skeleton_says_what_is_left_to_write(tmp_path):
    path = write_exercise("conv", tmp_path / "todo.py")
    results = check_learner_file(path)
    assert not any(r.passed for r in results)
    assert all("not written yet" in r.message for r in results)


def test_a_wrong_forward_is_reported_before_any_gradient(tmp_path):
    path = learner_file(tmp_path, mistake=("out = np.maximum(x, 0)", "out = np.abs(x)"))
    results = [r for r in check_learner_file(path) if r.function.startswith("relu")]
    assert [(r.function, r.tensor, r.passed) for r in results] == [("relu_forward", "out", False)]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "no such file"),
        ("def broken(:\n", "syntax error"),
        ("import numpy\n", "defines none of"),
        ("raise ValueError('x')\n", "ValueError"),
    ],
)
def test_bad_learner_files_are_one_line_errors(tmp_path, content, fragment):
    path = tmp_path / "learner.py"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    error_line(invoke_cli(["gradcheck", "--impl", path]), EXIT_BAD_INPUT, fragment)
