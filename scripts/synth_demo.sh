#!/bin/sh
# `make synth-demo`: the synthetic-data pipeline end to end, offline, with the local SmolLM2 model:
# 20 texts (10 Shakespeare scenes, 10 KJV chapters) -> vibes -> best-of-N configs -> scores ->
# splits, a retrieval map, a few WAVs and the retrieval benchmark. Everything lands in runs/synth/.
# Resumable: re-running continues where a killed run stopped (LLM answers come from the cache).
set -eu
BIN=${BIN:-.venv/bin}
OUT=${OUT:-runs/synth}
CFG="-c synth_local --set llm.cache=$OUT/llm_cache.sqlite"
mkdir -p "$OUT"

echo "== ingest: 10 texts per source (every setting of the run is in the shipped config synth_local)"
"$BIN/assay" synth ingest $CFG --out "$OUT/texts"

echo "== vibes (local SmolLM2, schema-guided JSON)"
# The small local model gets short inputs and one vibe level (m: one sentence), to keep it to minutes.
"$BIN/assay" synth vibes $CFG --input-dir "$OUT/texts" --out "$OUT/vibes" --resume

echo "== configs: best-of-2"
"$BIN/assay" synth configs $CFG --input-dir "$OUT/vibes" --out "$OUT/configs" --resume

echo "== score: offline audio scorer (primary) and the seed's reward"
"$BIN/assay" synth score $CFG --input-dir "$OUT/configs" --out "$OUT/scored" --resume

echo "== retrieval map and a suggestion"
"$BIN/assay" music map --input-dir "$OUT/scored" -o "$OUT/map"
mkdir -p "$OUT/wav"
"$BIN/assay" music suggest "rain on a tin roof at midnight, lonely and slow" --map "$OUT/map" \
    --render "$OUT/wav/suggest.wav" --duration 16

echo "== a few WAVs of the selected TEST configs"
"$BIN/python" - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
rows = [json.loads(x) for x in (out / "scored" / "TEST.jsonl").read_text().splitlines()]
picked = [r for r in rows if r.get("config_payload")][:3]
for i, r in enumerate(picked):
    (out / "wav" / f"test_{i}.json").write_text(json.dumps(r["config_payload"], indent=2))
    print(f"test_{i}: {r['vibe_original']!r} -> {r['config_payload']['title']!r}")
PY
for f in "$OUT"/wav/test_*.json; do
    [ -e "$f" ] || continue
    "$BIN/assay" music render "$f" -o "${f%.json}.wav" --duration 16
done

echo "== retrieval benchmark (TEST split, offline audio scorer)"
"$BIN/python" benchmarks/music_retrieval.py --scored-dir "$OUT/scored" --map "$OUT/map" \
    --out "$OUT/music_retrieval.json"
echo "done: splits in $OUT/scored, WAVs in $OUT/wav"
