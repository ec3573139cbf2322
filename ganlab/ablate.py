"""`ganlab ablate`: which trick matters, and by how much.

Variants of an experiment, each trained for every seed on the same budget and scored with MiFID/FID at
the end of it:

* ``baseline``: every ablated trick on;
* leave-one-out: ``no-<trick>``, the baseline with that one trick off;
* add-one-in: ``bare`` (every ablated trick off: the plain DCGAN) and ``only-<trick>``, bare plus that trick.

The ablated tricks are the config's enabled tricks (built-in, installed or local plugins alike), or those
named with ``--tricks``. Seeds are ``seed, seed+1, ...``. Everything lands in
``<runs_dir>/<name>/ablate-<timestamp>/``: ``<variant>/seed-<s>/`` run folders (each with ``result.json``
once scored), ``plan.json``, ``runs.csv`` (one row per run), ``summary.csv`` and ``summary.md`` (mean +- std
per variant, change against the baseline, per-trick effects) and ``ablation.png`` (change against the
baseline per variant).

Running the same command again continues the latest ablation of the experiment with the same plan: scored
runs are skipped, interrupted ones resume from their checkpoint.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ganlab.errors import ConfigError, UserError
from ganlab.sweep import (GracefulSigint, Scoring, default_scoring, new_figure, run_pool, save_figure, scored_run,
                          stop_requested, worker_device, write_csv)

MODES = ("leave-one-out", "add-one-in", "both")
DONE = ("finished", "stopped", "diverged")  # a run with one of these in result.json is not run again
PLAN_VERSION = 1


@dataclass(frozen=True)
class Variant:
    name: str  # baseline | no-<trick> | bare | only-<trick>
    kind: str  # baseline | leave-one-out | add-one-in
    trick: str | None
    on: tuple[str, ...]  # the ablated tricks switched on in this variant

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "trick": self.trick, "on": list(self.on)}


def plan_variants(tricks: list[str], mode: str) -> list[Variant]:
    """The variants of an ablation of `tricks` (in run order) for `mode`."""
    if mode not in MODES:
        raise UserError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    out = [Variant("baseline", "baseline", None, tuple(tricks))]
    if mode in ("leave-one-out", "both"):
        out += [Variant(f"no-{t}", "leave-one-out", t, tuple(x for x in tricks if x != t)) for t in tricks]
    if mode in ("add-one-in", "both"):
        out.append(Variant("bare", "add-one-in", None, ()))
        out += [Variant(f"only-{t}", "add-one-in", t, (t,)) for t in tricks]
    return out


def base_dict(config) -> dict[str, Any]:
    """The config as a plain dict, without the [tune] table (ablation runs do not need it)."""
    d = copy.deepcopy(config.to_dict())
    d.pop("tune", None)
    return d


def variant_raw(base: dict[str, Any], tricks: list[str], variant: Variant, seed: int) -> dict[str, Any]:
    raw = copy.deepcopy(base)
    raw["seed"] = seed
    raw["name"] = f"{base['name']}-{variant.name}"
    for t in tricks:
        raw.setdefault("tricks", {}).setdefault(t, {})["enabled"] = t in variant.on
    return raw


def choose_tricks(config, names: list[str] | None) -> list[str]:
    from ganlab.plugins import available_tricks

    if not names:
        tricks = config.enabled_tricks()
        if not tricks:
            raise UserError(f"{config.source or 'the config'} has no enabled trick to ablate; enable some "
                            "([tricks.<name>] tables) or name them with --tricks")
        return tricks
    known = available_tricks(config.plugins)
    for t in names:
        if t not in known:
            raise UserError(f"--tricks: unknown trick {t!r}; known tricks are: {', '.join(sorted(known))}")
    if len(set(names)) != len(names):
        raise UserError("--tricks: a trick is named twice")
    # in run order: the config's table order first, then the others as named
    return [t for t in config.tricks if t in names] + [t for t in names if t not in config.tricks]


# --------------------------------------------------------------------------------------------------
# The plan and its folder


def make_plan(config, tricks: list[str], mode: str, seeds: int) -> dict[str, Any]:
    if seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {seeds}")
    return {"version": PLAN_VERSION, "experiment": config.name, "mode": mode, "tricks": tricks,
            "seeds": [config.seed + i for i in range(seeds)],
            "variants": [v.to_dict() for v in plan_variants(tricks, mode)], "base": base_dict(config)}


def _same_plan(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return json.loads(json.dumps(a)) == json.loads(json.dumps(b))


def find_previous(parent: Path, plan: dict[str, Any]) -> Path | None:
    """The latest ablate-* folder under `parent` made for the same plan."""
    if not parent.is_dir():
        return None
    for folder in sorted(parent.glob("ablate-*"), reverse=True):
        try:
            if _same_plan(json.loads((folder / "plan.json").read_text()), plan):
                return folder
        except (OSError, json.JSONDecodeError):
            continue
    return None


def out_folder(config, plan: dict[str, Any], out: str | Path | None, new: bool) -> tuple[Path, bool]:
    """(folder, resumed): --out, else the previous folder with this plan (unless --new), else a new one."""
    from ganlab.rundir import atomic_write_text

    parent = Path(config.runs_dir) / config.name
    if out is not None:
        folder = Path(out)
        plan_file = folder / "plan.json"
        if plan_file.exists():
            if not _same_plan(json.loads(plan_file.read_text()), plan):
                raise UserError(f"--out {folder} holds an ablation with another plan (config, tricks, mode or "
                                "seeds); choose another folder")
            return folder, True
    else:
        previous = None if new else find_previous(parent, plan)
        if previous is not None:
            return previous, True
        stamp = time.strftime("%Y%m%d-%H%M%S")
        folder = parent / f"ablate-{stamp}"
        n = 1
        while folder.exists():
            n += 1
            folder = parent / f"ablate-{stamp}-{n}"
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "plan.json", json.dumps(plan, indent=1) + "\n")
    return folder, False


def run_folder(out: Path, variant: str, seed: int) -> Path:
    return out / variant / f"seed-{seed}"


def read_result(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((run_dir / "result.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


# --------------------------------------------------------------------------------------------------
# One run (in this process or in a worker)


def run_task(index: int, payload: dict[str, Any], extra_plugins: Iterable[object] = ()) -> dict[str, Any]:
    """Train and score one variant x seed; write result.json in its run folder; return the record."""
    from ganlab.config import build_config
    from ganlab.errors import DataError
    from ganlab.rundir import atomic_write_text

    run_dir = Path(payload["run_dir"])
    record = {"variant": payload["variant"], "kind": payload["kind"], "trick": payload["trick"],
              "seed": payload["seed"], "run_dir": str(run_dir)}
    t0 = time.perf_counter()
    config = build_config(worker_device(payload["config"], index), source=payload["source"])
    try:
        outcome = scored_run(config, run_dir, scoring=payload["scoring"], extra_plugins=extra_plugins)
    except (DataError, ConfigError):
        raise  # the same for every run: the parent stops the ablation
    except UserError as exc:  # a trick that raised (PluginError), a metric that failed...
        record.update(status="failed", error=str(exc), seconds=time.perf_counter() - t0)
        if run_dir.exists():
            atomic_write_text(run_dir / "result.json", json.dumps(record, indent=1) + "\n")
        return record
    final, best = outcome.final or {}, outcome.best or {}
    record.update(status=outcome.status, step=outcome.step, total_steps=outcome.total_steps,
                  mifid=final.get("mifid"), fid=final.get("fid"), d=final.get("d"),
                  best_mifid=best.get("mifid"), best_step=best.get("step"),
                  resumed_from=outcome.resumed_from, seconds=time.perf_counter() - t0)
    if outcome.status == "diverged":
        record["error"] = f"a loss became NaN or Inf by step {outcome.step}"
    if outcome.status != "interrupted":
        atomic_write_text(run_dir / "result.json", json.dumps(record, indent=1) + "\n")
    return record


def _pool_task(index: int, payload: dict[str, Any]) -> dict[str, Any]:
    return run_task(index, payload)


# --------------------------------------------------------------------------------------------------
# Summary


@dataclass
class AblationResult:
    out: Path
    plan: dict[str, Any]
    runs: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    effects: list[dict[str, Any]]
    interrupted: bool = False
    resumed: bool = False
    skipped: int = 0
    trained: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return all(r.get("status") in DONE for r in self.runs) and len(self.runs) == (
            len(self.plan["variants"]) * len(self.plan["seeds"]))


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else 0.0)


def _welch_p(a: list[float], b: list[float]) -> float | None:
    if len(a) < 2 or len(b) < 2 or (statistics.pstdev(a) == 0 and statistics.pstdev(b) == 0):
        return None
    from scipy import stats

    p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    return None if math.isnan(p) else p


def summarize(plan: dict[str, Any], runs: list[dict[str, Any]]) -> tuple[list[dict], list[dict]]:
    """Per-variant rows (mean +- std of MiFID and FID, change against baseline/bare) and per-trick effects."""
    by_variant: dict[str, list[dict]] = {v["name"]: [] for v in plan["variants"]}
    for r in runs:
        by_variant.setdefault(r["variant"], []).append(r)

    def scores(name: str, key: str = "mifid") -> list[float]:
        return [float(r[key]) for r in by_variant.get(name, []) if r.get(key) is not None
                and r.get("status") in ("finished", "stopped")]

    base = scores("baseline")
    base_mean = _mean_std(base)[0]
    bare = scores("bare")
    bare_mean = _mean_std(bare)[0]
    rows = []
    for v in plan["variants"]:
        name = v["name"]
        m, s = _mean_std(scores(name))
        fm, fs = _mean_std(scores(name, "fid"))
        statuses: dict[str, int] = {}
        for r in by_variant.get(name, []):
            statuses[r["status"]] = statuses.get(r["status"], 0) + 1
        row = {"variant": name, "kind": v["kind"], "trick": v["trick"] or "", "tricks_on": "+".join(v["on"]) or "none",
               "seeds": len(plan["seeds"]), "scored": len(scores(name)), "mifid_mean": m, "mifid_std": s,
               "fid_mean": fm, "fid_std": fs,
               "delta_baseline": None if m is None or base_mean is None or name == "baseline" else m - base_mean,
               "delta_baseline_pct": (None if m is None or not base_mean or name == "baseline"
                                      else 100.0 * (m - base_mean) / base_mean),
               "p_baseline": None if name == "baseline" else _welch_p(scores(name), base),
               "delta_bare": (m - bare_mean if v["kind"] == "add-one-in" and name != "bare" and m is not None
                              and bare_mean is not None else None),
               "status": ", ".join(f"{k} {n}" for k, n in sorted(statuses.items())) or "not run"}
        rows.append(row)
    # per trick: how much MiFID rises when it is removed, and falls when it is added to the bare DCGAN
    by_name = {r["variant"]: r for r in rows}
    effects = []
    for t in plan["tricks"]:
        loo, aoi = by_name.get(f"no-{t}"), by_name.get(f"only-{t}")
        e = {"trick": t,
             "removing_it": loo["delta_baseline"] if loo else None,
             "adding_it_alone": (-aoi["delta_bare"] if aoi and aoi["delta_bare"] is not None else None)}
        effects.append(e)
    key = lambda e: -(e["removing_it"] if e["removing_it"] is not None else  # noqa: E731
                      (e["adding_it_alone"] if e["adding_it_alone"] is not None else -math.inf))
    effects.sort(key=key)
    return rows, effects


def _pm(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.2f} ± {std:.2f}"


def _signed(x: float | None, pct: float | None = None) -> str:
    if x is None:
        return ""
    text = f"{x:+.2f}"
    return text + (f" ({pct:+.1f}%)" if pct is not None else "")


def markdown(plan: dict[str, Any], rows: list[dict], effects: list[dict], metric_note: str) -> str:
    n = len(plan["seeds"])
    lines = [f"# Ablation of {plan['experiment']}: {plan['mode']}, {n} seed{'s' if n > 1 else ''} "
             f"({', '.join(map(str, plan['seeds']))})", "",
             f"MiFID and FID at the end of each run's budget ({metric_note}); lower is better. "
             "Change = variant mean - baseline mean; p = Welch's t-test against the baseline.", "",
             "| variant | tricks on | scored | MiFID mean ± std | change vs baseline | p | change vs bare | "
             "FID mean ± std | runs |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        p = "" if r["p_baseline"] is None else f"{r['p_baseline']:.3g}"
        lines.append(f"| {r['variant']} | {r['tricks_on']} | {r['scored']}/{r['seeds']} | "
                     f"{_pm(r['mifid_mean'], r['mifid_std'])} | {_signed(r['delta_baseline'], r['delta_baseline_pct'])} "
                     f"| {p} | {_signed(r['delta_bare'])} | {_pm(r['fid_mean'], r['fid_std'])} | {r['status']} |")
    lines += ["", "## What each trick is worth (MiFID points; positive = the trick helps)", "",
              "| trick | removing it from the baseline raises MiFID by | adding it alone to bare lowers MiFID by |",
              "|---|---:|---:|"]
    for e in effects:
        lines.append(f"| {e['trick']} | {_signed(e['removing_it']) or '-'} | {_signed(e['adding_it_alone']) or '-'} |")
    return "\n".join(lines) + "\n"


def bar_chart(plan: dict[str, Any], rows: list[dict], path: Path) -> None:
    """Horizontal bars: each variant's mean MiFID minus the baseline's (error bar: the variant's std over seeds),
    labelled with its mean ± std; right of zero = worse than the baseline."""
    colors = {"leave-one-out": "tab:orange", "add-one-in": "tab:green"}
    base = next((r for r in rows if r["variant"] == "baseline"), None)
    ref = base["mifid_mean"] if base and base["mifid_mean"] is not None else None
    shown = [r for r in rows if r["mifid_mean"] is not None and r["variant"] != "baseline"]
    fig = new_figure(7.5, 0.42 * max(len(shown), 2) + 1.6)
    ax = fig.add_subplot(1, 1, 1)
    n = len(plan["seeds"])
    seeds = f"{n} seed{'s' if n > 1 else ''}"
    if ref is None or not shown:
        ax.text(0.5, 0.5, "no scored baseline to compare with" if ref is None else "no scored variant",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    else:
        y = list(range(len(shown)))[::-1]
        deltas = [r["mifid_mean"] - ref for r in shown]
        ax.barh(y, deltas, xerr=[r["mifid_std"] or 0.0 for r in shown], color=[colors[r["kind"]] for r in shown],
                capsize=3, alpha=0.9, error_kw={"linewidth": 1})
        ax.set_yticks(y, [r["variant"] for r in shown])
        ax.axvline(0, color="tab:blue", linewidth=1.2)
        span = max(max(abs(d) + (r["mifid_std"] or 0.0) for d, r in zip(deltas, shown)), 1e-9)
        ax.set_xlim(-1.15 * span, 1.9 * span)  # room on the right for the labels
        for yy, r in zip(y, shown):
            ax.text(0.99, yy, f"{r['mifid_mean']:.2f} ± {r['mifid_std']:.2f}", transform=ax.get_yaxis_transform(),
                    va="center", ha="right", fontsize=8)
        from matplotlib.patches import Patch

        kinds = [k for k in colors if any(r["kind"] == k for r in shown)]
        ax.legend(handles=[Patch(color=colors[k], label=k) for k in kinds], loc="upper center",
                  bbox_to_anchor=(0.5, -0.16), ncol=len(kinds), fontsize=8, frameon=False)
        ax.set_xlabel(f"MiFID change against the baseline (mean over {seeds} ± std; right = worse)")
        ax.grid(True, axis="x", alpha=0.3)
    title = f"Ablation of {plan['experiment']} ({plan['mode']})"
    if ref is not None:
        title += f": baseline MiFID {ref:.2f} ± {base['mifid_std']:.2f}"
    ax.set_title(title)
    save_figure(fig, path)


def write_reports(out: Path, plan: dict[str, Any], runs: list[dict], metric_note: str) -> tuple[list, list]:
    from ganlab.rundir import atomic_write_text

    rows, effects = summarize(plan, runs)
    order = {(v["name"], s): i for i, (v, s) in enumerate((v, s) for v in plan["variants"] for s in plan["seeds"])}
    runs = sorted(runs, key=lambda r: order.get((r["variant"], r["seed"]), 1 << 30))
    write_csv(out / "runs.csv", runs, ["variant", "kind", "trick", "seed", "status", "step", "total_steps", "mifid",
                                       "fid", "d", "best_mifid", "best_step", "seconds", "run_dir", "error"])
    write_csv(out / "summary.csv", rows)
    atomic_write_text(out / "summary.md", markdown(plan, rows, effects, metric_note))
    if any(r["mifid_mean"] is not None for r in rows):
        bar_chart(plan, rows, out / "ablation.png")
    return rows, effects


def rich_table(plan: dict[str, Any], rows: list[dict], effects: list[dict]):
    """The summary as rich tables; columns with nothing to say are left out so that it fits 80 columns
    (summary.md has them all)."""
    from rich import box
    from rich.table import Table

    table = Table(title=f"ablation of {plan['experiment']} ({plan['mode']}, seeds {plan['seeds']})",
                  box=box.SIMPLE_HEAD, show_edge=False)
    cols = [("variant", "left", lambda r: r["variant"]), ("n", "right", lambda r: f"{r['scored']}/{r['seeds']}"),
            ("MiFID", "right", lambda r: _pm(r["mifid_mean"], r["mifid_std"])),
            ("vs baseline", "right", lambda r: _signed(r["delta_baseline"], r["delta_baseline_pct"]))]
    if any(r["p_baseline"] is not None for r in rows):
        cols.append(("p", "right", lambda r: "" if r["p_baseline"] is None else f"{r['p_baseline']:.2g}"))
    if any(r["kind"] == "add-one-in" for r in rows):
        cols.append(("vs bare", "right", lambda r: _signed(r["delta_bare"])))
    if any(r["fid_mean"] is not None and abs(r["fid_mean"] - r["mifid_mean"]) > 5e-3 * abs(r["mifid_mean"])
           for r in rows):  # MiFID differs from FID only when memorization is penalized
        cols.append(("FID", "right", lambda r: _pm(r["fid_mean"], r["fid_std"])))
    if any(not r["status"].startswith("finished") or "," in r["status"] for r in rows):
        cols.append(("runs", "left", lambda r: r["status"]))
    for name, just, _ in cols:
        table.add_column(name, justify=just, no_wrap=True)
    for r in rows:
        table.add_row(*(get(r) for _, _, get in cols))
    eff = Table(title="what each trick is worth (MiFID points; positive = it helps)", box=box.SIMPLE_HEAD,
                show_edge=False)
    ecols = [("trick", "left", lambda e: e["trick"])]
    if any(v["kind"] == "leave-one-out" for v in plan["variants"]):
        ecols.append(("removing it raises MiFID by", "right", lambda e: _signed(e["removing_it"]) or "-"))
    if any(v["kind"] == "add-one-in" for v in plan["variants"]):
        ecols.append(("adding it alone lowers MiFID by", "right", lambda e: _signed(e["adding_it_alone"]) or "-"))
    for name, just, _ in ecols:
        eff.add_column(name, justify=just, no_wrap=True)
    for e in effects:
        eff.add_row(*(get(e) for _, _, get in ecols))
    return table, eff


# --------------------------------------------------------------------------------------------------
# The ablation


def ablate(config, *, seeds: int = 3, mode: str = "leave-one-out", jobs: int = 1, tricks: list[str] | None = None,
           out: str | Path | None = None, new: bool = False, scoring: Scoring | None = None,
           extra_plugins: Iterable[object] = (), progress: bool = True, console=None) -> AblationResult:
    """Run (or continue) an ablation of `config`; write its reports; return the rows.

    `extra_plugins` (hook objects) only work with ``jobs=1`` (they cannot travel to worker processes).
    """
    from ganlab.config import build_config

    if jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {jobs}")
    extra_plugins = list(extra_plugins)
    if extra_plugins and jobs > 1:
        raise UserError("extra plugin objects need jobs=1 (they cannot be sent to worker processes)")
    scoring = scoring or default_scoring()
    names = choose_tricks(config, tricks)
    plan = make_plan(config, names, mode, seeds)
    folder, resumed = out_folder(config, plan, out, new)
    base = plan["base"]

    tasks, runs, skipped = [], [], 0
    for v in plan_variants(names, mode):
        for seed in plan["seeds"]:
            rd = run_folder(folder, v.name, seed)
            done = read_result(rd)
            if done is not None and done.get("status") in DONE:
                runs.append(done)
                skipped += 1
                continue
            raw = variant_raw(base, names, v, seed)
            build_config(copy.deepcopy(raw), source=config.source)  # a bad variant fails here, before training
            tasks.append(((v.name, seed), {"config": raw, "source": config.source, "run_dir": str(rd),
                                           "variant": v.name, "kind": v.kind, "trick": v.trick, "seed": seed,
                                           "scoring": scoring}))
    total = skipped + len(tasks)
    result = AblationResult(folder, plan, runs, [], [], resumed=resumed, skipped=skipped)
    if console is not None:
        what = f"continuing {folder} ({skipped} of {total} runs done)" if resumed else f"ablation in {folder}"
        console.print(f"{what}: {len(plan['variants'])} variants x {len(plan['seeds'])} seeds, "
                      f"tricks {', '.join(names)}", markup=False, soft_wrap=True)

    bar = _progress(progress, console)
    fatal: list[tuple[str, str]] = []
    with bar:
        task_id = bar.add_task("ablate", total=total, completed=skipped)

        def record(rec: dict[str, Any]) -> None:
            result.runs.append(rec)
            result.trained += 1
            if rec.get("status") == "failed":
                result.failed.append(rec)
            bar.update(task_id, advance=1 if rec.get("status") != "interrupted" else 0,
                       description=f"{rec['variant']} seed {rec['seed']}: {rec.get('status')}")

        if jobs == 1 or len(tasks) <= 1:
            with GracefulSigint():
                for key, payload in tasks:
                    if stop_requested():
                        result.interrupted = True
                        break
                    bar.update(task_id, description=f"{payload['variant']} seed {payload['seed']}")
                    rec = run_task(0, payload, extra_plugins)
                    record(rec)
                    if rec["status"] == "interrupted":
                        result.interrupted = True
                        break
        else:
            def on_result(key, kind, value):
                if kind == "ok":
                    record(value)
                    if value["status"] == "interrupted":
                        result.interrupted = True
                    return False
                fatal.append((kind, f"{value}" if kind == "user" else f"{key[0]} seed {key[1]}: {value}"))
                return True

            result.interrupted = run_pool(_pool_task, tasks, jobs, on_result) or result.interrupted
    if fatal:
        kind, value = fatal[0]
        if kind == "user":
            raise UserError(value)
        raise RuntimeError(f"an ablation worker failed: {value}")
    result.runs = [r for r in result.runs if r.get("status") != "interrupted"]
    metric_note = f"{config.eval.n_images} generated images against the {config.eval.reference} reference"
    result.summary, result.effects = write_reports(folder, plan, result.runs, metric_note)
    return result


def _progress(enabled: bool, console):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, disable=not enabled, transient=False)


# --------------------------------------------------------------------------------------------------
# CLI


def cmd_ablate(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ganlab.config import load_config

    config = load_config(args.config, args.set, args.plugin)
    console = Console(highlight=False)
    tricks = [t.strip() for t in args.tricks.split(",") if t.strip()] if args.tricks else None
    res = ablate(config, seeds=args.seeds, mode=args.mode, jobs=args.jobs, tricks=tricks, out=args.out,
                 new=args.new, progress=not args.quiet, console=console)
    table, effects = rich_table(res.plan, res.summary, res.effects)
    console.print(table)
    console.print(effects)
    console.print(f"reports: {res.out}/summary.md, summary.csv, runs.csv, ablation.png", markup=False, soft_wrap=True)
    if res.interrupted:
        again = " ".join(["ganlab ablate", args.config, f"--seeds {args.seeds}", f"--mode {args.mode}"]
                         + ([f"--tricks {args.tricks}"] if args.tricks else [])
                         + [f"--set {s}" for s in args.set] + [f"--plugin {p}" for p in args.plugin])
        console.print(f"interrupted: finished runs are kept. Continue with:\n  {again}", markup=False, soft_wrap=True)
        return 130
    if res.failed:
        for r in res.failed:
            console.print(f"{r['variant']} seed {r['seed']} failed: {r.get('error', '')}", markup=False, soft_wrap=True)
        return 1
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "ablate", help="train every trick variant over seeds and tabulate MiFID",
        description="Ablate an experiment's tricks: the baseline (all on), one variant per trick with it off "
                    "(leave-one-out) and/or the bare DCGAN plus that trick (add-one-in), each over --seeds seeds "
                    "on the same budget, scored with MiFID/FID. Rerunning the same command continues.")
    p.add_argument("config", help="experiment TOML, e.g. experiments/baseline.toml")
    p.add_argument("--seeds", type=int, default=3, help="seeds per variant: seed, seed+1, ... (default 3)")
    p.add_argument("--mode", choices=MODES, default="leave-one-out", help="which variants (default leave-one-out)")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel worker processes (default 1)")
    p.add_argument("--tricks", metavar="A,B", help="ablate these tricks (default: the config's enabled tricks)")
    p.add_argument("--out", metavar="DIR", help="ablation folder (default runs/<name>/ablate-<timestamp>, or the "
                                                "latest one with the same plan)")
    p.add_argument("--new", action="store_true", help="start a new ablation folder even if one can be continued")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key for every variant, e.g. --set train.epochs=50 (repeatable)")
    p.add_argument("--plugin", action="append", default=[], metavar="PATH", help="load a trick from this file")
    p.set_defaults(func=cmd_ablate)
