"""The training loop: D step then G step with the updated D, hooks at fixed points, checkpoints, progress.

`train(config)` is the one entry point that `ganlab run`, `ganlab ablate` and `ganlab tune` share. Training
is reproducible on CPU: the same config and seed give the same losses, and a run resumed from a
checkpoint continues exactly as if it had never stopped (models, optimizers, RNG state, trick state and
step are all in the checkpoint; the data order and every schedule are pure functions of the step).
"""
from __future__ import annotations

import contextlib
import math
import signal
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pluggy
import torch

from ganlab import losses
from ganlab.config import Config, dump_toml
from ganlab.data import load_training_images
from ganlab.data.loader import ImageBank, to_float
from ganlab.errors import DataError, PluginError
from ganlab.models import build_models
from ganlab.plugins import make_plugin_manager
from ganlab.rundir import RunDir, atomic_write, atomic_write_text, load_checkpoint, new_run_dir, save_checkpoint
from ganlab.state import TrainState

CHECKPOINT_VERSION = 1


@dataclass
class RunResult:
    run_dir: Path
    status: str  # finished | stopped | interrupted | diverged
    step: int
    last: dict[str, Any] = field(default_factory=dict)  # the last metrics.jsonl line of losses
    best: dict[str, Any] | None = None  # the best evaluation, if any ran


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DataError(f"device = {name!r} but CUDA is not available here; use device = \"auto\" or \"cpu\"")
    return device


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_step(state: TrainState, hook: pluggy.HookRelay, real_u8: torch.Tensor, precision: str) -> None:
    """One D step and one G step on a uint8 real batch, the hooks firing as ganlab.hookspecs describes."""
    G, D = state.G, state.D
    state.log = {}
    state.real = to_float(real_u8)
    hook.ganlab_real_batch(state=state)
    batch = state.real.shape[0]
    state.z = torch.randn(batch, G.latent_dim, device=state.device)
    with autocast(state.device, precision):
        state.fake = G(state.z)
    hook.ganlab_fake_batch(state=state)
    state.real_target, state.fake_target, state.g_target = 1.0, 0.0, 1.0
    hook.ganlab_d_targets(state=state)

    # D step: real and generated (detached) images
    state.opt_d.zero_grad(set_to_none=True)
    with autocast(state.device, precision):
        fake = state.fake.detach()
        if state.separate_batches:
            real_logits, fake_logits = D(state.real), D(fake)
        else:
            real_logits, fake_logits = D(torch.cat([state.real, fake.to(state.real.dtype)])).split(batch)
        state.d_loss = losses.d_loss(real_logits, fake_logits, state.real_target, state.fake_target)
    hook.ganlab_after_d_loss(state=state)
    state.d_loss.backward()
    state.opt_d.step()

    # G step through the updated D; D's weights need no gradient here
    state.opt_g.zero_grad(set_to_none=True)
    D.requires_grad_(False)
    try:
        with autocast(state.device, precision):
            g_logits = D(state.fake)
            state.g_loss = losses.g_loss(g_logits, state.g_target)
        hook.ganlab_after_g_loss(state=state)
        state.g_loss.backward()
    finally:
        D.requires_grad_(True)
    state.opt_g.step()
    state.step += 1
    with torch.no_grad():
        state.d_real = torch.sigmoid(real_logits.detach().float()).mean()
        state.d_fake = torch.sigmoid(fake_logits.detach().float()).mean()
    hook.ganlab_after_step(state=state)


class _StopRequest:
    """SIGINT handler: the first Ctrl-C asks the loop to stop after the current step, the second is immediate."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> "_StopRequest":
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: Ctrl-C stays the default KeyboardInterrupt
            self._previous = None
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _plugin_in_traceback(pm: pluggy.PluginManager, exc: BaseException) -> tuple[str, str] | None:
    """(plugin name, hook name) of the innermost plugin hook frame in exc's traceback, if any."""
    found = None
    plugins = {id(p): name for name, p in pm.list_name_plugin()}
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_name.startswith("ganlab_"):
            owner = frame.f_locals.get("self")
            if id(owner) in plugins:
                found = (plugins[id(owner)], frame.f_code.co_name)
            else:
                mod = frame.f_globals.get("__name__")
                for name, plugin in pm.list_name_plugin():
                    if getattr(plugin, "__name__", None) == mod:
                        found = (name, frame.f_code.co_name)
    return found


