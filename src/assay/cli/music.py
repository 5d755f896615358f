"""`assay music ...`: render music configs to WAV (mounted on the main app as `music`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

music_app = typer.Typer(no_args_is_help=True, help="Music configs: render, map and suggest.")


@music_app.callback()
def _group() -> None:
    """Music configs: render, map and suggest."""


@music_app.command("render")
def render_command(
    config_json: Annotated[
        str, typer.Argument(metavar="CONFIG_JSON", help="JSON file (or inline JSON): a bare config or a full payload.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output WAV file (mono, 32-bit float).")],
    duration: Annotated[float, typer.Option(help="Length in seconds.")] = 16.0,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same audio).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")] = False,
) -> None:
    """Render a music config to a WAV file and print its measured features."""
    import json

    from assay.errors import AssayError
    from assay.music.features import describe, measure
    from assay.music.render import SAMPLE_RATE, render, write_wav
    from assay.music.schema import load_music_json

    text = config_json
    if not config_json.lstrip().startswith("{"):
        path = Path(config_json)
        if not path.is_file():
            raise AssayError(f"no such config file: {config_json}")
        text = path.read_text(encoding="utf-8")
    config, payload = load_music_json(text)
    audio = render(config, duration=duration, seed=seed, sample_rate=SAMPLE_RATE)
    write_wav(out, audio, SAMPLE_RATE)
    features = measure(audio, SAMPLE_RATE)
    summary = {"out": str(out), "title": payload.title if payload else None, **features.to_dict()}
    summary["description"] = describe(features)
    if as_json:
        typer.echo(json.dumps(summary))
        return
    typer.echo(f"wrote {out} ({duration:g} s, seed {seed})")
    for key, value in summary.items():
        if key == "title" and value is None or key == "out":
            continue
        shown = "none" if value is None else round(value, 3) if isinstance(value, float) else value
        typer.echo(f"{key}: {shown}")
