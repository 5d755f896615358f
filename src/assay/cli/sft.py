"""`assay synth train-sft`, `export-sft` and `train-grpo`: a small local model that writes music
configs, fine-tuned with LoRA on the synthetic splits (docs/sft.md). Options live in `SFTConfig`
(`GRPOConfig` for train-grpo): a TOML file (`-c`), the flags below, then `--set key=value`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from assay.cli.synth import synth_app

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file (SFTConfig).")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Override a config key, e.g. train.max_steps=20.")]
BaseOpt = Annotated[
    str | None, typer.Option("--base", help="Base model: local/smollm2 (default) or local/PATH (an HF directory).")
]


@synth_app.command("train-sft")
def train_sft_cmd(
    data: Annotated[Path | None, typer.Option("--data", help="SFT-Train.jsonl (rows with a config_payload).")] = None,
    val: Annotated[Path | None, typer.Option("--val", help="SFT-Val.jsonl for the validation loss.")] = None,
    base: BaseOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Run folder (run.out_dir).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its checkpoint.")] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Fine-tune the base model with LoRA on assistant tokens (vibe -> payload JSON)."""
    from assay.cli.llm_options import load_with_flags
    from assay.config import load_config
    from assay.errors import ConfigError
    from assay.train.sft.config import SFTConfig
    from assay.train.sft.loop import train_sft

    flags = {
        "data.train": str(data) if data else None,
        "data.val": str(val) if val else None,
        "model.base": base,
        "run.out_dir": str(out) if out else None,
    }
    if resume:
        if out is None:
            raise ConfigError("--resume needs --out: the run folder to continue")
        saved = out / "config.json"
        if not saved.is_file():
            raise ConfigError(f"nothing to resume: {saved} not found")
        try:
            tree = json.loads(saved.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            raise ConfigError(f"{saved} is not readable JSON") from None
        overrides = [f"{k}={json.dumps(v)}" for k, v in flags.items() if v is not None]
        cfg = load_config(SFTConfig, config, overrides + list(set_ or []), base=tree)
    else:
        cfg = load_with_flags(SFTConfig, config, set_, flags)
    summary = train_sft(cfg, resume=resume)
    typer.echo(json.dumps(summary, indent=2, default=str))
    typer.echo(f"adapter in {Path(cfg.run.out_dir) / 'adapter'}; merge it with: assay synth export-sft")


@synth_app.command("export-sft")
def export_sft_cmd(
    adapter: Annotated[Path, typer.Argument(help="An adapter directory, or a train-sft run folder.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the merged HF model (model.safetensors, tokenizer).")],
    base: BaseOpt = None,
) -> None:
    """Merge a LoRA adapter into its base model: a standalone directory `--model local/PATH` loads."""
    from assay.train.sft.lora import export

    result = export(adapter, out, base)
    typer.echo(f"merged {result['adapter']} into {result['merged']} (use it as local/{result['merged']})")


@synth_app.command("train-grpo")
def train_grpo_cmd(
    data: Annotated[Path, typer.Option("--data", help="GRPO.jsonl (rows with a vibe).")],
    base: Annotated[str, typer.Option("--base", help="The SFT policy: local/MERGED_DIR (from export-sft).")],
    out: Annotated[Path, typer.Option("--out", help="Run folder: metrics.jsonl and the GRPO adapter.")],
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file (GRPOConfig).")] = None,
    set_: SetOpt = None,
) -> None:
    """A few GRPO steps on the seed's reward (mechanics; docs/sft.md says what a real run needs)."""
    from assay.cli.llm_options import load_with_flags
    from assay.train.sft.grpo import GRPOConfig, train_grpo

    cfg = load_with_flags(GRPOConfig, config, set_, {"data": str(data), "base": base, "out_dir": str(out)})
    summary = train_grpo(cfg)
    typer.echo(json.dumps(summary, indent=2, default=str))
