"""``cnn serve`` under hostile or careless clients, over loopback only, bounded in count, time and memory.

The server runs as a real child process (``cnn serve --port 0``) with its address space
capped, so that a blow-up hits the cap instead of the machine; every request has a
timeout and every loop a fixed count. Numbers (p95 latency, peak RSS) print with ``-s``.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import resource
import socket
import statistics
import struct
import subprocess
import threading
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from tests.serve.conftest import NEEDS_SERVE_EXTRA, TRAINED_RUN
from tests.support.cli import cli_command, cli_environment, deadline

pytest.importorskip("flask", reason=NEEDS_SERVE_EXTRA)
pytest.importorskip("threadpoolctl", reason=NEEDS_SERVE_EXTRA)

from cnn_cli.serve import Server  # noqa: E402
from cnn_cli.serve.uploads import MAX_PIXELS, MAX_UPLOAD_BYTES  # noqa: E402
from tests.serve.test_api import seven_png  # noqa: E402

CHILD_ADDRESS_SPACE = 3 << 30  # the server's threads reserve stacks; its resident memory is what is measured
REQUEST_TIMEOUT_S = 60
RSS_LIMIT = 1 << 30


@contextlib.contextmanager
def served(runs_root: Path, *extra: str) -> Iterator[tuple[int, int]]:
    """``cnn serve --runs runs_root --port 0`` as a child process; yields (its PID, its port); killed at the end."""

    def cap_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (CHILD_ADDRESS_SPACE, CHILD_ADDRESS_SPACE))

    env = cli_environment({"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
    process = subprocess.Popen(
        cli_command(["serve", "--runs", runs_root, "--port", "0", *extra]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=cap_memory,
    )
    try:
        with deadline(60):
            line = process.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("cnn serve: http://127.0.0.1:"), line + process.stderr.read()  # type: ignore[union-attr]
        yield process.pid, int(line.split()[2].rstrip("/").rsplit(":", 1)[1])
    finally:
        process.kill()
        process.communicate(timeout=10)


def request(port: int, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None):
    """One request on a fresh connection: (status, headers, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def memory_kib(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` field in KiB (VmRSS: resident now, VmHWM: peak resident)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def bomb_png(width: int = 9000, height: int = 9000) -> bytes:
    """A real PNG of ``width``×``height`` black pixels: a few hundred kilobytes that decode to ``width*height`` bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    pixels = zlib.compress(b"\0" * ((width + 1) * height), 9)  # a filter byte and the row, for every row
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def large_digit_png(side: int) -> bytes:
    """A ``side``×``side`` RGBA photo-sized PNG of a 7 (under the pixel cap: decoded in full)."""
    image = Image.open(io.BytesIO(seven_png())).convert("RGBA").resize((side, side))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_twenty_concurrent_bombs_keep_the_server_under_1_gb(runs_root: Path) -> None:
    bomb = bomb_png()
    assert len(bomb) < 400_000
    big = large_digit_png(2800)  # 7.8 megapixels, 31 MB decoded as RGBA
    assert len(big) < MAX_UPLOAD_BYTES and 2800 * 2800 < MAX_PIXELS
    with served(runs_root) as (pid, port):
        assert request(port, "POST", "/api/analyze", seven_png())[0] == 200  # the model is loaded
        before = memory_kib(pid, "VmRSS")
        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(lambda _: request(port, "POST", "/api/analyze", bomb, {"Content-Type": "image/png"}), range(20)))
        assert all(status == 400 and b"too many pixels" in body and b"9000" in body for status, _, body in answers), answers[0]
        after_bombs = memory_kib(pid, "VmHWM")
        with ThreadPoolExecutor(8) as pool:  # images under the cap are decoded, at most two at a time
            answers = list(pool.map(lambda _: request(port, "POST", "/api/analyze", big, {"Content-Type": "image/png"}), range(8)))
        assert [status for status, _, _ in answers] == [200] * 8, [body[:200] for _, _, body in answers]
        peak = memory_kib(pid, "VmHWM")
        assert request(port, "GET", "/api/runs")[0] == 200
    print(
        f"\nRSS: {before / 1024:.0f} MB after start; peak {after_bombs / 1024:.0f} MB after 20 concurrent 9000x9000 bombs, "
        f"{peak / 1024:.0f} MB after 8 concurrent 2800x2800 uploads"
    )
    assert after_bombs * 1024 < RSS_LIMIT and peak * 1024 < RSS_LIMIT


def _mixed_requests(port: int, worker: int) -> list[tuple[str, int, float]]:
    """50 requests of every kind a page or a careless client sends: (what, status, seconds)."""
    seven = seven_png()
    kinds = [
        ("GET", "/", None, 200),
        ("GET", "/runs", None, 200),
        ("GET", "/api/runs", None, 200),
        ("GET", f"/api/runs/{TRAINED_RUN}", None, 200),
        ("GET", "/api/models", None, 200),
        ("GET", "/static/common.js", None, 200),
        ("POST", "/api/analyze", seven, 200),
        ("POST", "/api/analyze?class=%C2%B2", seven, 400),
        ("POST", "/api/pixel?layer=conv2&channel=3&y=2&x=4&target=loss", seven, 200),
        ("GET", "/api/runs/%2e%2e", None, 404),
        ("GET", "/no/such/page", None, 404),
    ]
    results = []
    for i in range(50):
        method, path, body, expected = kinds[(i + worker) % len(kinds)]
        start = time.perf_counter()
        status, headers, _ = request(port, method, path, body)
        results.append((f"{method} {path}", status, time.perf_counter() - start))
        assert status == expected, (method, path, status)
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    return results


def test_twenty_threads_of_fifty_mixed_requests_all_answer(runs_root: Path) -> None:
    with served(runs_root) as (_, port):
        request(port, "POST", "/api/analyze", seven_png())  # load the model once
        with ThreadPoolExecutor(20) as pool:
            results = [r for batch in pool.map(lambda worker: _mixed_requests(port, worker), range(20)) for r in batch]
    assert len(results) == 1000
    seconds = sorted(s for _, _, s in results)
    p95 = seconds[int(0.95 * len(seconds)) - 1]
    print(f"\n1000 mixed requests from 20 threads: median {1000 * statistics.median(seconds):.0f} ms, p95 {1000 * p95:.0f} ms")
    assert max(status for _, status, _ in results) < 500


def test_a_foreign_host_and_a_cross_origin_post_are_refused(runs_root: Path) -> None:
    seven = seven_png()
    with served(runs_root, "--allow-host", "mybox.local") as (_, port):
        status, headers, body = request(port, "GET", "/api/runs", headers={"Host": "evil.example"})
        assert status == 403 and b"--allow-host evil.example" in body and TRAINED_RUN.encode() not in body
        assert "Content-Security-Policy" in headers
        assert request(port, "GET", "/api/runs", headers={"Host": f"mybox.local:{port}"})[0] == 200
        assert request(port, "GET", "/api/runs", headers={"Host": f"localhost:{port}"})[0] == 200
        cross = {"Origin": "http://evil.example", "Content-Type": "text/plain"}
        status, _, body = request(port, "POST", "/api/analyze", seven, cross)
        assert status == 403 and b"evil.example" in body
        same = {"Origin": f"http://127.0.0.1:{port}", "Content-Type": "image/png", "Sec-Fetch-Site": "same-origin"}
        assert request(port, "POST", "/api/analyze", seven, same)[0] == 200


def test_uploads_over_the_limit_are_413_with_the_limit_chunked_or_not(runs_root: Path) -> None:
    too_big = b"\x89PNG" + b"\0" * MAX_UPLOAD_BYTES
    with served(runs_root) as (_, port):
        status, _, body = request(port, "POST", "/api/analyze", too_big, {"Content-Type": "image/png"})
        assert status == 413 and b"4 MiB" in body and b"4,194,304" in body
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
        connection.putrequest("POST", "/api/analyze")
        connection.putheader("Transfer-Encoding", "chunked")
        connection.putheader("Content-Type", "image/png")
        connection.endheaders()
        block = 1 << 16
        for start in range(0, len(too_big), block):
            part = too_big[start : start + block]
            connection.send(b"%x\r\n%s\r\n" % (len(part), part))
        connection.send(b"0\r\n\r\n")
        response = connection.getresponse()
        assert response.status == 413 and b"4 MiB" in response.read()
        connection.close()
        # curl --data-binary @seven.png sends the form content type: the body is the image.
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        assert request(port, "POST", "/api/analyze", seven_png(), form)[0] == 200


def test_errors_werkzeug_answers_itself_carry_the_security_headers(runs_root: Path) -> None:
    with served(runs_root) as (_, port):
        status, headers, _ = request(port, "GET", "/" + "a" * 70_000)
        assert status == 414 and "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        status, headers, _ = request(port, "GET", "/", headers={f"X-Many-{i}": "x" for i in range(120)})
        assert status == 431 and headers["X-Content-Type-Options"] == "nosniff"


def test_half_open_connections_time_out_and_the_threads_stay_bounded(runs_root: Path) -> None:
    """100 connections that send nothing: at most max_threads are served at once, each dropped after the timeout."""
    server = Server(runs_root, None, "127.0.0.1", 0, max_threads=16, timeout_s=1.0)
    server.start_thread()
    port = server.address[1]
    baseline = threading.active_count()
    silent = []
    try:
        for _ in range(100):
            silent.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        time.sleep(0.5)
        assert threading.active_count() - baseline <= 16
        start = time.perf_counter()
        status, _, _ = request(port, "GET", "/api/runs")  # waits for a free thread, then is served
        assert status in (200, 503)
        assert time.perf_counter() - start < 15
        deadline = time.monotonic() + 30
        while threading.active_count() > baseline and time.monotonic() < deadline:
            time.sleep(0.2)
        assert threading.active_count() <= baseline, "the silent connections were never dropped"
        assert request(port, "GET", "/api/runs")[0] == 200
    finally:
        for connection in silent:
            connection.close()
        server.shutdown()
