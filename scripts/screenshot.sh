#!/usr/bin/env bash
# Start the app under Xvfb on the shared data with an empty model library,
# let it train its first model for a while, and write PNG screenshots to
# docs/ (train view while training, then the library view).
# Needs: xvfb xauth imagemagick xdotool (apt-get install -y --no-install-recommends ...).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/debug/aelab}
DATA=${AELAB_DATA_DIR:-../shared/data}
OUT=${OUT:-docs}
SECS=${SECS:-25}
SIZE=${SIZE:-1280x800}
mkdir -p "$OUT"
models=$(mktemp -d)
export XDG_DATA_HOME=$(mktemp -d) # fresh eframe settings
Xvfb :99 -screen 0 ${SIZE}x24 -nolisten tcp >/dev/null 2>&1 &
xvfb=$!
trap 'kill $app $xvfb 2>/dev/null || true; rm -rf "$models"' EXIT
sleep 1
DISPLAY=:99 AELAB_MODELS_DIR="$models" "$BIN" --data-dir "$DATA" &
app=$!
sleep "$SECS"
DISPLAY=:99 import -window root "$OUT/train.png"
# maximise-free layout: the side panel's "Library" entry sits at the left
win=$(DISPLAY=:99 xdotool search --name "aelab" | head -1 || true)
if [ -n "$win" ]; then
  DISPLAY=:99 xdotool mousemove --window "$win" 40 75 click 1
  sleep 2
  DISPLAY=:99 import -window root "$OUT/library.png"
fi
echo "wrote $OUT/train.png $OUT/library.png"
