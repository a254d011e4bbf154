"""``cnn exercise list | start | check`` through the command line, and learner code that misbehaves.

A learner's file is foreign code. Whatever it does instead of returning (loop forever, end the
process with exit code 0, raise, return a string) must come back as a failed stage: exit 1, one
clear line naming what happened, the learner's own lines and never cnn's traceback. Bad input
(no such file, an unknown exercise) is one ``error:`` line and exit 2.
"""

from __future__ import annotations

import pytest

from cnn_cli.learn.exercises import EXERCISES, skeleton_text
from tests.learn.wrong_solutions import SOLUTIONS, WRONG, with_body
from tests.support.cli import EXIT_BAD_INPUT, EXIT_FAULT, error_line, invoke_cli, run_cli

RELU_FORWARD = "def relu_forward(x):\n    return np.maximum(x, 0), x\n\n\n"


def relu_file(tmp_path, backward_body: str, forward: str = RELU_FORWARD, top: str = ""):
    """A learner file for the relu exercise: ``top`` (module level), the forward, and a backward with ``backward_body``."""
    path = tmp_path / "mine.py"
    text = f"import os\nimport sys\n\nimport numpy as np\n{top}\n\n{forward}def relu_backward(grad_out, cache):\n{backward_body}"
    path.write_text(text, encoding="utf-8")
    return path


def test_list_names_every_exercise():
    outcome = invoke_cli(["exercise", "list"])
    assert outcome.code == 0
    assert [line.split()[0] for line in outcome.stdout.splitlines()[: len(EXERCISES)]] == list(EXERCISES)
    assert "cnn exercise start NAME" in outcome.stdout and "cnn exercise check" in outcome.stdout


def test_start_writes_the_skeleton_and_refuses_to_overwrite(tmp_path):
    outcome = run_cli(["exercise", "start", "maxpool2d"], cwd=tmp_path, timeout=60)
    assert outcome.code == 0, outcome.output
    written = tmp_path / "maxpool2d_exercise.py"
    assert written.read_text(encoding="utf-8") == skeleton_text("maxpool2d")
    assert "cnn exercise check maxpool2d_exercise.py" in outcome.stdout
    assert "cnn docs maxpool2d" in outcome.stdout
    written.write_text("# my work\n", encoding="utf-8")
    error_line(run_cli(["exercise", "start", "maxpool2d"], cwd=tmp_path, timeout=60), EXIT_BAD_INPUT, "already exists", "--force")
    assert written.read_text(encoding="utf-8") == "# my work\n"
    assert run_cli(["exercise", "start", "maxpool2d", "--force"], cwd=tmp_path, timeout=60).code == 0
    assert written.read_text(encoding="utf-8") == skeleton_text("maxpool2d")


@pytest.mark.parametrize("name", list(EXERCISES))
def test_every_skeleton_gives_the_forward_the_shapes_the_derivation_and_the_docs(name):
    text = skeleton_text(name)
    exercise = EXERCISES[name]
    for function in exercise.functions:
        assert f"def {function}(" in text
    assert "NotImplementedError" in text and "shapes" in text.lower()
    assert f"cnn docs {exercise.topic}" in text
    assert f"cnn exercise check {name}_exercise.py" in text
    assert "seeds" not in text and ".txt" not in text  # the guide is cited, never the notes' files


def test_start_with_output_and_bad_names(tmp_path):
    target = tmp_path / "my_net.py"
    assert invoke_cli(["exercise", "start", "net004", "-o", target]).code == 0
    assert "def net004_backward(cache)" in target.read_text(encoding="utf-8")
    error_line(invoke_cli(["exercise", "start", "no-such"]), EXIT_BAD_INPUT, "unknown exercise 'no-such'", "conv2d")
    error_line(invoke_cli(["exercise", "start", "relu", "-o", tmp_path]), EXIT_BAD_INPUT, "is a folder")


def test_check_a_correct_file_exits_0_as_a_real_process(tmp_path):
    outcome = run_cli(["exercise", "check", SOLUTIONS / "relu.py", "--timeout", "30"], timeout=120)
    assert outcome.code == 0, outcome.output
    assert "PASS: all 5 stages" in outcome.stdout


