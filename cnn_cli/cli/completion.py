"""Shell completion for bash, zsh and fish, through click's own mechanism, and ``cnn completion SHELL``.

click answers the shell when ``_CNN_COMPLETE`` is set: ``bash_source`` (``zsh_source``,
``fish_source``) prints the script to source, ``bash_complete`` (...) the candidates for
the words in ``COMP_WORDS``. Commands, options and choices complete by themselves; the
parameter types here (``type=CONFIG``, ``RUN_FOLDER``, ``CHECKPOINT``, ``RUN_OR_CHECKPOINT``)
give the candidates of the arguments that name a config, a run folder or a checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
from click.shell_completion import CompletionItem, get_completion_class

from cnn_cli.runs.folders import CHECKPOINT_DIR, CONFIG_FILE, DEFAULT_RUNS_ROOT

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_CNN_COMPLETE"  # what click derives from the program name "cnn"
CONFIG_SUFFIXES = (".yaml", ".yml")
CHECKPOINT_SUFFIX = ".npz"


class ConfigName(click.ParamType):
    """A config path or built-in name (a plain string); completes built-in names, then *.yaml files and folders."""

    name = "config"

    def shell_complete(self, ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        from cnn_cli.config.load import builtin_configs

        names = [CompletionItem(name, help="built-in config") for name in builtin_configs() if name.startswith(incomplete)]
        return names + list(_listing(incomplete, CONFIG_SUFFIXES, "config", runs=False))


class RunFolder(click.Path):
    """A run folder; completes those under runs/ by their whole path, then from what is typed."""

    def shell_complete(self, ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        return _unique([*_runs_under_root(incomplete, checkpoints=False), *_listing(incomplete, (), "", runs=True)])


class CheckpointFile(click.Path):
    """A checkpoint; completes the *.npz files of the runs under runs/, then from what is typed."""

    def shell_complete(self, ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        return _unique([*_runs_under_root(incomplete, runs=False), *_listing(incomplete, (CHECKPOINT_SUFFIX,), "checkpoint", runs=False)])


class RunOrCheckpoint(click.Path):
    """A run folder or a checkpoint (``cnn eval TARGET``, ``cnn train --init-from``)."""

    def shell_complete(self, ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        return _unique([*_runs_under_root(incomplete), *_listing(incomplete, (CHECKPOINT_SUFFIX,), "checkpoint", runs=True)])


# The types the commands use: converted as click.Path(path_type=Path) (CONFIG: as a plain string).
CONFIG = ConfigName()
RUN_FOLDER = RunFolder(path_type=Path)
CHECKPOINT = CheckpointFile(path_type=Path)
RUN_OR_CHECKPOINT = RunOrCheckpoint(path_type=Path)


def _is_run_folder(path: Path) -> bool:
    return path.is_dir() and (path / CONFIG_FILE).is_file()


def _listing(incomplete: str, suffixes: tuple[str, ...], help_text: str, runs: bool) -> Iterator[CompletionItem]:
    """The entries of the folder ``incomplete`` points into whose names start with what follows its last "/":
    files ending in ``suffixes``, run folders when ``runs``, and other folders with a "/" (to go on from)."""
    folder = incomplete[: incomplete.rfind("/") + 1]  # "" or "some/path/"
    prefix = incomplete[len(folder) :]
    try:
        entries = sorted(Path(folder or ".").iterdir())
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith(prefix) or (entry.name.startswith(".") and not prefix.startswith(".")):
            continue
        text = folder + entry.name
        if runs and _is_run_folder(entry):
            yield CompletionItem(text, help="run folder")
        elif entry.is_dir():
            yield CompletionItem(text + "/", help="folder")
        elif suffixes and entry.name.endswith(suffixes):
            yield CompletionItem(text, help=help_text)


def _runs_under_root(incomplete: str, runs: bool = True, checkpoints: bool = True) -> Iterator[CompletionItem]:
    """runs/NAME for each run folder under runs/, and runs/NAME/checkpoints/*.npz, those that start with ``incomplete``."""
    root = Path(DEFAULT_RUNS_ROOT)
    inside = root.as_posix() + "/"
    if not (inside.startswith(incomplete) or incomplete.startswith(inside)):
        return
    try:
        folders = sorted(entry for entry in root.iterdir() if _is_run_folder(entry))
    except OSError:
        return
    for folder in folders:
        if runs and folder.as_posix().startswith(incomplete):
            yield CompletionItem(folder.as_posix(), help="run folder")
        if checkpoints:
            for checkpoint in sorted((folder / CHECKPOINT_DIR).glob("*" + CHECKPOINT_SUFFIX)):
                if checkpoint.as_posix().startswith(incomplete):
                    yield CompletionItem(checkpoint.as_posix(), help="checkpoint")


def _unique(items: list[CompletionItem]) -> list[CompletionItem]:
    """``items`` without repeats (a run under runs/ is found both ways), first place kept."""
    seen: set[str] = set()
    kept = []
    for item in items:
        if item.value not in seen:
            seen.add(item.value)
            kept.append(item)
    return kept


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion_command(ctx: click.Context, shell: str) -> None:
    """Print the completion script of SHELL (bash, zsh or fish): commands, options, config names, run folders, checkpoints.

    It is the script click prints for _CNN_COMPLETE=bash_source cnn (zsh_source, fish_source).

    \b
    Install it once:
      bash:  echo 'eval "$(cnn completion bash)"' >> ~/.bashrc
      zsh:   echo 'eval "$(cnn completion zsh)"' >> ~/.zshrc
      fish:  cnn completion fish > ~/.config/fish/completions/cnn.fish
    """
    completion_class = get_completion_class(shell)
    if completion_class is None:  # pragma: no cover - click ships all three
        raise click.UsageError(f"click has no completion for {shell}")
    click.echo(completion_class(ctx.find_root().command, {}, "cnn", COMPLETE_VAR).source(), nl=False)  # as click prints it
