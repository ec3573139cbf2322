"""TrainState: the one object the hooks of a training step read and mutate.

Plugins change training only through this object (fastai's Learner plays the same part): the trainer
puts the batch, the targets and the losses here at fixed points, calls the hooks, and reads them back.
What each field means, and which hooks may change it:

=================  =========================================================================================
field              meaning (who may change it)
=================  =========================================================================================
config             the resolved Config (read only)
device, dtype      where tensors live; the autocast dtype or None for fp32 (read only)
G, D               the networks (read only; use hooks at build time to change layers)
opt_g, opt_d       their Adam optimizers (a plugin may change param_groups, e.g. a learning-rate schedule)
step               optimizer steps done so far, counting from 0 (read only)
epoch              current epoch, from 0 (read only)
steps_per_epoch    batches per epoch (read only)
total_steps        steps this run trains for: train.epochs epochs, or train.max_steps if fewer (read only)
real               D's view of the real batch, float in [-1, 1] (ganlab_real_batch: augment, add noise)
z                  the latent batch G was fed (read only)
fake               G(z), the generated batch as D sees it; gradients flow to G (ganlab_fake_batch: add
                   noise; keep it differentiable)
real_target        D's target for real images: a float or a tensor of shape (B,) (ganlab_d_targets)
fake_target        D's target for generated images: a float or a tensor of shape (B,) (ganlab_d_targets)
g_target           G's target for D(G(z)) in the non-saturating loss, 1.0 (ganlab_d_targets may change it)
separate_batches   True: real and generated images go through D as two mini-batches (needed with
                   BatchNorm); False: one concatenated forward (ganlab_configure / ganlab_train_start)
d_loss             D's loss tensor (ganlab_after_d_loss may add terms: state.d_loss = state.d_loss + ...)
g_loss             G's loss tensor (ganlab_after_g_loss may add terms)
d_real, d_fake     mean D(x) and D(G(z)) as probabilities, floats, for logs (read only)
log                values to write to metrics.jsonl this step, e.g. {"input_noise/std": 0.07}
tricks             per-trick state that must survive a resume, keyed by trick name; saved in checkpoints
                   (a plugin may also use ganlab_state_dict / ganlab_load_state_dict)
stop               set True to end training after this step (status "stopped")
=================  =========================================================================================
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from ganlab.config import Config


@dataclass(eq=False)
class TrainState:
    config: "Config"
    device: torch.device
    G: torch.nn.Module
    D: torch.nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    dtype: torch.dtype | None = None
    step: int = 0
    epoch: int = 0
    steps_per_epoch: int = 1
    total_steps: int = 1
    real: torch.Tensor | None = None
    z: torch.Tensor | None = None
    fake: torch.Tensor | None = None
    real_target: float | torch.Tensor = 1.0
    fake_target: float | torch.Tensor = 0.0
    g_target: float | torch.Tensor = 1.0
    separate_batches: bool = False
    d_loss: torch.Tensor | None = None
    g_loss: torch.Tensor | None = None
    d_real: float = float("nan")
    d_fake: float = float("nan")
    log: dict[str, Any] = field(default_factory=dict)
    tricks: dict[str, Any] = field(default_factory=dict)
    stop: bool = False

    @property
    def epoch_progress(self) -> float:
        """Epochs done as a fraction (step / steps_per_epoch): what epoch-based schedules read."""
        return self.step / self.steps_per_epoch

    @property
    def run_epochs(self) -> float:
        """The run's length in epochs (fewer than train.epochs when train.max_steps ends it first)."""
        return self.total_steps / self.steps_per_epoch
