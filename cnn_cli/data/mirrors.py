"""Fetch dataset files from HTTPS mirrors with the standard library's ``urllib.request``.

Each ``<file>.gz`` is streamed straight into :meth:`DatasetCache.install`, which
decompresses, size-checks and hashes it on its way into a temp file. Every wait
on the network is bounded by ``HttpPolicy.timeout_s`` and the body by a size cap;
5xx answers, timeouts and dropped connections are retried a bounded number of
times with exponential backoff. Only ``https`` is fetched (plain ``http`` only
from loopback addresses, which the tests serve from), and a redirect may not
leave ``https`` either. Certificates are checked by urllib's default TLS context.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm  # type: ignore[import-untyped]

from cnn_cli.data.cache import DatasetCache
from cnn_cli.data.catalog import IdxFile
from cnn_cli.data.idx import GZIP_MAGIC
from cnn_cli.errors import DataError
from cnn_cli.version import __version__


@dataclass(frozen=True)
class HttpPolicy:
    """Timeouts and retry budget for mirror downloads.

    Attributes:
        timeout_s: limit on connecting and on any single wait for data.
        retries: extra attempts after a 5xx, a read timeout or a dropped connection (a host that cannot
            be reached at all is not retried, and its other files are skipped).
        backoff_s: wait before the first retry; doubled for each later one.
    """

    timeout_s: float = 10.0
    retries: int = 2
    backoff_s: float = 0.5


DEFAULT_HTTP_POLICY = HttpPolicy()


class MirrorFailure(DataError):
    """A download from a mirror failed. ``retryable``: try the URL again; ``host_down``: skip the mirror's other files."""

    def __init__(self, message: str, *, retryable: bool = False, host_down: bool = False) -> None:
        super().__init__(message)
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


def _check_scheme(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if not (parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(parts.hostname or ""))):
        raise MirrorFailure(f"refusing {url}: only https URLs are fetched", host_down=True)


class _HttpsOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects (urllib caps their number) but never to plain http."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        _check_scheme(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_HttpsOnlyRedirects)  # honours https_proxy / no_proxy
_LOOPBACK_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _HttpsOnlyRedirects)  # never via a proxy


def _open(url: str, policy: HttpPolicy) -> http.client.HTTPResponse:
    """GET ``url``; network failures become MirrorFailure (refused or unresolvable hosts are 'down')."""
    _check_scheme(url)
    host = urllib.parse.urlsplit(url).hostname
    request = urllib.request.Request(url, headers={"User-Agent": f"cnn/{__version__}", "Accept-Encoding": "identity"})
    try:
        return (_LOOPBACK_OPENER if is_loopback_host(host or "") else _OPENER).open(request, timeout=policy.timeout_s)
    except urllib.error.HTTPError as err:
        err.close()
        raise MirrorFailure(f"HTTP {err.code} {err.reason}".rstrip(), retryable=err.code >= 500) from None
    except urllib.error.URLError as err:  # raised while connecting or sending the request
        reason = err.reason
        if isinstance(reason, socket.gaierror):
            raise MirrorFailure(f"cannot resolve host {host}", host_down=True) from None
        if isinstance(reason, TimeoutError):  # not retried: a host that is unreachable now stays so for seconds
            raise MirrorFailure(f"no connection to {host} within {policy.timeout_s:g} s", host_down=True) from None
        if isinstance(reason, ssl.SSLError):
            raise MirrorFailure(f"TLS error with {host}: {reason.reason or reason}", host_down=True) from None
        words = reason.strerror if isinstance(reason, OSError) and reason.strerror else reason
        raise MirrorFailure(f"cannot connect to {host}: {words}", host_down=True) from None
    except TimeoutError:
        raise MirrorFailure(f"no response within {policy.timeout_s:g} s", retryable=True) from None
    except (http.client.HTTPException, OSError) as err:
        raise MirrorFailure(f"connection failed ({type(err).__name__})", retryable=True) from None


