"""click's own usage errors (unknown option or command, missing or bad argument) are one line too, exit 2."""

from __future__ import annotations

import pytest

from tests.support.cli import EXIT_BAD_INPUT, error_line, run_cli


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["train", "--bogus"], ["No such option '--bogus'", "see 'cnn train --help'"]),
        (["nosuch"], ["No such command 'nosuch'", "see 'cnn --help'"]),
        (["eval", "--split", "nope"], ["'nope' is not one of", "see 'cnn eval --help'"]),
        (["gradcheck", "--config", "smoke", "--seed", "x"], ["'x' is not a valid integer"]),
        (["serve", "--runs", "README.md"], ["--runs"]),
    ],
)
def test_a_usage_error_is_one_line_naming_the_command(args: list[str], fragments: list[str]) -> None:
    error_line(run_cli(args, timeout=60), EXIT_BAD_INPUT, *fragments)


def test_help_and_version_still_exit_0() -> None:
    for args in (["--help"], ["train", "--help"], ["--version"]):
        outcome = run_cli(args, timeout=60)
        assert outcome.code == 0 and outcome.stderr == "", outcome
