"""soft_labels: D's targets real = 0.8 and fake = 0 instead of 1 and 0, optionally with flipped labels.

One-sided label smoothing as the paper (and Salimans et al., 2016): only the real target is softened.
With flip_prob > 0 each sample's real and fake targets are swapped with that probability (noisy labels).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ganlab import ConfigError, TrainState, Trick, hookimpl, opt


@dataclass
class SoftLabelsOptions:
    real: float = opt(0.8, "D's target for real images", min=0.0, max=1.0)
    fake: float = opt(0.0, "D's target for generated images", min=0.0, max=1.0)
    flip_prob: float = opt(0.0, "probability to swap a sample's real and fake target (noisy labels)", min=0.0, max=0.5)


class SoftLabels(Trick):
    name = "soft_labels"
    Options = SoftLabelsOptions

    def configure(self, config) -> None:
        if self.options.real <= self.options.fake:
            raise ConfigError("tricks.soft_labels.real",
                              f"must be above fake ({self.options.fake}), got {self.options.real}",
                              config.origin("tricks.soft_labels.real"))

    @hookimpl
    def ganlab_d_targets(self, state: TrainState) -> None:
        o = self.options
        if o.flip_prob > 0:
            batch = state.real.shape[0]
            real_flip = torch.rand(batch, device=state.device) < o.flip_prob
            fake_flip = torch.rand(batch, device=state.device) < o.flip_prob
            state.real_target = torch.where(real_flip, o.fake, o.real)
            state.fake_target = torch.where(fake_flip, o.real, o.fake)
            state.log["soft_labels/flipped"] = float((real_flip.sum() + fake_flip.sum()) / (2 * batch))
        else:
            state.real_target, state.fake_target = o.real, o.fake
