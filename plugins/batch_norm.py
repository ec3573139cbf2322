"""batch_norm: BatchNorm after the hidden convolutions of G and D; real and fake through D separately.

Off, the networks have no normalization layer at all. On, D sees mini-batches that are all real or all
generated (the paper's rule, from Salimans et al.): batch statistics never mix the two.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ganlab import TrainState, Trick, hookimpl, opt


@dataclass
class BatchNormOptions:
    g: bool = opt(True, "BatchNorm in G")
    d: bool = opt(True, "BatchNorm in D (not after its first layer, as DCGAN)")
    momentum: float = opt(0.1, "momentum of the running statistics", min=0.0, max=1.0)
    eps: float = opt(1e-5, "added to the variance", min=0.0, min_exclusive=True)
    separate_batches: bool = opt(True, "feed D all-real and all-generated mini-batches")


class BatchNorm(Trick):
    name = "batch_norm"
    Options = BatchNormOptions

    @hookimpl
    def ganlab_make_norm(self, net: str, channels: int, config) -> nn.Module | None:
        if (net == "G" and self.options.g) or (net == "D" and self.options.d):
            return nn.BatchNorm2d(channels, eps=self.options.eps, momentum=self.options.momentum)
        return None

    @hookimpl
    def ganlab_train_start(self, state: TrainState) -> None:
        state.separate_batches = self.options.separate_batches
