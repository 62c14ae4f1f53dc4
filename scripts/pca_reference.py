"""numpy's side of the PCA-fit comparison (issue 4): mean, covariance and a
symmetric eigensolver on the first 50,000 MNIST training images, as floats,
all components. Prints one JSON object; compare its fit_secs with the
"PCA fit" line of `aelab bench --no-train`, run alternately on the same
machine.

    python scripts/pca_reference.py --data ../shared/data
"""
import argparse
import json
import os
import time

import numpy as np

from idx import read_idx


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.environ.get("AELAB_DATA_DIR", "../shared/data"))
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    x = read_idx(os.path.join(a.data, "mnist", "train-images-idx3-ubyte.gz"))[:50000]
    x = x.reshape(len(x), -1).astype(np.float32) / 255.0
    secs = []
    for _ in range(a.repeat):
        t = time.perf_counter()
        mean = x.mean(axis=0)
        xc = x - mean
        cov = (xc.T @ xc) / (len(x) - 1)
        vals, vecs = np.linalg.eigh(cov)
        secs.append(time.perf_counter() - t)
    vals = vals[::-1]
    print(json.dumps({"framework": "numpy", "version": np.__version__,
                      "fit_secs": round(min(secs), 4), "fit_secs_all": [round(s, 4) for s in secs],
                      "explained_30": round(float(vals[:30].sum() / vals.sum()), 5)}))


if __name__ == "__main__":
    main()
