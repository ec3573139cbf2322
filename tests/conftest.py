"""Shared fixtures: tiny configs and image tensors so every training test runs on CPU in seconds."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

from ganlab import hookimpl
from ganlab.config import build_config

ALL_TRICKS = ("augment", "input_noise", "soft_labels", "batch_norm", "activation")


def tiny_raw(tmp_path: Path, tricks: dict | None = None, **sections) -> dict:
    """A raw config dict for a tiny DCGAN on 16x16 images; `sections` override tables key by key."""
    raw = {
        "name": "tiny",
        "seed": 0,
        "device": "cpu",
        "runs_dir": str(tmp_path / "runs"),
        "model": {"latent_dim": 8, "g_width": 4, "d_width": 4},
        "train": {"epochs": 2, "batch_size": 8, "log_every": 2, "sample_every": 0, "checkpoint_every": 4,
                  "n_samples": 4},
        "data": {"image_size": 16},
        "tricks": {name: {"enabled": True} for name in ALL_TRICKS} if tricks is None else tricks,
    }
    for key, value in sections.items():
        if isinstance(value, dict):
            raw.setdefault(key, {}).update(value)
        else:
            raw[key] = value
    return raw


@pytest.fixture
def tiny_images() -> torch.Tensor:
    """48 random uint8 images, 16x16: 6 batches of 8 per epoch."""
    g = torch.Generator().manual_seed(123)
    return torch.randint(0, 256, (48, 3, 16, 16), generator=g, dtype=torch.uint8)


@pytest.fixture
def make_config(tmp_path):
    def make(tricks: dict | None = None, **sections):
        return build_config(tiny_raw(tmp_path, tricks, **sections), source=str(tmp_path / "tiny.toml"))

    return make


class StopAt:
    """A plugin that ends training after step `step` (status "stopped", checkpoint written)."""

    def __init__(self, step: int):
        self.step = step

    @hookimpl
    def ganlab_after_step(self, state):
        if state.step == self.step:
            state.stop = True


@pytest.fixture
def stop_at():
    return StopAt


class InterruptOnce:
    """Sends this process a real SIGINT (Ctrl-C) at step `step` of the first run that reaches it."""

    def __init__(self, step: int):
        self.step, self.fired = step, False

    @hookimpl
    def ganlab_after_d_loss(self, state):
        if state.step == self.step and not self.fired:
            self.fired = True
            os.kill(os.getpid(), signal.SIGINT)


@pytest.fixture
def interrupt_once():
    return InterruptOnce


@pytest.fixture
def one_thread():
    """Tiny models on a shared 2-core machine: one torch thread is several times faster than two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
