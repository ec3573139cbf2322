"""What `ganlab ablate` and `ganlab tune` share: one scored run, a per-process evaluator cache, worker
processes, and small writers (CSV, atomic PNG).

A *scored run* trains a config in a given run folder (resuming it when it holds a checkpoint) and returns
the MiFID/FID at the end of its budget: the trainer's last evaluation when it ran at the final step, else
one more evaluation made here (so `eval.every_epochs = 0` still yields a score).

Worker processes are started with the ``spawn`` method (no forked torch threads), each in its own process
group so that a Ctrl-C in the terminal reaches only the parent, which forwards it exactly once to every
worker: the trainer inside turns it into "interrupted" with a checkpoint. A second Ctrl-C is forwarded too
(the trainers then stop at once).
"""
from __future__ import annotations

import csv
import io
import json
import math
import multiprocessing as mp
import os
import queue
import shutil
import signal
import socket
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from ganlab.errors import UserError


# --------------------------------------------------------------------------------------------------
# Scoring


@dataclass(frozen=True)
class Scoring:
    """How sweeps score a generator.

    ``features="inception"`` (the default and the only choice of the CLI) is the real MiFID of
    ``ganlab.metrics``. ``"stand-in"`` swaps the Inception network for the metrics package's fast random
    projection (``stand_in_extractor``) and uses the training images as the reference: NOT the metric,
    only for tests and benchmarks of the machinery around it. Picklable, so it travels to workers.
    """

    features: str = "inception"
    stand_in_dim: int = 64

    def __post_init__(self) -> None:
        if self.features not in ("inception", "stand-in"):
            raise ValueError(f"Scoring.features must be 'inception' or 'stand-in', got {self.features!r}")


DEFAULT_SCORING = Scoring()  # what `ganlab ablate` / `ganlab tune` use when no Scoring is given


def default_scoring() -> Scoring:
    return DEFAULT_SCORING


_EVALUATORS: dict[str, Any] = {}


def evaluator_for(config, device, scoring: Scoring | None):
    """An Evaluator for this config, shared by every run of this process with the same eval/data settings.

    The trainer would build a fresh one per run, loading the Inception network and reading the reference
    statistics again each time (seconds per trial); sweeps run many runs per process.
    """
    import torch

    scoring = scoring or default_scoring()
    key = json.dumps([scoring.features, scoring.stand_in_dim, str(device),
                      config.to_dict()["eval"], config.to_dict()["data"]], sort_keys=True)
    ev = _EVALUATORS.get(key)
    if ev is None:
        from ganlab.metrics.evaluate import Evaluator

        if scoring.features == "stand-in":
            from ganlab.metrics.features import stand_in_extractor

            ev = Evaluator(config, device, extractor=stand_in_extractor(torch.device(device),
                                                                        config.eval.batch_size,
                                                                        dim=scoring.stand_in_dim),
                           reference_images=training_images(config),
                           reference_name="training images (stand-in features)")
        else:  # as the trainer does: reference "train" is the training set (a data.tensor file included)
            train_ref = config.eval.reference == "train"
            ev = Evaluator(config, device, reference_images=training_images(config) if train_ref else None,
                           reference_name=config.eval.reference)
        _EVALUATORS.clear()  # one at a time: an Inception network is ~100 MB
        _EVALUATORS[key] = ev
    return ev


_IMAGES: dict[str, Any] = {}


def training_images(config):
    """The training set, loaded once per process for every run with the same [data] settings.

    Loading the prepared set (hundreds of MB for Stanford Dogs at 64x64) is otherwise repeated by each
    trial's trainer.
    """
    from ganlab.data import load_training_images

    key = json.dumps(config.to_dict()["data"], sort_keys=True)
    images = _IMAGES.get(key)
    if images is None:
        images = load_training_images(config.data, progress=False)
        _IMAGES.clear()
        _IMAGES[key] = images
    return images


# --------------------------------------------------------------------------------------------------
# One scored run


@dataclass
class Outcome:
    """How a scored run ended."""

    status: str  # finished | stopped | interrupted | diverged | failed
    step: int
    total_steps: int = 0
    steps_per_epoch: int = 1
    final: dict[str, Any] | None = None  # the evaluation at the end of the budget (mifid, fid, d, ...)
    best: dict[str, Any] | None = None  # the best evaluation during training
    error: str = ""
    resumed_from: int | None = None
    timings: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def run_state(run_dir: Path) -> str:
    """'fresh' (nothing to resume), 'resume' (a checkpoint to continue from)."""
    return "resume" if (Path(run_dir) / "checkpoints" / "latest.pt").exists() else "fresh"


