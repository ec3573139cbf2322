"""ema: an exponential moving average of G's weights, used for sample grids and evaluation.

Written only against ganlab's public API (Trick, hookimpl, opt, TrainState): a model to copy when you
write a trick that keeps state. The average is kept in the checkpoint, so a resumed run continues it
exactly. The trained G is untouched; only what is sampled and scored changes.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch

from ganlab import TrainState, Trick, hookimpl, opt


@dataclass
class EmaOptions:
    decay: float = opt(0.999, "weight of the old average at each step", min=0.0, max=1.0)
    start_step: int = opt(0, "copy G's weights until this step, average from then on", min=0)


def ema_decay(decay: float, step: int, start_step: int) -> float:
    """0 (plain copy) before start_step, then `decay`."""
    return 0.0 if step < start_step else decay


class Ema(Trick):
    name = "ema"
    Options = EmaOptions

    def __init__(self) -> None:
        super().__init__()
        self.average: torch.nn.Module | None = None

    def _ensure(self, state: TrainState) -> torch.nn.Module:
        if self.average is None:
            self.average = copy.deepcopy(state.G).eval().requires_grad_(False)
        return self.average

    @hookimpl
    def ganlab_train_start(self, state: TrainState) -> None:
        self._ensure(state)

    @hookimpl
    def ganlab_after_step(self, state: TrainState) -> None:
        avg = self._ensure(state)
        beta = ema_decay(self.options.decay, state.step, self.options.start_step)
        with torch.no_grad():
            avg_params, params = list(avg.parameters()), list(state.G.parameters())
            torch._foreach_lerp_(avg_params, params, 1.0 - beta)
            for b_avg, b in zip(avg.buffers(), state.G.buffers()):
                b_avg.copy_(b)  # BatchNorm's running statistics follow G's
        state.log["ema/decay"] = beta

    @hookimpl
    def ganlab_sampling_generator(self, state: TrainState) -> torch.nn.Module:
        return self._ensure(state)

    @hookimpl
    def ganlab_state_dict(self, state: TrainState) -> dict[str, Any]:
        return {self.name: {"G": self._ensure(state).state_dict()}}

    @hookimpl
    def ganlab_load_state_dict(self, state: TrainState, state_dict: dict[str, Any]) -> None:
        if self.name in state_dict:
            self._ensure(state).load_state_dict(state_dict[self.name]["G"])
