"""Run the app: check who may call it (a server reachable from other machines needs a token or
--no-auth), load the models, bind the socket (so `port = 0` gets a free port and the URL printed
is the real one), then hand it to uvicorn. Ctrl-C stops it cleanly."""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable

from assay.errors import AssayError
from assay.serve.config import ServeConfig


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by accepted connections
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise AssayError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _warn(message: str) -> None:
    print(message, file=sys.stderr)


def serve(cfg: ServeConfig, log: Callable[[str], None] = print, warn: Callable[[str], None] = _warn) -> None:
    """Check the access rules, load the models, bind, print the URL and serve until interrupted.
    `log` gets the URL line (stdout), `warn` the --no-auth warning (stderr)."""
    import torch
    import uvicorn

    from assay.serve.app import create_app
    from assay.serve.models import load_models
    from assay.serve.security import Access

    access = Access.from_config(cfg.server)  # before the slow part: a refusal is immediate
    if access.warning:
        warn(access.warning)
    if cfg.server.threads:
        torch.set_num_threads(cfg.server.threads)
    loaded = load_models(cfg.server.judge, cfg.server.lm, cfg.server.device)
    sock = bind(cfg.server.host, cfg.server.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    what = "judge" + (" + LM" if loaded.lm else "")
    needs = "the API needs the token; " if access.token else ""
    log(f"assay serve: {what} on http://{shown}:{port}/ ({needs}Ctrl-C stops)")
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(cfg, loaded, access),
            log_level="info" if cfg.server.log_requests else "warning",
            access_log=cfg.server.log_requests,
            timeout_graceful_shutdown=5,
        )
    )
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled: for a server it is the way to stop
        pass
    finally:
        sock.close()
    log("assay serve: stopped")
