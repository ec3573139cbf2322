"""What Optuna and ganlab add to each `ganlab tune` trial, against the trial's own work.

The trial's own work is what a plain `ganlab run` of the same config would do: the training steps and the
MiFID evaluations (the trainer's, plus the one at the end of the budget). Everything else is overhead:

* per trial: asking the sampler for parameters (TPE, storage reads, the cross-worker ask lock and trial
  count), building the config and the trainer (models, plugin manager, optimizers), the storage round trips
  of each intermediate report / pruning question, the user attributes and the final `tell`;
* per worker: starting a process (Python, torch, optuna, ganlab imports) and opening the study;
* per command: creating/loading the study and writing the results (trials.csv, best.toml, PNG, importances).

Stages: (1) tiny trials (16x16, widths 4: well under a second of training) measure the fixed per-trial
overhead on SQLite, in one process; (2) the same with two worker processes (spawn start-up); (3) on
PostgreSQL when GANLAB_TEST_POSTGRES (or --postgres URL) is set; (4) unless --no-minute, two trials of a
quick-sized DCGAN (64x64, widths 32) whose budget is calibrated to about one minute of training, on 2000
random images: the ratio that matters, measured directly. Scoring uses the metrics package's stand-in
feature network (the evaluation is the trial's own work either way; Inception would only make it longer).

    .venv/bin/python bench/tune_overhead.py [--trials 10] [--no-minute] [--seconds 60] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ganlab.config import build_config  # noqa: E402
from ganlab.sweep import Scoring  # noqa: E402
from ganlab.tune import open_storage, storage_url, tune  # noqa: E402

STAND_IN = Scoring("stand-in")


def tiny_config(tmp: Path, images: Path, **train) -> object:
    raw = {"name": "bench", "seed": 0, "device": "cpu", "runs_dir": str(tmp / "runs"),
           "model": {"latent_dim": 8, "g_width": 4, "d_width": 4},
           "train": {"epochs": 2, "batch_size": 8, "log_every": 6, "sample_every": 0, "checkpoint_every": 100,
                     "n_samples": 4, **train},
           "data": {"image_size": 16, "tensor": str(images), "cache_dir": str(tmp / "cache")},
           "eval": {"every_epochs": 1, "n_images": 16, "eps": 0.0},
           "tricks": {"soft_labels": {}, "input_noise": {}},
           "tune": {"toggle": ["soft_labels", "input_noise"], "pruner": "none", "startup_trials": 3,
                    "params": {"train.lr_g": {"low": 1e-4, "high": 1e-2, "log": True},
                               "tricks.input_noise.std": {"low": 0.01, "high": 0.3}}}}
    return build_config(raw, source=str(tmp / "bench.toml"))


def minute_config(tmp: Path, images: Path, steps: int) -> object:
    raw = {"name": "minute", "seed": 0, "device": "cpu", "runs_dir": str(tmp / "runs"),
           "model": {"latent_dim": 128, "g_width": 32, "d_width": 32},
           "train": {"epochs": 1000, "max_steps": steps, "batch_size": 32, "log_every": 50, "sample_every": 0,
                     "checkpoint_every": 500},
           "data": {"image_size": 64, "tensor": str(images), "cache_dir": str(tmp / "cache")},
           "eval": {"every_epochs": 0, "n_images": 200, "eps": 0.0},
           "tricks": {"augment": {}, "input_noise": {}, "soft_labels": {}, "batch_norm": {}, "activation": {}},
           "tune": {"toggle": [], "pruner": "none", "baseline_first": False, "sampler": "random",
                    "params": {"train.lr_g": {"low": 2e-4, "high": 8e-4, "log": True}}}}
    return build_config(raw, source=str(tmp / "minute.toml"))


def process_start() -> float:
    """Seconds to start Python and import what a tune worker imports (median of 3)."""
    code = "import torch, optuna, ganlab.tune, ganlab.trainer, ganlab.metrics.evaluate"
    times = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def analyse(res, wall: float) -> dict:
    """Per-trial split of wall time into the trial's own work and overhead, from the study's records."""
    import optuna

    study = optuna.load_study(study_name=res.study_name, storage=open_storage(res.storage))
    trials = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    rows = []
    by_pid: dict[int, list] = {}
    for t in trials:
        tm = t.user_attrs["timings"]
        total = (t.datetime_complete - t.datetime_start).total_seconds()
        work = tm["train"] + tm["final_eval"] - tm["report"]  # what `ganlab run` would spend too
        rows.append({"number": t.number, "total": total, "work": work, "build": tm["build"], "sample": tm["sample"],
                     "report": tm["report"], "rest": total - tm["build"] - tm["train"] - tm["final_eval"]
                     - tm["sample"], "start": t.datetime_start, "end": t.datetime_complete})
        by_pid.setdefault(t.user_attrs["pid"], []).append(rows[-1])
    gaps = []  # between one trial's tell and the same worker's next trial: ask (sampler, lock, count)
    for runs in by_pid.values():
        runs.sort(key=lambda r: r["start"])
        gaps += [(b["start"] - a["end"]).total_seconds() for a, b in zip(runs, runs[1:])]
    n = len(rows)
    med = lambda key: statistics.median(r[key] for r in rows)  # noqa: E731
    out = {"trials": n, "workers": len(by_pid), "wall": wall, "work": med("work"), "build": med("build"),
           "config": med("sample"), "report": med("report"), "rest": med("rest"),
           "ask": statistics.median(gaps) if gaps else 0.0}
    out["per_trial_overhead"] = out["build"] + out["config"] + out["report"] + out["rest"] + out["ask"]
    first_start = min(r["start"] for r in rows)
    last_end = max(r["end"] for r in rows)
    out["command_overhead"] = wall - (last_end - first_start).total_seconds()  # study open, spawn, results
    return out


def run_stage(name: str, config, trials: int, jobs: int = 1, storage: str | None = None, study: str | None = None):
    t = time.perf_counter()
    res = tune(config, trials=trials, jobs=jobs, storage=storage, study=study, scoring=STAND_IN, progress=False)
    wall = time.perf_counter() - t
    stats = analyse(res, wall)
    stats["stage"] = name
    return stats, res


def calibrate(config_fn, tmp: Path, images: Path, seconds: float) -> int:
    """Steps of the minute config that take about `seconds` on this machine (after a warm-up)."""
    from ganlab.trainer import train

    probe = 30
    train(config_fn(tmp / "probe1", images, 5), quiet=True)  # warm-up: first-run costs are not training
    t = time.perf_counter()
    train(config_fn(tmp / "probe2", images, probe), quiet=True)
    rate = probe / (time.perf_counter() - t)
    return max(10, int(rate * seconds))


def table(stages: list[dict], minute: float) -> str:
    cols = ["stage", "trials", "workers", "work", "ask", "config", "build", "report", "rest", "per_trial_overhead",
            "command_overhead"]
    lines = ["| " + " | ".join(cols) + " | ratio (this trial) | ratio (1-minute trial) |",
             "|" + "---|" * (len(cols) + 2)]
    for s in stages:
        cells = [s["stage"], str(s["trials"]), str(s["workers"])] + [f"{s[c]:.3f}" for c in cols[3:]]
        ratio_here = s["per_trial_overhead"] / s["work"]
        ratio_min = s["per_trial_overhead"] / minute
        lines.append("| " + " | ".join(cells) + f" | {100 * ratio_here:.1f}% | {100 * ratio_min:.2f}% |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=10, help="tiny trials per stage (default 10)")
    ap.add_argument("--no-minute", action="store_true", help="skip the two ~1-minute trials")
    ap.add_argument("--seconds", type=float, default=60.0, help="training time of the long trials (default 60)")
    ap.add_argument("--postgres", default=os.environ.get("GANLAB_TEST_POSTGRES"), help="PostgreSQL URL (stage 3)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads in this process (default 1)")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    stages = []
    with tempfile.TemporaryDirectory(prefix="ganlab-bench-") as tmpdir:
        tmp = Path(tmpdir)
        g = torch.Generator().manual_seed(0)
        tiny = tmp / "tiny.pt"
        torch.save(torch.randint(0, 256, (48, 3, 16, 16), generator=g, dtype=torch.uint8), tiny)
        start = process_start()
        print(f"process start (python + torch/optuna/ganlab imports): {start:.2f} s", flush=True)

        s, _ = run_stage("tiny, SQLite, 1 process", tiny_config(tmp / "a", tiny), args.trials)
        stages.append(s)
        print(table(stages, args.seconds), flush=True)
        s, _ = run_stage("tiny, SQLite, 2 processes", tiny_config(tmp / "b", tiny), args.trials, jobs=2)
        stages.append(s)
        if args.postgres:
            import uuid

            import optuna

            name = f"ganlab-bench-{uuid.uuid4().hex[:8]}"
            try:
                s, _ = run_stage("tiny, PostgreSQL, 1 process", tiny_config(tmp / "c", tiny), args.trials,
                                 storage=args.postgres, study=name)
                stages.append(s)
            finally:
                try:
                    optuna.delete_study(study_name=name, storage=open_storage(storage_url(args.postgres, tmp)))
                except KeyError:
                    pass
        if not args.no_minute:
            big = tmp / "big.pt"
            torch.save(torch.randint(0, 256, (2000, 3, 64, 64), generator=g, dtype=torch.uint8), big)
            steps = calibrate(minute_config, tmp, big, args.seconds)
            print(f"one-minute trial: {steps} steps of a 64x64 DCGAN (widths 32, batch 32)", flush=True)
            s, _ = run_stage(f"{steps} steps (~{args.seconds:.0f} s), SQLite, 1 process",
                             minute_config(tmp / "d", big, steps), 2)
            stages.append(s)
    print()
    print("seconds per trial (medians); work = training steps + evaluations (what `ganlab run` does too);")
    print("ask = sampler + ask lock + trial count + storage between two trials of a worker; config = suggest calls, "
          "config validation, first user attributes; build = trainer, models, optimizers; report = intermediate-value round trips; rest = "
          "user attributes and tell; command_overhead = study open, worker start, results (once per command)")
    print(table(stages, args.seconds))
    print(f"process start per worker: {start:.2f} s (once per command and worker)")
    if args.json:
        Path(args.json).write_text(json.dumps({"process_start": start, "stages": stages}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
