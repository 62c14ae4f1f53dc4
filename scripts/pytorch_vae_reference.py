"""PyTorch reference for aelab's VAE presets (vae-2, vae-30), same recipe:
784-512-256 (ReLU) to the mean and log-variance of an N-D Gaussian code, a
mirrored N-256-512-784 decoder with sigmoid output, BCE summed over the pixels
+ beta * KL, Adam lr 1e-3, batch 32, shuffled, on the first 50,000 training
images (the last 10,000 validate); Glorot-uniform weights, zero biases.

Prints one JSON object per model: the test MSE (decoding the code's mean), the
test ELBO (one sampled code per image) and KL (nats per image), the active
code dimensions (KL > 0.01 nats) and the training samples/s.

    /work/venvs/torch/bin/python scripts/pytorch_vae_reference.py --data ../shared/data --latent 2 30 --epochs 10
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


class Vae(nn.Module):
    def __init__(self, latent):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU())
        self.mu = nn.Linear(256, latent)
        self.logvar = nn.Linear(256, latent)
        self.dec = nn.Sequential(nn.Linear(latent, 256), nn.ReLU(), nn.Linear(256, 512), nn.ReLU(),
                                 nn.Linear(512, 784))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x, sample=True):
        h = self.enc(x)
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if sample else mu
        return self.dec(z), mu, logvar


def terms(model, x):
    """Per image: BCE summed over pixels (one sampled code) and the KL."""
    logits, mu, logvar = model(x)
    rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)
    kl = 0.5 * (logvar.exp() + mu ** 2 - logvar - 1)
    return rec, kl


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.environ.get("AELAB_DATA_DIR", "../shared/data"))
    ap.add_argument("--latent", type=int, nargs="+", default=[2, 30])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--beta", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    d = os.path.join(a.data, "mnist")
    x = read_idx(os.path.join(d, "train-images-idx3-ubyte.gz")).reshape(-1, 784).astype(np.float32) / 255
    xt = read_idx(os.path.join(d, "t10k-images-idx3-ubyte.gz")).reshape(-1, 784).astype(np.float32) / 255
    train, test = torch.from_numpy(x[:50000]), torch.from_numpy(xt)
    for latent in a.latent:
        torch.manual_seed(a.seed)
        model = Vae(latent)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        secs = 0.0
        for _ in range(a.epochs):
            order = torch.randperm(len(train))
            t = time.perf_counter()
            for i in range(0, len(train), a.batch):
                xb = train[order[i:i + a.batch]]
                rec, kl = terms(model, xb)
                loss = rec.mean() + a.beta * kl.sum(1).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            secs += time.perf_counter() - t
        with torch.no_grad():
            rec, kl = terms(model, test)
            logits, _, _ = model(test, sample=False)
            mse = ((torch.sigmoid(logits) - test) ** 2).mean().item()
            kl_dims = kl.mean(0)
            print(json.dumps({
                "preset": f"vae-{latent}",
                "test_mse": mse,
                "elbo": -(rec.mean() + kl.sum(1).mean()).item(),
                "kl": kl.sum(1).mean().item(),
                "active_dims": int((kl_dims > 0.01).sum().item()),
                "samples_per_sec": a.epochs * len(train) / secs,
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
            }), flush=True)


if __name__ == "__main__":
    main()
