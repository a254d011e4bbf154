"""Fetch dataset files from HTTPS mirrors.

Each file is streamed to a temp file in the cache folder (with a tqdm bar),
then decompressed and verified by :meth:`DatasetCache.install`. Connections
use a short connect timeout so an offline machine moves on quickly; 5xx
answers, timeouts and dropped connections are retried a bounded number of
times with exponential backoff. Only ``https`` URLs are fetched (plain
``http`` is allowed for loopback addresses, which is what the tests serve
from), and a redirect may not downgrade to ``http`` either.
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import socket
import ssl
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from cnn_cli import __version__
from cnn_cli.data.cache import CHUNK_BYTES, DatasetCache, create_temp_file, remove_quietly
from cnn_cli.data.catalog import IdxFile
from cnn_cli.data.idx import GZIP_MAGIC
from cnn_cli.errors import DataError


@dataclass(frozen=True)
class HttpPolicy:
    """Timeouts and retry budget for mirror downloads.

    Attributes:
        connect_timeout_s: limit on opening the TCP (and TLS) connection.
        read_timeout_s: limit on any single wait for data once connected.
        retries: extra attempts after a 5xx, timeout or dropped connection.
        backoff_s: wait before the first retry; doubled for each later one.
        max_redirects: redirects followed before giving up.
    """

    connect_timeout_s: float = 3.0
    read_timeout_s: float = 30.0
    retries: int = 2
    backoff_s: float = 0.5
    max_redirects: int = 5


DEFAULT_HTTP_POLICY = HttpPolicy()
_REDIRECT_STATUSES = (301, 302, 303, 307, 308)


class _DownloadFailed(Exception):
    """One attempt to download one URL failed.

    ``retryable`` failures (5xx, timeouts, dropped connections) are tried
    again; ``host_down`` means the mirror is unreachable, so its other files
    are not tried either.
    """

    def __init__(self, reason: str, *, retryable: bool = False, host_down: bool = False) -> None:
        super().__init__(reason)
        self.retryable = retryable
        self.host_down = host_down


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _connect(url: str, policy: HttpPolicy) -> http.client.HTTPConnection:
    """Open a connection for ``url``, refusing anything but https (or http to loopback)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port
    except ValueError:
        raise _DownloadFailed(f"bad port in {url}", host_down=True) from None
    if parts.scheme == "https":
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, port, timeout=policy.connect_timeout_s, context=ssl.create_default_context()
        )
    elif parts.scheme == "http" and is_loopback_host(host):
        connection = http.client.HTTPConnection(host, port, timeout=policy.connect_timeout_s)
    else:
        raise _DownloadFailed(f"refusing {url}: only https URLs are fetched", host_down=True)
    try:
        connection.connect()
    except socket.gaierror:
        raise _DownloadFailed(f"cannot resolve host {host}", host_down=True) from None
    except TimeoutError:
        raise _DownloadFailed(f"no connection to {host} within {policy.connect_timeout_s:g} s", retryable=True) from None
    except ssl.SSLError as err:
        raise _DownloadFailed(f"TLS error with {host}: {err.reason or err}", host_down=True) from None
    except OSError as err:
        raise _DownloadFailed(f"cannot connect to {host}: {err.strerror or err}", host_down=True) from None
    # The connect timeout above is short; once connected, allow slower reads.
    connection.sock.settimeout(policy.read_timeout_s)
    return connection


def _request(url: str, policy: HttpPolicy) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """GET ``url`` following redirects; return the open connection and its 200 response."""
    for _ in range(policy.max_redirects + 1):
        connection = _connect(url, policy)
        parts = urllib.parse.urlsplit(url)
        target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        try:
            connection.request("GET", target, headers={"User-Agent": f"cnn/{__version__}", "Accept-Encoding": "identity"})
            response = connection.getresponse()
        except TimeoutError:
            connection.close()
            raise _DownloadFailed(f"no response within {policy.read_timeout_s:g} s", retryable=True) from None
        except (http.client.HTTPException, OSError) as err:
            connection.close()
            raise _DownloadFailed(f"connection failed ({type(err).__name__})", retryable=True) from None
        if response.status == 200:
            return connection, response
        location = response.getheader("Location")
        connection.close()
        if response.status in _REDIRECT_STATUSES and location:
            url = urllib.parse.urljoin(url, location)
            continue
        reason = f"HTTP {response.status} {response.reason}".rstrip()
        raise _DownloadFailed(reason, retryable=response.status >= 500)
    raise _DownloadFailed(f"more than {policy.max_redirects} redirects")


