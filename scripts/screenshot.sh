#!/usr/bin/env bash
# Start the app under Xvfb on the shared data with an empty model library,
# let it train for a while, and write PNG screenshots of the views to docs/.
# Needs: xvfb xauth imagemagick xdotool (apt-get install -y --no-install-recommends ...).
#   BIN=target/release/aelab SECS=30 START=shallow-64 SIZE=1280x800 scripts/screenshot.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/aelab}
DATA=${AELAB_DATA_DIR:-../shared/data}
OUT=${OUT:-docs}
SECS=${SECS:-30}
SIZE=${SIZE:-1280x800}
START=${START-shallow-64}   # empty: queue nothing
# MODELS=DIR shows an existing model library (kept); default: a fresh empty one
DISP=${DISP:-:97}
mkdir -p "$OUT"
if [ -n "${MODELS:-}" ]; then models=$MODELS; keep=1; else models=$(mktemp -d); keep=0; fi
export XDG_DATA_HOME=$(mktemp -d) # fresh window settings
Xvfb "$DISP" -screen 0 "${SIZE}x24" -nolisten tcp >/dev/null 2>&1 &
xvfb=$!
app=
trap 'kill $app $xvfb 2>/dev/null || true; [ "$keep" = 1 ] || rm -rf "$models"; rm -rf "$XDG_DATA_HOME"' EXIT
sleep 1
DISPLAY=$DISP AELAB_MODELS_DIR="$models" "$BIN" --data-dir "$DATA" ${START:+--start "$START"} >/dev/null 2>&1 &
app=$!
sleep "$SECS"
shot() { DISPLAY=$DISP import -window root "$OUT/$1.png"; echo "wrote $OUT/$1.png"; }
shot train
# the side panel lists Train, PCA, Filters, Library from the top
click() { DISPLAY=$DISP xdotool mousemove "$1" "$2" click 1; sleep "${3:-2}"; }
click 35 67 4
shot pca
click 35 90 3
shot filters
click 35 113
shot library
