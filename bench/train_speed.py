"""ganlab's training loop against a bare PyTorch loop doing the same work, in images/s.

Both sides: the paper's DCGAN (width 64, batch 32, latent 128), all five tricks (augment, input noise,
soft labels, batch norm with separate real/fake batches, LeakyReLU), the same data already in memory as
uint8, Adam, D step then G step with D frozen. The bare loop is written out below with no hooks, no
state object, no run folder. The ganlab side is the real `Trainer.run` loop (hooks, logging every 50
steps), timed between two steps by a plugin so start-up and the final checkpoint are not counted.

    python bench/train_speed.py [--steps 60] [--warmup 10] [--rounds 3] [--width 64] [--device cpu|cuda]

Prints images/s of both and the ratio ganlab / bare (target >= 0.97) for fp32 and bf16.
"""
from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn

from ganlab import hookimpl
from ganlab.config import build_config
from ganlab.trainer import Trainer


def bare_models(latent: int, w: int) -> tuple[nn.Module, nn.Module]:
    def lrelu():
        return nn.LeakyReLU(0.2, inplace=True)

    G = nn.Sequential(
        nn.Unflatten(1, (latent, 1, 1)),
        nn.ConvTranspose2d(latent, 8 * w, 4, 1, 0, bias=False), nn.BatchNorm2d(8 * w), lrelu(),
        nn.ConvTranspose2d(8 * w, 4 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(4 * w), lrelu(),
        nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * w), lrelu(),
        nn.ConvTranspose2d(2 * w, w, 4, 2, 1, bias=False), nn.BatchNorm2d(w), lrelu(),
        nn.ConvTranspose2d(w, 3, 4, 2, 1), nn.Tanh())
    D = nn.Sequential(
        nn.Conv2d(3, w, 4, 2, 1), lrelu(),
        nn.Conv2d(w, 2 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * w), lrelu(),
        nn.Conv2d(2 * w, 4 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(4 * w), lrelu(),
        nn.Conv2d(4 * w, 8 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(8 * w), lrelu(),
        nn.Conv2d(8 * w, 1, 4, 1, 0), nn.Flatten(0))
    for m in (*G.modules(), *D.modules()):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1, 0.02)
            nn.init.zeros_(m.bias)
    return G, D


def bare_loop(images: torch.Tensor, steps: int, warmup: int, width: int, precision: str, device: torch.device) -> float:
    """images/s of a plain loop with the five tricks inlined."""
    torch.manual_seed(0)
    G, D = bare_models(128, width)
    G, D = G.to(device), D.to(device)
    opt_g = torch.optim.Adam(G.parameters(), 5e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), 5e-4, betas=(0.5, 0.999))
    images = images.to(device)
    bs, n = 32, images.shape[0]
    total = warmup + steps
    ctx = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if precision == "bf16" else None
    step, t0 = 0, 0.0
    while step < total:
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(step)).to(device)
        for i in range(n // bs):
            if step == warmup:
                _sync(device)
                t0 = time.perf_counter()
            real = images[perm[i * bs:(i + 1) * bs]].float().div_(127.5).sub_(1.0)
            # augment: per-image RandomResizedCrop + flip, one grid_sample
            area = torch.empty(bs, device=device).uniform_(0.8, 1.0)
            r = torch.exp(torch.empty(bs, device=device).uniform_(math.log(3 / 4), math.log(4 / 3)))
            cw, ch = torch.sqrt(area * r).clamp(max=1), torch.sqrt(area / r).clamp(max=1)
            theta = torch.zeros(bs, 2, 3, device=device)
            theta[:, 0, 0] = cw * torch.where(torch.rand(bs, device=device) < 0.5, -1.0, 1.0)
            theta[:, 0, 2] = (1 - cw) * (2 * torch.rand(bs, device=device) - 1)
            theta[:, 1, 1] = ch
            theta[:, 1, 2] = (1 - ch) * (2 * torch.rand(bs, device=device) - 1)
            grid = F.affine_grid(theta, list(real.shape), align_corners=False)
            real = F.grid_sample(real, grid, mode="bilinear", padding_mode="border", align_corners=False)
            std = 0.1 * (1 - step / total)
            real = real + std * torch.randn_like(real)
            z = torch.randn(bs, 128, device=device)
            with ctx() if ctx else _null():
                fake = G(z)
            fake = fake + std * torch.randn_like(fake)
            opt_d.zero_grad(set_to_none=True)
            with ctx() if ctx else _null():
                lr, lf = D(real).float(), D(fake.detach()).float()
                d_loss = (F.binary_cross_entropy_with_logits(lr, torch.full_like(lr, 0.8))
                          + F.binary_cross_entropy_with_logits(lf, torch.zeros_like(lf)))
            d_loss.backward()
            opt_d.step()
            opt_g.zero_grad(set_to_none=True)
            D.requires_grad_(False)
            with ctx() if ctx else _null():
                lg = D(fake).float()
                g_loss = F.binary_cross_entropy_with_logits(lg, torch.ones_like(lg))
            g_loss.backward()
            D.requires_grad_(True)
            opt_g.step()
            step += 1
            if step % 50 == 0:
                (d_loss.item(), g_loss.item())  # the logging sync ganlab does too
            if step == total:
                break
    _sync(device)
    return steps * bs / (time.perf_counter() - t0)


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *a):
        return None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Clock:
    """Times the loop between the end of step `warmup` and the end of step `warmup + steps`."""

    def __init__(self, warmup: int, steps: int, device: torch.device):
        self.warmup, self.end, self.device = warmup, warmup + steps, device
        self.t0 = self.t1 = 0.0

    @hookimpl
    def ganlab_after_step(self, state):
        if state.step in (self.warmup, self.end):
            _sync(self.device)
            if state.step == self.warmup:
                self.t0 = time.perf_counter()
            else:
                self.t1 = time.perf_counter()


