"""``cnn exercise list | start | check``: parse, call :mod:`cnn_cli.learn.exercises`, print.

``check`` exits 0 when every stage passes, 1 when a stage fails (the learner's code
raising, looping, ending the process or returning the wrong thing included), and 2
for bad input (no such file, an unknown exercise), through the root group.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cnn_cli.cli import ranges
from cnn_cli.errors import EXIT_FAULT

EPILOG = "Docs: cnn docs exercises (how the check works); each skeleton names the section with its derivation."


@click.group(name="exercise", epilog=EPILOG)
def exercise_group() -> None:
    """Write a backward pass yourself and have it checked, stage by stage, with a diagnosis.

    \b
    Examples:
      cnn exercise list
      cnn exercise start maxpool2d          # writes maxpool2d_exercise.py
      cnn exercise check maxpool2d_exercise.py
    """


@exercise_group.command("list", epilog=EPILOG)
def list_command() -> None:
    """List the exercises: one per layer, loss and update cnn has, and notes 004's whole net (`cnn docs exercises`)."""
    from cnn_cli.learn.exercises import list_exercises

    click.echo(list_exercises())


@exercise_group.command("start", epilog=EPILOG)
@click.argument("name")
@click.option("--output", "-o", type=click.Path(path_type=Path), help="Where to write the skeleton (default ./NAME_exercise.py).")
@click.option("--force", is_flag=True, help="Overwrite the file if it exists.")
def start_command(name, output, force) -> None:
    """Write the skeleton of exercise NAME: the forward given, the backward to fill in.

    \b
    Examples:
      cnn exercise start conv2d
      cnn exercise start net004 -o my_net.py
    """
    from cnn_cli.learn.exercises import get_exercise, start_exercise

    path = start_exercise(name, output, force)
    exercise = get_exercise(name)
    click.echo(f"wrote {path}: the {exercise.name} exercise. Fill in {', '.join(exercise.functions[1:] or exercise.functions)}, then run:")
    click.echo(f"  cnn exercise check {path}")
    click.echo(f"The derivation: cnn docs {exercise.topic}")


@exercise_group.command("check", epilog=EPILOG)
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--exercise", "name", metavar="NAME", help="Which exercise the file is (default: found from the functions it defines).")
@click.option(
    "--timeout",
    type=ranges.EXERCISE_TIMEOUT_S,
    default=5.0,
    show_default=True,
    help="Seconds your code may take per stage before it counts as stuck.",
)
@click.option("--seed", type=ranges.SEED, default=0, show_default=True, help="Seeds the random tensors of the check.")
def check_command(file, name, timeout, seed) -> None:
    """Check your FILE in stages: shapes, a worked example, random tensors, edge cases, central differences.

    It stops at the first stage that fails and, when your tensor equals what a known
    mistake gives (`cnn gradcheck --break list`), names it. Your code runs in a process
    of its own, under a time limit. Exit 0: every stage passed; 1: a stage failed; 2: bad input.

    \b
    Examples:
      cnn exercise check maxpool2d_exercise.py
      cnn exercise check mine.py --exercise relu --timeout 20
    """
    from cnn_cli.learn.exercises import check_file

    text, passed = check_file(file, name, timeout, seed)
    click.echo(text)
    if not passed:
        sys.exit(EXIT_FAULT)
