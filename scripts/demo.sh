#!/bin/sh
# The `make demo` loop: a masked-diffusion LM on tiny-shakespeare, then `assay judge train` on it
# (synthetic data made by the LM, two judges fine-tuned from it), and a few texts scored. DEMO_SCALE=N multiplies every budget
# (LM steps, shards, judge steps); DEMO_FRESH=1 retrains an LM that already exists.
set -eu
BIN=${BIN:-.venv/bin}
SCALE=${DEMO_SCALE:-1}
LM=runs/shakespeare_char
JUDGES=runs/judges
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "1/5 masked-diffusion LM on tiny-shakespeare ($((300 * SCALE)) steps)"
if [ -f "$LM/eval.json" ] && [ -z "${DEMO_FRESH:-}" ] && [ "$SCALE" = 1 ]; then
    echo "reusing $LM (DEMO_FRESH=1 retrains it)"
else
    "$BIN/assay" train --overwrite -c shakespeare_char --out $LM --set train.max_iters=$((300 * SCALE))
fi
echo "--- a sample from the default sampler (256 characters; docs/generation.md) ---"
"$BIN/assay" generate $LM --length 256 --steps 128 --seed 0

say "2-4/5 judges: the LM rewrites part of real passages ($((60 * SCALE)) shards of 64), then a sequence scorer
(how much was rewritten?) and a token inspector (which characters?) are fine-tuned from it"
"$BIN/assay" judge train --overwrite --corpus tinyshakespeare --lm $LM --out $JUDGES \
    --shards $((60 * SCALE)) --judge-iters $((300 * SCALE))

say "5/5 50 held-out pairs: does the judge score the rewrite above the real passage?"
"$BIN/assay" score $JUDGES --pairs $JUDGES/stream --k 50 --examples 2
"$BIN/assay" report $LM $JUDGES/scorer $JUDGES/inspector
echo "runs: $LM (language model), $JUDGES/scorer and $JUDGES/inspector (judges), $JUDGES/stream (synthetic data)"
