"""The training set in memory: one uint8 tensor, one seeded permutation per epoch, float in [-1, 1] per batch.

No PIL, no DataLoader workers: the 9,070 prepared 64x64 crops are 111 MB of uint8, which fit on the
training device, and indexing a tensor costs nothing next to a DCGAN step. The permutation of an epoch is
a pure function of (seed, epoch), so a resumed run sees the same batches.
"""
from __future__ import annotations

from typing import Iterator

import torch


def to_float(batch: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1] (the core's input normalization, matched by G's Tanh)."""
    return batch.float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8, rounded as a PNG writer would quantize them."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round_().to(torch.uint8)


class ImageBank:
    """Mini-batches of a uint8 (N, 3, H, W) tensor held on `device`; the last partial batch is dropped."""

    def __init__(self, images: torch.Tensor, batch_size: int, seed: int, device: torch.device | str = "cpu"):
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected a uint8 tensor (N, 3, H, W), got {images.dtype} {tuple(images.shape)}")
        self.images = images.to(device)
        self.batch_size = batch_size
        self.seed = seed

    def __len__(self) -> int:
        """Batches per epoch."""
        return self.images.shape[0] // self.batch_size

    def permutation(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.images.shape[0], generator=g)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[torch.Tensor]:
        """The uint8 batches of `epoch`, from batch index `start` (to resume mid-epoch)."""
        perm = self.permutation(epoch).to(self.images.device)
        for i in range(start, len(self)):
            yield self.images[perm[i * self.batch_size:(i + 1) * self.batch_size]]
