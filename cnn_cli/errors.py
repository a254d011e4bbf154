"""Error types shared by the library and the CLI.

The CLI maps them to exit codes: a :class:`CnnError` is bad input from the
user (exit 2), a :class:`RuntimeFault` is something that went wrong while
running (exit 1). Both carry a one-line message that names what was wrong.
"""

from __future__ import annotations


class CnnError(Exception):
    """Bad input: a config, file, argument or image the user gave us. Exit code 2."""

    exit_code = 2


class ConfigError(CnnError):
    """A config value is missing, mistyped or out of range."""


class ModelBuildError(ConfigError):
    """An architecture whose shapes or sizes cannot work."""


class CheckpointError(CnnError):
    """A checkpoint file that is unsafe, corrupt or does not match its config."""


class DataError(CnnError):
    """A dataset file that is missing, corrupt or cannot be fetched."""


class ImageError(CnnError):
    """An image file that cannot be read or preprocessed."""


class RuntimeFault(Exception):
    """A fault while running (diverged training, disk full). Exit code 1."""

    exit_code = 1
