"""``cnn serve``: a local web app to draw a digit and watch the network answer, and to watch runs train.

Flask and threadpoolctl are optional dependencies (the ``serve`` extra);
:func:`require_web_framework` says how to install them. The app itself lives in :mod:`cnn_cli.serve.app`.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import logging
import socket
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from cnn_cli.errors import CnnError

INSTALL_COMMAND = 'pip install ".[serve]"'
LOOPBACK_HOSTS = ("localhost",)
SERVE_PACKAGES = {"flask": "Flask", "threadpoolctl": "threadpoolctl"}  # module -> package, the serve extra


def serve_extra_installed() -> bool:
    """True when every package of the serve extra can be imported."""
    return all(_importable(name) for name in SERVE_PACKAGES)


def require_web_framework() -> None:
    """Raise a one-line error naming the install command when the serve extra (Flask, threadpoolctl) is missing."""
    missing = [name for name in SERVE_PACKAGES if not _importable(name)]
    if missing:
        names = " and ".join(SERVE_PACKAGES[m] for m in missing)
        raise CnnError(f"cnn serve needs {names}, not installed; install the serve extra with: {INSTALL_COMMAND}")


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def is_loopback(host: str) -> bool:
    """True for 127.0.0.1 (also written 127.1), ::1, localhost in any case: addresses no other machine can reach."""
    host = host.strip().lower().rstrip(".")
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        return ipaddress.ip_address(socket.inet_aton(host)).is_loopback  # the short forms inet_aton reads: 127.1, 0x7f.1
    except OSError:
        return False


class Server:
    """The app on a threaded HTTP server, bound but not yet serving (so the real port is known, also for port 0).

    ``allow_hosts``: extra names the server answers to (``--allow-host``; see :mod:`cnn_cli.serve.security`).
    ``max_threads`` and ``timeout_s`` bound the connections served at once and how long one may stay silent.
    """

    def __init__(
        self,
        runs_root: str | Path,
        checkpoint: str | Path | None,
        host: str,
        port: int,
        allow_hosts: Sequence[str] = (),
        max_threads: int | None = None,
        timeout_s: float | None = None,
    ) -> None:
        from cnn_cli.serve.app import create_app
        from cnn_cli.serve.server import MAX_THREADS, SOCKET_TIMEOUT_S, BoundedServer, listen_socket

        if checkpoint is not None and not Path(checkpoint).is_file():
            raise CnnError(f"--checkpoint {checkpoint}: file not found")
        # The pages poll every second: werkzeug's line per request would flood the terminal. Warnings still show.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        listener = listen_socket(host, port)
        bound = str(listener.getsockname()[0])
        app = create_app(runs_root, checkpoint, bound_host=bound, allow_hosts=allow_hosts)
        self._server = BoundedServer(listener, app, max_threads or MAX_THREADS, timeout_s or SOCKET_TIMEOUT_S)
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The address and port the server listens on (the real port also for port 0)."""
        return str(self._server.server_address[0]), int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host, port = self.address
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/"

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.2)

    def start_thread(self) -> threading.Thread:
        """Serve in a daemon thread (tests); stop with :meth:`shutdown`."""
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self._thread

    def shutdown(self) -> None:
        """Stop :meth:`serve_forever` (from another thread) and close the socket; harmless when already stopped."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
        self._server.server_close()


def serve(
    runs_root: str | Path,
    checkpoint: str | Path | None,
    host: str,
    port: int,
    log: Callable[[str], None] = print,
    warn: Callable[[str], None] = print,
    allow_hosts: Sequence[str] = (),
) -> None:
    """Serve until Ctrl-C (which ends it cleanly); ``log`` gets the URL, ``warn`` the warning for a non-loopback address."""
    require_web_framework()
    server = Server(runs_root, checkpoint, host, port, allow_hosts)
    address, real_port = server.address
    if not is_loopback(address):
        warn(f"warning: listening on {address}: anyone who can reach this machine on port {real_port} can see the runs in {runs_root}")
    log(f"cnn serve: {server.url}  (runs: {runs_root}; Ctrl-C stops)")
    try:
        server.serve_forever()  # werkzeug's loop returns on Ctrl-C; a KeyboardInterrupt outside it ends here too
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
    log("stopped")