def _download_once(url: str, destination: Path, idx_file: IdxFile, policy: HttpPolicy, progress: bool) -> str:
    """Stream ``url`` into ``destination``; return the response's Content-Type."""
    # gzip never makes these files noticeably bigger; anything larger is not the file.
    max_bytes = idx_file.size + idx_file.size // 100 + 4096
    connection, response = _request(url, policy)
    declared = response.getheader("Content-Length")
    total = int(declared) if declared and declared.isdigit() else None
    if total is not None and total > max_bytes:
        connection.close()
        raise _DownloadFailed(f"Content-Length {total} is too large for {idx_file.gz_name}")
    received = 0
    bar = tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=idx_file.gz_name,
        disable=not progress,
        leave=False,
    )
    try:
        with destination.open("wb") as out:
            while chunk := _read_chunk(response, received, total, policy):
                received += len(chunk)
                if received > max_bytes:
                    raise _DownloadFailed(f"more than {max_bytes} bytes; this is not {idx_file.gz_name}")
                out.write(chunk)
                bar.update(len(chunk))
    finally:
        bar.close()
        connection.close()
    if total is not None and received != total:
        raise _DownloadFailed(f"connection closed after {received} of {total} bytes", retryable=True)
    return response.getheader("Content-Type") or ""


def _read_chunk(response: http.client.HTTPResponse, received: int, total: int | None, policy: HttpPolicy) -> bytes:
    """The next chunk of the body (b"" at its end); network failures become retryable _DownloadFailed."""
    try:
        return response.read(CHUNK_BYTES)
    except TimeoutError:
        raise _DownloadFailed(f"read timed out after {received} bytes (no data for {policy.read_timeout_s:g} s)", retryable=True) from None
    except http.client.IncompleteRead as err:
        raise _DownloadFailed(f"connection closed after {received + len(err.partial)} of {total} bytes", retryable=True) from None
    except (http.client.HTTPException, OSError) as err:
        raise _DownloadFailed(f"connection dropped after {received} bytes ({type(err).__name__})", retryable=True) from None


def _download_with_retries(url: str, destination: Path, idx_file: IdxFile, policy: HttpPolicy, progress: bool) -> str:
    """Download with bounded retries; a failure that outlasts them marks the mirror down."""
    attempt = 0
    while True:
        try:
            return _download_once(url, destination, idx_file, policy, progress)
        except _DownloadFailed as failure:
            if not failure.retryable:
                raise
            if attempt == policy.retries:
                tries = "1 try" if attempt == 0 else f"{attempt + 1} tries"
                raise _DownloadFailed(f"{failure} ({tries})", host_down=True) from None
            time.sleep(policy.backoff_s * 2**attempt)
            attempt += 1


class _MirrorFailed(DataError):
    """A download failure; ``host_down`` tells the caller to skip the mirror's other files."""

    def __init__(self, message: str, *, host_down: bool) -> None:
        super().__init__(message)
        self.host_down = host_down


def _gzip_url(base_url: str, idx_file: IdxFile) -> str:
    """The URL of ``<file>.gz`` under a mirror's base URL."""
    return base_url.rstrip("/") + "/" + idx_file.gz_name


def fetch_from_mirror(
    url: str,
    idx_file: IdxFile,
    cache: DatasetCache,
    *,
    policy: HttpPolicy = DEFAULT_HTTP_POLICY,
    progress: bool = True,
    label: str | None = None,
) -> Path:
    """Download one ``.gz`` file, verify it and move it into the cache.

    ``label`` names the download in errors (default: the URL).

    Raises:
        DataError: the download failed or the file did not verify (the temp
            file is deleted either way).
    """
    label = label or url
    try:
        handle, temp_path = create_temp_file(cache.folder, f".{idx_file.gz_name}.")
    except OSError as err:
        raise DataError(f"{cache.folder}: cannot create a file ({err.strerror or err})") from None
    os.close(handle)
    try:
        try:
            content_type = _download_with_retries(url, temp_path, idx_file, policy, progress)
        except _DownloadFailed as failure:
            raise _MirrorFailed(f"{label}: {failure}", host_down=failure.host_down) from None
        except OSError as err:  # writing the temp file, not the network (that is _DownloadFailed)
            raise DataError(f"{temp_path}: cannot write the download ({err.strerror or err})") from None
        with temp_path.open("rb") as stream:
            if stream.read(len(GZIP_MAGIC)) != GZIP_MAGIC:
                raise DataError(f"{label}: the server sent {content_type or 'something'}, not gzip data")
            stream.seek(0)
            return cache.install(stream, idx_file, compressed=True, origin=label)
    finally:
        remove_quietly(temp_path)


class MirrorSource:
    """An HTTPS folder serving ``<file>.gz`` for each file of a dataset."""

    def __init__(self, base_url: str, policy: HttpPolicy = DEFAULT_HTTP_POLICY) -> None:
        self.base_url = base_url
        self.policy = policy
        self.description = f"mirror {base_url}"

    def fetch(self, files: list[IdxFile], cache: DatasetCache, progress: bool) -> None:
        """Fetch each of ``files`` into the cache; raise DataError naming what failed."""
        problems = []
        for position, idx_file in enumerate(files):
            try:
                fetch_from_mirror(
                    _gzip_url(self.base_url, idx_file),
                    idx_file,
                    cache,
                    policy=self.policy,
                    progress=progress,
                    label=idx_file.gz_name,
                )
            except _MirrorFailed as failure:
                problems.append(str(failure))
                if failure.host_down:
                    skipped = len(files) - position - 1
                    if skipped:
                        problems.append(f"skipped its other {skipped} files")
                    break
            except DataError as err:
                problems.append(str(err))
        if problems:
            raise DataError("; ".join(problems))
