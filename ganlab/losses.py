"""Losses as small pure functions of logits and targets (BCE on logits: numerically stable)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def bce(logits: torch.Tensor, target: float | torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of sigmoid(logits) against a constant or per-sample target."""
    logits = logits.float()
    if isinstance(target, torch.Tensor):
        target = target.to(logits.device, logits.dtype)
    else:
        target = torch.full_like(logits, float(target))
    return F.binary_cross_entropy_with_logits(logits, target)


def d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor,
           real_target: float | torch.Tensor = 1.0, fake_target: float | torch.Tensor = 0.0) -> torch.Tensor:
    """D's loss, BCE(x) + BCE(G(z)) as the paper's Eq. 7."""
    return bce(real_logits, real_target) + bce(fake_logits, fake_target)


def g_loss(fake_logits: torch.Tensor, target: float | torch.Tensor = 1.0) -> torch.Tensor:
    """G's non-saturating loss: -log D(G(z)) (BCE against 1), not log(1 - D(G(z)))."""
    return bce(fake_logits, target)