class Trainer:
    """One run: builds everything from the config, trains, writes the run folder."""

    def __init__(self, config: Config, run_dir: str | Path | None = None, *, resume: bool = False,
                 quiet: bool = False, images: torch.Tensor | None = None, extra_plugins: Iterable[object] = ()):
        self.config = config
        self.quiet = quiet
        self.resume = resume
        if resume:
            self.rd = RunDir(Path(run_dir))
        else:
            self.rd = RunDir(Path(run_dir) if run_dir else new_run_dir(config.runs_dir, config.name))
            self.rd.path.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.rd.config_file, dump_toml(config.to_dict()))
        self.pm = make_plugin_manager(config, list(extra_plugins))
        self.hook = self.pm.hook
        self.device = resolve_device(config.device)
        torch.manual_seed(config.seed)
        G, D = build_models(config, self.pm)
        G, D = G.to(self.device), D.to(self.device)
        t = config.train
        opt_g = torch.optim.Adam(G.parameters(), lr=t.lr_g, betas=(t.beta1, t.beta2))
        opt_d = torch.optim.Adam(D.parameters(), lr=t.lr_d, betas=(t.beta1, t.beta2))
        if images is None:
            images = load_training_images(config.data, progress=not quiet)
        self.bank = ImageBank(images, t.batch_size, config.seed, self.device)
        if len(self.bank) == 0:
            raise DataError(f"the training set has {images.shape[0]} images, fewer than one batch "
                            f"(train.batch_size = {t.batch_size})")
        spe = len(self.bank)
        self.total_steps = t.epochs * spe if not t.max_steps else min(t.max_steps, t.epochs * spe)
        self.state = TrainState(config=config, device=self.device, G=G, D=D, opt_g=opt_g, opt_d=opt_d,
                                dtype=torch.bfloat16 if config.precision == "bf16" else None, steps_per_epoch=spe,
                                total_steps=self.total_steps)
        gen = torch.Generator().manual_seed(config.seed + 1)  # its own stream: sampling never shifts training's
        self.fixed_z = torch.randn(t.n_samples, config.model.latent_dim, generator=gen).to(self.device)
        self.best: dict[str, Any] | None = None
        self.evaluator = None
        if resume:
            self._load(self.rd.latest)

    # --- checkpoints -------------------------------------------------------------------------------------
    def _checkpoint_data(self) -> dict[str, Any]:
        s = self.state
        plugin_state: dict[str, Any] = {}
        for part in self.hook.ganlab_state_dict(state=s):
            if part:
                plugin_state.update(part)
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {"version": CHECKPOINT_VERSION, "step": s.step, "epoch": s.epoch, "G": s.G.state_dict(),
                "D": s.D.state_dict(), "opt_g": s.opt_g.state_dict(), "opt_d": s.opt_d.state_dict(),
                "rng": rng, "tricks": s.tricks, "plugins": plugin_state, "best": self.best or {},
                "config": self.config.to_dict()}

    def save(self, path: Path) -> None:
        save_checkpoint(path, self._checkpoint_data())

    def _load(self, path: Path) -> None:
        if not path.exists():
            raise DataError(f"cannot resume: {path} does not exist (no checkpoint was written yet)")
        ckpt = load_checkpoint(path)
        s = self.state
        s.G.load_state_dict(ckpt["G"])
        s.D.load_state_dict(ckpt["D"])
        s.opt_g.load_state_dict(ckpt["opt_g"])
        s.opt_d.load_state_dict(ckpt["opt_d"])
        s.step, s.epoch = ckpt["step"], ckpt["epoch"]
        s.tricks = ckpt["tricks"]
        self.best = ckpt["best"] or None
        torch.set_rng_state(ckpt["rng"]["torch"])
        if "cuda" in ckpt["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(ckpt["rng"]["cuda"], self.device)
        self.hook.ganlab_load_state_dict(state=s, state_dict=ckpt["plugins"])
        self.rd.truncate_metrics(s.step)

    # --- samples and evaluation --------------------------------------------------------------------------
    def sampling_generator(self) -> torch.nn.Module:
        return self.hook.ganlab_sampling_generator(state=self.state) or self.state.G

    @torch.no_grad()
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        G = self.sampling_generator()
        was_training = G.training
        G.eval()
        try:
            with autocast(self.device, self.config.precision):
                return G(z).float()
        finally:
            G.train(was_training)

    def write_samples(self) -> Path:
        from torchvision.utils import make_grid
        from PIL import Image

        images = self.generate(self.fixed_z).cpu()
        grid = make_grid(images, nrow=int(math.ceil(math.sqrt(images.shape[0]))), normalize=True,
                         value_range=(-1, 1), padding=2)
        array = grid.mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to(torch.uint8).numpy()
        path = self.rd.fakes(self.state.step)
        atomic_write(path, lambda tmp: Image.fromarray(array).save(tmp, format="PNG"))
        return path

    def evaluate(self) -> dict[str, Any]:
        """MiFID / FID of the sampling generator on eval.n_images images (its own noise stream)."""
        from ganlab.metrics.evaluate import Evaluator
        from ganlab.metrics.plot import plot_curve

        if self.evaluator is None:
            # reference "train" is the training set itself, already in memory (a data.tensor file included)
            train_ref = self.config.eval.reference == "train"
            self.evaluator = Evaluator(self.config, self.device, progress=not self.quiet,
                                       reference_images=self.bank.images.cpu() if train_ref else None,
                                       reference_name=self.config.eval.reference)
        gen = torch.Generator().manual_seed(self.config.seed + 2)
        latent = self.config.model.latent_dim

        def generate(k: int) -> torch.Tensor:
            return self.generate(torch.randn(k, latent, generator=gen).to(self.device))

        s = self.state
        scores = self.evaluator.evaluate(generate, self.config.eval.n_images)
        record = {"step": s.step, "epoch": s.epoch_progress, **scores}
        self.rd.append_metrics(record)
        self.rd.log(f"eval step {s.step}: " + ", ".join(f"{k} {v:.4g}" for k, v in scores.items()))
        if self.best is None or scores["mifid"] < self.best["mifid"]:
            self.best = record
            self.save(self.rd.checkpoints / "best.pt")
        plot_curve(self.rd.metrics_file, self.rd.path / "mifid.png")
        self.hook.ganlab_on_eval(state=s, metrics=dict(record))
        return record

    # --- the loop ----------------------------------------------------------------------------------------
    def run(self) -> RunResult:
        s, rd, t = self.state, self.rd, self.config.train
        rd.set_status("running", s.step)
        rd.log(f"{'resume' if self.resume else 'start'} at step {s.step} of {self.total_steps} on {self.device} "
               f"({self.config.precision}); tricks: {', '.join(self.config.enabled_tricks()) or 'none'}")
        self.hook.ganlab_train_start(state=s)
        # non-finite losses counted on the device; read (a sync) only at log steps and before checkpoints
        bad = torch.zeros((), dtype=torch.long, device=self.device)
        last, status = {}, "finished"
        t_log, step_log = time.perf_counter(), s.step
        progress = None if self.quiet else _progress()
        try:
            with _StopRequest() as stop, (progress or contextlib.nullcontext()):
                task = (progress.add_task("train", total=self.total_steps, completed=s.step, epoch=s.epoch, losses="",
                                          dx="", speed="") if progress else None)
                while s.step < self.total_steps and status == "finished":
                    s.epoch = s.step // s.steps_per_epoch
                    for real in self.bank.epoch(s.epoch, start=s.step - s.epoch * s.steps_per_epoch):
                        try:
                            train_step(s, self.hook, real, self.config.precision)
                        except Exception as exc:
                            culprit = _plugin_in_traceback(self.pm, exc)
                            if culprit:
                                rd.set_status("failed", s.step, error=f"{culprit[0]}.{culprit[1]}: {exc!r}")
                                raise PluginError(f"trick {culprit[0]!r} raised in {culprit[1]}: "
                                                  f"{type(exc).__name__}: {exc} (run folder {rd.path} keeps its "
                                                  f"last checkpoint)") from exc
                            raise
                        bad += (~torch.isfinite(torch.stack([s.d_loss.detach(), s.g_loss.detach()]))).sum()
                        at_end = s.step >= self.total_steps
                        will_save = (s.step % t.checkpoint_every == 0 or at_end or s.stop or stop.requested
                                     or (t.snapshot_every and s.step % t.snapshot_every == 0))
                        if (s.step % t.log_every == 0 or at_end or will_save) and bad.item():
                            status = "diverged"
                            break
                        if s.step % t.log_every == 0 or at_end:
                            # the values of this step (not an average), so a resumed run logs the same lines
                            now = time.perf_counter()
                            values = torch.stack([s.d_loss.detach().float(), s.g_loss.detach().float(),
                                                  s.d_real, s.d_fake]).tolist()
                            last = {"step": s.step, "epoch": s.epoch_progress, "d_loss": values[0],
                                    "g_loss": values[1], "d_real": values[2], "d_fake": values[3],
                                    "img_per_s": (s.step - step_log) * t.batch_size / max(now - t_log, 1e-9),
                                    **s.log}
                            rd.append_metrics(last)
                            t_log, step_log = now, s.step
                            if progress:
                                progress.update(task, completed=s.step, epoch=int(s.epoch_progress), **_fmt(last))
                        if (t.sample_every and s.step % t.sample_every == 0) or at_end:
                            self.write_samples()
                        if s.step % t.checkpoint_every == 0 or at_end:
                            self.save(rd.latest)
                        if t.snapshot_every and s.step % t.snapshot_every == 0:
                            self.save(rd.checkpoints / f"snapshot-{s.step:06d}.pt")
                        end_of_epoch = s.step % s.steps_per_epoch == 0
                        ev = self.config.eval.every_epochs
                        if ev and end_of_epoch and ((s.step // s.steps_per_epoch) % ev == 0 or at_end):
                            self.evaluate()
                        if s.stop:
                            status = "stopped"
                        if stop.requested:
                            status = "interrupted"
                        if at_end or status != "finished":
                            break
        except BaseException as exc:
            if not isinstance(exc, PluginError):
                rd.set_status("failed", s.step, error=repr(exc))
            self.hook.ganlab_train_end(state=s, status="failed")
            raise
        if status == "diverged":
            rd.log(f"diverged: a loss became NaN or Inf before step {s.step}; last good checkpoint {rd.latest}")
            rd.set_status("diverged", s.step, checkpoint=str(rd.latest))
        else:
            if status in ("interrupted", "stopped"):
                self.save(rd.latest)
                if t.sample_every:
                    self.write_samples()
            rd.set_status(status, s.step)
            rd.log(f"{status} at step {s.step}")
        self.hook.ganlab_train_end(state=s, status=status)
        return RunResult(rd.path, status, s.step, last, self.best)


def _fmt(record: dict[str, Any]) -> dict[str, str]:
    return {"losses": f"D {record['d_loss']:.3f} G {record['g_loss']:.3f}",
            "dx": f"D(x) {record['d_real']:.2f} D(G(z)) {record['d_fake']:.2f}",
            "speed": f"{record['img_per_s']:.0f} img/s"}


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), TextColumn("{task.fields[losses]}"), TextColumn("{task.fields[dx]}"),
                    TextColumn("{task.fields[speed]}"), transient=False)


def train(config: Config, run_dir: str | Path | None = None, *, resume: bool = False, quiet: bool = False,
          images: torch.Tensor | None = None, extra_plugins: Iterable[object] = ()) -> RunResult:
    """Train `config` in a new run folder (or resume `run_dir`) and return how it ended."""
    return Trainer(config, run_dir, resume=resume, quiet=quiet, images=images, extra_plugins=extra_plugins).run()