def test_check_a_wrong_file_exits_1_with_the_diagnosis(tmp_path):
    (wrong,) = [w for w in WRONG if (w.exercise, w.mistake) == ("maxpool2d", "ties-all")]
    path = tmp_path / "maxpool2d_exercise.py"
    path.write_text(wrong.text, encoding="utf-8")
    outcome = run_cli(["exercise", "check", path, "--timeout", "30"], timeout=120)
    assert outcome.code == EXIT_FAULT, outcome.output
    assert "equals what `maxpool-ties-all` gives" in outcome.stdout
    assert "FAIL at stage 4 of 5 (edge cases)" in outcome.stdout


def test_check_finds_every_exercise_in_a_file_or_the_one_asked_for(tmp_path):
    path = tmp_path / "both.py"
    path.write_text(
        (SOLUTIONS / "relu.py").read_text(encoding="utf-8") + "\n\n" + with_body("tanh", "    dx = grad_out * (1 - out)\n    return dx\n"),
        encoding="utf-8",
    )
    outcome = invoke_cli(["exercise", "check", path, "--timeout", "30"], timeout=120)
    assert outcome.code == EXIT_FAULT
    assert "exercise relu:" in outcome.stdout and "exercise tanh:" in outcome.stdout
    assert "1 of 2 exercises passed: relu" in outcome.stdout
    only = invoke_cli(["exercise", "check", path, "--exercise", "relu", "--timeout", "30"], timeout=120)
    assert only.code == 0 and "exercise tanh" not in only.stdout


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["exercise", "check", "no_such_file.py"], ("no_such_file.py: Python file not found",)),
        (
            ["exercise", "check", "SOLUTION", "--exercise", "maxpool2d"],
            ("defines no maxpool2d_forward or maxpool2d_backward", "--exercise relu"),
        ),
        (["exercise", "check", "SOLUTION", "--exercise", "nope"], ("--exercise: unknown exercise 'nope'",)),
        (["exercise", "check", "SOLUTION", "--timeout", "0"], ("--timeout",)),
        (["exercise", "check", "EMPTY"], ("defines none of the exercises' functions", "cnn exercise start NAME")),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(tmp_path, args, fragments):
    empty = tmp_path / "empty.py"
    empty.write_text("import numpy as np\n", encoding="utf-8")
    names = {"SOLUTION": SOLUTIONS / "relu.py", "EMPTY": empty}
    error_line(invoke_cli([names.get(a, a) for a in args]), EXIT_BAD_INPUT, *fragments)


# ---------------------------------------------------------------- learner code that does not return


@pytest.mark.parametrize(
    ("body", "top", "forward", "says"),
    [
        (
            "    while True:\n        pass\n",
            "",
            RELU_FORWARD,
            ("relu_backward did not finish within 1 s: an infinite loop?", "it was running mine.py, line 12: while True:"),
        ),
        ("    sys.exit(0)\n", "", RELU_FORWARD, ("relu_backward called sys.exit(0): your code ended the process instead of returning",)),
        ("    os._exit(0)\n", "", RELU_FORWARD, ("the process ended with exit code 0 while relu_backward was running", "os._exit()")),
        ("    return grad_out\n", "sys.exit(0)", RELU_FORWARD, ("importing mine.py called sys.exit(0)",)),
        (
            "    return helper(grad_out)\n\n\ndef helper(grad_out):\n    return grad_out[0, 0, 0, 0, 0]\n",
            "",
            RELU_FORWARD,
            (
                "relu_backward raised IndexError",
                "mine.py, line 12, in relu_backward: return helper(grad_out)",
                "mine.py, line 16, in helper: return grad_out[0, 0, 0, 0, 0]",
            ),
        ),
        (
            "    return grad_out\n",
            "",
            "def relu_forward(x):\n    return 'hello'\n\n\n",
            ("relu_forward returned a str ('hello'), not the pair (out, cache)",),
        ),
        ("    return grad_out, grad_out\n", "", RELU_FORWARD, ("relu_backward returned a tuple of 2 values; return dx itself",)),
        ("    return None\n", "", RELU_FORWARD, ("✗ is None (a missing `return`?), not an array",)),
        ("    return grad_out.astype(np.float32)\n", "", RELU_FORWARD, ("is float32: the inputs are float64",)),
    ],
    ids=["infinite-loop", "sys-exit-0", "os-exit-0", "exit-at-import", "exception", "forward-returns-str", "tuple", "none", "float32"],
)
def test_learner_code_that_misbehaves_is_a_failed_stage_never_exit_0(tmp_path, body, top, forward, says):
    path = relu_file(tmp_path, body, forward, top)
    outcome = run_cli(["exercise", "check", path, "--timeout", "1"], timeout=60)
    assert outcome.code == EXIT_FAULT, outcome.output
    assert "FAIL at stage 1 of 5 (shapes)" in outcome.stdout
    for fragment in says:
        assert fragment in outcome.stdout, f"{fragment!r} not in:\n{outcome.stdout}"
    assert "Traceback" not in outcome.output
    assert "cnn_cli" not in outcome.stdout  # the learner's own lines, none of cnn's


