"""Reading a file that someone else may have made, the one way ``cnn`` reads run records, checkpoints and configs.

A path given to ``cnn``, or found in a run folder, may be anything: a FIFO nobody
writes to (a plain ``open`` waits for a writer forever), a link to an endless
device such as ``/dev/zero`` (a plain ``read()`` eats all memory), a folder, a
file far larger than any record, bytes that are not UTF-8, or JSON nested so deep
that a recursive reader overflows the stack. The policy, in one place:

- open with ``O_NONBLOCK``, so opening a FIFO returns at once, then ``fstat`` the
  open descriptor (not the path: nothing can be swapped in between) and read only
  a regular file;
- read at most ``limit`` bytes: a file whose size is over it is refused unread, and
  reading stops at ``limit + 1`` bytes in case it grows meanwhile;
- text must be UTF-8, and JSON may nest at most :data:`MAX_JSON_DEPTH` levels.

Every refusal is the caller's error class (a :class:`~cnn_cli.errors.CnnError`, so
one ``error:`` line and exit 2) with a message naming the file.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from pathlib import Path
from typing import Any, BinaryIO

from cnn_cli.errors import CnnError

RECORD_BYTES = 64 << 20  # run.json, summary.json, metrics.csv, ...: a long run's records are a few MB
MAX_JSON_DEPTH = 64  # records nest a few levels; deeper JSON is hostile (a recursive reader would overflow)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(r"[][{}]")


def open_regular(path: str | Path, limit: int, what: str = "file", error: type[CnnError] = CnnError) -> BinaryIO:
    """Open ``path`` for binary reading if it is a regular file of at most ``limit`` bytes, without ever blocking.

    Raises:
        ``error``: the file is missing, unreadable, not a regular file (a FIFO, device or
        folder) or larger than ``limit``; one line naming it and ``what`` it should be.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a socket, or a FIFO on some systems
            raise error(f"{path}: not a regular file (a socket or device, not a file to read); the {what} must be a regular file") from None
        raise error(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = _kind(info.st_mode)
            raise error(f"{path}: not a regular file (it is a {kind}, not a file to read); the {what} must be a regular file")
        if info.st_size > limit:
            raise error(f"{path}: {info.st_size:,} bytes, over the limit of {limit:,} bytes for a {what}; refusing to read it")
        os.set_blocking(fd, True)  # a regular file never blocks; reads then behave as usual
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _kind(mode: int) -> str:
    """What a path that is not a regular file is, in words."""
    kinds = ((stat.S_ISDIR, "folder"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"))
    return next((name for test, name in kinds if test(mode)), "socket or other special file")


def read_bytes(path: str | Path, limit: int, what: str = "file", error: type[CnnError] = CnnError) -> bytes:
    """The whole content of a regular file of at most ``limit`` bytes (see :func:`open_regular`)."""
    with open_regular(path, limit, what, error) as handle:
        try:
            size = os.fstat(handle.fileno()).st_size
            data = handle.read(size + 1)  # ask for what is there (a 1 KB record gets no buffer of ``limit`` bytes)
            if len(data) > size:  # it grew since, or the file system reports no size (/proc): the rest, within the bound
                data += handle.read(limit + 1 - len(data))
        except OSError as exc:
            raise error(f"{path}: cannot read ({exc.strerror or exc})") from None
    if len(data) > limit:  # it grew after the fstat, or the file system reports no size (/proc)
        raise error(f"{path}: over the limit of {limit:,} bytes for a {what}; refusing to read it")
    return data


def read_text(path: str | Path, limit: int, what: str = "file", error: type[CnnError] = CnnError) -> str:
    """A regular file of at most ``limit`` bytes as UTF-8 text (a byte-order mark is dropped)."""
    data = read_bytes(path, limit, what, error)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: the {what} is not UTF-8 text (byte {exc.start}: {data[exc.start : exc.start + 1]!r})") from None


def parse_json(text: str, source: str, error: type[CnnError] = CnnError) -> Any:
    """JSON text as Python values, nested at most :data:`MAX_JSON_DEPTH` levels.

    The depth is measured before parsing, so neither ``json`` nor any later walk over the
    value recurses without bound.

    Raises:
        ``error``: the text is not JSON or nests too deep, naming ``source``.
    """
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise error(f"{source}: JSON nested {depth:,} levels deep, more than the {MAX_JSON_DEPTH} a record may have")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise error(f"{source}: not valid JSON ({exc})") from None


def read_json(path: str | Path, limit: int = RECORD_BYTES, what: str = "record", error: type[CnnError] = CnnError) -> Any:
    """A JSON file through :func:`read_text` and :func:`parse_json`."""
    return parse_json(read_text(path, limit, what, error), str(path), error)


def json_depth(text: str) -> int:
    """How deep the brackets of JSON text nest, outside strings (no recursion; strings are cut out first)."""
    depth = deepest = 0
    for match in _BRACKET.finditer(_STRING.sub('""', text)):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest
