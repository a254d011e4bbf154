"""What every response of ``cnn serve`` carries and what every request must show: headers, Host, Origin, errors.

- **Security headers** on every answer, errors included: a Content Security Policy that
  lets the pages load only this server's files and be framed by no one, no MIME sniffing,
  no referrer, no caching.
- **Host check** (against DNS rebinding): a page on ``evil.example`` whose name an
  attacker re-points at 127.0.0.1 reaches this server with ``Host: evil.example``. Only
  the names this server is really reached by are answered: ``localhost``, loopback
  addresses, the address it is bound to, and the names given with ``--allow-host``
  (as Jupyter's ``allow_remote_access`` does for a user who serves to a LAN on purpose).
  An IP address cannot be re-pointed, so when bound to every interface (0.0.0.0, ::)
  any IP-address Host is answered too.
- **Origin check** on every request that changes state or costs real work (any method
  but GET/HEAD, and the test-split evaluation): a browser says where a request comes
  from (``Origin``, ``Sec-Fetch-Site``); one from another site is refused. A client that
  sends neither (curl, a script) is not a browser page and is served.
- **Errors** as JSON under ``/api/`` (``{"error": ..., "status": ...}``), as a small HTML
  page elsewhere.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import Forbidden, HTTPException

from cnn_cli.errors import CnnError

SECURITY_HEADERS = {
    # Everything the pages need is served from here; nothing is fetched from elsewhere, and no other site may frame them.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
LOCAL_NAMES = ("localhost",)
WILDCARD_ADDRESSES = ("0.0.0.0", "::", "")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
SAME_ORIGIN_FETCH = ("same-origin", "none")  # Sec-Fetch-Site values of the page itself and of a typed URL


def host_name(host: str) -> str:
    """The name part of a ``Host`` header, lower case: ``[::1]:8000`` -> ``::1``, ``Example.org.:80`` -> ``example.org``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host[1:]
    if host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    return host.rstrip(".")


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


class HostGuard:
    """Which ``Host`` names this server answers to (see the module docstring)."""

    def __init__(self, bound_host: str = "127.0.0.1", allow_hosts: Iterable[str] = ()) -> None:
        self.bound = host_name(bound_host)
        self.allowed = {host_name(name) for name in allow_hosts if name}
        self.any_address = self.bound in WILDCARD_ADDRESSES

    def allows(self, host: str) -> bool:
        name = host_name(host)
        if name in LOCAL_NAMES or name.endswith(".localhost") or name == self.bound or name in self.allowed:
            return True
        address = _ip(name)
        if address is None:
            return False
        return address.is_loopback or self.any_address or address == _ip(self.bound)


def cross_origin() -> str | None:
    """Why the current request comes from another site's page, or None when it does not (or says nothing)."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site.lower() not in SAME_ORIGIN_FETCH:
        return f"a request from a {fetch_site} page (Sec-Fetch-Site)"
    origin = request.headers.get("Origin")
    if origin is None:
        return None
    parts = urlsplit(origin)
    if origin == "null" or parts.scheme not in ("http", "https") or parts.netloc.lower() != request.host.lower():
        return f"a request from the page at {origin!r}, not from this server's own pages"
    return None


def install(app: Flask, guard: HostGuard, expensive_endpoints: Iterable[str]) -> None:
    """Register the Host and Origin checks, the security headers and the error pages on ``app``."""
    expensive = set(expensive_endpoints)

    @app.before_request
    def _check_host_and_origin() -> None:
        if not guard.allows(request.host):
            name = host_name(request.host)
            raise Forbidden(
                f"refused: this server is not {name!r} (a page on another site may have re-pointed that name here); "
                f"to serve under that name on purpose, start it with --allow-host {name}"
            )
        if request.method not in SAFE_METHODS or request.endpoint in expensive:
            reason = cross_origin()
            if reason is not None:
                raise Forbidden(f"refused: {reason}")

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        return error_response(exc.code or 500, exc.description or exc.name)

    @app.errorhandler(CnnError)
    def _bad_input(exc: CnnError):
        return error_response(400, str(exc))


def error_response(status: int, message: str):
    """An error as JSON for the API, as a small HTML page for anything else (a mistyped page address)."""
    if request.path.startswith("/api/"):
        return jsonify(error=message, status=status), status
    return render_template("error.html", status=status, message=message), status
