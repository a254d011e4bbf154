"""Error types shared by the library and the CLI.

The CLI maps them to exit codes: a :class:`CnnError` is bad input from the
user (exit 2), a :class:`RuntimeFault` is something that went wrong while
running (exit 1). Both carry a one-line message that names what was wrong.
"""

from __future__ import annotations

import errno

# The process exit codes of ``cnn``, defined once.
EXIT_FAULT = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader of stdout went away (cnn eval | head -1)


class CnnError(Exception):
    """Bad input: a config, file, argument or image the user gave us. Exit code 2."""

    exit_code = EXIT_BAD_INPUT


class ConfigError(CnnError):
    """A config value is missing, mistyped or out of range.

    ``key_path`` is the canonical path of the offending key (``model.layers[0].kernel_size``,
    ``train.batch_size``), or "" when the error is about the config as a whole; the loader
    uses it to point at the YAML line.
    """

    def __init__(self, message: str, key_path: str = "") -> None:
        super().__init__(message)
        self.key_path = key_path


class ModelBuildError(ConfigError):
    """An architecture whose shapes or sizes cannot work (its ``key_path`` names the layer or key)."""


class CheckpointError(CnnError):
    """A checkpoint file that is unsafe, corrupt or does not match its config."""


class DataError(CnnError):
    """A dataset file that is missing, corrupt or cannot be fetched."""


class ImageError(CnnError):
    """An image file that cannot be read or preprocessed."""


class RuntimeFault(Exception):
    """A fault while running (diverged training, disk full). Exit code 1."""

    exit_code = EXIT_FAULT


class StepStopped(BaseException):
    """A training step stopped from inside, e.g. by the learner's code that ``cnn train --impl`` runs.

    ``interrupted`` True: stopped on purpose (a deadline, a second Ctrl-C); the run is saved at
    its last finished step and can be resumed. False: the code failed; the run fails with the
    message. A BaseException, so that no ``except Exception`` on the way swallows it.
    """

    def __init__(self, message: str, interrupted: bool, exit_code: int = EXIT_FAULT, cause: str = "stopped") -> None:
        super().__init__(message)
        self.message, self.interrupted, self.exit_code, self.cause = message, interrupted, exit_code, cause


# What to do about each kind of OS error, said once for every command (the CLI's error boundary uses these).
_OS_ERROR_ADVICE = {
    PermissionError: "permission denied; check the folder's permissions or choose another path",
    NotADirectoryError: "a part of this path is a file, not a folder; choose another path",
    IsADirectoryError: "is a folder; give a file name",
    FileExistsError: "already exists; choose another name or remove it",
    FileNotFoundError: "not found; check the path",
}
_OS_ERRNO_ADVICE = {
    errno.EROFS: "read-only file system; write somewhere else (e.g. --run-dir or --out)",
    errno.ENOSPC: "disk full; free some space",
    errno.EDQUOT: "disk quota exceeded; free some space",
    errno.ENAMETOOLONG: "name too long for the file system (a name over 255 bytes, or a path over 4,096)",
}


def os_error_message(exc: OSError) -> str:
    """One line for an OS error: the path(s) it names, what happened, what to do."""
    advice = _OS_ERRNO_ADVICE.get(exc.errno or 0) or next(
        (text for kind, text in _OS_ERROR_ADVICE.items() if isinstance(exc, kind)), exc.strerror or str(exc)
    )
    if exc.filename is None:  # a write to a file already open (a log appended to): the OS names no path
        return f"while writing or reading a file: {advice}"
    where = exc.filename if exc.filename2 is None else f"{exc.filename} -> {exc.filename2}"
    return f"{where}: {advice}"


def os_error_exit_code(exc: OSError) -> int:
    """2 when the path the user gave cannot be used (permissions, a file where a folder should be); 1 for a fault (disk full, I/O)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO):
        return RuntimeFault.exit_code
    return CnnError.exit_code
