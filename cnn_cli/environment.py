"""The environment a user really has, read in one place: home folder, ``~`` paths, matplotlib's settings, threads.

A container started with ``--user`` has no ``HOME`` and no passwd entry; a CI job may
have a read-only home; a shell may export ``MPLBACKEND`` for another program; a script
may set ``CNN_NUM_THREADS`` to anything. The policy:

- the home folder is ``$HOME``, else the passwd entry, else there is none
  (:func:`home_folder`); what would live there then goes to a per-user folder in the
  temp folder, and a ``~`` path that cannot be expanded is one line (:func:`expand_user`);
- pictures are files, always drawn with Agg: a ``MPLBACKEND`` matplotlib would refuse
  is replaced, and where matplotlib's config folder cannot be written it gets a private
  one in the temp folder, so it prints no warning (:func:`prepare_matplotlib`, run
  when this module is imported, which ``cnn_cli/__init__.py`` does before anything
  imports matplotlib);
- ``CNN_NUM_THREADS`` is a whole number clamped to [1, :func:`max_threads`] (:func:`thread_setting`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import tempfile
from pathlib import Path

from cnn_cli.errors import CnnError

THREADS_SETTING = "CNN_NUM_THREADS"
THREADS_PER_CPU = 4
# Backends matplotlib accepts by name (its rcsetup list); "module://..." names a third-party one.
MATPLOTLIB_BACKENDS = frozenset(
    "gtk3agg gtk3cairo gtk4agg gtk4cairo macosx nbagg notebook qtagg qtcairo qt5agg qt5cairo tkagg tkcairo webagg "
    "wx wxagg wxcairo agg cairo pdf pgf ps svg template inline".split()
)


def home_folder() -> Path | None:
    """``$HOME`` if it is an absolute path, else the user's passwd entry, else None (no home at all)."""
    home = os.environ.get("HOME", "")
    if os.path.isabs(home):
        return Path(home)
    try:
        import pwd

        return Path(pwd.getpwuid(os.getuid()).pw_dir)
    except (ImportError, KeyError, OSError):
        return None


def user_temp_folder(name: str) -> Path:
    """``<temp>/<name>-<uid>``: a per-user stand-in for a folder that would live in the home folder."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"{name}-{uid}"


def expand_user(path: str | Path) -> Path:
    """``path`` with a leading ``~`` or ``~user`` expanded.

    Raises:
        CnnError: one line when there is no home folder, or no such user.
    """
    text = str(path)
    if not text.startswith("~"):
        return Path(path)
    head, _, rest = text.partition("/")
    if head == "~":
        home = home_folder()
        if home is None:
            raise CnnError(f"{text}: cannot expand ~: HOME is not set and user id {os.getuid()} has no passwd entry; give a full path")
        return home / rest if rest else home
    try:
        return Path(text).expanduser()
    except RuntimeError:
        raise CnnError(f"{text}: cannot expand {head}: no user {head[1:]!r} on this machine; give a full path") from None


def _writable_folder(folder: Path) -> bool:
    """``folder`` exists, or could be made, and can be written (as matplotlib itself tries it: make it, then ask)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK | os.X_OK)


def prepare_matplotlib() -> None:
    """Settings matplotlib reads when it is imported: a backend it accepts, a config folder it can write.

    Does nothing once matplotlib is imported (a notebook's own choice stands).
    """
    if "matplotlib" in sys.modules:
        return
    backend = os.environ.get("MPLBACKEND")
    if backend is not None and not (backend.lower() in MATPLOTLIB_BACKENDS or backend.startswith("module://")):
        os.environ["MPLBACKEND"] = "agg"  # cnn draws files with Agg whatever the backend; a bad name would stop the import
    if os.environ.get("MPLCONFIGDIR"):
        return
    home = home_folder()
    config_home = os.environ.get("XDG_CONFIG_HOME", "")
    cache_home = os.environ.get("XDG_CACHE_HOME", "")
    folders = [
        Path(config_home) / "matplotlib" if os.path.isabs(config_home) else (home / ".config" / "matplotlib" if home else None),
        Path(cache_home) / "matplotlib" if os.path.isabs(cache_home) else (home / ".cache" / "matplotlib" if home else None),
    ]
    if all(folder is not None and _writable_folder(folder) for folder in folders):
        return
    private = user_temp_folder("cnn-matplotlib")
    with contextlib.suppress(OSError):
        private.mkdir(mode=0o700, exist_ok=True)
        if private.is_symlink() or private.stat().st_uid != os.getuid():  # someone else's folder: not ours to use
            private = Path(tempfile.mkdtemp(prefix="cnn-matplotlib-"))
    if _writable_folder(private):
        os.environ["MPLCONFIGDIR"] = str(private)


@functools.cache
def usable_cpus() -> int:
    """CPUs this process may run on, asked once (threads are counted on every split)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not every platform has sched_getaffinity
        return os.cpu_count() or 1


def max_threads() -> int:
    """The most threads ``CNN_NUM_THREADS`` may ask for: a few per usable CPU (at least 8).

    More threads than CPUs never speed up the split copies; each one reserves a stack,
    so a huge count would only fail to start threads (and leave a run half done).
    """
    return max(8, THREADS_PER_CPU * usable_cpus())


def thread_setting() -> int | None:
    """``CNN_NUM_THREADS`` as a thread count clamped to [1, :func:`max_threads`], or None when unset or not a number."""
    value = os.environ.get(THREADS_SETTING, "").strip()
    try:
        wanted = int(value)
    except ValueError:
        return None
    return max(1, min(wanted, max_threads()))


prepare_matplotlib()  # on import: ``cnn_cli/__init__.py`` imports this module before anything imports matplotlib
