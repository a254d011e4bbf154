"""The HTTPS-mirror step, against a local HTTP server on 127.0.0.1 (tiny timeouts keep it fast)."""

from __future__ import annotations

import gzip
import http.server
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cnn_cli.data.cache import DatasetCache
from cnn_cli.data.mirrors import HttpPolicy, MirrorSource, fetch_from_mirror, is_loopback_host
from cnn_cli.data.sources import fetch_dataset
from cnn_cli.errors import DataError
from cnn_cli.io import TEMP_SUFFIX

FAST_POLICY = HttpPolicy(timeout_s=0.3, retries=1, backoff_s=0.01)
TLS_POLICY = HttpPolicy(timeout_s=5, retries=0)  # handshakes on a busy machine need more than FAST_POLICY's 0.3 s
SLOW_SERVER_DELAY_S = 1.5


def respond(
    body: bytes,
    *,
    status: int = 200,
    content_type: str = "application/octet-stream",
    declared_length: int | None = None,
    send_length: bool = True,
):
    """A handler that answers with ``body`` (Content-Length ``declared_length`` if given)."""

    def handler(request) -> None:
        request.send_response(status)
        request.send_header("Content-Type", content_type)
        if send_length:
            request.send_header("Content-Length", str(len(body) if declared_length is None else declared_length))
        request.end_headers()
        request.wfile.write(body)

    return handler


