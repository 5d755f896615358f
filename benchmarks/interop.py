"""Which structured-output mode `llm.structured = auto` picks on each kind of endpoint, and the share of
rows the pipelines make there: `synth vibes`, `synth configs` (one candidate per vibe) and `correct
run`, 5 rows each, run as a user runs them (the `assay` CLI in its own process, against a server on
loopback), after `assay llm check`.

Endpoints:

  scripted                  assay's scripted OpenAI-compatible server, every response_format accepted
                            (the baseline: what the client was first tested against)
  scripted-json-object      the same, taking only {"type": "json_object"} (no schema)
  scripted-text-only        the same, rejecting every response_format (prompt mode)
  llamacpp                  llama-cpp-python[server] serving the shipped SmolLM2 GGUF (`openai/smollm2`)
  llamacpp-litellm          the same server through LiteLLM's openai provider (`litellm/openai/smollm2`)

The scripted servers answer with fixed, valid JSON (vibes, music payloads) and an echo for the
self-correction questions, so their rows measure the client; the llama.cpp rows measure SmolLM2 too.
The llama.cpp endpoints need `make test-integration`'s build (llama-cpp-python with the server extra);
without it they are left out, and said so.

    python benchmarks/interop.py               # writes benchmarks/results/interop.json
    python benchmarks/interop.py --only scripted,scripted-text-only
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import RESULTS, choose, report  # benchmarks/common.py (the script's folder is on sys.path)

ROWS = 5
ENDPOINTS = {
    # name: (server, formats a scripted server accepts (None: all), model string)
    "scripted": ("scripted", None, "openai/smollm2"),
    "scripted-json-object": ("scripted", {"json_object"}, "openai/smollm2"),
    "scripted-text-only": ("scripted", set(), "openai/smollm2"),
    "llamacpp": ("llamacpp", None, "openai/smollm2"),
    "llamacpp-litellm": ("llamacpp", None, "litellm/openai/smollm2"),
}
MOODS = ["stormy", "tender", "solemn", "drowsy", "mournful"]
PLACES = ["harbour", "chapel", "forest", "tower", "river"]


def scripted_answer(body: dict) -> str:
    """Valid JSON for the probe, vibes and configs requests (varied by the text, so that no two vibes
    are duplicates), an echo-like answer for anything else (the self-correction questions)."""
    text = "\n".join(str(m.get("content", "")) for m in body["messages"])
    h = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
    if "Is water wet?" in text:
        return json.dumps({"answer": True})
    if "<vibe>" in text:
        from assay.synth.profiles import CONFIG_EXAMPLES  # valid payloads (the small prompt's worked examples)

        payload = CONFIG_EXAMPLES[h % len(CONFIG_EXAMPLES)]["payload"]
        return json.dumps(payload | {"title": f"Piece {h % 997}"})
    if "atmosphere" in text:
        mood, place = MOODS[h % 5], PLACES[(h // 5) % 5]
        scene = {
            "xl": f"A {mood} {place} at dusk, number {h % 997}; the air is heavy and every sound carries far.",
            "lg": f"A {mood} {place} at dusk, number {h % 997}.",
            "m": f"A {mood} {place}, number {h % 997}.",
            "sm": f"{mood} {place}",
            "xs": mood,
        }
        return json.dumps({"scene": scene, "characters": [], "tags": [mood]})
    return "The answer is 42."


def assay(*args) -> tuple[int, str, str, float]:
    """`python -m assay ARGS` in its own process: (exit status, stdout, stderr, wall s)."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "assay", *map(str, args)], capture_output=True, text=True, env=os.environ.copy()
    )
    return proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - start


def summary(stdout: str) -> dict:
    return json.loads(stdout.rsplit("output in", 1)[0])


def last_line(stderr: str) -> str:
    lines = [x for x in stderr.splitlines() if x.strip()]
    return lines[-1] if lines else ""


