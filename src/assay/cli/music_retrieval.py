"""`assay music map` and `assay music suggest`: the retrieval model (vibe -> nearest config)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from assay.cli.music import music_app


@music_app.command("map")
def map_command(
    input_dir: Annotated[Path, typer.Option("--input-dir", help="Scored (or configs) split files.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Map directory to write.")],
    splits: Annotated[str, typer.Option(help="Comma list of splits (never TEST).")] = "SFT-Train,SFT-Val,GRPO",
    field: Annotated[str, typer.Option(help="Vibe column to embed.")] = "vibe_original",
) -> None:
    """Build the vibe-embedding -> best-config table from scored splits."""
    from assay.music.retrieval import build_map

    meta = build_map(input_dir, out, [s.strip() for s in splits.split(",") if s.strip()], field)
    typer.echo(f"map of {meta['entries']} configs ({', '.join(meta['splits'])}) written to {out}")


@music_app.command("suggest")
def suggest_command(
    vibe: Annotated[str, typer.Argument(help="A vibe, e.g. 'rain on a tin roof at midnight'.")],
    map_dir: Annotated[Path, typer.Option("--map", help="A map made by `assay music map`.")],
    k: Annotated[int, typer.Option("-k", help="How many neighbours to show.")] = 1,
    render_to: Annotated[Path | None, typer.Option("--render", help="Render the best config to this WAV.")] = None,
    duration: Annotated[float, typer.Option(help="Seconds to render.")] = 16.0,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per suggestion.")] = False,
) -> None:
    """The config of the nearest known vibe (and optionally render it)."""
    from assay.errors import AssayError
    from assay.music.retrieval import RetrievalMap

    if not vibe.strip():
        raise AssayError("the vibe is empty")
    if k < 1:
        raise AssayError("-k must be at least 1")
    suggestions = RetrievalMap.load(map_dir).suggest(vibe, k)
    for s in suggestions:
        if as_json:
            typer.echo(json.dumps({"similarity": s.similarity} | s.entry))
        else:
            title = s.entry["config_payload"].get("title", "")
            typer.echo(
                f"{s.similarity:.3f}  {title!r}  <- {s.entry['vibe']!r} ({s.entry['split']} {s.entry['row_id']})"
            )
    if render_to is not None:
        from assay.music.render import render, write_wav
        from assay.music.schema import load_music_json

        config, _ = load_music_json(suggestions[0].entry["config_payload"])
        write_wav(render_to, render(config, duration=duration))
        if not as_json:
            typer.echo(f"rendered to {render_to}")