def stall_midway(body: bytes):
    """A handler that sends half the body, then stalls past the client's read timeout."""

    def handler(request) -> None:
        request.send_response(200)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body[: len(body) // 2])
        request.wfile.flush()
        time.sleep(SLOW_SERVER_DELAY_S)
        request.wfile.write(body[len(body) // 2 :])

    return handler


def fail_first(times: int, then):
    """A handler that answers 503 ``times`` times, then behaves like ``then``."""
    calls = {"count": 0}

    def handler(request) -> None:
        calls["count"] += 1
        if calls["count"] <= times:
            request.send_error(503, "Slow Down")
            return
        then(request)

    return handler


def serve_dataset(server, prefix: str, synthetic, make_handler=None) -> str:
    """Serve every file of ``synthetic`` as ``<prefix><name>.gz``; return the mirror's base URL."""
    make_handler = make_handler or (lambda data: respond(gzip.compress(data), content_type="application/gzip"))
    for idx_file in synthetic.spec.files:
        server.routes[f"{prefix}{idx_file.gz_name}"] = make_handler(synthetic.raw[idx_file.name])
    return server.base_url + prefix


def leftover_temp_files(folder: Path) -> list[Path]:
    return [path for path in folder.iterdir() if path.name.endswith(TEMP_SUFFIX)]


def test_good_mirror_fills_the_cache(tmp_path: Path, synthetic, loopback_server) -> None:
    base_url = serve_dataset(loopback_server, "/good/", synthetic)
    cache = DatasetCache(tmp_path, synthetic.spec)

    MirrorSource(base_url, FAST_POLICY).fetch(list(synthetic.spec.files), cache, progress=False)

    for idx_file in synthetic.spec.files:
        assert cache.path(idx_file).read_bytes() == synthetic.raw[idx_file.name]
        assert cache.is_verified(idx_file)
    assert leftover_temp_files(cache.folder) == []


def test_corrupt_mirror_falls_through_to_the_next(tmp_path: Path, synthetic, loopback_server) -> None:
    def corrupt(data: bytes):
        flipped = bytearray(data)
        flipped[-1] ^= 0xFF  # same size, wrong checksum
        return respond(gzip.compress(bytes(flipped)))

    bad_url = serve_dataset(loopback_server, "/corrupt/", synthetic, corrupt)
    good_url = serve_dataset(loopback_server, "/good/", synthetic)
    sources = [MirrorSource(bad_url, FAST_POLICY), MirrorSource(good_url, FAST_POLICY)]

    paths = fetch_dataset(synthetic.spec, tmp_path, sources, progress=False)

    assert {path.read_bytes() for path in paths.values()} == set(synthetic.raw.values())
    assert all(loopback_server.hits[f"/corrupt/{f.gz_name}"] == 1 for f in synthetic.spec.files)
    assert leftover_temp_files(tmp_path / synthetic.spec.name) == []


@pytest.mark.parametrize(
    ("case", "expected", "expected_hits"),
    [
        ("corrupt", "SHA-256", 1),
        ("truncated transfer", "connection closed after", 2),
        ("truncated gzip", "corrupt or truncated gzip data", 1),
        ("html error page", "the server sent text/html; charset=utf-8, not gzip data", 1),
        ("slow", "read timed out", 2),
        ("not found", "HTTP 404", 1),
        ("always 503", "HTTP 503", 2),
        ("endless", "more than", 1),
        ("huge length", "is too large", 1),
    ],
)
def test_bad_downloads_fail_cleanly(tmp_path: Path, synthetic, loopback_server, case: str, expected: str, expected_hits: int) -> None:
    idx_file = synthetic.spec.files[1]  # the small training-labels file
    data = synthetic.raw[idx_file.name]
    compressed = gzip.compress(data)
    handlers = {
        "corrupt": respond(gzip.compress(data[:-1] + b"\x01")),
        "truncated transfer": respond(compressed[:-10], declared_length=len(compressed)),
        "truncated gzip": respond(compressed[: len(compressed) // 2]),
        "html error page": respond(b"<!DOCTYPE html><html>Access denied</html>", content_type="text/html; charset=utf-8"),
        "slow": stall_midway(compressed),
        "always 503": fail_first(99, respond(compressed)),
        # Stored (level 0) gzip: the body is as big as the data it holds, so the size caps, not the gzip check, stop it.
        "endless": respond(gzip.compress(bytes(idx_file.size + 100_000), compresslevel=0), send_length=False),
        "huge length": respond(compressed, declared_length=idx_file.size + 10**9),
    }
    path = f"/{case.replace(' ', '-')}/{idx_file.gz_name}"
    if case in handlers:
        loopback_server.routes[path] = handlers[case]
    cache = DatasetCache(tmp_path, synthetic.spec)

    started = time.perf_counter()
    with pytest.raises(DataError) as caught:
        fetch_from_mirror(loopback_server.base_url + path, idx_file, cache, policy=FAST_POLICY, progress=False)
    elapsed = time.perf_counter() - started

    assert expected in str(caught.value)
    assert str(caught.value).startswith(loopback_server.base_url + path)
    assert loopback_server.hits[path] == expected_hits
    assert not cache.path(idx_file).exists()
    assert leftover_temp_files(cache.folder) == []
    assert elapsed < 5


def test_503_then_success_is_retried(tmp_path: Path, synthetic, loopback_server) -> None:
    idx_file = synthetic.spec.files[1]
    path = f"/flaky/{idx_file.gz_name}"
    loopback_server.routes[path] = fail_first(1, respond(gzip.compress(synthetic.raw[idx_file.name])))
    cache = DatasetCache(tmp_path, synthetic.spec)

    fetch_from_mirror(loopback_server.base_url + path, idx_file, cache, policy=FAST_POLICY, progress=False)

    assert loopback_server.hits[path] == 2
    assert cache.is_verified(idx_file)


def test_missing_file_does_not_stop_the_others(tmp_path: Path, synthetic, loopback_server) -> None:
    base_url = serve_dataset(loopback_server, "/partial/", synthetic)
    missing = synthetic.spec.files[0]
    del loopback_server.routes[f"/partial/{missing.gz_name}"]
    cache = DatasetCache(tmp_path, synthetic.spec)

    with pytest.raises(DataError, match=f"^{missing.gz_name}: HTTP 404"):
        MirrorSource(base_url, FAST_POLICY).fetch(list(synthetic.spec.files), cache, progress=False)

    assert [cache.is_verified(f) for f in synthetic.spec.files] == [False, True, True, True]


def test_unreachable_mirror_is_skipped_quickly(tmp_path: Path, synthetic) -> None:
    with socket.socket() as probe:  # find a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    cache = DatasetCache(tmp_path, synthetic.spec)

    started = time.perf_counter()
    with pytest.raises(DataError) as caught:
        MirrorSource(f"http://127.0.0.1:{closed_port}/", FAST_POLICY).fetch(list(synthetic.spec.files), cache, progress=False)

    assert "connection refused" in str(caught.value).lower()
    assert "skipped its other 3 files" in str(caught.value)
    assert time.perf_counter() - started < 2


def test_plain_http_is_refused_except_on_loopback(tmp_path: Path, synthetic) -> None:
    cache = DatasetCache(tmp_path, synthetic.spec)
    with pytest.raises(DataError, match="refusing http://example.com/mnist/.*only https URLs are fetched"):
        MirrorSource("http://example.com/mnist/", FAST_POLICY).fetch(list(synthetic.spec.files), cache, False)


def test_redirects_are_followed_but_never_to_plain_http(tmp_path: Path, synthetic, loopback_server) -> None:
    idx_file = synthetic.spec.files[1]

    def redirect(location: str):
        def handler(request) -> None:
            request.send_response(302)
            request.send_header("Location", location)
            request.send_header("Content-Length", "0")
            request.end_headers()

        return handler

    loopback_server.routes["/real.gz"] = respond(gzip.compress(synthetic.raw[idx_file.name]))
    loopback_server.routes["/moved.gz"] = redirect("/real.gz")
    loopback_server.routes["/downgrade.gz"] = redirect("http://example.com/real.gz")
    cache = DatasetCache(tmp_path, synthetic.spec)

    with pytest.raises(DataError, match="refusing http://example.com/real.gz"):
        fetch_from_mirror(loopback_server.base_url + "/downgrade.gz", idx_file, cache, policy=FAST_POLICY, progress=False)
    fetch_from_mirror(loopback_server.base_url + "/moved.gz", idx_file, cache, policy=FAST_POLICY, progress=False)
    assert cache.is_verified(idx_file)


def test_a_redirect_loop_ends_with_a_clear_error(tmp_path: Path, synthetic, loopback_server) -> None:
    def loop(request) -> None:
        request.send_response(302)
        request.send_header("Location", "/loop.gz")
        request.send_header("Content-Length", "0")
        request.end_headers()

    loopback_server.routes["/loop.gz"] = loop
    cache = DatasetCache(tmp_path, synthetic.spec)
    with pytest.raises(DataError, match=r"/loop.gz: HTTP 302 .*redirect"):
        fetch_from_mirror(loopback_server.base_url + "/loop.gz", synthetic.spec.files[1], cache, policy=FAST_POLICY, progress=False)
    assert loopback_server.hits["/loop.gz"] <= 11


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("localhost", True),
        ("10.0.0.1", False),
        ("example.com", False),
        ("localhost.example.com", False),
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


@pytest.fixture
def https_mirror(tmp_path: Path, synthetic) -> Iterator[tuple[str, Path]]:
    """A real TLS mirror on 127.0.0.1 with a fresh self-signed certificate; yields (base URL, certificate file)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1"]
        + ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
        timeout=30,
    )
    bodies = {f"/mnist/{f.gz_name}": gzip.compress(synthetic.raw[f.name]) for f in synthetic.spec.files}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = bodies.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/mnist/", cert
    finally:
        server.shutdown()
        server.server_close()


def test_https_with_an_untrusted_certificate_is_refused(tmp_path: Path, synthetic, https_mirror, monkeypatch: pytest.MonkeyPatch) -> None:
    base_url, _ = https_mirror
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    cache = DatasetCache(tmp_path / "data", synthetic.spec)
    with pytest.raises(DataError, match="TLS error with 127.0.0.1: CERTIFICATE_VERIFY_FAILED") as caught:
        MirrorSource(base_url, TLS_POLICY).fetch(list(synthetic.spec.files), cache, progress=False)
    assert "skipped its other 3 files" in str(caught.value)
    assert not any(cache.is_verified(f) for f in synthetic.spec.files)


def test_https_with_a_trusted_certificate_fills_the_cache(tmp_path: Path, synthetic, https_mirror, monkeypatch: pytest.MonkeyPatch) -> None:
    base_url, cert = https_mirror
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # OpenSSL's default verify paths read it: the system trust store, swapped
    cache = DatasetCache(tmp_path / "data", synthetic.spec)
    MirrorSource(base_url, TLS_POLICY).fetch(list(synthetic.spec.files), cache, progress=False)
    assert all(cache.is_verified(f) for f in synthetic.spec.files)


def test_a_host_that_never_answers_the_connect_costs_one_timeout(tmp_path: Path, synthetic) -> None:
    """A listening socket whose backlog is full drops new connections, like a firewalled or offline host."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        fillers = [socket.socket() for _ in range(4)]
        for filler in fillers:
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        time.sleep(0.2)
        cache = DatasetCache(tmp_path, synthetic.spec)
        started = time.perf_counter()
        with pytest.raises(DataError) as caught:
            MirrorSource(f"http://127.0.0.1:{port}/", HttpPolicy(timeout_s=0.5, retries=2)).fetch(list(synthetic.spec.files), cache, False)
        elapsed = time.perf_counter() - started
        for filler in fillers:
            filler.close()
    assert str(caught.value) == f"{synthetic.spec.files[0].gz_name}: no connection to 127.0.0.1 within 0.5 s; skipped its other 3 files"
    assert elapsed < 1.5, f"{elapsed:.2f} s: the connect was retried or the other files were tried"
