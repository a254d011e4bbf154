"""The root ``cnn`` click group: the error policy at the boundary (one line, exit 2), a closed stdout, and ``--debug``."""

from __future__ import annotations

import _thread
import errno
import os
import sys
import threading
from typing import Any, NoReturn

import click

from cnn_cli import signals
from cnn_cli.errors import (
    EXIT_BAD_INPUT,
    EXIT_BROKEN_PIPE,
    EXIT_FAULT,
    CnnError,
    RuntimeFault,
    os_error_exit_code,
    os_error_message,
)
from cnn_cli.io import silence_stdout
from cnn_cli.version import __version__


class _Stdout:
    """Whether the reader of this process's stdout went away during the command."""

    closed = False


def _is_closed_pipe(exc: BaseException) -> bool:
    return isinstance(exc, BrokenPipeError) or (isinstance(exc, OSError) and exc.errno == errno.EPIPE)


def stop_quietly() -> NoReturn:
    """The reader of stdout went away (``cnn eval | head -1``): no error line, exit 128 + SIGPIPE, as ``cnn train`` does."""
    _Stdout.closed = True
    silence_stdout()
    sys.exit(EXIT_BROKEN_PIPE)


def stdout_closed() -> bool:
    """True once a write to stdout found its reader gone, during this command."""
    return _Stdout.closed


def echo_or_stop(line: str) -> None:
    """``click.echo`` for a command that runs long and saves as it goes (``cnn sweep``).

    When the reader of stdout goes away, the command stops as Ctrl-C would stop it (it
    saves what is running and leaves the rest to resume), then exits 141 without a word.
    The first failed write raises KeyboardInterrupt in the main thread; later lines are dropped.
    """
    if _Stdout.closed:
        return
    try:
        click.echo(line)
    except OSError as exc:
        if not _is_closed_pipe(exc):
            raise
        _Stdout.closed = True
        silence_stdout()
        if threading.current_thread() is threading.main_thread():
            raise KeyboardInterrupt from None
        _thread.interrupt_main()  # a line logged from another thread (Dask's event loop)


class CnnGroup(click.Group):
    """Turns library errors into one line on stderr and an exit code (no traceback unless --debug)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except CnnError as exc:
            self._fail(ctx, exc, EXIT_BAD_INPUT)
        except RuntimeFault as exc:
            self._fail(ctx, exc, EXIT_FAULT)
        except MemoryError as exc:  # the machine's (or a ulimit's) memory ran out past the estimate: one line, exit 1
            reason = str(exc) or "an allocation failed"
            self._fail(ctx, exc, EXIT_FAULT, f"out of memory: {reason}; use a smaller batch (train.batch_size) or model")
        except OSError as exc:  # one policy for every path the OS refuses: one line naming it
            if _is_closed_pipe(exc):
                stop_quietly()
            self._fail(ctx, exc, os_error_exit_code(exc), os_error_message(exc))
        except KeyboardInterrupt:
            if _Stdout.closed:  # raised by echo_or_stop: the command has saved what it had
                stop_quietly()
            if _debug(ctx):
                raise
            click.echo(f"interrupted ({signals.describe(signals.exit_code() - signals.EXIT_BASE)})", err=True)
            ctx.exit(signals.exit_code())

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        """``cnn --help`` and ``cnn --version`` print while the arguments are parsed, before :meth:`invoke`:
        a reader gone by then stops quietly too (click's own handler would exit 1)."""
        try:
            return super().make_context(*args, **kwargs)
        except OSError as exc:
            if not _is_closed_pipe(exc):
                raise
            stop_quietly()

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """click's usage errors (an unknown option, a missing argument) as one ``error:`` line too, exit 2."""
        standalone = kwargs.pop("standalone_mode", True)
        _Stdout.closed = False
        signals.reset()
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
            sys.exit(signals.exit_code())
        if not standalone:
            return result
        try:  # what print() left in the buffer: a reader that went away is no error here either
            if sys.stdout is not None:  # None: started with stdout closed (cnn eval >&-), where click printed nothing
                sys.stdout.flush()
        except OSError as exc:
            if not _is_closed_pipe(exc):
                raise
            stop_quietly()
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
