"""``cnn gradcheck --impl FILE.py``: a learner's own backward passes, checked tensor by tensor.

The learner files are the reference solutions of ``cnn exercise`` (tests/learn/solutions/), put
together in one file as a learner who did three exercises would, then broken the way learners
break them. The learner's code runs in a process of its own, through the same runner as
``cnn exercise check``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cnn_cli.learn.impl_check import check_learner_file
from tests.learn.wrong_solutions import SOLUTIONS
from tests.support.cli import EXIT_BAD_INPUT, EXIT_FAULT, error_line, invoke_cli, run_cli

TIMEOUT = 30  # seconds per run of the learner's file: generous, for a loaded test machine


def learner_file(tmp_path: Path, *replacements: tuple[str, str], names=("conv2d", "relu", "maxpool2d")) -> Path:
    """The reference solutions of ``names`` in one file, with each (old, new) replacement applied."""
    text = "\n\n".join((SOLUTIONS / f"{name}.py").read_text(encoding="utf-8") for name in names)
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "mine.py"
    path.write_text(text, encoding="utf-8")
    return path


def failed(path: Path) -> set[str]:
    return {f"{r.function} {r.tensor}" for r in check_learner_file(path, timeout=TIMEOUT) if not r.passed}


def test_a_correct_learner_file_passes(tmp_path):
    path = learner_file(tmp_path)
    results = check_learner_file(path, timeout=TIMEOUT)
    assert [f"{r.function} {r.tensor}" for r in results] == [
        "conv2d_backward dx",
        "conv2d_backward dw",
        "conv2d_backward db",
        "maxpool2d_backward dx",
        "relu_backward dx",
    ]
    assert all(r.passed for r in results), results
    assert all(r.vs_cnn < 1e-8 for r in results)
    outcome = run_cli(["gradcheck", "--impl", path], timeout=120)
    assert outcome.code == 0, outcome.output
    assert "5/5 passed" in outcome.stdout


@pytest.mark.parametrize(
    ("mistake", "wrong"),
    [
        # col2im with = : overlapping windows (3x3 kernel, stride 2) overwrite each other
        (("dx_pad[:, channels, rows, cols] += upstream", "dx_pad[:, channels, rows, cols] = upstream"), {"conv2d_backward dx"}),
        # the bias gradient averaged over the batch instead of summed
        (("db = grad_out.sum(axis=(0, 2, 3))", "db = grad_out.sum(axis=(2, 3)).mean(axis=0)"), {"conv2d_backward db"}),
        # ReLU without its mask
        (("dx = grad_out * (x > 0)", "dx = grad_out.copy()"), {"relu_backward dx"}),
        # the winner's flat index unravelled with row and column swapped
        (("a, b = np.divmod(winner, size)", "b, a = np.divmod(winner, size)"), {"maxpool2d_backward dx"}),
    ],
)
def test_typical_mistakes_fail_with_the_right_tensor_named(tmp_path, mistake, wrong):
    path = learner_file(tmp_path, mistake)
    assert failed(path) == wrong
    outcome = invoke_cli(["gradcheck", "--impl", path], timeout=120)
    assert outcome.code == EXIT_FAULT
    assert f"wrong: {', '.join(sorted(wrong))}" in outcome.stdout
    assert "cnn exercise check" in outcome.stdout


def test_every_exercise_of_the_table_is_checked(tmp_path):
    """Not just conv, ReLU and max-pool: any function of the learner table, here a loss and the L2 update."""
    path = learner_file(tmp_path, names=("softmax_cross_entropy", "l2_update", "dense"))
    results = check_learner_file(path, timeout=TIMEOUT)
    assert [f"{r.function} {r.tensor}" for r in results][:4] == [
        "dense_backward dx",
        "dense_backward dw",
        "dense_backward db",
        "softmax_cross_entropy grad_logits",
    ]
    assert all(r.passed for r in results), results


def test_the_untouched_skeleton_says_what_is_left_to_write(tmp_path):
    path = tmp_path / "todo.py"
    outcome = invoke_cli(["exercise", "start", "relu", "-o", path])
    assert outcome.code == 0, outcome.output
    results = check_learner_file(path, timeout=TIMEOUT)
    assert len(results) == 1 and not results[0].passed
    assert "not written yet" in results[0].message


def test_a_wrong_forward_is_reported_before_any_gradient(tmp_path):
    path = learner_file(tmp_path, ("out = np.maximum(x, 0)", "out = np.abs(x)"))
    results = [r for r in check_learner_file(path, timeout=TIMEOUT) if r.function.startswith("relu")]
    assert [(r.function, r.tensor, r.passed) for r in results] == [("relu_forward", "out", False)]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("def relu_backward(:\n", "does not parse: line 1"),
        ("raise ValueError('at import')\ndef relu_backward(g, c):\n    return g\n", "importing mine.py raised ValueError: at import"),
        ("import sys\nsys.exit(0)\ndef relu_backward(g, c):\n    return g\n", "called sys.exit(0)"),
    ],
)
def test_learner_code_that_fails_is_a_failed_row_not_bad_input(tmp_path, content, fragment):
    """The learner's own code failing (even at import) is their answer failing: exit 1, never 0."""
    path = tmp_path / "mine.py"
    path.write_text(content, encoding="utf-8")
    outcome = invoke_cli(["gradcheck", "--impl", path], timeout=120)
    assert outcome.code == EXIT_FAULT, outcome.output
    assert fragment in outcome.stdout
    assert "Traceback" not in outcome.output


@pytest.mark.parametrize(("content", "fragment"), [(None, "Python file not found"), ("import numpy\n", "defines none of")])
def test_bad_learner_files_are_one_line_errors(tmp_path, content, fragment):
    path = tmp_path / "learner.py"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    error_line(invoke_cli(["gradcheck", "--impl", path]), EXIT_BAD_INPUT, fragment)
