"""The local model (`local/smollm2`, SmolLM2-135M-Instruct) on its two runtimes, in the same run:
transformers (the GGUF dequantised to fp32, assay's own decoding loop, llguidance for schemas) and
llama.cpp (llama-cpp-python on the Q4_1 GGUF, its own grammar for schemas). Each runs in a fresh
process of its own, one after the other, through `LLMClient` as the pipelines call it.

Per runtime:

  load s           the first request's wall time minus the second's (loading the model)
  first token s    the wall time of a one-token answer to a short chat prompt (after the load)
  free tok/s       completion tokens / decode time of a 128-token answer at temperature 0 (greedy)
  guided tok/s     the same for the music payloads below (schema-guided)
  s/payload        wall time per payload of `assay synth configs` (its real request: the configs
                   prompt of `local/smollm2`, seeded, temperature 0.8, the payload schema)
  schema-valid     payloads that pass the pipeline's checks (format, schema, palette: music.validity)
  peak RSS MB      the process's peak resident memory (ru_maxrss), which holds the model

Ratios: llama.cpp / transformers. The runtime `local_backend = auto` picks when llama-cpp-python is
installed is chosen by this table (docs/local_llm.md).

    python benchmarks/local_llm.py            # writes benchmarks/results/local_llm.json
    python benchmarks/local_llm.py --quick    # 2 payloads: a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from common import RESULTS, report  # benchmarks/common.py (the script's folder is on sys.path)

RUNTIMES = ("transformers", "llamacpp")
VIBES = [
    "A storm breaks over a dark harbour at midnight; fear and salt wind.",
    "Spring morning in a garden, children laughing, bright and quick.",
    "A slow funeral procession through a stone chapel, solemn and grey.",
    "Neon city rain, lonely and electric, a train passing far away.",
    "A quiet library at dusk, dust in the light, calm and warm.",
    "Battle drums on a plain at dawn, the army waits, tense and proud.",
    "Snow falling on a frozen lake, still and silver, nothing moves.",
    "A feast in a great hall, music and wine, loud and golden.",
]


def worker(runtime: str, payloads: int) -> dict:
    """One runtime's figures (run in a fresh process: `--worker RUNTIME`)."""
    os.environ["ASSAY_LOCAL_BACKEND"] = runtime
    from assay.llm import ChatRequest, LLMClient, LLMSettings
    from assay.music import validity
    from assay.synth.music_configs import MusicConfigsConfig, config_request

    model = "local/smollm2"
    out: dict = {"runtime": runtime}
    with LLMClient(LLMSettings(model=model, max_concurrency=1)) as client:
        hello = ChatRequest.prompt("Say hello.", max_tokens=1)
        t0 = time.perf_counter()
        client.complete_sync(hello)
        first_call = time.perf_counter() - t0
        t0 = time.perf_counter()
        client.complete_sync(ChatRequest.prompt("Say hi.", max_tokens=1))
        out["first_token_s"] = time.perf_counter() - t0
        out["load_s"] = max(0.0, first_call - out["first_token_s"])

        story = ChatRequest.prompt("Write a long story about a lighthouse keeper.", max_tokens=128)
        t0 = time.perf_counter()
        answer = client.complete_sync(story)
        wall = time.perf_counter() - t0
        out["free_tokens"] = answer.usage.completion_tokens
        out["free_tok_s"] = answer.usage.completion_tokens / max(wall - out["first_token_s"], 1e-9)

        cfg = MusicConfigsConfig()
        valid = tokens = 0
        decode = 0.0
        for i, vibe in enumerate(VIBES[:payloads]):
            request = config_request(vibe, f"bench-{i}", 0, cfg, model)
            t0 = time.perf_counter()
            response = client.complete_sync(request)
            decode += time.perf_counter() - t0
            tokens += response.usage.completion_tokens
            check = validity(response.text)
            valid += int(check["format_valid"] and check["schema_valid"] and check["palette_valid"])
        out["payloads"] = payloads
        out["s_per_payload"] = decode / payloads
        out["guided_tok_s"] = tokens / decode
        out["schema_valid"] = valid / payloads
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def run_worker(runtime: str, payloads: int) -> dict:
    env = {**os.environ, "ASSAY_LOCAL_BACKEND": runtime}
    cmd = [sys.executable, __file__, "--worker", runtime, "--payloads", str(payloads)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    lines = [x for x in done.stdout.splitlines() if x.startswith("{")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{runtime} failed ({done.returncode}): {done.stderr[-1500:]}")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 payloads: a smoke run")
    parser.add_argument("--payloads", type=int, default=len(VIBES))
    parser.add_argument("--worker", choices=RUNTIMES, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS / "local_llm.json")
    args = parser.parse_args()
    payloads = 2 if args.quick else args.payloads
    if args.worker:
        print(json.dumps(worker(args.worker, payloads)))
        return
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        raise SystemExit("llama-cpp-python is not installed: pip install 'assay[llamacpp]' (or make test-integration)")
    rows = {runtime: run_worker(runtime, payloads) for runtime in RUNTIMES}

    from rich.table import Table

    base, fast = rows["transformers"], rows["llamacpp"]
    table = Table(title=f"local/smollm2 on its two runtimes ({payloads} music payloads each)")
    for column in ("", "transformers", "llama.cpp", "llama.cpp / transformers"):
        table.add_column(column, justify="right" if column else "left")
    fields = [
        ("load s", "load_s", "{:.2f}"),
        ("first token s", "first_token_s", "{:.3f}"),
        ("free tok/s", "free_tok_s", "{:.1f}"),
        ("guided tok/s", "guided_tok_s", "{:.1f}"),
        ("s/payload", "s_per_payload", "{:.2f}"),
        ("schema-valid", "schema_valid", "{:.2f}"),
        ("peak RSS MB", "peak_rss_mb", "{:.0f}"),
    ]
    ratios = {}
    for label, key, fmt in fields:
        ratio = fast[key] / base[key] if base[key] else float("nan")
        ratios[key] = ratio
        table.add_row(label, fmt.format(base[key]), fmt.format(fast[key]), f"{ratio:.2f}")
    result = {
        "benchmark": "local_llm",
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "threads": os.environ.get("ASSAY_LOCAL_THREADS"),
        },
        "payloads": payloads,
        "runtimes": rows,
        "ratio_llamacpp_over_transformers": ratios,
    }
    report(table, result, args.out)


if __name__ == "__main__":
    main()
