"""A pipeline run's summary goes to the tracker of the command's [log] section (assay.tracking)."""

from __future__ import annotations

import json

from tests.correct.cli import invoke
from tests.test_tracking import tensorboard_scalars, wandb_history


def test_a_correct_run_tracks_its_summary(server, data, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-never-in-a-file")
    base = ["correct", "run", "--dataset", "gsm8k", "--data", data, "--max-turns", "2", "--policy", "fixed"]
    base += ["--template", "step_redo", "--model", "openai/scripted", "--api-base", server.base_url, "--no-progress"]
    for backend in ("tensorboard", "wandb"):
        out = tmp_path / backend
        result = invoke([*base, "--out", out, "--set", f"log.backend={backend}"])
        assert result.exit_code == 0, result.output
        summary = json.loads((out / "summary.json").read_text())
        if backend == "tensorboard":
            scalars = {tag: steps[0] for tag, steps in tensorboard_scalars(out).items()}
        else:
            _, config, _ = wandb_history(out)
            assert config["step"] == "correct" and config["correct"]["policy"] == "fixed"
            scalars = wandb_summary(out)  # the run's W&B summary, from its summary records
        assert scalars["summary/accuracy_final"] == summary["accuracy_final"]
        assert scalars["summary/usage/requests"] == summary["usage"]["requests"] > 0
        leaked = [p for p in out.rglob("*") if p.is_file() and b"sk-live-never-in-a-file" in p.read_bytes()]
        assert not leaked, leaked


def wandb_summary(out) -> dict[str, float]:
    from tests.test_tracking import wandb_records

    values = {}
    for path in sorted((out / "wandb").glob("offline-run-*/run-*.wandb")):
        for record in wandb_records(path):
            if record.WhichOneof("record_type") == "summary":
                for item in record.summary.update:
                    values["summary/" + (item.key or "/".join(item.nested_key))] = json.loads(item.value_json)
    return values
