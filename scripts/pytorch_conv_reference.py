"""PyTorch side of the speed comparison for the two conv presets that
../shared/bench/pytorch_reference.py does not define: conv-unpool and
conv-both. Same recipe and loop as that script (MSE, Adam 1e-3, fp32, 20
warm-up steps then fresh weights, shuffled mini-batches over the first
50,000 training images), same encoder as its conv-deconv; the decoders
max-unpool with the encoder's switches, then 3x3 convolutions (unpool) or
stride-1 transposed convolutions (both), as aelab's presets do. PyTorch's
max-unpooling (the value at the first maximum of each window, zeros
elsewhere) is aelab's since it follows torch.nn.MaxUnpool2d, so a model
here computes the function of an aelab checkpoint of the same weights
(checked by scripts/pytorch_fixtures.py and cargo test). Prints one
JSON object per model.

    python scripts/pytorch_conv_reference.py --data ../shared/data --models conv-unpool conv-both --batch 32
"""
import argparse
import json
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from idx import read_idx


class ConvUnpool(nn.Module):
    def __init__(self, transposed):
        super().__init__()
        self.c1, self.c2, self.c3 = nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(8, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1)
        layer = (lambda i, o: nn.ConvTranspose2d(i, o, 3, padding=1)) if transposed else (lambda i, o: nn.Conv2d(i, o, 3, padding=1))
        self.d3, self.d2, self.d1 = layer(16, 16), layer(16, 8), layer(8, 1)

    def forward(self, x):
        x = x.view(-1, 1, 28, 28)
        h1 = F.relu(self.c1(x)); p1, i1 = F.max_pool2d(h1, 2, return_indices=True)                   # 28 -> 14
        h2 = F.relu(self.c2(p1)); p2, i2 = F.max_pool2d(h2, 2, return_indices=True)                  # 14 -> 7
        h3 = F.relu(self.c3(p2)); p3, i3 = F.max_pool2d(h3, 2, ceil_mode=True, return_indices=True)  # 7 -> 4
        u3 = F.max_unpool2d(p3, i3, 2, output_size=h3.shape[-2:]); d3 = F.relu(self.d3(u3))
        u2 = F.max_unpool2d(d3, i2, 2, output_size=h2.shape[-2:]); d2 = F.relu(self.d2(u2))
        u1 = F.max_unpool2d(d2, i1, 2, output_size=h1.shape[-2:])
        return torch.sigmoid(self.d1(u1)).view(-1, 784)


MODELS = {"conv-unpool": lambda: ConvUnpool(False), "conv-both": lambda: ConvUnpool(True)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.environ.get("AELAB_DATA_DIR", "../shared/data"))
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    x = read_idx(os.path.join(a.data, "mnist", "train-images-idx3-ubyte.gz")).reshape(-1, 784).astype(np.float32) / 255
    xtr, xva = torch.from_numpy(x[:50000].copy()), torch.from_numpy(x[50000:].copy())
    for name in a.models:
        torch.manual_seed(a.seed)
        model = MODELS[name]()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        g = torch.Generator().manual_seed(a.seed)
        for i in range(20):  # warm-up steps, then restart from fresh weights
            xb = xtr[i * a.batch:(i + 1) * a.batch]
            opt.zero_grad(set_to_none=True); F.mse_loss(model(xb), xb).backward(); opt.step()
        torch.manual_seed(a.seed)
        model = MODELS[name]()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        secs, val = [], []
        for _ in range(a.epochs):
            t0 = time.perf_counter()
            xs = xtr[torch.randperm(len(xtr), generator=g)]
            for i in range(0, len(xs), a.batch):
                xb = xs[i:i + a.batch]
                opt.zero_grad(set_to_none=True)
                F.mse_loss(model(xb), xb).backward()
                opt.step()
            secs.append(time.perf_counter() - t0)
            with torch.no_grad():
                val.append(float(F.mse_loss(model(xva), xva)))
        print(json.dumps({
            "framework": "pytorch", "version": torch.__version__, "threads": torch.get_num_threads(),
            "model": name, "params": sum(p.numel() for p in model.parameters()), "batch": a.batch,
            "epoch_secs": [round(s, 3) for s in secs],
            "samples_per_sec": round(len(xtr) / min(secs), 1),
            "val_mse_per_epoch": [round(v, 6) for v in val]}), flush=True)


if __name__ == "__main__":
    main()