def measure(name: str, base_url: str, model: str, texts: Path, work: Path) -> dict:
    """`llm check`, then vibes, configs and correct run on ROWS rows each, against one endpoint."""
    out: dict = {"endpoint": name, "model": model}
    code, stdout, stderr, _ = assay("llm", "check", "--model", model, "--api-base", base_url, "--json")
    if code == 0:
        check = json.loads(stdout)
        out["check"] = {m["mode"]: m["status"] for m in check["modes"]}
        out["check_auto_mode"] = check["auto_mode"]
    else:
        out["check_error"] = last_line(stderr)
    llm = [
        "--model", model, "--api-base", base_url, "-c", "synth_local", "--set", f"llm.cache={work / 'llm.sqlite'}",
        "--set", "runner.progress=false",
    ]  # fmt: skip
    code, stdout, stderr, wall = assay("synth", "vibes", "--input-dir", texts, "--out", work / "vibes", *llm)
    if code == 0:
        s = summary(stdout)
        out["vibes"] = {"written": s["run"]["written"], "failed": s["run"]["failed"], "s": round(wall, 1)}
        out["mode"] = s.get("structured_mode")
    else:
        out["vibes"] = {"written": 0, "failed": ROWS, "error": last_line(stderr), "s": round(wall, 1)}
        return out
    code, stdout, stderr, wall = assay(
        "synth", "configs", "--input-dir", work / "vibes", "--out", work / "configs", *llm, "--num-candidates", "1"
    )
    if code == 0:
        runs = summary(stdout)["splits"].values()
        written, failed = sum(r["written"] for r in runs), sum(r["failed"] for r in runs)
        out["configs"] = {"written": written, "failed": failed, "s": round(wall, 1)}
        out["configs_mode"] = summary(stdout).get("structured_mode")
        made = [json.loads(x) for p in (work / "configs").glob("*.jsonl") for x in p.read_text().splitlines()]
        out["configs"]["valid"] = sum(1 for row in made if row.get("config_payload") is not None)
    else:
        out["configs"] = {"written": 0, "failed": ROWS, "error": last_line(stderr), "s": round(wall, 1)}
    code, stdout, stderr, wall = assay(
        "correct", "run", "--model", model, "--api-base", base_url, "--limit", ROWS, "--out", work / "correct",
        "--set", "runner.progress=false", "--set", f"llm.cache={work / 'llm.sqlite'}",
    )  # fmt: skip
    traces = work / "correct" / "traces.jsonl"
    errors = work / "correct" / "traces.errors.jsonl"
    out["correct"] = {
        "written": len(traces.read_text().splitlines()) if traces.exists() else 0,
        "failed": len(errors.read_text().splitlines()) if errors.exists() else 0,
        "s": round(wall, 1),
    }
    if code != 0:
        out["correct"]["error"] = last_line(stderr)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(ENDPOINTS), help="comma-separated endpoint names")
    parser.add_argument("--out", type=Path, default=RESULTS / "interop.json")
    args = parser.parse_args()
    names = choose(args.only, ENDPOINTS, "endpoint")
    from assay.llm.testserver import LlamaCppServer, Reply, ScriptedServer

    has_server = all(importlib.util.find_spec(m) for m in ("llama_cpp", "uvicorn", "sse_starlette"))
    results, skipped = [], []
    with tempfile.TemporaryDirectory(prefix="assay-interop-") as tmp:
        tmp = Path(tmp)
        texts = tmp / "texts"
        code, _, stderr, _ = assay(
            "synth", "ingest", "-c", "synth_local", "--out", texts, "--source", "shakespeare", "--per-source", ROWS
        )
        if code:
            raise SystemExit(f"synth ingest failed: {last_line(stderr)}")
        llamacpp = None
        try:
            for i, name in enumerate(names):
                server, formats, model = ENDPOINTS[name]
                print(f"[{i + 1}/{len(names)}] {name} ({model})", flush=True)
                if server == "scripted":
                    fmt_status = 400 if formats is not None and not formats else 500
                    with ScriptedServer(
                        responder=lambda body: Reply(content=scripted_answer(body)),
                        formats=formats,
                        format_status=fmt_status,
                        record=False,
                    ) as scripted:
                        results.append(measure(name, scripted.base_url, model, texts, tmp / f"run{i}"))
                    continue
                if not has_server:
                    skipped.append(name)
                    continue
                if llamacpp is None:
                    llamacpp = LlamaCppServer(log=tmp / "llamacpp.log")
                    try:
                        llamacpp.start()
                    except RuntimeError as exc:
                        raise SystemExit(str(exc)) from None
                results.append(measure(name, llamacpp.base_url, model, texts, tmp / f"run{i}"))
        finally:
            if llamacpp is not None:
                llamacpp.stop()

    from rich.table import Table

    table = Table(title=f"structured = auto on each endpoint ({ROWS} rows per step)")
    for col in ("endpoint", "model", "llm check: modes that work", "auto chose", "vibes", "configs", "correct run"):
        table.add_column(col)

    def rows(step: dict) -> str:
        text = f"{step['written']}/{step['written'] + step['failed']} ({step['s']:.0f} s)"
        if "valid" in step:
            text += f", {step['valid']} valid"
        return text + (f" [{step['error']}]" if step.get("error") else "")

    for r in results:
        works = ", ".join(m for m, s in r.get("check", {}).items() if s == "works") or r.get("check_error", "-")
        steps = [rows(r[step]) if step in r else "-" for step in ("vibes", "configs", "correct")]
        table.add_row(r["endpoint"], r["model"], works, str(r.get("mode")), *steps)
    result = {"rows_per_step": ROWS, "results": results, "skipped": skipped}
    report(table, result, args.out)
    if skipped:
        print(f"left out (llama-cpp-python[server] is not installed; run `make test-integration`): {skipped}")


if __name__ == "__main__":
    main()
