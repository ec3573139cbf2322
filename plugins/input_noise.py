"""input_noise: Gaussian noise on D's inputs, real and generated, decayed to zero (instance noise).

The paper adds N(0, 0.01) noise (std 0.1) to D's input images and decays it during training (after
Arjovsky & Bottou, 2017). The std is a pure function of training progress, so a resumed run continues
the schedule exactly without any saved state.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ganlab import TrainState, Trick, hookimpl, opt
from ganlab.schedules import SCHEDULES, decay


@dataclass
class InputNoiseOptions:
    std: float = opt(0.1, "std of the noise at the start (0.1 = the paper's variance 0.01)", min=0.0)
    end_std: float = opt(0.0, "std reached at the end of the horizon", min=0.0)
    schedule: str = opt("linear", "how the std decays: " + ", ".join(SCHEDULES), choices=SCHEDULES)
    horizon_epochs: float = opt(0.0, "epochs over which the std decays (0: the whole run, train.max_steps included)", min=0.0)


def noise_std(options: InputNoiseOptions, epoch_progress: float, run_epochs: float) -> float:
    """The noise std after `epoch_progress` epochs."""
    horizon = options.horizon_epochs or run_epochs
    return decay(options.schedule, options.std, epoch_progress, horizon, options.end_std)


class InputNoise(Trick):
    name = "input_noise"
    Options = InputNoiseOptions

    def _std(self, state: TrainState) -> float:
        return noise_std(self.options, state.epoch_progress, state.run_epochs)

    @hookimpl
    def ganlab_real_batch(self, state: TrainState) -> None:
        std = self._std(state)
        state.log["input_noise/std"] = std
        if std > 0:
            state.real = state.real + std * torch.randn_like(state.real)

    @hookimpl
    def ganlab_fake_batch(self, state: TrainState) -> None:
        std = self._std(state)
        if std > 0:
            state.fake = state.fake + std * torch.randn_like(state.fake)
