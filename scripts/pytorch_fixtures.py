"""Makes the PyTorch fixtures that `cargo test` checks aelab against
(src/model/torch_fixtures.rs): for each conv decoder (conv-unpool,
conv-deconv, conv-both) and for a tiny deep dense model (784-6-3-6-784,
ReLU), PyTorch's weights after a few Adam steps, named and laid out as the
README's checkpoint table says, together with a few input images and
PyTorch's reconstructions of them (sigmoid outputs), in one safetensors
file per model under tests/fixtures/pytorch/.

The images are strokes on a flat zero background, like MNIST's, so the
pooling windows hold many tied maxima: max-unpooling must put each value
at the one position max-pooling picked (the first maximum, row-major), as
torch.nn.MaxUnpool2d does.

    python scripts/pytorch_fixtures.py            # needs torch, numpy, safetensors
"""
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "pytorch")


class Conv(nn.Module):
    """aelab's conv presets: conv8-pool-conv16-pool-conv16-pool (ceil
    mode at 7 -> 4), then one of the three decoders."""

    def __init__(self, decoder):
        super().__init__()
        self.decoder = decoder
        self.c1, self.c2, self.c3 = nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(8, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1)
        if decoder == "unpool":
            self.d3, self.d2, self.d1 = nn.Conv2d(16, 16, 3, padding=1), nn.Conv2d(16, 8, 3, padding=1), nn.Conv2d(8, 1, 3, padding=1)
        elif decoder == "both":
            self.d3, self.d2, self.d1 = (nn.ConvTranspose2d(16, 16, 3, padding=1), nn.ConvTranspose2d(16, 8, 3, padding=1),
                                         nn.ConvTranspose2d(8, 1, 3, padding=1))
        else:
            self.d3 = nn.ConvTranspose2d(16, 16, 3, stride=2, padding=1)                    # 4 -> 7
            self.d2 = nn.ConvTranspose2d(16, 8, 3, stride=2, padding=1, output_padding=1)   # 7 -> 14
            self.d1 = nn.ConvTranspose2d(8, 1, 3, stride=2, padding=1, output_padding=1)    # 14 -> 28

    def forward(self, x):
        x = x.view(-1, 1, 28, 28)
        h1 = F.relu(self.c1(x)); p1, i1 = F.max_pool2d(h1, 2, return_indices=True)
        h2 = F.relu(self.c2(p1)); p2, i2 = F.max_pool2d(h2, 2, return_indices=True)
        h3 = F.relu(self.c3(p2)); p3, i3 = F.max_pool2d(h3, 2, ceil_mode=True, return_indices=True)
        if self.decoder == "deconv":
            y = self.d1(F.relu(self.d2(F.relu(self.d3(p3)))))
        else:
            d3 = F.relu(self.d3(F.max_unpool2d(p3, i3, 2, output_size=h3.shape[-2:])))
            d2 = F.relu(self.d2(F.max_unpool2d(d3, i2, 2, output_size=h2.shape[-2:])))
            y = self.d1(F.max_unpool2d(d2, i1, 2, output_size=h1.shape[-2:]))
        return y.view(-1, 784)

    def aelab_tensors(self):
        names = {"c1": "enc.conv1", "c2": "enc.conv2", "c3": "enc.conv3", "d3": "dec.layer3", "d2": "dec.layer2", "d1": "dec.layer1"}
        out = {}
        for ours, theirs in names.items():
            layer = getattr(self, ours)
            out[theirs + ".weight"] = layer.weight
            out[theirs + ".bias"] = layer.bias
        return out


class Dense(nn.Module):
    """aelab's dense models: ReLU after every layer but the output
    (the code layer too), sigmoid at the output."""

    def __init__(self, encoder, decoder):
        super().__init__()
        sizes = [784] + encoder
        self.enc = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))
        sizes = [encoder[-1]] + decoder + [784]
        self.dec = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))

    def forward(self, x):
        for layer in self.enc:
            x = F.relu(layer(x))
        for layer in self.dec[:-1]:
            x = F.relu(layer(x))
        return self.dec[-1](x)

    def aelab_tensors(self):
        out = {}
        for part in ("enc", "dec"):
            for i, layer in enumerate(getattr(self, part)):
                out[f"{part}.{i}.weight"] = layer.weight
                out[f"{part}.{i}.bias"] = layer.bias
        return out


def strokes(n, seed):
    """n 28x28 images in [0, 1] (multiples of 1/255): a few thick strokes on zeros."""
    rng = np.random.default_rng(seed)
    imgs = np.zeros((n, 28, 28), np.float32)
    yy, xx = np.mgrid[0:28, 0:28]
    for img in imgs:
        for _ in range(rng.integers(2, 4)):
            (y0, x0), (y1, x1) = rng.uniform(5, 23, 2), rng.uniform(5, 23, 2)
            t = np.clip(((yy - y0) * (y1 - y0) + (xx - x0) * (x1 - x0)) / max((y1 - y0) ** 2 + (x1 - x0) ** 2, 1e-6), 0, 1)
            d = np.hypot(yy - (y0 + t * (y1 - y0)), xx - (x0 + t * (x1 - x0)))
            img[:] = np.maximum(img, np.clip(2.0 - d, 0, 1))
    return np.round(imgs * 255).reshape(n, 784).astype(np.float32) / 255


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(7)
    x = torch.from_numpy(strokes(3, 11))
    models = {
        "conv-unpool": Conv("unpool"),
        "conv-deconv": Conv("deconv"),
        "conv-both": Conv("both"),
        "dense-6-3": Dense([6, 3], [6]),
    }
    for name, model in models.items():
        # a few Adam steps on BCE (what the conv presets train on), so the
        # weights are a checkpoint's, not an initialisation's
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(30):
            opt.zero_grad()
            F.binary_cross_entropy_with_logits(model(x), x).backward()
            opt.step()
        with torch.no_grad():
            out = torch.sigmoid(model(x))
            tensors = {k: v.detach().contiguous().clone() for k, v in model.aelab_tensors().items()}
        tensors["input"] = x.clone()
        tensors["output"] = out.clone()
        path = os.path.join(OUT, name + ".safetensors")
        save_file(tensors, path, metadata={"made_by": "scripts/pytorch_fixtures.py", "torch": torch.__version__})
        print(f"{path}: {os.path.getsize(path)} bytes, mean output {float(out.mean()):.4f}")


if __name__ == "__main__":
    main()
