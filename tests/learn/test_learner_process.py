"""Learner code runs out of process, under a time, memory and output limit (issue 23, category 4).

``cnn gradcheck --impl`` and ``cnn exercise check`` both run a learner's file through
cnn_cli/learn/learner_process.py (the child: learner_child.py). Whatever the learner's code
does instead of returning an answer is a failure of *their* code: exit 1, one line naming
their function and what happened, no traceback, and never a pass. The child must report a
result for every call; a process that ends without one (``os._exit(0)``) is a failure.
Every case runs the real command as a real process, bounded in time and memory.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.learn.wrong_solutions import SOLUTIONS
from tests.support.cli import EXIT_FAULT, Outcome, run_cli_bounded

FORWARD = "def relu_forward(x):\n    return np.maximum(x, 0), x\n"
BACKWARD = "def relu_backward(grad_out, cache):\n    return grad_out * (cache > 0)\n"
COMMANDS = {
    "gradcheck --impl": lambda path: ["gradcheck", "--impl", path, "--timeout", "1"],
    "exercise check": lambda path: ["exercise", "check", path, "--timeout", "1"],
}
# tests/learn/test_exercise_command.py runs each of the issue's examples through `cnn exercise check` too.


def learner_file(tmp_path: Path, forward: str = FORWARD, backward: str = BACKWARD) -> Path:
    path = tmp_path / "mine.py"
    path.write_text(f"import os\nimport sys\n\nimport numpy as np\n\n\n{forward}\n\n{backward}", encoding="utf-8")
    return path


def check(command: str, path: Path) -> Outcome:
    outcome = run_cli_bounded(COMMANDS[command](path), timeout=60)
    assert "Traceback" not in outcome.output, outcome.output
    return outcome


def backward(body: str) -> str:
    return "def relu_backward(grad_out, cache):\n" + "".join(f"    {line}\n" for line in body.splitlines())


# The issue's examples, through both commands.
EXAMPLES = {
    "a backward that loops forever": (FORWARD, backward("while True:\n    pass"), "relu_backward did not finish within 1 s"),
    "sys.exit(0)": (FORWARD, backward("sys.exit(0)"), "relu_backward called sys.exit(0)"),
    "os._exit(0)": (FORWARD, backward("os._exit(0)"), "the process ended with exit code 0 while relu_backward was running"),
    "a forward that returns a string": ("def relu_forward(x):\n    return 'hello'\n", BACKWARD, "relu_forward returned a str ('hello')"),
}


@pytest.mark.parametrize("example", list(EXAMPLES))
def test_the_issues_examples_fail_as_the_learners_code(tmp_path: Path, example: str) -> None:
    forward, backward_text, says = EXAMPLES[example]
    started = time.monotonic()
    outcome = check("gradcheck --impl", learner_file(tmp_path, forward, backward_text))
    assert outcome.code == EXIT_FAULT, outcome.output
    assert says in outcome.stdout, outcome.stdout
    assert time.monotonic() - started < 45


def test_a_correct_file_still_passes() -> None:
    outcome = check("gradcheck --impl", SOLUTIONS / "relu.py")
    assert outcome.code == 0, outcome.output
    assert "1/1 passed" in outcome.stdout


# More of the same category: each is the learner's failure, named, never a pass and never a traceback.
MORE = {
    "out is a string": ("def relu_forward(x):\n    return 'hello', x\n", BACKWARD, "relu_forward  out", "is a str ('hello'), not an array"),
    "a tuple that cannot be unpacked": (
        "class Odd(tuple):\n    def __iter__(self):\n        raise RuntimeError('no')\n\n\n"
        "def relu_forward(x):\n    return Odd((np.maximum(x, 0), x))\n",
        BACKWARD,
        "relu_forward",
        "what relu_forward returned could not be used: RuntimeError: no",
    ),
    "memory without end": (FORWARD, backward("return np.zeros(10**11)"), "relu_backward", "raised MemoryError"),
    "printing without end": (FORWARD, backward("while True:\n    print('x' * 100_000)"), "relu_backward", "File too large"),
    "killed by a signal": (FORWARD, backward("import signal\nos.kill(os.getpid(), signal.SIGKILL)"), "relu_backward", "SIGKILL"),
    "recursion without end": (FORWARD, backward("return relu_backward(grad_out, cache)"), "relu_backward", "RecursionError"),
    "sys.exit from a returned object": (
        "class Quits:\n    def __len__(self):\n        sys.exit(0)\n\n\ndef relu_forward(x):\n    return Quits()\n",
        BACKWARD,
        "relu_forward",
        "not the pair (out, cache)",
    ),
}


@pytest.mark.parametrize("case", list(MORE))
def test_more_ways_learner_code_misbehaves(tmp_path: Path, case: str) -> None:
    forward, backward_text, function, says = MORE[case]
    outcome = check("gradcheck --impl", learner_file(tmp_path, forward, backward_text))
    assert outcome.code == EXIT_FAULT, outcome.output
    row = next(line for line in outcome.stdout.splitlines() if line.startswith(function))
    assert says in row and "FAIL" in row, outcome.stdout


def test_a_runaway_recursion_shows_a_few_lines_not_a_thousand(tmp_path: Path) -> None:
    outcome = check("exercise check", learner_file(tmp_path, FORWARD, backward("return relu_backward(grad_out, cache)")))
    assert outcome.code == EXIT_FAULT
    assert "more lines of your file" in outcome.stdout and len(outcome.stdout.splitlines()) < 30, outcome.stdout


def test_what_the_learners_code_starts_is_stopped_with_it(tmp_path: Path) -> None:
    pid_file = tmp_path / "sleeper.pid"
    body = f"import subprocess\nsleeper = subprocess.Popen(['sleep', '300'])\nopen({str(pid_file)!r}, 'w').write(str(sleeper.pid))\n"
    outcome = check("gradcheck --impl", learner_file(tmp_path, FORWARD, backward(body + "return grad_out * (cache > 0)")))
    assert outcome.code == 0, outcome.output  # the answer is right: the sleeper it left behind is cnn's to clean up
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and "Z" not in _state(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists() or "Z" in _state(pid), "the learner's subprocess outlived the check"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def test_timeout_goes_with_impl_only() -> None:
    outcome = run_cli_bounded(["gradcheck", "--config", "smoke", "--timeout", "3"])
    assert outcome.code == 2 and outcome.stderr.startswith("error: --timeout goes with --impl"), outcome.output


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="process groups")
def test_no_temporary_folder_is_left_behind(tmp_path: Path) -> None:
    before = {p.name for p in Path(os.environ.get("TMPDIR", "/tmp")).glob("cnn-exercise-*")}
    check("gradcheck --impl", learner_file(tmp_path, FORWARD, backward("os._exit(0)")))
    after = {p.name for p in Path(os.environ.get("TMPDIR", "/tmp")).glob("cnn-exercise-*")}
    assert after <= before
