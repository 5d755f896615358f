"""Who may use `assay serve`, and from where (docs/serve.md, "Exposing the server").

- `Access.from_config`, before anything is loaded: a server reachable from other machines needs a
  token (`--token`, `--token-env`) or an explicit `--no-auth` (which earns a warning line).
- `Guard`, an ASGI middleware, on every request, in this order:
  1. the Host header must name this server (400): a page of another site whose name is made to
     resolve to this machine (DNS rebinding) sends its own name;
  2. with a token, /api/* needs `Authorization: Bearer TOKEN` (401);
  3. a POST must say `Content-Type: application/json` (415): a page elsewhere may send a form or
     text/plain POST cross-site without asking, but a JSON one needs a CORS preflight, which this
     server never grants.
- `SecurityHeaders`: a Content-Security-Policy that keeps the page to this server.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.responses import JSONResponse

from assay.errors import AssayError
from assay.serve.config import ServerSection

MIN_TOKEN_CHARS = 16
MAKE_TOKEN = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
WILDCARD = {"", "0.0.0.0", "::"}
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
# The page may talk to this server only: no CDN, no fonts, no beacons.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def is_loopback(host: str) -> bool:
    """Whether every address `host` names is a loopback one (127.0.0.0/8, ::1): a wildcard or a
    name that does not resolve is not."""
    if host in WILDCARD:
        return False
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return False
    addresses = {ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos}
    return bool(addresses) and all(
        a.is_loopback or (a.version == 6 and a.ipv4_mapped is not None and a.ipv4_mapped.is_loopback) for a in addresses
    )


def split_host(value: str) -> tuple[str, int | None] | None:
    """`name`, `name:port`, `[v6]` or `[v6]:port` -> (lower-case name, port or None); None if malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        name, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port = rest[1:] if rest else None
    else:
        name, colon, port = value.partition(":")
        port = port if colon else None
        if ":" in (port or ""):  # a bare IPv6 address: no port
            name, port = value, None
    if not name or (port is not None and not (port.isdigit() and int(port) <= 65535)):
        return None
    return name.rstrip("."), int(port) if port is not None else None


@dataclass(frozen=True)
class Access:
    token: str | None
    names: frozenset[str]  # accepted in the Host header with the server's port
    any_port: frozenset[str]  # --allow-host NAME: with any port (a reverse proxy may change it)
    exact: frozenset[tuple[str, int]]  # --allow-host NAME:PORT
    warning: str | None  # to print before serving (--no-auth beyond loopback)

    @classmethod
    def from_config(cls, server: ServerSection, environ: Mapping[str, str] = os.environ) -> Access:
        """The access rules of `server`, or a one-line AssayError for a server that would be
        reachable from other machines without a token and without --no-auth."""
        token = _token(server, environ)
        any_port, exact = set(), set()
        for entry in server.allow_hosts:
            parsed = split_host(entry)
            if parsed is None:
                raise AssayError(f"--allow-host {entry!r} is not a host name, NAME:PORT or [IPv6]:PORT")
            if parsed[1] is None:
                any_port.add(parsed[0])
            else:
                exact.add(parsed)
        names = set(LOOPBACK_NAMES)
        if server.host not in WILDCARD:
            names.add(server.host.strip("[]").lower().rstrip("."))
        warning = None
        if not is_loopback(server.host) and token is None:
            shown = server.host or "all interfaces"
            if not server.no_auth:
                raise AssayError(
                    f"--host {shown} is reachable from other machines: give --token TOKEN (or --token-env NAME), "
                    "or --no-auth to serve without authentication"
                )
            warning = (
                f"warning: serving on {shown} without authentication (--no-auth): "
                "anyone who can reach it can use the API"
            )
        return cls(token, frozenset(names), frozenset(any_port), frozenset(exact), warning)

    def host_allowed(self, header: str | None, local: tuple[str, int] | None) -> bool:
        """Whether a Host header names this server. `local`: the address the connection came in on
        (an IP literal, so a wildcard bind accepts the address a client dialled)."""
        parsed = split_host(header) if header else None
        if parsed is None:
            return False
        name, port = parsed
        if name in self.any_port or parsed in self.exact:
            return True
        if local is None or (port if port is not None else 80) != local[1]:
            return False
        return name in self.names or name == local[0].lower()

    def authorized(self, header: str | None) -> bool:
        if self.token is None:
            return True
        scheme, _, given = (header or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token.encode())


def _token(server: ServerSection, environ: Mapping[str, str]) -> str | None:
    if server.token is not None and server.token_env is not None:
        raise AssayError("give --token or --token-env, not both")
    token = server.token
    if server.token_env is not None:
        token = environ.get(server.token_env) or None
        if token is None:
            raise AssayError(f"--token-env {server.token_env}: that environment variable is not set, or empty")
    if token is None:
        return None
    if server.no_auth:
        raise AssayError("a token and --no-auth contradict each other: give one of them")
    if len(token) < MIN_TOKEN_CHARS or not re.fullmatch(r"[!-~]+", token):
        raise AssayError(
            f"the token must be at least {MIN_TOKEN_CHARS} visible ASCII characters, no spaces (make one: {MAKE_TOKEN})"
        )
    return token


def _is_json(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


class Guard:
    """Pure ASGI middleware: Host (400), then the token on /api/* (401), then a JSON Content-Type
    on anything but GET/HEAD/OPTIONS (415); every refusal a one-line JSON error."""

    def __init__(self, app, access: Access):
        self.app = app
        self.access = access

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path = scope["path"]
        host, content_type = headers.get("host"), headers.get("content-type")
        if not self.access.host_allowed(host, scope.get("server")):
            named = f"the Host header {host!r} does not name" if host else "no Host header names"
            status, message = 400, f"{named} this server (see --allow-host)"
        elif (path == "/api" or path.startswith("/api/")) and not self.access.authorized(headers.get("authorization")):
            status, message = 401, "this server needs `Authorization: Bearer TOKEN` (the token it was started with)"
        elif scope["method"] not in ("GET", "HEAD", "OPTIONS") and not _is_json(content_type or ""):
            not_that = f", not {content_type!r}" if content_type else ""
            status, message = 415, f"send the body as Content-Type: application/json{not_that}"
        else:
            return await self.app(scope, receive, send)
        extra = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        response = JSONResponse({"error": message, "status": status}, status_code=status, headers=extra)
        await response(scope, receive, send)


class SecurityHeaders:
    """Pure ASGI middleware: SECURITY_HEADERS on every HTTP response (cheaper than
    BaseHTTPMiddleware, and streamed responses pass through untouched)."""

    def __init__(self, app):
        self.app = app
        self.headers = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.headers]}
            await send(message)

        return await self.app(scope, receive, send_with_headers)
