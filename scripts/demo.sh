#!/bin/sh
# The `make demo` loop: a masked-diffusion LM on tiny-shakespeare, synthetic data made by it,
# two judges fine-tuned from it, and a few texts scored. DEMO_SCALE=N multiplies every budget
# (LM steps, shards, judge steps); DEMO_FRESH=1 retrains an LM that already exists.
set -eu
BIN=${BIN:-.venv/bin}
SCALE=${DEMO_SCALE:-1}
LM=runs/shakespeare_char
JUDGES=runs/judges
JUDGE_CFG=configs/judge_shakespeare.toml
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "1/5 masked-diffusion LM on tiny-shakespeare ($((800 * SCALE)) steps)"
if [ -f "$LM/eval.json" ] && [ -z "${DEMO_FRESH:-}" ] && [ "$SCALE" = 1 ]; then
    echo "reusing $LM (DEMO_FRESH=1 retrains it)"
else
    "$BIN/assay" train -c configs/shakespeare_char.toml --set run.out_dir=$LM --set train.max_iters=$((800 * SCALE))
fi
echo "--- a sample (400 characters, 128 denoising steps per window) ---"
"$BIN/assay" generate $LM --length 400 --steps 128 --seed 0

say "2/5 synthetic data: the LM rewrites part of real passages ($((60 * SCALE)) shards of 64, 2 workers)"
rm -rf $JUDGES
"$BIN/assay" data produce -c $JUDGE_CFG --workers 2 --shards $((60 * SCALE))

say "3/5 sequence scorer (how much was rewritten?), fine-tuned from the LM"
"$BIN/assay" train -c $JUDGE_CFG --set train.max_iters=$((300 * SCALE))

say "4/5 token classifier (which characters were rewritten?), fine-tuned from the LM"
"$BIN/assay" train -c $JUDGE_CFG --set model.mode=token_classifier --set run.out_dir=$JUDGES/inspector \
    --set train.max_iters=$((300 * SCALE))

say "5/5 scoring: a real passage, then a rewritten one from the held-out data"
"$BIN/assay" score $JUDGES "JULIET:
O Romeo, Romeo! wherefore art thou Romeo?
Deny thy father and refuse thy name."
"$BIN/assay" data show $JUDGES/stream --index 7 | grep -E '^(original|score):' | sed 's/^score:/true fraction rewritten:/'
"$BIN/assay" score $JUDGES "$("$BIN/assay" data show $JUDGES/stream --index 7 --text)"
"$BIN/assay" report $LM $JUDGES/scorer $JUDGES/inspector
echo "runs: $LM (language model), $JUDGES/scorer and $JUDGES/inspector (judges), $JUDGES/stream (synthetic data)"
