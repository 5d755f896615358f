"""The options of `assay serve`: what to load, where to listen, who may call it, and the limits."""

from __future__ import annotations

from pydantic import Field

from assay.config import Section
from assay.devices import DeviceSpec


class ServerSection(Section):
    judge: str | None = None  # a judge run, or a folder of judge runs (required)
    lm: str | None = None  # a language-model run for /api/generate (optional)
    host: str = "127.0.0.1"  # loopback only unless asked otherwise
    port: int = Field(8000, ge=0, le=65535)  # 0: any free port (the URL is printed)
    threads: int | None = Field(None, ge=1)  # torch threads (default: torch's own)
    device: DeviceSpec = "auto"  # where the models run: auto, cpu, cuda, cuda:N or mps (assay.devices)
    log_requests: bool = False  # one access-log line per request
    # Who may call the API (docs/serve.md, "Exposing the server"): beyond loopback, a token or no_auth.
    token: str | None = None  # /api/* needs `Authorization: Bearer TOKEN`
    token_env: str | None = None  # the token from this environment variable (kept out of `ps`)
    no_auth: bool = False  # serve beyond loopback without a token (a warning is printed)
    allow_hosts: list[str] = []  # Host header names accepted besides this server's own: NAME or NAME:PORT


class LimitsSection(Section):
    max_request_bytes: int = Field(1 << 20, ge=1024)  # larger bodies: 413
    max_text_chars: int = Field(20_000, ge=1)  # per text; longer: 422
    max_texts: int = Field(64, ge=1)  # texts per /api/score request
    max_generate_tokens: int = Field(2_048, ge=1)  # /api/generate `length`
    max_steps: int = Field(512, ge=1)  # /api/generate `steps`
    batch_texts: int = Field(64, ge=1)  # texts of concurrent requests scored in one model call
    batch_wait_ms: float = Field(2.0, ge=0, le=1000)  # how long a batch waits for more requests
    window_batch: int = Field(32, ge=1)  # model windows per forward pass
    # Backpressure: past these, 503 with Retry-After instead of an ever longer wait.
    max_queued_texts: int = Field(64, ge=1)  # texts waiting for the judge (besides the batch it scores)
    max_generations: int = Field(4, ge=1)  # generations running or waiting for the LM


class ServeConfig(Section):
    server: ServerSection = ServerSection()
    limits: LimitsSection = LimitsSection()
