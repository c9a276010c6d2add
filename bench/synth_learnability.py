"""Sanity check that the synthetic targets are learnable: a tiny U-Net trained briefly on CPU.

    PYTHONPATH=. python bench/synth_learnability.py [--epochs 100] [--n 400] [--out FILE]

Generates (or reuses) a synthetic dataset, trains a 3-level U-Net with 12 base channels on 64x64 crops
(SoftIoU + BCE, Adam with a one-cycle schedule) through the hnanas data layer (``build_data``: validation carved from train, target crops,
flips), then reports IoU, Pd and Fa on the validation and test images (whole images, padded to 32 and cropped
back). Pd/Fa here are a quick approximation (a target counts as detected when any predicted component overlaps
it), not :mod:`hnanas.metrics`. Writes JSON (default ``runs/bench/synth_learnability.json``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hnanas.data import DataConfig, SynthParams, build_data, collate_eval, crop_to_size, write_synthetic  # noqa: E402
from hnanas.envinfo import environment  # noqa: E402
from hnanas.fileio import write_json  # noqa: E402


def block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class TinyUNet(nn.Module):
    def __init__(self, c: int = 12):
        super().__init__()
        self.e1, self.e2, self.e3 = block(1, c), block(c, 2 * c), block(2 * c, 4 * c)
        self.d2, self.d1, self.head = block(6 * c, 2 * c), block(3 * c, c), nn.Conv2d(c, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.e1(x)
        b = self.e2(F.max_pool2d(a, 2))
        c = self.e3(F.max_pool2d(b, 2))
        b = self.d2(torch.cat([b, F.interpolate(c, scale_factor=2.0)], 1))
        return self.head(self.d1(torch.cat([a, F.interpolate(b, scale_factor=2.0)], 1)))


def soft_iou_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p = torch.sigmoid(logits)
    inter = (p * target).sum((1, 2, 3))
    return (1 - (inter + 1) / (p.sum((1, 2, 3)) + target.sum((1, 2, 3)) - inter + 1)).mean()


@torch.no_grad()
def evaluate(net: nn.Module, dataset) -> dict:
    net.eval()
    inter = union = n_targets = detected = false_pixels = pixels = 0
    eight = np.ones((3, 3), bool)
    for x, y, sizes, _ in torch.utils.data.DataLoader(dataset, batch_size=1, collate_fn=collate_eval):
        pred = crop_to_size(torch.sigmoid(net(x))[0, 0], sizes[0]).numpy() > 0.5
        mask = crop_to_size(y[0, 0], sizes[0]).numpy() > 0.5
        inter, union, pixels = inter + (pred & mask).sum(), union + (pred | mask).sum(), pixels + mask.size
        pred_labels, n_pred = ndimage.label(pred, eight)
        mask_labels, n_mask = ndimage.label(mask, eight)
        matched: set[int] = set()
        for k in range(1, n_mask + 1):
            hits = set(np.unique(pred_labels[mask_labels == k]).tolist()) - {0}
            detected += bool(hits)
            matched |= hits
        n_targets += n_mask
        false_pixels += sum(int((pred_labels == j).sum()) for j in range(1, n_pred + 1) if j not in matched)
    return {"iou": float(inter / max(union, 1)), "pd": detected / max(n_targets, 1),
            "fa_1e-6": float(false_pixels / max(pixels, 1) * 1e6), "images": len(dataset)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="runs/bench/synthetic-400", help="synthetic dataset folder")
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="runs/bench/synth_learnability.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    write_synthetic(args.data, SynthParams(n=args.n, size=256, seed=0))
    data = build_data(DataConfig(dataset=args.data, crop_size=64, target_prob=0.7))
    print(data.describe())
    net = TinyUNet(12)
    opt = torch.optim.Adam(net.parameters(), 5e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 5e-3, total_steps=args.epochs * (len(data.train) // 16))
    loader = torch.utils.data.DataLoader(data.train, batch_size=16, shuffle=True, drop_last=True,
                                         generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    for epoch in range(args.epochs):
        data.train.set_epoch(epoch)
        net.train()
        for x, y, _ in loader:
            logits = net(x)
            loss = soft_iou_loss(logits, y) + F.binary_cross_entropy_with_logits(logits, y,
                                                                                 pos_weight=torch.tensor(3.0))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        print(f"epoch {epoch + 1}/{args.epochs} loss {loss.item():.3f} ({time.perf_counter() - start:.0f} s)")
    result = {"epochs": args.epochs, "train_seconds": time.perf_counter() - start,
              "val": evaluate(net, data.val), "test": evaluate(net, data.test)}
    for part in ("val", "test"):
        r = result[part]
        print(f"{part:<5} IoU {r['iou']:.3f}  Pd {r['pd']:.3f}  Fa {r['fa_1e-6']:.1f}e-6  ({r['images']} images)")
    write_json(args.out, {"benchmark": "synth_learnability", **result, "environment": environment()})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
