"""Experiment tracking: what a run writes to metrics.jsonl (or its summary) also goes to W&B or
TensorBoard, with the same names and steps, and the run's config as its parameters.

    [log]
    backend = "tensorboard"          # none (default) | wandb | tensorboard
    wandb_project = "assay"
    wandb_run_name = "shakespeare-small"
    wandb_mode = "offline"           # online | offline; default: offline unless WANDB_API_KEY is set

    tracker = open_tracker(cfg.log, run_dir, config=to_dict(cfg), resume_step=None, rank=0)
    tracker.log({"train_loss": 2.1, "lr": 1e-3}, step=10)
    tracker.summary({"rows": 100, "errors": 0})
    tracker.close()

- `none` (and every rank but 0 under torchrun) logs nothing.
- `tensorboard`: event files in RUN_DIR/tensorboard/ (`tensorboard --logdir runs` compares runs).
  A resumed run purges the events after the step it resumes from and continues there.
- `wandb`: an offline run under RUN_DIR/wandb/ (push it later with `wandb sync RUN_DIR/wandb/offline-run-*`)
  or an online one. The run id is kept in RUN_DIR/tracking.json, so a resumed run continues the same
  W&B run (resume by id).
- Secrets stay secret: config values whose key names a secret (api_key, token, secret, password; not
  the `*_env` names of variables that hold them) are replaced by "<redacted>" before they leave, and
  the W&B key is read by wandb from its own environment, never from assay's config.

The trackers are extras (`pip install 'assay[wandb]'`, `'assay[tensorboard]'`); asking for one whose
package is missing is one ConfigError that names the extra.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from assay.config import Section
from assay.errors import ConfigError
from assay.io import atomic_write_json

STATE_FILE = "tracking.json"
# what a tracker writes in a run folder: removed with the run's other files by --overwrite
RUN_FILES = ("tensorboard", "wandb", STATE_FILE)
REDACTED = "<redacted>"
_SECRET = re.compile(r"(api_?key|token|secret|password|passwd|credential)", re.IGNORECASE)


class TrackingSettings(Section):
    """Where a run's metrics go besides metrics.jsonl (docs/tracking.md)."""

    backend: Literal["none", "wandb", "tensorboard"] = Field(
        "none", description="none, wandb (the assay[wandb] extra) or tensorboard (the assay[tensorboard] extra)."
    )
    wandb_project: str = Field("assay", description="W&B project.")
    wandb_run_name: str | None = Field(None, description="W&B run name; none = the run folder's name.")
    wandb_mode: Literal["online", "offline"] | None = Field(
        None, description="online or offline; none = offline unless WANDB_API_KEY is set."
    )

    @field_validator("backend", mode="before")
    @classmethod
    def _none_is_none(cls, value: Any) -> Any:
        return "none" if value is None else value  # `--set log.backend=none` and TOML's none read as None


def redact(value: Any, key: str = "") -> Any:
    """`value` with every entry whose key names a secret replaced by REDACTED (recursively)."""
    if isinstance(value, Mapping):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if key and _SECRET.search(key) and not key.endswith("_env") and value not in (None, ""):
        return REDACTED
    return value


