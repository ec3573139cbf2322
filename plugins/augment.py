"""augment: RandomResizedCrop(64, scale (0.8, 1), ratio (3/4, 4/3)) and horizontal flip on real images.

Every image gets its own random crop and flip, all drawn and applied at once on the training device:
one affine_grid / grid_sample over the batch, no per-image Python loop in the step. The crop is sampled as
torchvision's RandomResizedCrop samples it (area fraction, then log-uniform aspect ratio, up to 10 tries,
else the whole image) and resampled bilinearly to the output size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ganlab import ConfigError, TrainState, Trick, hookimpl, opt


@dataclass
class AugmentOptions:
    scale_min: float = opt(0.8, "smallest crop area, as a fraction of the image", min=0.0, max=1.0, min_exclusive=True)
    scale_max: float = opt(1.0, "largest crop area, as a fraction of the image", min=0.0, max=1.0, min_exclusive=True)
    ratio_min: float = opt(3 / 4, "smallest crop aspect ratio (width / height)", min=0.0, min_exclusive=True)
    ratio_max: float = opt(4 / 3, "largest crop aspect ratio (width / height)", min=0.0, min_exclusive=True)
    flip_prob: float = opt(0.5, "probability of a horizontal flip", min=0.0, max=1.0)


def crop_params(batch: int, scale: tuple[float, float], ratio: tuple[float, float], device: torch.device,
                tries: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image crop width and height as fractions of the image side, as torchvision draws them."""
    w = torch.ones(batch, device=device)
    h = torch.ones(batch, device=device)
    todo = torch.ones(batch, dtype=torch.bool, device=device)
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(tries):
        area = torch.empty(batch, device=device).uniform_(scale[0], scale[1])
        r = torch.exp(torch.empty(batch, device=device).uniform_(log_lo, log_hi))
        cw, ch = torch.sqrt(area * r), torch.sqrt(area / r)
        ok = todo & (cw <= 1) & (ch <= 1)
        w, h = torch.where(ok, cw, w), torch.where(ok, ch, h)
        todo = todo & ~ok
    return w, h  # images that never fit keep the whole image (torchvision's fallback for ratio ~1)


def random_resized_crop_flip(x: torch.Tensor, scale: tuple[float, float] = (0.8, 1.0),
                             ratio: tuple[float, float] = (3 / 4, 4 / 3), flip_prob: float = 0.5) -> torch.Tensor:
    """A random crop of each image, resized back to the image's size, and flipped with `flip_prob`."""
    b = x.shape[0]
    w, h = crop_params(b, scale, ratio, x.device)
    # crop centre in normalized coordinates: the crop's left edge is uniform in [0, 1 - w]
    tx = (1 - w) * (2 * torch.rand(b, device=x.device) - 1)
    ty = (1 - h) * (2 * torch.rand(b, device=x.device) - 1)
    flip = torch.where(torch.rand(b, device=x.device) < flip_prob, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = w * flip
    theta[:, 0, 2] = tx
    theta[:, 1, 1] = h
    theta[:, 1, 2] = ty
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class Augment(Trick):
    name = "augment"
    Options = AugmentOptions

    def configure(self, config) -> None:
        o = self.options
        for lo, hi in (("scale_min", "scale_max"), ("ratio_min", "ratio_max")):
            if getattr(o, lo) > getattr(o, hi):
                key = f"tricks.augment.{lo}"
                raise ConfigError(key, f"must be <= {hi} ({getattr(o, hi)}), got {getattr(o, lo)}", config.origin(key))

    @hookimpl
    def ganlab_real_batch(self, state: TrainState) -> None:
        o = self.options
        state.real = random_resized_crop_flip(state.real, (o.scale_min, o.scale_max),
                                              (o.ratio_min, o.ratio_max), o.flip_prob)
