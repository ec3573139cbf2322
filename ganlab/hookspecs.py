"""Every hook a ganlab plugin may implement.

Hooks fire in the order the tricks' tables appear in the experiment TOML (first table first); a plugin
may still ask for `@hookimpl(tryfirst=True)` or `trylast=True`. A trick changes training by mutating
the TrainState it is handed (see ganlab.state for what each field means and who may change it); only the
two model-building hooks and the state-dict hook return values.

A step, as the hooks see it:

    real batch (uint8 -> float in [-1, 1])    ganlab_real_batch(state)
    z ~ N(0, I); fake = G(z)                  ganlab_fake_batch(state)
    targets reset to 1 / 0 / 1                ganlab_d_targets(state)
    D loss on real and fake                   ganlab_after_d_loss(state)
    D step; G loss on D(fake), updated D      ganlab_after_g_loss(state)
    G step; step += 1                         ganlab_after_step(state)
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import torch

    from ganlab.config import Config
    from ganlab.state import TrainState

hookspec = pluggy.HookspecMarker("ganlab")


# --- set-up -----------------------------------------------------------------------------------------------

@hookspec
def ganlab_configure(config: "Config", table: dict[str, Any]) -> None:
    """Receive and validate the plugin's own ``[tricks.<name>]`` table.

    Fires once per plugin, right after the run's plugin manager is built (and once more while the config
    is loaded, so that a bad value is reported before anything starts), with ``table`` holding the keys
    the user wrote minus ``enabled``. Raise ``ganlab.ConfigError(key, message)`` on a bad value. May store
    options on the plugin; must not touch ``config``. ``ganlab.Trick`` implements it for you from its
    ``Options`` dataclass.
    """


@hookspec(firstresult=True)
def ganlab_make_norm(net: str, channels: int, config: "Config") -> "torch.nn.Module | None":
    """Build the normalization layer that follows a hidden convolution.

    Fires while the models are built, once per normalized layer; ``net`` is ``"G"`` or ``"D"``, ``channels``
    the layer's output channels. Return a module (the first non-None answer wins) or None to pass; with no
    answer the layer has no normalization (and its convolution gets a bias).
    """


@hookspec(firstresult=True)
def ganlab_make_activation(net: str, config: "Config") -> "torch.nn.Module | None":
    """Build the activation of a hidden layer of ``net`` (``"G"`` or ``"D"``).

    Fires while the models are built, once per hidden layer. Return a module (first non-None answer wins)
    or None; with no answer G uses ReLU and D LeakyReLU(0.2), as the original DCGAN.
    """


@hookspec
def ganlab_models_built(G: "torch.nn.Module", D: "torch.nn.Module", config: "Config") -> None:
    """The networks are built and initialized, before the optimizers are made.

    May change the modules in place (wrap layers, add parametrizations such as spectral normalization);
    parameters created here are optimized.
    """


@hookspec
def ganlab_train_start(state: "TrainState") -> None:
    """Training is about to start or resume: models, optimizers and (on resume) the checkpoint are loaded.

    May set ``state.separate_batches``, initialize ``state.tricks[<name>]``, or keep references.
    """


# --- one training step ------------------------------------------------------------------------------------

@hookspec
def ganlab_real_batch(state: "TrainState") -> None:
    """The real batch is on the device as float in [-1, 1] in ``state.real``; D has not seen it.

    May replace or modify ``state.real`` (augmentation, input noise); shape must stay (B, 3, H, W).
    """


@hookspec
def ganlab_fake_batch(state: "TrainState") -> None:
    """``state.fake`` holds G(z), with its graph to G; D has not seen it.

    May replace ``state.fake`` by a differentiable function of it (input noise): both D's step (on a
    detached copy) and G's loss see the result.
    """


@hookspec
def ganlab_d_targets(state: "TrainState") -> None:
    """Set D's targets: ``state.real_target`` and ``state.fake_target`` (floats or (B,) tensors).

    Fires every step after they were reset to 1.0 and 0.0 (and ``state.g_target`` to 1.0).
    """


@hookspec
def ganlab_after_d_loss(state: "TrainState") -> None:
    """``state.d_loss`` is computed, before its backward pass.

    May add terms (``state.d_loss = state.d_loss + penalty``); must keep it a scalar tensor with its graph.
    """


@hookspec
def ganlab_after_g_loss(state: "TrainState") -> None:
    """``state.g_loss`` is computed (with the updated D), before its backward pass; D's step is done.

    May add terms to ``state.g_loss``.
    """


@hookspec
def ganlab_after_step(state: "TrainState") -> None:
    """Both optimizers stepped and ``state.step`` was incremented.

    For schedules and averages (learning rates, EMA of G's weights) and for values to log: put them in
    ``state.log``. Setting ``state.stop`` ends training after this step.
    """


# --- evaluation, checkpoints, end -------------------------------------------------------------------------

@hookspec(firstresult=True)
def ganlab_sampling_generator(state: "TrainState") -> "torch.nn.Module | None":
    """Return the generator to draw sample grids and evaluation images from (first answer wins).

    Fires before each sample grid and each evaluation; with no answer ``state.G`` is used. An EMA of G's
    weights answers here.
    """


@hookspec
def ganlab_on_eval(state: "TrainState", metrics: dict[str, Any]) -> None:
    """An evaluation finished; ``metrics`` holds its values (``mifid``, ``fid``, ``d``, ``n``).

    Fires after the values were written to metrics.jsonl. May read them (early stopping: set
    ``state.stop``); changes to ``metrics`` are not written.
    """


@hookspec
def ganlab_state_dict(state: "TrainState") -> dict[str, Any] | None:
    """Return ``{<plugin name>: <its state>}`` to save in the checkpoint, or None.

    Fires at every checkpoint. Values must load with ``torch.load(weights_only=True)``: tensors, numbers,
    strings, lists and dicts of them. Schedules that are pure functions of the step need nothing here.
    """


@hookspec
def ganlab_load_state_dict(state: "TrainState", state_dict: dict[str, Any]) -> None:
    """Restore what ``ganlab_state_dict`` saved; ``state_dict`` holds every plugin's entry by name.

    Fires when a run resumes from a checkpoint, after the models, optimizers and ``state.tricks`` were
    restored and before ``ganlab_train_start``.
    """


@hookspec
def ganlab_train_end(state: "TrainState", status: str) -> None:
    """Training ended with ``status``: finished, stopped, interrupted, diverged or failed."""