def _numbers(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers of a record (bools and strings left out: they are events, not curves)."""
    out = {}
    for k, v in metrics.items():
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            out[k] = float(v)
    return out


def _flatten(summary: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"run": {"train": {"rows": 3}}} -> {"run/train/rows": 3}."""
    out: dict[str, Any] = {}
    for k, v in summary.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out |= _flatten(v, name + "/")
        else:
            out[name] = v
    return out


class Tracker:
    """No tracking: every call does nothing (backend none, or a rank other than 0)."""

    backend = "none"

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        """One record of metrics.jsonl at its step (iteration); only its numbers are tracked."""

    def summary(self, values: Mapping[str, Any]) -> None:
        """A run's final figures (a pipeline's summary, nested keys joined with '/')."""

    def close(self) -> None:
        """Flush and finish the run."""


class TensorBoardTracker(Tracker):
    backend = "tensorboard"

    def __init__(self, run_dir: Path, config: Mapping[str, Any], resume_step: int | None):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError(
                "log.backend = tensorboard needs the tensorboard extra: pip install 'assay[tensorboard]'"
            ) from None
        # purge_step: events at or after it (logged after the checkpoint we resume from) are dropped
        self.writer = SummaryWriter(
            log_dir=str(run_dir / "tensorboard"), purge_step=resume_step + 1 if resume_step is not None else None
        )
        if resume_step is None:
            text = json.dumps(redact(config), indent=2, default=str)
            self.writer.add_text("config", "    " + text.replace("\n", "\n    "), 0)  # Markdown code block

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        for name, value in _numbers(metrics).items():
            self.writer.add_scalar(name, value, step)

    def summary(self, values: Mapping[str, Any]) -> None:
        for name, value in _numbers(_flatten(values)).items():
            self.writer.add_scalar(f"summary/{name}", value, 0)

    def close(self) -> None:
        self.writer.close()


class WandbTracker(Tracker):
    backend = "wandb"

    def __init__(self, settings: TrackingSettings, run_dir: Path, config: Mapping[str, Any], resume: bool):
        try:
            import wandb
        except ImportError:
            raise ConfigError("log.backend = wandb needs the wandb extra: pip install 'assay[wandb]'") from None
        state_path = run_dir / STATE_FILE
        state = _read_state(state_path) if resume else {}
        run_id = state.get("wandb_id") or secrets.token_hex(4)  # W&B ids: [a-z0-9]{8}, chosen here to be kept
        mode = settings.wandb_mode or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
        run_dir.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("WANDB_SILENT", "true")
        try:
            self.run = wandb.init(
                project=settings.wandb_project,
                name=settings.wandb_run_name or run_dir.resolve().name,
                id=run_id,
                resume="allow",
                dir=str(run_dir),
                mode=mode,
                config=redact(config),
                settings=wandb.Settings(console="off", save_code=False, disable_git=True, x_disable_stats=True),
            )
        except Exception as exc:  # wandb raises its own errors (no key for online, bad project name, ...)
            raise ConfigError(f"wandb could not start the run: {type(exc).__name__}: {exc}") from None
        atomic_write_json(state_path, {"backend": "wandb", "wandb_id": run_id, "wandb_mode": mode})

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        numbers = _numbers(metrics)
        if numbers:
            self.run.log(numbers, step=step)

    def summary(self, values: Mapping[str, Any]) -> None:
        self.run.summary.update(_numbers(_flatten(values)))

    def close(self) -> None:
        self.run.finish()


def _read_state(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def open_tracker(
    settings: TrackingSettings | None,
    run_dir: str | Path,
    config: Mapping[str, Any],
    resume_step: int | None = None,
    rank: int = 0,
) -> Tracker:
    """The tracker `settings` ask for. `resume_step`: the step a resumed run continues from (None: a
    new run). Only rank 0 tracks."""
    if settings is None or settings.backend == "none" or rank != 0:
        return Tracker()
    run_dir = Path(run_dir)
    if settings.backend == "tensorboard":
        return TensorBoardTracker(run_dir, config, resume_step)
    return WandbTracker(settings, run_dir, config, resume=resume_step is not None)


def check_backend(settings: TrackingSettings | None) -> None:
    """Fail now, with one ConfigError naming the extra, if the backend's package is missing (before
    a run writes anything)."""
    if settings is None or settings.backend == "none":
        return
    import importlib

    try:
        importlib.import_module(settings.backend)  # the package is named as its backend and its extra
    except ImportError:
        raise ConfigError(
            f"log.backend = {settings.backend} needs the {settings.backend} extra: "
            f"pip install 'assay[{settings.backend}]'"
        ) from None
