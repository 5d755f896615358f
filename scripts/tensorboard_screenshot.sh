#!/bin/sh
# Two small training runs tracked with TensorBoard, compared in one TensorBoard page, and a
# screenshot of it taken with headless Chromium (docs/tracking.md). Needs the tensorboard extra and
# Debian's chromium (`make test` installs both). About half a minute on 2 cores.
#
#   sh scripts/tensorboard_screenshot.sh [OUT_PNG]        # default: docs/img/tensorboard_two_runs.png
set -eu
BIN=${BIN:-.venv/bin}
OUT=${1:-docs/img/tensorboard_two_runs.png}
RUNS=${RUNS:-runs/tb}
SMALL="--set model.n_layer=2 --set model.n_head=2 --set model.n_embd=64 --set data.block_size=64 \
  --set train.batch_size=16 --set train.max_iters=400 --set train.eval_interval=50 --set train.warmup_iters=20 \
  --set train.eval_blocks=16 --set log.backend=tensorboard"
for lr in 0.001 0.003; do
  # shellcheck disable=SC2086
  "$BIN/assay" train --out "$RUNS/lr-$lr" --overwrite $SMALL --set "train.lr=$lr" > /dev/null
done
"$BIN/tensorboard" --logdir "$RUNS" --port 6123 --host 127.0.0.1 > /dev/null 2>&1 &
TB=$!
trap 'kill $TB 2>/dev/null' EXIT
"$BIN/python" - "$OUT" <<'EOF'
import shutil
import sys
import time
import urllib.request

from playwright.sync_api import sync_playwright

url = "http://127.0.0.1:6123/#timeseries"
for _ in range(60):  # TensorBoard takes a few seconds to start and read the event files
    try:
        urllib.request.urlopen("http://127.0.0.1:6123/data/runs", timeout=1)
        break
    except OSError:
        time.sleep(0.5)
chromium = shutil.which("chromium") or shutil.which("chromium-browser")
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=chromium, headless=True)
    page = browser.new_page(viewport={"width": 1400, "height": 760})
    page.goto(url)
    page.wait_for_selector("text=train_loss", timeout=60_000)
    page.get_by_label("Toggle settings side pane").click()  # open by default: close it
    page.locator('input[placeholder="Filter tags (regex)"]').first.fill("^(train_loss|val_loss)$")
    page.keyboard.press("Escape")  # close the tag suggestions
    page.mouse.click(1300, 700)
    time.sleep(4)  # the charts draw after their data arrives
    page.screenshot(path=sys.argv[1], full_page=False)
    browser.close()
print(f"wrote {sys.argv[1]}")
EOF
