"""Shell completion, asked as each shell asks it: ``cnn`` run with click's completion variables set.

bash and zsh send the words so far (``COMP_WORDS``) and the index of the one being
completed (``COMP_CWORD``); fish sends the words and the incomplete word itself. click
answers with one candidate per line (bash: ``type,value``; zsh: type, value and help on
three lines; fish: ``type,value<TAB>help``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import EXIT_BAD_INPUT, cli_command, cli_environment, error_line, invoke_cli


def ask(shell: str, line: str, cwd: Path | None = None, variable: str = "complete") -> str:
    """What ``cnn`` answers the shell for the command line ``line`` (the cursor at its end)."""
    words = line.split()
    incomplete = "" if line.endswith(" ") else words[-1]
    extra = {"_CNN_COMPLETE": f"{shell}_{variable}", "COMP_WORDS": line}
    extra["COMP_CWORD"] = incomplete if shell == "fish" else str(len(words) if line.endswith(" ") else len(words) - 1)
    done = subprocess.run(cli_command([]), cwd=cwd, env=cli_environment(extra), capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and not done.stderr, done
    return done.stdout


def candidates(line: str, cwd: Path | None = None) -> list[str]:
    """bash's candidates: the values of the ``plain,VALUE`` lines."""
    answer = ask("bash", line, cwd)
    assert all(row.startswith("plain,") for row in answer.splitlines()), answer
    return [row.removeprefix("plain,") for row in answer.splitlines()]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working folder with configs, two runs, a folder that is not a run, and stray files."""
    root = tmp_path_factory.mktemp("project")
    for path in (
        "my-net.yaml",
        "notes.txt",
        "model.npz",
        "experiments/deeper.yaml",
        "runs/mnist-20260101-120000/config.yaml",
        "runs/mnist-20260101-120000/checkpoints/best.npz",
        "runs/mnist-20260101-120000/checkpoints/last.npz",
        "runs/smoke-20260102-090000/config.yaml",
        "runs/not-a-run/notes.txt",
    ):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text("", encoding="utf-8")
    return root


MNIST_RUN = "runs/mnist-20260101-120000"
SMOKE_RUN = "runs/smoke-20260102-090000"
BEST, LAST = f"{MNIST_RUN}/checkpoints/best.npz", f"{MNIST_RUN}/checkpoints/last.npz"


def test_commands_and_options_complete() -> None:
    assert candidates("cnn tr") == ["train"]
    assert {"train", "eval", "predict", "summary", "completion", "data"} <= set(candidates("cnn "))
    assert candidates("cnn summary --de") == ["--depth"]
    assert candidates("cnn completion ") == ["bash", "zsh", "fish"]
    assert candidates("cnn data info fa") == ["fashion-mnist"]


def test_config_names_and_yaml_files(project: Path) -> None:
    from cnn_cli.config.load import builtin_configs

    offered = candidates("cnn train --config ", project)
    assert offered == [*builtin_configs(), "experiments/", "my-net.yaml", "runs/"]  # no notes.txt, no model.npz
    assert candidates("cnn summary --config m", project) == [name for name in builtin_configs() if name.startswith("m")] + ["my-net.yaml"]
    assert candidates("cnn lr-find -c experiments/", project) == ["experiments/deeper.yaml"]


def test_run_folders(project: Path) -> None:
    assert candidates("cnn train --resume ", project) == [MNIST_RUN, SMOKE_RUN, "experiments/", "runs/"]
    assert candidates("cnn plot runs/", project) == [MNIST_RUN, SMOKE_RUN, "runs/not-a-run/"]
    assert candidates("cnn compare runs/s", project) == [SMOKE_RUN]


def test_checkpoints(project: Path) -> None:
    assert candidates("cnn export ", project) == [BEST, LAST, "experiments/", "model.npz", "runs/"]
    assert candidates("cnn viz runs/m", project) == [BEST, LAST, f"{MNIST_RUN}/"]  # and the folder, to go on from
    assert candidates(f"cnn predict --checkpoint {MNIST_RUN}/checkpoints/b", project) == [BEST]
    assert candidates("cnn serve --checkpoint mo", project) == ["model.npz"]


def test_a_run_folder_or_a_checkpoint(project: Path) -> None:
    assert candidates("cnn eval ", project) == [MNIST_RUN, BEST, LAST, SMOKE_RUN, "experiments/", "model.npz", "runs/"]
    assert candidates("cnn train --init-from runs/mn", project) == [MNIST_RUN, BEST, LAST]


def test_zsh_and_fish_get_the_same_candidates_in_their_formats(project: Path) -> None:
    zsh = ask("zsh", "cnn train --config my", project).splitlines()
    assert zsh == ["plain", "my-net.yaml", "config"]
    fish = ask("fish", "cnn eval runs/sm", project).splitlines()
    assert fish == [f"plain,{SMOKE_RUN}\trun folder"]
    assert ask("fish", "cnn sum").splitlines()[0].startswith("plain,summary\t")


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_cnn_completion_prints_clicks_own_script(shell: str) -> None:
    printed = invoke_cli(["completion", shell])
    assert printed.code == 0, printed.output
    assert printed.stdout == ask(shell, "cnn", variable="source")
    assert "_CNN_COMPLETE" in printed.stdout and f"{shell}_complete" in printed.stdout


def test_an_unknown_shell_is_a_clear_error() -> None:
    error_line(invoke_cli(["completion", "tcsh"]), EXIT_BAD_INPUT, "tcsh", "bash")


def test_the_bash_script_fills_compreply_in_a_real_bash(tmp_path: Path, project: Path) -> None:
    """The script from ``cnn completion bash``, sourced in bash, asked as bash asks when TAB is pressed."""
    if shutil.which("bash") is None:
        pytest.skip("no bash here")
    wrapper = tmp_path / "bin" / "cnn"  # `cnn` on PATH, running this checkout
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m cnn_cli "$@"\n', encoding="utf-8")
    wrapper.chmod(0o755)
    script = (
        'eval "$(cnn completion bash)"; COMP_WORDS=(cnn eval runs/s); COMP_CWORD=2; _cnn_completion cnn; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    env = cli_environment({"PATH": f"{wrapper.parent}:{cli_environment()['PATH']}"})
    done = subprocess.run(["bash", "--norc", "-c", script], cwd=project, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [SMOKE_RUN]