class _Body:
    """A response body as a file object for gzip: counts and caps the bytes, drives the bar, names failures."""

    def __init__(self, response: http.client.HTTPResponse, idx_file: IdxFile, policy: HttpPolicy, progress: bool) -> None:
        self.response, self.policy = response, policy
        # gzip never makes these files noticeably bigger; anything larger is not the file.
        self.limit = idx_file.size + idx_file.size // 100 + 4096
        self.name = idx_file.gz_name
        declared = response.headers.get("Content-Length")
        self.total = int(declared) if declared and declared.isdigit() else None
        if self.total is not None and self.total > self.limit:
            raise MirrorFailure(f"Content-Length {self.total} is too large for {self.name}")
        self.received = 0
        self.bar = tqdm(total=self.total, unit="B", unit_scale=True, unit_divisor=1024, desc=self.name, disable=not progress, leave=False)

    def read(self, size: int = -1) -> bytes:
        try:
            chunk = self.response.read(size if size >= 0 else 1 << 20)
        except TimeoutError:
            waited = f"no data for {self.policy.timeout_s:g} s"
            raise MirrorFailure(f"read timed out after {self.received} bytes ({waited})", retryable=True) from None
        except (http.client.HTTPException, OSError) as err:
            raise MirrorFailure(f"connection dropped after {self.received} bytes ({type(err).__name__})", retryable=True) from None
        if not chunk and self.total is not None and self.received != self.total:
            raise MirrorFailure(f"connection closed after {self.received} of {self.total} bytes", retryable=True)
        if chunk and not self.received and chunk[:2] != GZIP_MAGIC[: len(chunk[:2])]:
            content_type = self.response.headers.get("Content-Type") or "something"
            raise MirrorFailure(f"the server sent {content_type}, not gzip data")
        self.received += len(chunk)
        if self.received > self.limit:
            raise MirrorFailure(f"more than {self.limit} bytes; this is not {self.name}")
        self.bar.update(len(chunk))
        return chunk


def fetch_from_mirror(
    url: str,
    idx_file: IdxFile,
    cache: DatasetCache,
    *,
    policy: HttpPolicy = DEFAULT_HTTP_POLICY,
    progress: bool = True,
    label: str | None = None,
) -> Path:
    """Download one ``.gz`` file, verify it and move it into the cache; ``label`` names it in errors (default: the URL).

    Raises:
        MirrorFailure: the download failed (``host_down`` once the retries are spent).
        DataError: the bytes are not the file (bad gzip, size or checksum). Nothing is left behind either way.
    """
    label = label or url
    attempt = 0
    while True:
        try:
            with _open(url, policy) as response:
                body = _Body(response, idx_file, policy, progress)
                try:
                    return cache.install(body, idx_file, compressed=True, origin=label)  # type: ignore[arg-type]
                finally:
                    body.bar.close()
        except MirrorFailure as failure:
            if not failure.retryable:
                raise MirrorFailure(f"{label}: {failure}", host_down=failure.host_down) from None
            if attempt == policy.retries:
                tries = "1 try" if attempt == 0 else f"{attempt + 1} tries"
                raise MirrorFailure(f"{label}: {failure} ({tries})", host_down=True) from None
            time.sleep(policy.backoff_s * 2**attempt)
            attempt += 1


class MirrorSource:
    """An HTTPS folder serving ``<file>.gz`` for each file of a dataset."""

    def __init__(self, base_url: str, policy: HttpPolicy = DEFAULT_HTTP_POLICY) -> None:
        self.base_url = base_url
        self.policy = policy
        self.description = f"mirror {base_url}"
        self.limits = f"timeout {policy.timeout_s:g} s per request, {policy.retries} retries"

    def fetch(self, files: list[IdxFile], cache: DatasetCache, progress: bool) -> None:
        """Fetch each of ``files`` into the cache; raise DataError naming what failed."""
        problems = []
        for position, idx_file in enumerate(files):
            url = self.base_url.rstrip("/") + "/" + idx_file.gz_name
            try:
                fetch_from_mirror(url, idx_file, cache, policy=self.policy, progress=progress, label=idx_file.gz_name)
            except MirrorFailure as failure:
                problems.append(str(failure))
                if failure.host_down:
                    if position + 1 < len(files):
                        problems.append(f"skipped its other {len(files) - position - 1} files")
                    break
            except DataError as err:
                problems.append(str(err))
        if problems:
            raise DataError("; ".join(problems))