def test_a_file_that_does_not_parse_is_the_learners_failure(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text("def relu_backward(grad_out, cache:\n    return grad_out\n", encoding="utf-8")
    outcome = invoke_cli(["exercise", "check", path])
    assert outcome.code == EXIT_FAULT
    assert "FAIL: mine.py does not parse: line 1" in outcome.stdout


def test_help_names_the_exercises():
    assert "cnn exercise start" in invoke_cli(["--help"]).stdout
    for args in (["exercise", "--help"], ["exercise", "check", "--help"], ["exercise", "start", "--help"]):
        outcome = invoke_cli(args)
        assert outcome.code == 0 and "cnn docs" in " ".join(outcome.stdout.split()), args


def test_a_failure_names_the_case_it_happened_in(tmp_path):
    """A backward that only breaks on the batch of one (1, 3, 3): stage 4 fails on that case, with the learner's line."""
    body = "    if grad_out.shape == (1, 3, 3):\n        raise ValueError('one sample?')\n    return grad_out * (cache > 0)\n"
    outcome = invoke_cli(["exercise", "check", relu_file(tmp_path, body), "--timeout", "30"], timeout=120)
    assert outcome.code == EXIT_FAULT
    assert '[4/5] edge cases (3 cases): FAIL on "a batch of 1"' in outcome.stdout
    assert "relu_backward raised ValueError: one sample?" in outcome.stdout


def test_the_numeric_stage_can_fail_a_backward_that_does_not_belong_to_its_forward(tmp_path):
    """Central differences of the learner's own forward: a forward scaled by 1.5 and cnn's backward disagree."""
    import numpy as np

    from cnn_cli.learn.exercises import EXERCISES
    from cnn_cli.learn.exercises.check import run_stage
    from cnn_cli.learn.exercises.spec import NUMERIC

    path = relu_file(tmp_path, "    return grad_out * (cache > 0)\n", "def relu_forward(x):\n    return 1.5 * np.maximum(x, 0), x\n\n\n")
    exercise = EXERCISES["relu"]
    outcome = run_stage(exercise, NUMERIC, exercise.cases(NUMERIC, np.random.default_rng(0)), path, 30)
    text = "\n".join(outcome.lines)
    assert not outcome.passed
    assert "max rel err 2.0e-01 ✗" in text
    assert "disagrees with central differences of your own forward" in text


def test_a_slow_start_of_the_learners_process_is_not_counted_against_its_time_limit(tmp_path, monkeypatch):
    """On a busy machine Python and NumPy may take seconds to start: the --timeout counts from when the child is ready.
    Here every child sleeps longer at start-up than the time limit and its grace together; the correct code still passes."""
    slow = tmp_path / "slow_start"
    slow.mkdir()
    (slow / "sitecustomize.py").write_text("import time\n\ntime.sleep(6.5)\n", encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", str(slow))
    path = relu_file(tmp_path, "    return grad_out * (cache > 0)\n")
    outcome = invoke_cli(["exercise", "check", path, "--exercise", "relu", "--timeout", "1"], timeout=240)
    assert outcome.code == 0, outcome.output
    assert "did not finish" not in outcome.stdout