def eval_records(run_dir: Path) -> list[dict[str, Any]]:
    """The evaluation lines of a run's metrics.jsonl (those with a MiFID), in order."""
    from ganlab.rundir import RunDir

    try:
        return [r for r in RunDir(Path(run_dir)).read_metrics() if "mifid" in r]
    except (OSError, json.JSONDecodeError):
        return []


def scored_run(config, run_dir: Path, *, scoring: Scoring | None = None, extra_plugins: Iterable[object] = (),
               images=None, final_eval: bool | Callable[[], bool] = True,
               before_run: Callable[[Any], None] | None = None) -> Outcome:
    """Train `config` in `run_dir` (resuming its checkpoint if any) and score it at the end of the budget.

    `before_run(trainer)` is called once the trainer is built (and, on resume, loaded). Exceptions from
    the trainer propagate (PluginError, DataError...). The final evaluation runs when the run finished (or
    a plugin stopped it) and `final_eval` (or `final_eval()`, asked after training) is true.
    """
    from ganlab.trainer import Trainer

    run_dir = Path(run_dir)
    t0 = time.perf_counter()
    resume = run_state(run_dir) == "resume"
    if not resume and run_dir.exists():  # a start that never reached a checkpoint: begin again, cleanly
        shutil.rmtree(run_dir)
    if images is None:
        images = training_images(config)
    trainer = Trainer(config, run_dir, resume=resume, quiet=True, images=images, extra_plugins=list(extra_plugins))
    resumed_from = trainer.state.step if resume else None
    if config.eval.every_epochs or final_eval:  # a callable is truthy: the evaluator may be needed
        trainer.evaluator = evaluator_for(config, trainer.device, scoring)
    if before_run is not None:
        before_run(trainer)
    t1 = time.perf_counter()
    result = trainer.run()
    t2 = time.perf_counter()
    final = None
    wanted = final_eval() if callable(final_eval) else final_eval
    if wanted and result.status in ("finished", "stopped"):
        records = eval_records(run_dir)
        if records and records[-1].get("step") == result.step:
            final = records[-1]
        else:
            final = trainer.evaluate()
    t3 = time.perf_counter()
    best = None
    records = eval_records(run_dir)
    if records:
        best = min(records, key=lambda r: r["mifid"])
    return Outcome(result.status, result.step, trainer.total_steps, trainer.state.steps_per_epoch, final, best,
                   resumed_from=resumed_from,
                   timings={"build": t1 - t0, "train": t2 - t1, "final_eval": t3 - t2})


# --------------------------------------------------------------------------------------------------
# Worker processes


def host() -> str:
    return socket.gethostname()


