"""`assay music ...`: render music configs to WAV, and the retrieval map (vibe -> nearest config)."""

from __future__ import annotations

import json
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
    out: Annotated[Path, typer.Option("--out", "-o", metavar="FILE", help="Output WAV file (mono, 32-bit float).")],
    duration: Annotated[float, typer.Option(min=0.1, help="Length in seconds.")] = 16.0,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same audio).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")] = False,
) -> None:
    """Render a music config to a WAV file and print its measured features.

    Example:

    \b
        assay music render runs/s/config.json --out ambient.wav --duration 10
    """
    from assay.errors import AssayError
    from assay.io import JSON_MAX, check_size, read_text_file
    from assay.music import SAMPLE_RATE, describe, load_music_json, measure, render, write_wav

    text = config_json
    if not config_json.lstrip().startswith("{"):
        path = Path(config_json)
        if not path.is_file():
            raise AssayError(f"no such config file: {config_json}")
        text = read_text_file(check_size(path, JSON_MAX, "a music config"))
        if not text.strip():
            raise AssayError(f"config file {path} is empty")
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


@music_app.command("map")
def map_command(
    input_dir: Annotated[Path, typer.Option("--input-dir", metavar="DIR", help="Scored (or configs) split files.")],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Map directory to write.")],
    splits: Annotated[
        str, typer.Option(metavar="LIST", help="Comma list of splits (never TEST).")
    ] = "SFT-Train,SFT-Val,GRPO",
    field: Annotated[str, typer.Option(help="Vibe column to embed.")] = "vibe_original",
) -> None:
    """Build the vibe-embedding -> best-config table from scored splits.

    Example:

    \b
        assay music map --input-dir runs/s/scored --out runs/s/map
    """
    from assay.music import build_map

    meta = build_map(input_dir, out, [s.strip() for s in splits.split(",") if s.strip()], field)
    typer.echo(f"map of {meta['entries']} configs ({', '.join(meta['splits'])}) written to {out}")


@music_app.command("suggest")
def suggest_command(
    vibe: Annotated[str, typer.Argument(help="A vibe, e.g. 'rain on a tin roof at midnight'.")],
    map_dir: Annotated[Path, typer.Option("--map", metavar="DIR", help="A map made by `assay music map`.")],
    k: Annotated[int, typer.Option("-k", min=1, help="How many neighbours to show.")] = 1,
    render_to: Annotated[
        Path | None, typer.Option("--render", metavar="FILE", help="Render the best config to this WAV.")
    ] = None,
    duration: Annotated[float, typer.Option(min=0.1, help="Seconds to render.")] = 16.0,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per suggestion.")] = False,
) -> None:
    """The config of the nearest known vibe (and optionally render it).

    Example:

    \b
        assay music suggest "rain on a tin roof at midnight" --map runs/s/map --render rain.wav
    """
    from assay.errors import AssayError
    from assay.music import RetrievalMap

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
        from assay.music import load_music_json, render, write_wav

        config, _ = load_music_json(suggestions[0].entry["config_payload"])
        write_wav(render_to, render(config, duration=duration))
        if not as_json:
            typer.echo(f"rendered to {render_to}")
