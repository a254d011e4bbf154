"""The ``cnn explain`` and ``cnn docs`` commands: parse, call, print."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

DOCS_HINT = "Docs: `cnn docs` lists the sections of the backprop guide; `cnn docs conv2d` prints one."


@click.command(epilog=DOCS_HINT)
@click.argument("examples", nargs=-1, metavar="[EXAMPLE]...")
@click.option("--list", "list_only", is_flag=True, help="List the worked examples and exit.")
@click.option(
    "--input", "input_text", metavar="ROWS", help="Your own input matrix, e.g. '1,6,2;5,3,1;7,0,4' (conv examples, maxpool, relu)."
)
@click.option("--kernel", "kernel_text", metavar="ROWS", help="Your own kernel, e.g. '1,2;-1,0' (conv examples).")
@click.option("--grad", "grad_text", metavar="ROWS", help="Your own upstream gradient ∂L/∂Y, shaped like the output (backward examples).")
@click.option("--exercise", metavar="NAME", help="Write an exercise's skeleton and exit; `cnn exercise start NAME` does the same.")
@click.option("--output", "-o", type=click.Path(path_type=Path), help="Where --exercise writes (default ./conv_exercise.py for conv).")
def explain_command(examples, list_only, input_text, kernel_text, grad_text, exercise, output) -> None:
    """Work the lecture notes' examples live, through cnn's own functions, with ✓/✗ beside the notes' values.

    Without EXAMPLE every example runs. Exits 1 if any value differs from the notes
    (a note's own misprint is shown as a note erratum, not a ✗).

    \b
    Examples:
      cnn explain --list
      cnn explain cross-correlation
      cnn explain conv-backward --input '1,2,0;3,1,1;0,2,2' --kernel '1,0;0,-1' --grad '1,2;3,4'
      cnn exercise start conv2d        # then do it yourself: cnn exercise check conv2d_exercise.py
    """
    from cnn_cli.learn.explain import format_reports, list_examples, run_examples, write_exercise
    from cnn_cli.learn.explain.report import ExampleInput, parse_matrix

    if list_only:
        click.echo(list_examples())
        return
    if exercise is not None:
        path = write_exercise(exercise, output)
        click.echo(f"wrote {path}: fill in the TODO, then run: cnn exercise check {path}")
        click.echo("(exercises live in `cnn exercise` now: `cnn exercise list` shows them all, `cnn exercise start NAME` writes one)")
        return
    given = ExampleInput(
        input=None if input_text is None else parse_matrix(input_text, "--input"),
        kernel=None if kernel_text is None else parse_matrix(kernel_text, "--kernel"),
        grad=None if grad_text is None else parse_matrix(grad_text, "--grad"),
    )
    reports = run_examples(list(examples), given)
    click.echo(format_reports(reports))
    if any(r.failures for r in reports):
        sys.exit(1)


@click.command(epilog="The guide ships inside the package: this works wherever cnn is installed.")
@click.argument("topic", required=False)
def docs_command(topic) -> None:
    """Print a section of the backprop guide for a layer, loss or command (no TOPIC: list them).

    On a terminal the Markdown is rendered: bold headings, coloured code, aligned
    tables, and links as the `cnn docs TOPIC` that prints them (NO_COLOR=1: the same
    layout without colours). Piped or redirected it is the Markdown source, so
    `cnn docs conv2d > conv2d.md` saves a Markdown file.

    \b
    Examples:
      cnn docs
      cnn docs conv2d
      cnn docs softmax_cross_entropy
      cnn docs gradcheck
      cnn docs conv2d | less        # the Markdown source
    """
    from cnn_cli.learn.guide import docs_section, list_topics

    if topic is None:
        click.echo(list_topics())
        return
    text = docs_section(topic)
    if not _stdout_is_terminal():
        click.echo(text, nl=False)
        return
    from cnn_cli.learn.guide.render import render_markdown

    color = "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"
    click.echo(render_markdown(text, color=color), nl=False, color=color)


def _stdout_is_terminal() -> bool:
    """Whether ``cnn docs`` writes to a terminal (then it renders the Markdown) or into a pipe or file (the source)."""
    return sys.stdout.isatty()
