"""``cnn eval`` and ``cnn predict``: parse, call the runs package, print."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from cnn_cli.cli import ranges
from cnn_cli.cli.completion import CHECKPOINT, RUN_OR_CHECKPOINT
from cnn_cli.cli.group import cli


@cli.command("eval")
@click.argument("target", required=False, type=RUN_OR_CHECKPOINT)
@click.option("--split", type=click.Choice(["test", "val"]), default="test", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (with the split and the checkpoint).")
def eval_command(target, split, as_json) -> None:
    """Evaluate a checkpoint: loss, accuracy, per-class accuracy, confusion matrix.

    TARGET is a checkpoint file or a run folder (its checkpoints/best.npz);
    without it, the newest completed run under runs/ is evaluated.

    \b
    Examples:
      cnn eval
      cnn eval runs/mnist-20261123-101500 --split val
      cnn eval runs/latest/checkpoints/best.npz --json
    """
    from cnn_cli.runs.inference import evaluate_checkpoint, resolve_eval_checkpoint
    from cnn_cli.runs.learner_record import checkpoint_learner_record

    checkpoint = resolve_eval_checkpoint(target)
    result = evaluate_checkpoint(checkpoint, split)
    learner = checkpoint_learner_record(checkpoint)
    if as_json:
        learner_entry = {"learner_code": {"file": learner.file, "sha256": learner.sha256}} if learner else {}
        click.echo(json.dumps({"split": split, "checkpoint": str(checkpoint), **learner_entry, **result.as_dict()}))
        return
    click.echo(f"checkpoint {checkpoint}")
    if learner is not None:
        click.echo(f"trained with learner code {learner.label} (cnn train --impl); evaluated with cnn's own layers")
    click.echo(f"{split}: accuracy {result.accuracy:.4f}  loss {result.loss:.4f}  n {result.n}")
    k = len(result.per_class_accuracy)
    click.echo("\nper-class accuracy")
    for c, acc in enumerate(result.per_class_accuracy):
        name = result.class_names[c] if c < len(result.class_names) else str(c)
        click.echo(f"  class {c}{'' if name == str(c) else f' ({name})'}: {acc:.4f}")
    click.echo("\nconfusion matrix (rows: true class, columns: predicted)")
    width = max(5, len(str(max(max(r) for r in result.confusion_matrix))) + 1)
    click.echo("true\\pred" + "".join(f"{c:>{width}}" for c in range(k)))
    for c, row in enumerate(result.confusion_matrix):
        click.echo(f"{c:>9}" + "".join(f"{v:>{width}}" for v in row))


@cli.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--checkpoint",
    type=CHECKPOINT,
    help="A .npz file or a run folder (its checkpoints/best.npz). Default: the newest run's best.npz under runs/.",
)
@click.option("--top-k", type=ranges.TOP_K, default=3, show_default=True)
@click.option(
    "--json", "as_json", is_flag=True, help="Print a JSON list of {path, prediction, class_name, probabilities (the top k, by class name)}."
)
def predict(images, checkpoint, top_k, as_json) -> None:
    """Classify images (PNG/JPEG/...), MNIST-style preprocessed; prints each one's class name.

    IMAGES are files, folders (every image inside, recursively, sorted) or -
    for one image on stdin. An image that cannot be read (not an image, no
    permission, a name too long for the file system) is one error line on
    stderr, and the rest are still predicted. Exit 0: every image predicted;
    1: some failed, the rest predicted; 2: none could be predicted, or bad
    usage (no checkpoint). The checkpoint used is named on stderr. The class
    names are the checkpoint's: digits for MNIST, Fashion-MNIST's, or the
    sub-folders of a folder dataset.

    \b
    Examples:
      cnn predict seven.png three.jpg --top-k 3
      cnn predict photos/ --json --checkpoint runs/mnist-20261123-101500
      cat seven.png | cnn predict -
    """
    from cnn_cli.runs.inference import predict_images, resolve_checkpoint
    from cnn_cli.runs.per_input import exit_code

    used = resolve_checkpoint(checkpoint)
    results = predict_images([str(p) for p in images], used, top_k, stdin=getattr(sys.stdin, "buffer", None))
    failed = [r for r in results if r.error]
    if len(failed) < len(results):  # on stderr: stdout stays one result a line, or one JSON list
        click.echo(f"checkpoint {used}", err=True)
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in results]))
    else:
        for r in results:
            if r.error:
                continue
            tops = "  ".join(f"{name}: {p:.3f}" for name, p in r.top_k or [])
            click.echo(f"{r.path}: {r.class_name}   ({tops})")
    for r in results:
        if r.warning:
            click.echo(f"warning: {r.path}: {r.warning}", err=True)
        if r.error:
            click.echo(f"error: {r.error}", err=True)
    code = exit_code(len(results) - len(failed), len(failed))
    if code:
        sys.exit(code)