def _limit_threads(jobs: int) -> None:
    import torch

    n = max(1, (os.cpu_count() or 1) // max(1, jobs))
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(max(1, min(n, 4)))
    except RuntimeError:  # already set (only possible before any parallel work)
        pass


def worker_device(config_dict: dict[str, Any], index: int) -> dict[str, Any]:
    """With `device = "auto"` and several GPUs, worker i gets cuda:(i mod count)."""
    if config_dict.get("device", "auto") != "auto":
        return config_dict
    import torch

    if torch.cuda.is_available() and torch.cuda.device_count() > 1:
        config_dict = dict(config_dict, device=f"cuda:{index % torch.cuda.device_count()}")
    return config_dict


class GracefulSigint:
    """Ctrl-C between runs sets a flag instead of raising (a second one raises KeyboardInterrupt).

    While a trainer runs it installs its own handler (first Ctrl-C: checkpoint and "interrupted") and puts
    this one back afterwards. Usable as a context manager in the main process; workers install it for life.
    """

    requested = False
    _count = 0

    def __init__(self) -> None:
        self._previous = None

    @classmethod
    def _handle(cls, signum, frame) -> None:
        cls._count += 1
        cls.requested = True
        if cls._count > 1:
            raise KeyboardInterrupt

    @classmethod
    def reset(cls) -> None:
        cls.requested, cls._count = False, 0

    def __enter__(self) -> "GracefulSigint":
        self.reset()
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread
            self._previous = None
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def stop_requested() -> bool:
    """True once this process got a Ctrl-C while GracefulSigint was in charge (between runs)."""
    return GracefulSigint.requested


def _worker_main(index: int, jobs: int, fn: Callable, tasks, results, stop) -> None:
    try:
        os.setpgrp()  # a terminal's Ctrl-C reaches the parent only; it forwards one SIGINT to us
    except OSError:
        pass
    GracefulSigint().__enter__()
    _limit_threads(jobs)
    while not stop.is_set() and not GracefulSigint.requested:
        try:
            item = tasks.get(timeout=0.2)
        except queue.Empty:
            continue
        if item is None:
            break
        key, payload = item
        try:
            results.put((key, "ok", fn(index, payload)))
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, which decides
            if isinstance(exc, UserError):
                results.put((key, "user", str(exc)))
            else:
                results.put((key, "error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
            if isinstance(exc, KeyboardInterrupt):
                break
    results.put((None, "exit", index))


def run_pool(fn: Callable[[int, Any], Any], tasks: list[tuple[Any, Any]], jobs: int,
             on_result: Callable[[Any, str, Any], None], poll: Callable[[], None] | None = None,
             poll_every: float = 2.0) -> bool:
    """Run ``fn(worker_index, payload)`` for each ``(key, payload)`` in `jobs` spawned processes.

    `fn` must be a module-level function (it is pickled by name). ``on_result(key, kind, value)`` is called
    in the parent as results arrive: kind "ok" (value = fn's return), "user" (a UserError's message) or
    "error" (message with traceback); when it returns True no further task is started. Returns True when
    it ended because of Ctrl-C.
    """
    ctx = mp.get_context("spawn")
    task_q, result_q, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    for item in tasks:
        task_q.put(item)
    jobs = max(1, min(jobs, len(tasks)))
    for _ in range(jobs):
        task_q.put(None)
    procs = [ctx.Process(target=_worker_main, args=(i, jobs, fn, task_q, result_q, stop), daemon=True)
             for i in range(jobs)]
    interrupts = 0

    def on_sigint(signum, frame):
        nonlocal interrupts
        interrupts += 1
        stop.set()
        for p in procs:
            if p.pid is not None and p.is_alive():
                try:
                    os.kill(p.pid, signal.SIGINT)
                except ProcessLookupError:
                    pass

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        for p in procs:
            p.start()
        alive = len(procs)
        last_poll = time.monotonic()
        while alive:
            try:
                key, kind, value = result_q.get(timeout=0.5)
            except queue.Empty:
                if not any(p.is_alive() for p in procs):  # a worker died without saying goodbye
                    break
            else:
                if kind == "exit":
                    alive -= 1
                elif on_result(key, kind, value):
                    stop.set()  # the workers finish what they hold and take nothing more
            if poll is not None and time.monotonic() - last_poll >= poll_every:
                poll()
                last_poll = time.monotonic()
        while True:  # results that raced the goodbyes
            try:
                key, kind, value = result_q.get_nowait()
            except queue.Empty:
                break
            if kind != "exit":
                on_result(key, kind, value)
        for p in procs:
            p.join(timeout=30)
        if poll is not None:
            poll()
        lost = [p for p in procs if p.exitcode not in (0, None)]
        if lost and not interrupts:
            codes = ", ".join(f"pid {p.pid} exit {p.exitcode}" for p in lost)
            raise RuntimeError(f"a worker process died ({codes}); its unfinished work is not recorded")
    finally:
        signal.signal(signal.SIGINT, previous)
        for p in procs:
            if p.is_alive():
                p.terminate()
    return interrupts > 0


# --------------------------------------------------------------------------------------------------
# Writers


def write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str] | None = None) -> None:
    from ganlab.rundir import atomic_write_text

    if columns is None:
        columns = []
        for row in rows:
            columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: fmt_csv(row.get(k)) for k in columns})
    atomic_write_text(Path(path), buf.getvalue())


def fmt_csv(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return value


def save_figure(fig, path: Path) -> None:
    from ganlab.rundir import atomic_write

    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", bbox_inches="tight"))


def new_figure(width: float, height: float):
    """A matplotlib Figure on the Agg canvas (no pyplot: no global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def fmt_num(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}g}" if abs(value) < 10 ** digits else f"{value:.0f}"
