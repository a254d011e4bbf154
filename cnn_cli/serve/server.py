"""The HTTP server under the app: Werkzeug's threaded server, bound by us, with timeouts and a bounded thread count.

- The socket is bound here (:func:`listen_socket`), not by Werkzeug, so that a port in
  use or a host name that does not resolve is a one-line :class:`CnnError` (exit 2)
  instead of Werkzeug's two lines and exit 1; the real port is known at once, also for
  port 0.
- Every connection gets a socket timeout (:data:`SOCKET_TIMEOUT_S`): a client that opens a
  connection and sends nothing, or stops half-way, is dropped instead of holding a thread
  forever.
- At most :data:`MAX_THREADS` connections are served at once. Beyond that, a new
  connection waits for a free thread (the accept loop pauses; the kernel queues it), and
  one that waited :data:`SOCKET_TIMEOUT_S` is answered 503.
- Answers Werkzeug writes itself before the app sees the request (414 URI too long,
  431 header fields too large, 400 bad request line) carry the same security headers.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

from cnn_cli.errors import CnnError
from cnn_cli.serve.security import SECURITY_HEADERS

SOCKET_TIMEOUT_S = 10.0
MAX_THREADS = 64
BACKLOG = 128


def listen_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (port 0: a free one).

    Raises:
        CnnError: the host does not resolve, the port is in use, or binding is not allowed; one line.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError):
        raise CnnError(f"--host {host}: not an IP address or a host name that resolves") from None
    listener = socket.socket(family, kind, proto)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(BACKLOG)
    except OSError as exc:
        listener.close()
        hint = "; pick another with --port, or --port 0 for any free one" if "in use" in str(exc.strerror) else ""
        raise CnnError(f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}") from None
    return listener


class _Handler(WSGIRequestHandler):
    """Werkzeug's request handler with a socket timeout, and security headers on the errors it answers itself."""

    timeout = SOCKET_TIMEOUT_S
    _sending_error = False

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        self._sending_error = True
        try:
            super().send_error(code, message, explain)
        finally:
            self._sending_error = False

    def end_headers(self) -> None:
        if self._sending_error:
            for name, value in SECURITY_HEADERS.items():
                self.send_header(name, value)
        super().end_headers()


class BoundedServer(ThreadedWSGIServer):
    """Werkzeug's threaded WSGI server, serving at most ``max_threads`` connections at once."""

    block_on_close = False  # stopping does not wait for a silent client's thread (it times out by itself)

    def __init__(self, listener: socket.socket, app: Any, max_threads: int = MAX_THREADS, timeout_s: float = SOCKET_TIMEOUT_S) -> None:
        host, port = listener.getsockname()[:2]
        handler = type("Handler", (_Handler,), {"timeout": timeout_s})
        # Werkzeug takes the socket by descriptor and duplicates it; ours is closed once it has its own.
        super().__init__(host, port, app, handler, fd=listener.fileno())
        listener.close()
        self._slots = threading.BoundedSemaphore(max_threads)
        self._wait_s = timeout_s

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(timeout=self._wait_s):
            _refuse_busy(request)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def _refuse_busy(connection: socket.socket) -> None:
    headers = "".join(f"{name}: {value}\r\n" for name, value in SECURITY_HEADERS.items())
    body = b"the server is busy: too many connections at once; try again in a moment\n"
    answer = (
        f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\nConnection: close\r\n{headers}\r\n"
    )
    try:
        connection.settimeout(1.0)
        connection.sendall(answer.encode("latin-1") + body)
    except OSError:
        pass
