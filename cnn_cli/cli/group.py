"""The root ``cnn`` click group: the error policy at the boundary (one line, exit 2) and ``--debug``."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from cnn_cli.errors import EXIT_BAD_INPUT, EXIT_FAULT, EXIT_INTERRUPTED, CnnError, RuntimeFault, os_error_exit_code, os_error_message
from cnn_cli.version import __version__


class CnnGroup(click.Group):
    """Turns library errors into one line on stderr and an exit code (no traceback unless --debug)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except CnnError as exc:
            self._fail(ctx, exc, EXIT_BAD_INPUT)
        except RuntimeFault as exc:
            self._fail(ctx, exc, EXIT_FAULT)
        except OSError as exc:  # one policy for every path the OS refuses: one line naming it
            self._fail(ctx, exc, os_error_exit_code(exc), os_error_message(exc))
        except KeyboardInterrupt:
            if _debug(ctx):
                raise
            click.echo("interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """click's usage errors (an unknown option, a missing argument) as one ``error:`` line too, exit 2."""
        standalone = kwargs.pop("standalone_mode", True)
        try:
            result = super().main(*args, standalone_mode=False, **kwargs)  # type: ignore[call-overload]  # click's overloads
        except click.UsageError as exc:
            if not standalone:
                raise
            where = f"; see '{exc.ctx.command_path} --help'" if exc.ctx is not None else ""
            click.echo(f"error: {exc.format_message().rstrip('.')}{where}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        except click.ClickException as exc:
            if not standalone:
                raise
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            if not standalone:
                raise
            click.echo("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        if not standalone:
            return result
        sys.exit(result if isinstance(result, int) else 0)

    @staticmethod
    def _fail(ctx: click.Context, exc: Exception, code: int, message: str | None = None) -> None:
        if _debug(ctx):
            raise exc
        click.echo(f"error: {message or exc}", err=True)
        ctx.exit(code)


def _debug(ctx: click.Context) -> bool:
    root = ctx.find_root()
    return bool((root.obj or {}).get("debug")) or os.environ.get("CNN_DEBUG") == "1"


@click.group(cls=CnnGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cnn")
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """cnn: a NumPy CNN with hand-written backward passes, trained on MNIST.

    \b
    Examples:
      cnn train --config mnist.yaml
      cnn eval runs/latest/checkpoints/best.npz
      cnn predict digit.png
      cnn explain conv-backward          # watch backprop on the notes' numbers
      cnn exercise start maxpool2d       # then do it: write a backward, `cnn exercise check` it
    """
    ctx.obj = {"debug": debug}
