"""``cnn explain``: the notes' worked examples, computed live, against stored expected output.

The golden files in tests/learn/golden/ were generated once by ``cnn explain NAME`` and read
line by line against the notes (notes 000 §2.7–§2.9, 001's seesaw numbers, 003's walk-through,
004's chain rule). A change in any printed number, or in the wording, shows up as a diff here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cnn_cli.learn.exercises import skeleton_text
from cnn_cli.learn.explain import EXAMPLES
from cnn_cli.learn.explain.report import parse_matrix
from cnn_cli.nn import activations, batchnorm, conv, losses, pool
from tests.support.cli import EXIT_BAD_INPUT, error_line, invoke_cli, run_cli

GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_every_example_matches_its_golden_output(name):
    outcome = invoke_cli(["explain", name])
    assert outcome.code == 0, outcome.output
    expected = (GOLDEN / f"explain-{name}.txt").read_text(encoding="utf-8")
    assert outcome.stdout == expected
    assert "✗" not in outcome.stdout
    assert outcome.stdout.rstrip().splitlines()[-1].endswith(tuple(f"note errata: {n}" for n in range(10)))


def test_the_learners_own_matrices_match_their_golden_output():
    args = ["explain", "conv-backward", "--input", "1,2,0;3,1,1;0,2,2", "--kernel", "1,0;0,-1", "--grad", "1,2;3,4"]
    outcome = invoke_cli(args)
    assert outcome.code == 0, outcome.output
    assert outcome.stdout == (GOLDEN / "explain-conv-backward-custom.txt").read_text(encoding="utf-8")


def test_notes_numbers_and_errata_are_printed():
    out = invoke_cli(["explain"]).stdout
    assert "✓ Y[0,0] = 1·1 + 6·2 + 5·(−1) + 3·0 = 8" in out
    assert "notes 003: [[8, 7], [4, 5]]" in out and "notes 003: [[7, 5], [11, 3]]" in out
    assert "note erratum: notes 001 prints 'Data loss = 0.29'" in out and "0.673345" in out
    assert "notes 004: 15" in out


def test_list_names_every_example():
    outcome = invoke_cli(["explain", "--list"])
    assert outcome.code == 0
    assert [line.split()[0] for line in outcome.stdout.splitlines()[: len(EXAMPLES)]] == list(EXAMPLES)


def _swap_rows_forward(original):
    def broken(x, weight, bias, *args, **kwargs):
        out, cache = original(x, weight, bias, *args, **kwargs)
        return out[:, :, ::-1], cache  # output rows in the wrong order

    return broken


@pytest.mark.parametrize(
    ("module", "name", "make_broken", "example"),
    [
        (conv, "conv2d_forward", _swap_rows_forward, "cross-correlation"),
        (conv, "conv2d_backward", lambda f: lambda g, c, *a: tuple(None if v is None else v * 1.01 for v in f(g, c, *a)), "conv-backward"),
        (pool, "maxpool2d_backward", lambda f: lambda g, c: f(g, c) + 0.25 * (f(g, c) == 0), "maxpool"),
        (activations, "relu_backward", lambda f: lambda g, mask: g.copy(), "relu"),
        (losses, "softmax_cross_entropy", lambda f: lambda z, y: (f(z, y)[0], f(z, y)[1] * 2), "softmax-ce"),
        (batchnorm, "batchnorm_backward", lambda f: lambda g, c: f(g, c) + 1e-3, "batchnorm"),
        (batchnorm, "batchnorm_forward", lambda f: lambda x, *a: (f(x, *a)[0] * 1.001, f(x, *a)[1]), "batchnorm"),
        (pool, "global_avgpool_backward", lambda f: lambda g, hw: f(g, hw) * (hw[0] * hw[1]), "global-avg-pool"),
    ],
)
def test_a_broken_library_function_makes_explain_exit_1(monkeypatch, module, name, make_broken, example):
    monkeypatch.setattr(module, name, make_broken(getattr(module, name)))
    outcome = invoke_cli(["explain", example])
    assert outcome.code == 1, outcome.output
    assert "✗" in outcome.stdout
    assert "DIFFER" in outcome.stdout.splitlines()[-1]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["conv-backward", "--input", "1,2;3"], "--input"),
        (["cross-correlation", "--kernel", "1,x"], "--kernel"),
        (["conv-backward", "--grad", "1,2"], "--grad"),
        (["cross-correlation", "--input", "1,2;3,4", "--kernel", "1,2,3;4,5,6;7,8,9"], "--kernel"),
        (["l2-update", "--input", "1,2"], "l2-update"),
        (["no-such-example"], "no-such-example"),
        (["--exercise", "nothing"], "--exercise"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, fragment):
    error_line(invoke_cli(["explain", *args]), EXIT_BAD_INPUT, fragment)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["maxpool", "--kernel", "1,2;3,4"], "maxpool: --kernel is not used by this example (it takes --input and --grad)"),
        (["relu", "--kernel", "1,2;3,4"], "relu: --kernel is not used by this example"),
        (
            ["cross-correlation", "--grad", "1,2;3,4"],
            "cross-correlation: --grad is not used by this example (it takes --input and --kernel)",
        ),
        (["convolution", "--input", "1,2;3,4", "--grad", "1"], "convolution: --grad is not used"),
        (["softmax-ce", "--kernel", "1", "--grad", "1"], "softmax-ce: --kernel and --grad are not used by this example"),
    ],
)
def test_an_option_the_example_does_not_use_is_refused(args, message):
    error_line(invoke_cli(["explain", *args]), EXIT_BAD_INPUT, message)


def test_without_names_the_learners_matrices_run_the_examples_that_use_them_all():
    outcome = invoke_cli(["explain", "--kernel", "1,0;0,-1"])
    assert outcome.code == 0, outcome.output
    assert [line.split()[1] for line in outcome.stdout.splitlines() if line.startswith("== ")] == [
        "cross-correlation",
        "convolution",
        "conv-backward",
    ]


def test_seed004_prints_every_parameter_it_uses():
    out = invoke_cli(["explain", "seed004-net"]).stdout
    assert "W1 = conv1.weight[0, 0] =\n    [  0.2  −0.1   0.3 ]" in out
    assert "b1 = conv1.bias = −0.12" in out and "W2 = fc1.weight = [[0.5, −0.4, 0.3, 0.2]]" in out and "b2 = fc1.bias = −0.1" in out


def test_softmax_ce_shows_each_sample_of_the_batch():
    out = invoke_cli(["explain", "softmax-ce"]).stdout
    assert "sample 1: logits [2, 1, 0.1], target 0:" in out and "sample 2: logits [0.5, 0.5, 3], target 1:" in out
    assert "✓ L = mean of −ln p_target, N = 2" in out


def test_parse_matrix():
    np.testing.assert_array_equal(parse_matrix("1,6,2;5,3,1;7,0,4", "--input"), [[1, 6, 2], [5, 3, 1], [7, 0, 4]])
    np.testing.assert_array_equal(parse_matrix(" -1.5 , 2 ", "--grad"), [[-1.5, 2]])


def test_explain_exercise_writes_the_conv2d_skeleton_and_points_at_cnn_exercise(tmp_path):
    """The old way in still works: it writes `cnn exercise start conv2d`'s skeleton and says where exercises live now."""
    target = tmp_path / "mine.py"
    outcome = run_cli(["explain", "--exercise", "conv", "--output", target], timeout=60)
    assert outcome.code == 0, outcome.output
    assert target.read_text(encoding="utf-8") == skeleton_text("conv2d")
    assert f"cnn exercise check {target}" in outcome.stdout
    assert "cnn exercise list" in outcome.stdout
    error_line(invoke_cli(["explain", "--exercise", "conv", "--output", target]), EXIT_BAD_INPUT, "already exists")


def test_explain_list_points_at_the_exercises():
    assert "cnn exercise list" in invoke_cli(["explain", "--list"]).stdout


def test_explain_and_docs_help_name_the_docs():
    assert "cnn docs" in invoke_cli(["explain", "--help"]).stdout
