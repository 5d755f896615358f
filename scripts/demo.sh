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

say "1/5 masked-diffusion LM on tiny-shakespeare ($((300 * SCALE)) steps)"
if [ -f "$LM/eval.json" ] && [ -z "${DEMO_FRESH:-}" ] && [ "$SCALE" = 1 ]; then
    echo "reusing $LM (DEMO_FRESH=1 retrains it)"
else
    "$BIN/assay" train --overwrite -c configs/shakespeare_char.toml --set run.out_dir=$LM --set train.max_iters=$((300 * SCALE))
fi
echo "--- a sample from the default sampler (256 characters; docs/generation.md) ---"
"$BIN/assay" generate $LM --length 256 --steps 128 --seed 0

say "2/5 synthetic data: the LM rewrites part of real passages ($((60 * SCALE)) shards of 64, 2 workers)"
rm -rf $JUDGES
"$BIN/assay" data produce -c $JUDGE_CFG --workers 2 --shards $((60 * SCALE))

say "3/5 sequence scorer (how much was rewritten?), fine-tuned from the LM"
"$BIN/assay" train --overwrite -c $JUDGE_CFG --set train.max_iters=$((300 * SCALE))

say "4/5 token classifier (which characters were rewritten?), fine-tuned from the LM"
# (without the LM's features, to keep the demo under 10 minutes: they add ~0.01 AUROC, docs/judges.md)
"$BIN/assay" train --overwrite -c $JUDGE_CFG --set model.mode=token_classifier --set run.out_dir=$JUDGES/inspector \
    --set features.lm_features=false --set train.max_iters=$((300 * SCALE))

say "5/5 50 held-out pairs: does the judge score the rewrite above the real passage?"
"$BIN/assay" score $JUDGES --pairs $JUDGES/stream --k 50 --examples 2
"$BIN/assay" report $LM $JUDGES/scorer $JUDGES/inspector
echo "runs: $LM (language model), $JUDGES/scorer and $JUDGES/inspector (judges), $JUDGES/stream (synthetic data)"
