#!/usr/bin/env bash
# Start the app under Xvfb on the shared data with an empty model library,
# let it train for a while, and write PNG screenshots of the views to docs/.
# Needs: xvfb xauth imagemagick xdotool (apt-get install -y --no-install-recommends ...).
#   BIN=target/release/aelab SECS=30 START=shallow-64 SIZE=1280x800 scripts/screenshot.sh
# SCALE=2 renders at twice the pixels per point (a HiDPI screen): SIZE is in
# pixels, the window fills the screen.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/aelab}
DATA=${AELAB_DATA_DIR:-../shared/data}
OUT=${OUT:-docs}
SECS=${SECS:-30}
SIZE=${SIZE:-1280x800}
SCALE=${SCALE:-1}
WINDOW="$(( ${SIZE%x*} / SCALE ))x$(( ${SIZE#*x} / SCALE ))"
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
DISPLAY=$DISP WINIT_X11_SCALE_FACTOR=$SCALE AELAB_WINDOW=$WINDOW AELAB_MODELS_DIR="$models" "$BIN" --data-dir "$DATA" ${START:+--start "$START"} >/dev/null 2>&1 &
app=$!
sleep "$SECS"
shot() { DISPLAY=$DISP import -window root "$OUT/$1.png"; echo "wrote $OUT/$1.png"; }
# the side panel lists Study, Train, Draw, PCA, Compare, Denoise, Filters, Noise & OOD, Latent space, Library from the top
click() { DISPLAY=$DISP xdotool mousemove $(( $1 * SCALE )) $(( $2 * SCALE )) click 1; sleep "${3:-2}"; }
view_y() { echo $((44 + 23 * $1)); }
# a first launch opens the Study view
click 35 "$(view_y 1)" 2
shot train
click 35 "$(view_y 2)" 3
# draw a "7": a top bar, then a slanted stem (canvas at CANVAS_X, CANVAS_Y, side ~360)
cx=${CANVAS_X:-150}; cy=${CANVAS_Y:-110}
stroke() { # x1 y1 x2 y2 ... in canvas fractions x100
  local first=1
  while [ $# -ge 2 ]; do
    local x=$(( (cx + $1 * 36 / 10) * SCALE )) y=$(( (cy + $2 * 36 / 10) * SCALE ))
    if [ $first = 1 ]; then DISPLAY=$DISP xdotool mousemove $x $y mousedown 1; first=0
    else DISPLAY=$DISP xdotool mousemove $x $y; fi
    sleep 0.05; shift 2
  done
  DISPLAY=$DISP xdotool mouseup 1; sleep 0.3
}
stroke 30 25 40 25 50 25 60 25 70 25 68 30 64 38 60 46 56 54 52 62 48 70 45 78
sleep 4
shot draw
click 35 "$(view_y 3)" 4
shot pca
click 35 "$(view_y 4)" 8
shot compare
click 35 "$(view_y 5)" 25
shot denoise
click 35 "$(view_y 6)" 3
shot filters
click 35 "$(view_y 7)" 20
shot ood
click 35 "$(view_y 8)" 10
shot latent
click 35 "$(view_y 9)"
shot library
click 35 "$(view_y 0)" 6
shot study
# VAE_ITEM=N: the Latent view on the N-th entry of its "Map of" list (a 2-D
# VAE of the library, e.g. MODELS holding deep, vae-2 and vae-30: N=3), a
# point dragged on its plane, the grid and samples -> latent-vae.png
if [ -n "${VAE_ITEM:-}" ]; then
  click 35 "$(view_y 8)" 4
  click 263 44 1
  click 240 $((48 + 23 * VAE_ITEM)) 5
  DISPLAY=$DISP xdotool mousemove $((330 * SCALE)) $((400 * SCALE)) mousedown 1
  for i in 1 2 3 4 5 6; do
    DISPLAY=$DISP xdotool mousemove $(((330 + i * 12) * SCALE)) $(((400 - i * 10) * SCALE)); sleep 0.1
  done
  DISPLAY=$DISP xdotool mouseup 1; sleep 3
  shot latent-vae
fi
