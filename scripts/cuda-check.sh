#!/usr/bin/env bash
# Builds aelab with candle's CUDA backend from scratch, with nvcc and the
# CUDA libraries taken from PyPI's NVIDIA wheels (no CUDA toolkit needed),
# checks clippy for the feature, and, when a GPU is present, trains
# `deep`, `shallow-256` and one preset of each conv decoder for one epoch on
# the GPU and on the CPU: each validation MSE must be within 5% of the
# CPU's for the same seed; samples/s are printed side by side.
#
#   scripts/cuda-check.sh                 # build (+ GPU check when there is one)
#   CUDA_CHECK_EPOCHS=1 CUDA_CHECK_LIMIT=10000 scripts/cuda-check.sh
#
# Variables: AELAB_CUDA_VENV (where the wheels go, default
# ~/.cache/aelab-cuda-venv), CARGO_TARGET_DIR (default target/cuda, apart
# from the CPU build's), CUDA_COMPUTE_CAP (default: the GPU's, else 90),
# AELAB_DATA_DIR (default ../shared/data), CUDA_CHECK_SKIP_CLIPPY=1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

VENV=${AELAB_CUDA_VENV:-$HOME/.cache/aelab-cuda-venv}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
# nvcc, the runtime and its headers, and the libraries candle links
"$VENV/bin/pip" install -q nvidia-cuda-nvcc nvidia-cuda-runtime nvidia-cuda-cccl \
  nvidia-cuda-crt nvidia-nvvm nvidia-cublas nvidia-curand nvidia-cuda-nvrtc
CU=$("$VENV/bin/python" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))')
[ -x "$CU/bin/nvcc" ] || { echo "no nvcc under $CU" >&2; exit 1; }

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target/cuda}
LINK="$CARGO_TARGET_DIR/cuda-link"
mkdir -p "$LINK"
# The linker wants lib<name>.so; the wheels ship lib<name>.so.<major>.
for lib in cudart cublas cublasLt curand nvrtc; do
  real=$(ls "$CU"/lib/lib$lib.so.* | head -n1)
  ln -sf "$real" "$LINK/lib$lib.so"
done
# libcuda comes with the GPU driver. Where there is none (a build machine),
# link against a stub that defines every driver function cudarc declares;
# at run time the driver's own libcuda.so.1 is loaded instead.
DRIVER=$(ldconfig -p 2>/dev/null | awk '/libcuda\.so\.1 /{print $NF; exit}')
if [ -n "$DRIVER" ]; then
  ln -sf "$DRIVER" "$LINK/libcuda.so"
else
  cargo fetch --quiet
  SYS=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.*/src/driver/sys | sort | tail -n1)
  grep -rhoE 'pub unsafe fn cu[A-Za-z0-9_]+' "$SYS" | sed 's/pub unsafe fn //' | sort -u \
    | awk '{print "void " $1 "(void) {}"}' > "$LINK/cuda_stub.c"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$LINK/libcuda.so" "$LINK/cuda_stub.c"
fi

export PATH="$CU/bin:$PATH" CUDA_ROOT="$CU" CUDA_PATH="$CU" CUDARC_CUDA_VERSION=13040
export LIBRARY_PATH="$LINK${LIBRARY_PATH:+:$LIBRARY_PATH}"
export LD_LIBRARY_PATH="$CU/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
GPU=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  GPU=1
  CAP=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n1 | tr -d ' .')
  export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-$CAP}
else
  export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
fi
echo "nvcc: $("$CU/bin/nvcc" --version | tail -n1); compute capability $CUDA_COMPUTE_CAP; target $CARGO_TARGET_DIR"

cargo build --release --features cuda
if [ "${CUDA_CHECK_SKIP_CLIPPY:-0}" != 1 ]; then
  cargo clippy --release --features cuda --all-targets -- -D warnings
fi
BIN="$CARGO_TARGET_DIR/release/aelab"
echo "built $BIN"
if [ "$GPU" != 1 ]; then
  echo "no GPU here: the build and clippy are checked, the training check needs one"
  exit 0
fi

export AELAB_DATA_DIR=${AELAB_DATA_DIR:-$(cd .. && pwd)/shared/data}
EPOCHS=${CUDA_CHECK_EPOCHS:-1}
LIMIT=${CUDA_CHECK_LIMIT:+--limit $CUDA_CHECK_LIMIT}
nvidia-smi -L
printf '%-12s %12s %12s %12s %12s %8s\n' preset "cpu MSE" "cuda MSE" "cpu smp/s" "cuda smp/s" ok
fail=0
for preset in deep shallow-256 conv-unpool conv-deconv conv-both; do
  for dev in cpu cuda; do
    # shellcheck disable=SC2086
    "$BIN" train --preset "$preset" --epochs "$EPOCHS" $LIMIT --device "$dev" --no-save --json \
      > "$CARGO_TARGET_DIR/check-$preset-$dev.json"
  done
  python3 - "$preset" "$CARGO_TARGET_DIR/check-$preset-cpu.json" "$CARGO_TARGET_DIR/check-$preset-cuda.json" <<'EOF' || fail=1
import json, sys
preset, cpu, gpu = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
a, b = cpu["val_loss"][-1], gpu["val_loss"][-1]
ok = abs(a - b) <= 0.05 * a
print(f"{preset:<12} {a:12.5f} {b:12.5f} {cpu['samples_per_sec']:12.0f} {gpu['samples_per_sec']:12.0f} {'yes' if ok else 'NO':>8}")
sys.exit(0 if ok else 1)
EOF
done
exit $fail
