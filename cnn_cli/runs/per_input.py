"""A command over many inputs (``cnn predict photos/ a.png b.png``): each input on its own, the exit code at the end.

The policy, in one place:

- an input that cannot be used (unreadable, not an image, a name too long for the file
  system, a folder that cannot be listed) is one failure, reported on stderr as one
  ``error:`` line naming it; the inputs after it are still done;
- the exit code says how it went, once all are done (:func:`exit_code`): 0 when every input
  was done, 1 when some were and some failed, 2 when none could be (as for bad usage).

:func:`attempt` runs the work for one input and turns what an input can do wrong
(:data:`INPUT_ERRORS`) into its message; anything else is a fault of cnn and still stops it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from cnn_cli.errors import EXIT_BAD_INPUT, EXIT_FAULT, CnnError, os_error_message

T = TypeVar("T")

INPUT_ERRORS = (CnnError, OSError)  # what one bad input raises: a checked refusal, or the OS refusing its path


def attempt(work: Callable[[], T]) -> tuple[T | None, str]:
    """``(work(), "")``, or ``(None, message)`` when the input it works on cannot be used."""
    try:
        return work(), ""
    except CnnError as exc:
        return None, str(exc)
    except OSError as exc:
        return None, os_error_message(exc)


def exit_code(done: int, failed: int) -> int:
    """0 when nothing failed; 2 when nothing was done; 1 when some inputs failed and others were done."""
    if failed == 0:
        return 0
    return EXIT_BAD_INPUT if done == 0 else EXIT_FAULT