def ganlab_loop(images: torch.Tensor, steps: int, warmup: int, width: int, precision: str, device: torch.device) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        raw = {"name": "bench", "device": str(device), "precision": precision, "runs_dir": tmp,
               "model": {"g_width": width, "d_width": width},
               "train": {"epochs": 1000, "max_steps": warmup + steps, "checkpoint_every": 10 ** 9,
                         "sample_every": 0, "log_every": 50},
               "tricks": {t: {} for t in ("augment", "input_noise", "soft_labels", "batch_norm", "activation")}}
        clock = Clock(warmup, steps, device)
        trainer = Trainer(build_config(raw), quiet=True, images=images, extra_plugins=[clock])
        trainer.write_samples = lambda: None  # the final sample grid is not part of the step
        trainer.save = lambda path: None  # nor is the final checkpoint
        trainer.run()
        return steps * 32 / (clock.t1 - clock.t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median is reported")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--precision", nargs="+", default=["fp32", "bf16"])
    args = ap.parse_args()
    device = torch.device(args.device)
    images = torch.randint(0, 256, (2048, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    print(f"device {device}, threads {torch.get_num_threads()}, width {args.width}, batch 32, "
          f"{args.steps} timed steps after {args.warmup} warm-up, median of {args.rounds} alternating rounds")
    print(f"{'precision':10s} {'bare img/s':>11s} {'ganlab img/s':>13s} {'ratio':>7s}")
    for precision in args.precision:
        bare, ours = [], []
        for _ in range(args.rounds):
            bare.append(bare_loop(images, args.steps, args.warmup, args.width, precision, device))
            ours.append(ganlab_loop(images, args.steps, args.warmup, args.width, precision, device))
        b, o = statistics.median(bare), statistics.median(ours)
        print(f"{precision:10s} {b:11.1f} {o:13.1f} {o / b:7.3f}", flush=True)


if __name__ == "__main__":
    main()
