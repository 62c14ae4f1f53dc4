"""Training speed side by side with PyTorch eager: for each preset and batch
size, ROUNDS rounds of one epoch (50,000 images) of aelab and of PyTorch,
alternated (A B A B ...), each program's own samples/s; prints every round,
the median of each side and the median of the per-round ratios.

    python scripts/compare_pytorch.py --aelab target/release/aelab \
        --runs deep:32 shallow-256:32 conv-deconv:32 deep:256 --rounds 3 [--avx2]

--avx2 holds both sides to AVX2 + FMA on a CPU that has AVX-512:
AELAB_NO_AVX512=1 for aelab, ATEN_CPU_CAPABILITY=avx2 and
MKL_ENABLE_INSTRUCTIONS=AVX2 for PyTorch. PyTorch's side is
../shared/bench/pytorch_reference.py (deep, shallow-*, conv-deconv) or
scripts/pytorch_conv_reference.py (conv-unpool, conv-both).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def last_json(out):
    for line in reversed(out.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no JSON line in:\n" + out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--aelab", default=os.path.join(HERE, "..", "target", "release", "aelab"))
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--data", default=os.environ.get("AELAB_DATA_DIR", os.path.join(HERE, "..", "..", "shared", "data")))
    ap.add_argument("--runs", nargs="+", default=["deep:32", "shallow-256:32"], help="PRESET:BATCH")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="aelab --ways and torch threads (default: all cores)")
    ap.add_argument("--avx2", action="store_true")
    a = ap.parse_args()
    env_a, env_p = dict(os.environ), dict(os.environ)
    if a.avx2:
        env_a["AELAB_NO_AVX512"] = "1"
        env_p["ATEN_CPU_CAPABILITY"] = "avx2"
        env_p["MKL_ENABLE_INSTRUCTIONS"] = "AVX2"
    threads = ["--ways", str(a.threads)] if a.threads else []
    if a.threads:
        env_p["OMP_NUM_THREADS"] = str(a.threads)
    rows = []
    for run in a.runs:
        preset, batch = run.split(":")
        if preset in ("conv-unpool", "conv-both"):
            ref = [os.path.join(HERE, "pytorch_conv_reference.py")]
        else:
            ref = [os.path.join(HERE, "..", "..", "shared", "bench", "pytorch_reference.py")]
        ours, theirs, ratios = [], [], []
        for r in range(a.rounds):
            out = subprocess.run(
                [a.aelab, "train", "--preset", preset, "--batch", batch, "--epochs", "1",
                 "--no-save", "--json", "--data-dir", a.data] + threads,
                env=env_a, capture_output=True, text=True, check=True).stdout
            x = last_json(out)["samples_per_sec"]
            out = subprocess.run(
                [a.python] + ref + ["--data", a.data, "--models", preset, "--batch", batch, "--epochs", "1"],
                env=env_p, capture_output=True, text=True, check=True).stdout
            y = last_json(out)["samples_per_sec"]
            ours.append(x)
            theirs.append(y)
            ratios.append(x / y)
            print(f"{preset} b{batch} round {r + 1}: aelab {x:,.0f}  pytorch {y:,.0f}  ratio {x / y:.2f}", flush=True)
        rows.append((preset, batch, ours, theirs, statistics.median(ratios)))
    print()
    print("| preset | batch | aelab samples/s | PyTorch samples/s | median of ratios |")
    print("|---|---|---|---|---|")
    for preset, batch, ours, theirs, ratio in rows:
        fmt = lambda v: " / ".join(f"{x / 1000:.1f}k" for x in v)
        print(f"| `{preset}` | {batch} | {fmt(ours)} | {fmt(theirs)} | **{ratio:.2f}x** |")


if __name__ == "__main__":
    main()
