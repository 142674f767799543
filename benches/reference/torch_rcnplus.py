#!/usr/bin/env python3
"""PyTorch twin of the `rcnplus-300w` preset, for the throughput comparison in the README.

The same network as `crates/models/src/rcn.rs` with the preset of `presets.rs`:
80x80 grey input; down path: conv 5x5 (1 -> 64) at 80x80, then 4 x (2x2 max-pool, conv 3x3
64 -> 64) down to 5x5; up path per level: x2 nearest upsampling, concatenation with the
down features of that resolution, 2 x conv 3x3 (128 -> 64, 64 -> 64); all convs ReLU; a
1x1 linear conv to 68 maps; soft-argmax (beta 1). One Adam step (lr 1e-3) on landmark MSE,
as `cargo run --release --example throughput -- --preset rcnplus-300w`.

Usage (the venv of ../shared/reference/setup.sh):
  python3 benches/reference/torch_rcnplus.py [--batch 16] [--steps 3]
"""
import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def soft_argmax(maps, beta):
    b, k, h, w = maps.shape
    p = F.softmax(beta * maps.reshape(b, k, h * w), dim=-1).reshape(b, k, h, w)
    xs = torch.arange(w, dtype=maps.dtype)
    ys = torch.arange(h, dtype=maps.dtype)
    return torch.stack([(p.sum(2) * xs).sum(-1), (p.sum(3) * ys).sum(-1)], dim=-1)


class RcnPlus(nn.Module):
    def __init__(self, k=68, c=64, levels=4):
        super().__init__()
        self.down = nn.ModuleList(
            [nn.Conv2d(1, c, 5, padding=2)] + [nn.Conv2d(c, c, 3, padding=1) for _ in range(levels)])
        self.up = nn.ModuleList([
            nn.ModuleList([nn.Conv2d(2 * c, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1)])
            for _ in range(levels)])
        self.output = nn.Conv2d(c, k, 1)

    def forward(self, x):
        feats = []
        for l, conv in enumerate(self.down):
            if l > 0:
                x = F.max_pool2d(x, 2)
            x = F.relu(conv(x))
            feats.append(x)
        g = x
        for l in reversed(range(len(self.up))):
            skip = feats[l]
            g = F.interpolate(g, size=skip.shape[2:], mode="nearest")
            g = torch.cat([g, skip], 1)
            for conv in self.up[l]:
                g = F.relu(conv(g))
        return soft_argmax(self.output(g), 1.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()
    torch.manual_seed(0)
    model = RcnPlus()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(args.batch, 1, 80, 80)
    gt = torch.rand(args.batch, 68, 2) * 79
    print(f"torch_version={torch.__version__} threads={torch.get_num_threads()}")
    print(f"params={sum(p.numel() for p in model.parameters())}")

    def step():
        t = time.perf_counter()
        loss = F.mse_loss(model(x), gt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return time.perf_counter() - t

    step()
    times = sorted(step() for _ in range(args.steps))
    print(f"train_images_per_sec={args.batch / times[len(times) // 2]:.2f}")
    model.eval()
    with torch.no_grad():
        model(x)
        inf = []
        for _ in range(args.steps):
            t = time.perf_counter()
            model(x)
            inf.append(time.perf_counter() - t)
    inf.sort()
    print(f"infer_images_per_sec={args.batch / inf[len(inf) // 2]:.2f}")


if __name__ == "__main__":
    main()
