"""`ganlab tune`: an Optuna search over trick combinations, learning rates and trick parameters, MiFID as
the objective, on one machine or on many machines sharing one study.

The search space is the experiment's ``[tune]`` table (documented in docs/tuning.md)::

    [tune]
    metric = "mifid"                    # minimized, at the end of each trial's budget
    toggle = ["input_noise", "soft_labels", "augment"]   # or "all": tricks a trial may switch off/on
    pruner = "median"                   # median | hyperband | none

    [tune.params]                       # any config key: a range or a list of choices
    "train.lr_g" = { low = 1e-5, high = 1e-3, log = true }
    "tricks.input_noise.std" = { low = 0.02, high = 0.3, log = true }
    "tricks.activation.g" = { choices = ["relu", "leaky_relu"] }

Parameter names in the study are the dotted config keys (``tricks.<name>.enabled`` for a toggle), so the
best parameters read as ``--set`` overrides. A trick's parameters are sampled only in trials where the
trick is on (a conditional space; TPE with ``group=True`` and PED-ANOVA importances handle it).

Every trial trains the experiment's budget in ``<runs_dir>/<name>/tune-<study>/trial-<NNNNN>/``; each
evaluation's MiFID is reported at step = epochs trained, and the pruner may stop the run there. A trial
that diverges or raises is recorded as FAIL with its reason (user attribute ``fail_reason``) and the study
goes on. Ctrl-C: the running trials write a checkpoint, are recorded as FAIL ("interrupted") and are
queued again with the same parameters; the next ``ganlab tune`` (same command) resumes them from their
checkpoints and continues the study until it holds ``--trials`` trials.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import json
import math
import os
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ganlab import hookimpl
from ganlab.errors import ConfigError, DataError, UserError
from ganlab.options import opt, parse_table
from ganlab.sweep import (GracefulSigint, Scoring, default_scoring, host, new_figure, run_pool, save_figure, scored_run,
                          stop_requested, worker_device, write_csv)

PARAM_KEYS = ("low", "high", "log", "step", "choices")
NOT_TUNABLE = {"name", "runs_dir", "plugins", "tune", "device"}


@dataclass
class TuneOptions:
    """The scalar keys of [tune]."""

    metric: str = opt("mifid", "objective to minimize, at the end of each trial's budget", choices=("mifid", "fid"))
    trials: int = opt(100, "trials the study should hold in all (--trials overrides)", min=0)
    sampler: str = opt("tpe", "tpe (multivariate, grouped, constant liar) or random", choices=("tpe", "random"))
    startup_trials: int = opt(10, "tpe: random trials before the sampler models the space", min=0)
    pruner: str = opt("median", "median, hyperband or none", choices=("median", "hyperband", "none"))
    prune_startup_trials: int = opt(5, "median: finished trials needed before any trial is pruned", min=0)
    prune_warmup_epochs: int = opt(0, "median: no pruning before this many epochs of a trial", min=0)
    hyperband_min_epochs: int = opt(0, "hyperband: smallest budget in epochs (0: eval.every_epochs)", min=0)
    hyperband_reduction: int = opt(3, "hyperband: reduction factor between brackets", min=2)
    baseline_first: bool = opt(True, "trial 0 trains the config as written (when it lies inside the space)")
    heartbeat_s: int = opt(60, "seconds between a running trial's heartbeats; a trial silent for 3x this is "
                               "failed and queued again (0: off)", min=0)
    study: str = opt("", "study name (default: the experiment name; --study overrides)")
    storage: str = opt("", "storage URL (default: SQLite file in the study's folder; --storage overrides)")


DEFAULT_SPACE = {
    "toggle": "all",
    "params": {
        "train.lr_g": {"low": 1e-5, "high": 2e-3, "log": True},
        "train.lr_d": {"low": 1e-5, "high": 2e-3, "log": True},
        "train.beta1": {"low": 0.0, "high": 0.9},
    },
}


@dataclass
class ParamSpec:
    name: str  # the dotted config key, also the Optuna parameter name
    kind: str  # float | int | categorical
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None
    trick: str | None = None  # set when the key lives in [tricks.<trick>]

    def suggest(self, trial) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, self.choices)
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def contains(self, value: Any) -> bool:
        if self.kind == "categorical":
            return any(value == c and type(value) is type(c) for c in self.choices)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if not self.low <= value <= self.high:
            return False
        if self.step:
            k = (value - self.low) / self.step
            return abs(k - round(k)) < 1e-9
        return True

    def describe(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None and v is not False}


@dataclass
class TuneSpec:
    options: TuneOptions
    toggle: list[str]
    params: list[ParamSpec]
    default_space: bool = False

    def fingerprint(self) -> dict[str, Any]:
        """What must match for two `ganlab tune` commands to share one study."""
        return {"metric": self.options.metric, "toggle": self.toggle, "params": [p.describe() for p in self.params]}


# --------------------------------------------------------------------------------------------------
# Parsing and validating [tune]


def _flatten(table: dict[str, Any], prefix: str, out: dict[str, Any], origin) -> None:
    for key, value in table.items():
        name = f"{prefix}{key}"
        if not isinstance(value, dict):
            raise ConfigError(f"tune.params.{name}", "expected a range { low = ..., high = ... } (optional log, "
                              "step) or a list { choices = [...] }", origin(f"tune.params.{name}"))
        if not value or set(value) & set(PARAM_KEYS):
            out[name] = value
        else:
            _flatten(value, name + ".", out, origin)


def _lookup(d: dict[str, Any], dotted: str) -> tuple[bool, Any]:
    node: Any = d
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _assign(d: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = d
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def full_base(config, toggle: list[str]) -> dict[str, Any]:
    """The config as a dict without [tune], with a table (off) for each toggled trick that has none."""
    from ganlab.plugins import available_tricks

    base = copy.deepcopy(config.to_dict())
    base.pop("tune", None)
    known = available_tricks(config.plugins)
    for t in toggle:
        if t not in base["tricks"]:
            trick = known[t].cls()
            base["tricks"][t] = {"enabled": False, **dataclasses.asdict(trick.options)}
    return base


def parse_tune(config) -> TuneSpec:
    """Validate config.tune into a TuneSpec; a bad entry is a ConfigError naming `tune.<key>`."""
    from ganlab.config import build_config
    from ganlab.plugins import available_tricks

    raw = copy.deepcopy(config.tune or {})
    origin = config.origin
    default_space = "params" not in raw and "toggle" not in raw
    if default_space:
        raw.update(copy.deepcopy(DEFAULT_SPACE))
    params_raw = raw.pop("params", {})
    toggle_raw = raw.pop("toggle", [])
    options = parse_table(TuneOptions, raw, "tune", origin)
    if options.study and not re.fullmatch(r"[A-Za-z0-9._-]+", options.study):
        raise ConfigError("tune.study", "use letters, digits, '.', '_' and '-' only", origin("tune.study"))

    # toggles
    known = available_tricks(config.plugins)
    if toggle_raw == "all":
        toggle = list(config.tricks)
    elif isinstance(toggle_raw, list) and all(isinstance(t, str) for t in toggle_raw):
        toggle = list(toggle_raw)
    else:
        raise ConfigError("tune.toggle", f'expected "all" or a list of trick names, got {toggle_raw!r}',
                          origin("tune.toggle"))
    for t in toggle:
        if t not in known:
            raise ConfigError("tune.toggle", f"unknown trick {t!r}; known tricks are: {', '.join(sorted(known))}",
                              origin("tune.toggle"))
    if len(set(toggle)) != len(toggle):
        raise ConfigError("tune.toggle", "a trick is named twice", origin("tune.toggle"))
    toggle = [t for t in config.tricks if t in toggle] + [t for t in toggle if t not in config.tricks]
    base = full_base(config, toggle)

    # parameters
    if not isinstance(params_raw, dict):
        raise ConfigError("tune.params", "expected a table [tune.params]", origin("tune.params"))
    flat: dict[str, Any] = {}
    _flatten(params_raw, "", flat, origin)
    params = []
    for name, spec in flat.items():
        key = f"tune.params.{name}"
        where = origin(key)
        parts = name.split(".")
        if parts[0] in NOT_TUNABLE:
            raise ConfigError(key, f"{parts[0]!r} cannot be tuned", where)
        if parts[0] == "tricks" and len(parts) == 3 and parts[2] == "enabled":
            raise ConfigError(key, f"switch tricks on and off with tune.toggle = [\"{parts[1]}\", ...]", where)
        found, current = _lookup(base, name)
        if parts[0] == "tricks" and len(parts) >= 2 and parts[1] not in base["tricks"]:
            raise ConfigError(key, f"trick {parts[1]!r} has no [tricks.{parts[1]}] table in the config and is not "
                                   "in tune.toggle", where)
        if not found:
            raise ConfigError(key, f"no such config key {name!r} (see `ganlab run --dry-run CONFIG` for the keys)",
                              where)
        if isinstance(current, dict):
            raise ConfigError(key, f"{name!r} is a table; name one of its keys", where)
        trick = parts[1] if parts[0] == "tricks" else None
        if trick and trick not in toggle and not base["tricks"][trick].get("enabled", True):
            raise ConfigError(key, f"trick {trick!r} is off in the config and not in tune.toggle, so this "
                                   "parameter would never be used", where)
        unknown = set(spec) - set(PARAM_KEYS)
        if unknown:
            raise ConfigError(key, f"unknown key(s) {', '.join(sorted(unknown))}; a parameter takes low, high, "
                                   "log, step or choices", where)
        params.append(_param_spec(name, spec, current, trick, key, where))
    if not params and not toggle:
        raise ConfigError("tune", "the search space is empty: give tune.toggle and/or [tune.params]",
                          origin("tune"))

    # every bound and choice must make a valid config (the tricks validate their own options)
    for p in params:
        values = p.choices if p.kind == "categorical" else [p.low, p.high]
        for value in values:
            trial_raw = copy.deepcopy(base)
            if p.trick:
                trial_raw["tricks"][p.trick]["enabled"] = True
            _assign(trial_raw, p.name, int(value) if p.kind == "int" else value)
            try:
                build_config(trial_raw, source=config.source)
            except ConfigError as exc:
                raise ConfigError(f"tune.params.{p.name}", f"{value!r} is not a valid value: {exc.message}",
                                  origin(f"tune.params.{p.name}")) from None
    return TuneSpec(options, toggle, params, default_space)


def _param_spec(name: str, spec: dict[str, Any], current: Any, trick: str | None, key: str, where) -> ParamSpec:
    if "choices" in spec:
        extra = set(spec) - {"choices"}
        if extra:
            raise ConfigError(key, f"choices cannot be combined with {', '.join(sorted(extra))}", where)
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise ConfigError(key, "choices must be a non-empty list", where)
        if any(isinstance(c, (dict, list)) for c in choices):
            raise ConfigError(key, "choices must be numbers, strings or booleans", where)
        if len({json.dumps(c) for c in choices}) != len(choices):
            raise ConfigError(key, "choices has a value twice", where)
        return ParamSpec(name, "categorical", choices=list(choices), trick=trick)
    if "low" not in spec or "high" not in spec:
        raise ConfigError(key, "a range needs low and high (or give choices = [...])", where)
    if isinstance(current, bool) or not isinstance(current, (int, float)):
        raise ConfigError(key, f"{name} holds {type(current).__name__} values: give choices = [...] instead of a "
                               "range", where)
    low, high, log, step = spec["low"], spec["high"], spec.get("log", False), spec.get("step")
    for k, v in (("low", low), ("high", high)) + ((("step", step),) if step is not None else ()):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ConfigError(key, f"{k} must be a number, got {v!r}", where)
    if not isinstance(log, bool):
        raise ConfigError(key, f"log must be true or false, got {log!r}", where)
    if not low < high:
        raise ConfigError(key, f"low must be below high, got low = {low!r}, high = {high!r}", where)
    if log and low <= 0:
        raise ConfigError(key, f"a log range needs low > 0, got {low!r}", where)
    if step is not None and step <= 0:
        raise ConfigError(key, f"step must be > 0, got {step!r}", where)
    if log and step is not None:
        raise ConfigError(key, "log and step cannot be combined", where)
    if isinstance(current, int):
        if not all(float(v).is_integer() for v in (low, high) + ((step,) if step is not None else ())):
            raise ConfigError(key, f"{name} is an integer: low, high and step must be whole numbers", where)
        return ParamSpec(name, "int", int(low), int(high), log, int(step) if step is not None else None, trick=trick)
    return ParamSpec(name, "float", float(low), float(high), log, float(step) if step is not None else None,
                     trick=trick)


def sample(trial, spec: TuneSpec, base: dict[str, Any]) -> dict[str, Any]:
    """The trial's config dict: toggles first, then each parameter whose trick is on (define-by-run)."""
    raw = copy.deepcopy(base)
    for t in spec.toggle:
        raw["tricks"][t]["enabled"] = trial.suggest_categorical(f"tricks.{t}.enabled", [True, False])
    for p in spec.params:
        if p.trick and not raw["tricks"][p.trick].get("enabled", True):
            continue
        _assign(raw, p.name, p.suggest(trial))
    return raw


def baseline_params(spec: TuneSpec, base: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The config as written, as trial parameters; None (and why) when it lies outside the space."""
    params: dict[str, Any] = {}
    for t in spec.toggle:
        params[f"tricks.{t}.enabled"] = bool(base["tricks"][t].get("enabled", True))
    for p in spec.params:
        if p.trick and not base["tricks"][p.trick].get("enabled", True):
            continue
        _, value = _lookup(base, p.name)
        if not p.contains(value):
            return None, f"{p.name} = {value!r} lies outside its range/choices"
        params[p.name] = value
    return params, ""


# --------------------------------------------------------------------------------------------------
# Storage and study


def default_study_name(config, spec: TuneSpec) -> str:
    return spec.options.study or re.sub(r"[^A-Za-z0-9._-]+", "-", config.name) or "study"


def tune_folder(config, study_name: str) -> Path:
    return Path(config.runs_dir) / config.name / f"tune-{study_name}"


def storage_url(url: str, folder: Path) -> str:
    """The SQLAlchemy URL: --storage / tune.storage, a bare file path (SQLite), or SQLite in `folder`.

    A plain ``postgresql://`` (or ``postgres://``) URL gets the driver that is installed: SQLAlchemy 2.1
    assumes psycopg 3, while psycopg2-binary is the usual wheel.
    """
    if not url:
        return "sqlite:///" + str((folder / "study.db").resolve())
    if "://" not in url:
        return "sqlite:///" + str(Path(url).resolve())
    m = re.match(r"(postgres|postgresql)://", url)
    if m:
        import importlib.util

        for driver in ("psycopg", "psycopg2"):
            if importlib.util.find_spec(driver) is not None:
                return f"postgresql+{driver}://" + url[m.end():]
        raise UserError(f"--storage {redact(url)}: no PostgreSQL driver is installed; pip install psycopg2-binary")
    return url


def redact(url: str) -> str:
    """The URL without its password, for messages and files."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def open_storage(url: str, heartbeat_s: int = 0):
    """An Optuna RDBStorage for `url`.

    SQLite: the file is switched to WAL journaling (readers never block the writer) and every connection
    waits up to 60 s for a lock instead of failing with "database is locked" when several worker processes
    write at once. PostgreSQL/MySQL: connections are checked before use (a server restart or an idle
    timeout does not fail a trial hours later).
    """
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            import sqlite3

            with sqlite3.connect(path, timeout=60) as con:
                con.execute("PRAGMA journal_mode=WAL")
        engine_kwargs = {"connect_args": {"timeout": 60}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    last: Exception | None = None
    for attempt in range(3):  # two machines creating the tables of a fresh database at once
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                kwargs: dict[str, Any] = {}
                if heartbeat_s:
                    kwargs = {"heartbeat_interval": heartbeat_s, "grace_period": 3 * heartbeat_s,
                              "heartbeat_stale_trial_callback": RetryHeartbeatStaleTrialCallback(max_retry=3)}
                return RDBStorage(url, engine_kwargs=engine_kwargs, **kwargs)
        except ImportError as exc:
            raise UserError(f"storage {redact(url)}: a database driver is missing ({exc}); for PostgreSQL "
                            "install psycopg2-binary") from None
        except Exception as exc:  # sqlalchemy.exc.OperationalError, ArgumentError...
            last = exc
            time.sleep(0.5 + attempt)
    raise UserError(f"cannot open the storage {redact(url)}: {type(last).__name__}: "
                    f"{str(last).splitlines()[0] if str(last) else ''}")


class AskLock:
    """Makes "count the study's trials, then ask for a new one" atomic across workers and machines.

    Without it two workers that finish at the same instant may both see N-1 trials and start one each,
    ending the study with N+1. SQLite (one machine): an flock on a file beside the database. PostgreSQL:
    a session-level advisory lock on a key derived from the study name (held for milliseconds, on a
    connection of its own). MySQL: GET_LOCK. Anything else: no lock (the count may then overshoot).
    """

    def __init__(self, url: str, storage, study_name: str):
        self.url, self.storage, self.name = url, storage, study_name
        self.held = False
        self._fd = None
        self._conn = None
        digest = hashlib.sha1(f"ganlab-tune:{study_name}".encode()).digest()
        self._key = int.from_bytes(digest[:8], "big", signed=True)

    def acquire(self) -> None:
        if self.held:
            return
        if self.url.startswith("sqlite") and ":///" in self.url and not self.url.endswith(":memory:"):
            import fcntl

            if self._fd is None:
                self._fd = os.open(self.url.split(":///", 1)[1] + ".ask.lock", os.O_RDWR | os.O_CREAT, 0o666)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        elif self.url.startswith(("postgresql", "mysql")):
            from sqlalchemy import text

            if self._conn is None:
                self._conn = self.storage.engine.connect()
            if self.url.startswith("postgresql"):
                self._conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": self._key})
            else:
                self._conn.execute(text("SELECT GET_LOCK(:k, 600)"), {"k": f"ganlab-{self._key}"})
            self._conn.commit()
        self.held = True

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        if self._fd is not None:
            import fcntl

            fcntl.flock(self._fd, fcntl.LOCK_UN)
        elif self._conn is not None:
            from sqlalchemy import text

            if self.url.startswith("postgresql"):
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
            else:
                self._conn.execute(text("SELECT RELEASE_LOCK(:k)"), {"k": f"ganlab-{self._key}"})
            self._conn.commit()

    def close(self) -> None:
        self.release()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> "AskLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def make_sampler(spec: TuneSpec, seed: int | None):
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if spec.options.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        # multivariate + group: models parameters jointly and copes with the conditional space (a trick's
        # parameters exist only when it is on); constant_liar: parallel workers do not pile onto one point
        return optuna.samplers.TPESampler(n_startup_trials=spec.options.startup_trials, multivariate=True,
                                          group=True, constant_liar=True, seed=seed)


def make_pruner(spec: TuneSpec, config):
    import optuna

    o = spec.options
    if o.pruner == "none" or not config.eval.every_epochs:
        return optuna.pruners.NopPruner()
    if o.pruner == "hyperband":
        max_resource: int | str = config.train.epochs if not config.train.max_steps else "auto"
        min_resource = o.hyperband_min_epochs or config.eval.every_epochs
        return optuna.pruners.HyperbandPruner(min_resource=min_resource, max_resource=max_resource,
                                              reduction_factor=o.hyperband_reduction)
    return optuna.pruners.MedianPruner(n_startup_trials=o.prune_startup_trials,
                                       n_warmup_steps=o.prune_warmup_epochs, interval_steps=1)


def retried_numbers(trials) -> set[int]:
    """Numbers of trials that were queued again (interrupted, or stale): they do not count toward --trials."""
    out: set[int] = set()
    for t in trials:
        out.update(t.system_attrs.get("retry_history", []))
    return out


def study_counts(trials) -> dict[str, int]:
    from optuna.trial import TrialState

    retried = retried_numbers(trials)
    counts = {"complete": 0, "pruned": 0, "fail": 0, "running": 0, "waiting": 0, "retried": 0}
    for t in trials:
        if t.number in retried:
            counts["retried"] += 1
        elif t.state == TrialState.COMPLETE:
            counts["complete"] += 1
        elif t.state == TrialState.PRUNED:
            counts["pruned"] += 1
        elif t.state == TrialState.FAIL:
            counts["fail"] += 1
        elif t.state == TrialState.RUNNING:
            counts["running"] += 1
        elif t.state == TrialState.WAITING:
            counts["waiting"] += 1
    counts["counted"] = sum(counts[k] for k in ("complete", "pruned", "fail", "running", "waiting"))
    counts["done"] = counts["complete"] + counts["pruned"] + counts["fail"]
    return counts


def open_study(config, spec: TuneSpec, url: str, name: str, base: dict[str, Any], *, create: bool):
    """(study, AskLock): create (or load) the study; check that an existing one has the same space and metric."""
    import optuna

    storage = open_storage(url, spec.options.heartbeat_s)
    lock = AskLock(url, storage, name)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if create:
        study = optuna.create_study(study_name=name, storage=storage, direction="minimize", load_if_exists=True)
    else:
        study = optuna.load_study(study_name=name, storage=storage)
    fingerprint = spec.fingerprint()
    stored = study.user_attrs.get("ganlab")
    if stored is None and create:
        study.set_user_attr("ganlab", {"space": fingerprint, "experiment": config.name,
                                       "config_sha1": _config_hash(base), "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                       "host": host()})
        if spec.options.baseline_first:
            with lock:  # one baseline trial, however many machines start at once
                if not study.get_trials(deepcopy=False):
                    params, _ = baseline_params(spec, base)
                    if params is not None:
                        study.enqueue_trial(params, user_attrs={"baseline": True})
    elif stored is not None and json.loads(json.dumps(stored["space"])) != json.loads(json.dumps(fingerprint)):
        raise UserError(f"study {name!r} in {redact(url)} was created with another search space or metric; "
                        "choose another --study name (or delete the study) to search this one")
    return study, lock


def _config_hash(base: dict[str, Any]) -> str:
    # the parts of the config that change results (paths and the device may differ between machines)
    d = copy.deepcopy(base)
    for k in ("runs_dir", "plugins", "device", "name"):
        d.pop(k, None)
    d.get("data", {}).pop("root", None)
    d.get("data", {}).pop("cache_dir", None)
    d.get("data", {}).pop("workers", None)
    return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()


# --------------------------------------------------------------------------------------------------
# One trial


class Interrupted(Exception):
    """Ctrl-C reached a trial: it is recorded as FAIL ("interrupted") and queued again."""


class TrialFailed(Exception):
    """A trial that diverged, raised or could not be scored; the study goes on."""


class _Reporter:
    """The trainer plugin that reports each evaluation to the trial and stops the run when it is pruned."""

    def __init__(self, trial, metric: str, prune: bool):
        self.trial, self.metric, self.prune = trial, metric, prune
        self.pruned: tuple[int, float] | None = None
        self.error: BaseException | None = None
        self.reported: set[int] = set()
        self.storage_s = 0.0  # time spent in report/should_prune (storage round trips), for the benchmark

    def report(self, step: int, value: float) -> None:
        if step in self.reported or not math.isfinite(value):
            return
        t = time.perf_counter()
        self.trial.report(value, step)
        self.storage_s += time.perf_counter() - t
        self.reported.add(step)

    @hookimpl
    def ganlab_on_eval(self, state, metrics) -> None:
        try:
            step = int(math.ceil(state.step / state.steps_per_epoch - 1e-9))  # epochs trained
            value = float(metrics[self.metric])
            self.report(step, value)
            if self.prune:
                t = time.perf_counter()
                prune = self.trial.should_prune()
                self.storage_s += time.perf_counter() - t
                if prune:
                    self.pruned = (step, value)
                    state.stop = True
        except Exception as exc:  # never raise inside a hook: remember it, stop, raise after train()
            self.error = exc
            state.stop = True

    def before_run(self, trainer) -> None:
        if trainer.state.step:  # a resumed trial: the new trial gets the evaluations already made
            from ganlab.sweep import eval_records

            spe = trainer.state.steps_per_epoch
            for r in eval_records(trainer.rd.path):
                self.report(int(math.ceil(r["step"] / spe - 1e-9)), float(r[self.metric]))
        if stop_requested():
            raise Interrupted("Ctrl-C before the trial started")


class TrialRunner:
    """Optuna's objective: sample a config, train it in the trial's run folder, return its final MiFID."""

    def __init__(self, config, spec: TuneSpec, base: dict[str, Any], folder: Path, *, scoring: Scoring | None,
                 extra_plugins: Iterable[object] = (), worker: int = 0):
        self.config, self.spec, self.base, self.folder = config, spec, base, Path(folder)
        self.scoring, self.extra_plugins, self.worker = scoring, list(extra_plugins), worker
        self.prune = config.eval.every_epochs > 0 and spec.options.pruner != "none"
        self.interrupted = False
        self.fatal: UserError | None = None
        self.release = lambda: None

    def _retry(self, study, trial, reason: str, run_dir: Path | None) -> None:
        """Queue the same parameters again; the rerun resumes `run_dir` from its checkpoint."""
        import optuna

        frozen = study._storage.get_trial(trial._trial_id)
        history = list(frozen.system_attrs.get("retry_history", [])) + [trial.number]
        user_attrs = {k: v for k, v in frozen.user_attrs.items() if k in ("baseline", "run_dir", "host")}
        if run_dir is not None:
            user_attrs["run_dir"] = str(run_dir)
        study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.WAITING, params=frozen.params, distributions=frozen.distributions,
            user_attrs=user_attrs, system_attrs={"failed_trial": history[0], "retry_history": history}))
        trial.set_user_attr("fail_reason", reason)
        trial.set_user_attr("retried", True)

    def __call__(self, trial) -> float:
        import optuna
        from ganlab.config import build_config

        self.release()
        study = trial.study
        t0 = time.perf_counter()
        reporter = _Reporter(trial, self.spec.options.metric, self.prune)
        run_dir: Path | None = None
        try:
            raw = sample(trial, self.spec, self.base)
            previous = trial.user_attrs.get("run_dir")
            if previous and trial.user_attrs.get("host") == host() and Path(previous).exists():
                run_dir = Path(previous)  # a queued-again trial: continue its run folder
            else:
                run_dir = self.folder / f"trial-{trial.number:05d}"
            trial.set_user_attr("run_dir", str(run_dir))
            trial.set_user_attr("host", host())
            trial.set_user_attr("pid", os.getpid())
            try:
                config = build_config(worker_device(copy.deepcopy(raw), self.worker), source=self.config.source)
            except ConfigError as exc:
                raise TrialFailed(f"invalid combination: {exc}") from None
            trial.set_user_attr("config", raw)
            t_sample = time.perf_counter() - t0
            outcome = scored_run(config, run_dir, scoring=self.scoring,
                                 extra_plugins=[reporter, *self.extra_plugins],
                                 final_eval=lambda: reporter.pruned is None and reporter.error is None,
                                 before_run=reporter.before_run)
            timings = dict(outcome.timings or {}, sample=t_sample, report=reporter.storage_s)
            trial.set_user_attr("timings", timings)
            trial.set_user_attr("status", outcome.status)
            trial.set_user_attr("step", outcome.step)
            if outcome.resumed_from:
                trial.set_user_attr("resumed_from_step", outcome.resumed_from)
            if reporter.error is not None:
                raise TrialFailed(f"reporting to the study failed: {type(reporter.error).__name__}: "
                                  f"{reporter.error}")
            if outcome.status == "interrupted":
                raise Interrupted(f"interrupted (Ctrl-C) at step {outcome.step}")
            if outcome.status == "diverged":
                raise TrialFailed(f"diverged: a loss became NaN or Inf by step {outcome.step}")
            if reporter.pruned is not None:
                epoch, value = reporter.pruned
                trial.set_user_attr("pruned_at_epoch", epoch)
                trial.set_user_attr(self.spec.options.metric, value)
                raise optuna.TrialPruned(f"pruned at epoch {epoch} ({self.spec.options.metric} {value:.4g})")
            final = outcome.final or {}
            value = final.get(self.spec.options.metric)
            if value is None or not math.isfinite(float(value)):
                raise TrialFailed(f"no finite {self.spec.options.metric} at the end of the run ({final})")
            for k in ("mifid", "fid", "d"):
                if k in final:
                    trial.set_user_attr(k, float(final[k]))
            trial.set_user_attr("epochs", round(outcome.step / max(outcome.steps_per_epoch, 1), 3))
            if outcome.best:
                trial.set_user_attr("best_mifid", float(outcome.best["mifid"]))
                trial.set_user_attr("best_step", int(outcome.best["step"]))
            return float(value)
        except optuna.TrialPruned:
            raise
        except Interrupted as exc:
            self.interrupted = True
            self._retry(study, trial, str(exc), run_dir)
            study.stop()
            raise
        except KeyboardInterrupt:  # a second Ctrl-C: the trial stops at once; still queue it again
            self.interrupted = True
            try:
                self._retry(study, trial, "interrupted (Ctrl-C twice)", run_dir)
            except Exception:  # noqa: BLE001
                pass
            raise
        except TrialFailed as exc:
            trial.set_user_attr("fail_reason", str(exc))
            raise
        except DataError as exc:  # the same for every trial: stop here; the trial is queued again for later
            self._retry(study, trial, f"{type(exc).__name__}: {exc}", run_dir)
            self.fatal = exc
            study.stop()
            raise TrialFailed(str(exc)) from None
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, UserError) and run_dir is not None:  # a bug somewhere: keep the traceback
                import traceback

                run_dir.mkdir(parents=True, exist_ok=True)
                (run_dir / "trial-error.txt").write_text(traceback.format_exc())
                reason += f" (traceback in {run_dir / 'trial-error.txt'})"
            trial.set_user_attr("fail_reason", reason)
            raise


def run_worker(payload: dict[str, Any], worker: int = 0, extra_plugins: Iterable[object] = (),
               on_done=None) -> dict[str, Any]:
    """One worker's loop: run trials on the shared study until it holds `trials` trials, Ctrl-C, or a fatal error."""
    import optuna
    from ganlab.config import build_config

    config = build_config(copy.deepcopy(payload["config"]), source=payload["source"])
    spec: TuneSpec = payload["spec"]
    base = payload["base"]
    study, lock = open_study(config, spec, payload["storage"], payload["study"], base, create=False)
    seed = payload.get("seed")
    existing = len(study.get_trials(deepcopy=False))
    if seed is not None:  # reproducible for one worker; a resumed study does not replay its first samples
        seed = seed * 1_000_003 + existing
    else:
        seed = (os.getpid() * 7919 + existing + worker * 104729) % (2**31)
    study.sampler = make_sampler(spec, seed)
    study.pruner = make_pruner(spec, config)
    # failed trials are reported by ganlab (one line each, reason in trials.csv), not by Optuna's tracebacks
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    runner = TrialRunner(config, spec, base, Path(payload["folder"]), scoring=payload.get("scoring"),
                         extra_plugins=extra_plugins, worker=worker)
    ran = 0

    def callback(study_, frozen) -> None:
        if on_done is not None:
            on_done(frozen)

    runner.release = lock.release  # the objective's first act: the new trial exists, others may ask
    try:
        while True:
            if stop_requested() or runner.interrupted or runner.fatal is not None:
                break
            lock.acquire()
            try:
                counts = study_counts(study.get_trials(deepcopy=False))
                if counts["waiting"] == 0 and counts["counted"] >= payload["trials"]:
                    break
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    study.optimize(runner, n_trials=1, catch=(Exception,), callbacks=[callback],
                                   gc_after_trial=False)
            finally:
                lock.release()
            ran += 1
    finally:
        lock.close()
    if runner.fatal is not None:
        raise runner.fatal
    return {"worker": worker, "pid": os.getpid(), "ran": ran,
            "interrupted": runner.interrupted or stop_requested()}


def _pool_worker(index: int, payload: dict[str, Any]) -> dict[str, Any]:
    return run_worker(payload, index)


# --------------------------------------------------------------------------------------------------
# Results: trials.csv, best.toml, history.png, importances


def trial_rows(trials, metric: str) -> list[dict[str, Any]]:
    retried = retried_numbers(trials)
    rows = []
    for t in trials:
        state = t.state.name.lower()
        if t.number in retried:
            state += " (queued again)"
        row = {"number": t.number, "state": state, metric: t.value if t.value is not None else
               t.user_attrs.get(metric), "epochs": t.user_attrs.get("epochs", t.user_attrs.get("pruned_at_epoch")),
               "duration_s": t.duration.total_seconds() if t.duration else None,
               "fail_reason": t.user_attrs.get("fail_reason", ""), "host": t.user_attrs.get("host", ""),
               "run_dir": t.user_attrs.get("run_dir", ""),
               "retry_of": t.system_attrs.get("failed_trial", "")}
        row.update({f"param:{k}": v for k, v in t.params.items()})
        rows.append(row)
    return rows


def best_trial(study):
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    return min(done, key=lambda t: (t.value, t.number)) if done else None


def best_toml(study, trial, metric: str, url: str) -> str:
    from ganlab.config import dump_toml

    cfg = copy.deepcopy(trial.user_attrs["config"])
    cfg["name"] = f"{cfg['name']}-best"
    head = [f"# The best trial of study {study.study_name!r} ({redact(url)}): trial {trial.number}, "
            f"{metric} {trial.value:.4g} after {trial.user_attrs.get('epochs', '?')} epochs.",
            f"# Its run folder: {trial.user_attrs.get('run_dir', '?')}",
            "# Train it again with: ganlab run <this file>",
            "# Parameters:"]
    head += [f"#   {k} = {v!r}" for k, v in trial.params.items()]
    return "\n".join(head) + "\n\n" + dump_toml(cfg)


def param_importances(study) -> dict[str, Any]:
    """PED-ANOVA importances of the parameters for reaching the best trials.

    Why PED-ANOVA (optuna.importance.PedAnovaImportanceEvaluator) rather than fANOVA: it measures how much
    each parameter's distribution among the top trials differs from its distribution over all trials, in
    closed form from Parzen estimators, so (1) it is meaningful with the tens of trials a GAN study affords
    (fANOVA fits a random forest that needs many more), (2) it is deterministic and takes milliseconds,
    (3) it handles conditional parameters (a trick's options exist only in trials where the trick is on)
    instead of dropping every parameter that is not in all trials, and (4) it answers the tuning question
    "what matters to get a good MiFID" rather than "what explains the variance of bad trials".
    The top quantile is 10% of the finished trials, raised so that it holds at least 5 of them (the
    evaluator's own advice), at most half.
    """
    import optuna
    from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    out: dict[str, Any] = {"evaluator": "PedAnovaImportanceEvaluator", "trials": len(done), "importances": {}}
    if len(done) < 4:
        out["note"] = f"too few completed trials ({len(done)}; at least 4 are needed)"
        return out
    quantile = min(0.5, max(0.1, 5.0 / len(done)))
    out["target_quantile"] = quantile
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            imp = get_param_importances(study, evaluator=PedAnovaImportanceEvaluator(target_quantile=quantile))
        except (RuntimeError, ValueError, ZeroDivisionError) as exc:
            out["note"] = f"importances could not be computed: {exc}"
            return out
    out["importances"] = {k: float(v) for k, v in imp.items()}
    notes = sorted({str(w.message) for w in caught if not isinstance(w.message, optuna.exceptions.ExperimentalWarning)})
    if notes:
        out["warnings"] = notes
    return out


def history_png(study, trials, metric: str, path: Path) -> bool:
    from optuna.trial import TrialState

    retried = retried_numbers(trials)
    complete = [(t.number, t.value) for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    pruned = []
    for t in trials:
        if t.state == TrialState.PRUNED and t.intermediate_values:
            pruned.append((t.number, t.intermediate_values[max(t.intermediate_values)]))
    failed = [t.number for t in trials if t.state == TrialState.FAIL and t.number not in retried]
    if not complete and not pruned:
        return False
    label = {"mifid": "MiFID", "fid": "FID"}[metric]
    fig = new_figure(7.5, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    if complete:
        ax.scatter(*zip(*complete), s=18, color="tab:blue", label=f"complete ({len(complete)})", zorder=3)
        xs, best, run = [], [], math.inf
        for n, v in sorted(complete):
            run = min(run, v)
            xs.append(n)
            best.append(run)
        ax.step(xs, best, where="post", color="tab:red", linewidth=1.5, label=f"best so far ({run:.4g})", zorder=2)
    if pruned:
        ax.scatter(*zip(*pruned), s=18, marker="x", color="tab:gray",
                   label=f"pruned ({len(pruned)}): last reported value", zorder=2)
    if failed:
        for n in failed:
            ax.axvline(n, color="tab:orange", alpha=0.25, linewidth=1)
        ax.plot([], [], color="tab:orange", alpha=0.5, label=f"failed ({len(failed)})")
    values = [v for _, v in complete + pruned]
    if values and min(values) > 0 and max(values) / min(values) > 20:
        ax.set_yscale("log")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"{label} at the end of the trial (lower is better)")
    ax.set_title(f"optimization history of study {study.study_name}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)
    return True


def write_results(study, folder: Path, metric: str, url: str) -> dict[str, Any]:
    """trials.csv, best.toml, history.png, importances.json/.md in `folder`; returns what it wrote."""
    from ganlab.rundir import atomic_write_text

    trials = study.get_trials(deepcopy=False)
    folder.mkdir(parents=True, exist_ok=True)
    rows = trial_rows(trials, metric)
    params = sorted({k for r in rows for k in r if k.startswith("param:")})
    write_csv(folder / "trials.csv", rows, ["number", "state", metric, "epochs", "duration_s", "fail_reason",
                                           "retry_of", "host", "run_dir", *params])
    out: dict[str, Any] = {"folder": folder, "counts": study_counts(trials), "trials_csv": folder / "trials.csv"}
    best = best_trial(study)
    if best is not None and "config" in best.user_attrs:
        atomic_write_text(folder / "best.toml", best_toml(study, best, metric, url))
        out["best"] = best
        out["best_toml"] = folder / "best.toml"
    if history_png(study, trials, metric, folder / "history.png"):
        out["history_png"] = folder / "history.png"
    imp = param_importances(study)
    atomic_write_text(folder / "importances.json", json.dumps(imp, indent=1) + "\n")
    out["importances"] = imp
    out["dashboard"] = f"optuna-dashboard {redact(url)}"
    return out


# --------------------------------------------------------------------------------------------------
# The command


@dataclass
class TuneResult:
    folder: Path
    study_name: str
    storage: str
    results: dict[str, Any]
    interrupted: bool = False
    workers: list[dict[str, Any]] = field(default_factory=list)


def tune(config, *, trials: int | None = None, jobs: int = 1, storage: str | None = None, study: str | None = None,
         scoring: Scoring | None = None, extra_plugins: Iterable[object] = (), progress: bool = True,
         console=None, seed: int | None = None) -> TuneResult:
    """Run (or continue) the study of `config`'s [tune] space with `jobs` worker processes; write results.

    `trials`: how many trials the study should hold in all (default tune.trials); a study that holds them
    already only gets its results written. `extra_plugins` (hook objects) need ``jobs=1``.
    """
    if jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {jobs}")
    extra_plugins = list(extra_plugins)
    if extra_plugins and jobs > 1:
        raise UserError("extra plugin objects need jobs=1 (they cannot be sent to worker processes)")
    spec = parse_tune(config)
    n_trials = spec.options.trials if trials is None else trials
    if n_trials < 0:
        raise UserError(f"--trials must be >= 0, got {n_trials}")
    name = study or default_study_name(config, spec)
    if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        raise UserError(f"--study {name!r}: use letters, digits, '.', '_' and '-' only")
    folder = tune_folder(config, name)
    url = storage_url(storage if storage is not None else spec.options.storage, folder)
    base = full_base(config, spec.toggle)
    study_obj, lock = open_study(config, spec, url, name, base, create=True)
    lock.close()
    created = study_obj.user_attrs.get("ganlab", {})
    folder.mkdir(parents=True, exist_ok=True)
    metric = spec.options.metric
    say = (lambda text: console.print(text, markup=False, highlight=False, soft_wrap=True)) if console is not None else (lambda t: None)
    if spec.default_space:
        say("no [tune] search space in the config: using the default one (every trick may toggle; "
            "train.lr_g, train.lr_d log-uniform in [1e-5, 2e-3]; train.beta1 in [0, 0.9])")
    if not config.eval.every_epochs:
        say("eval.every_epochs = 0: trials are scored once at the end of their budget, nothing can be pruned")
    if created.get("config_sha1") not in (None, _config_hash(base)):
        say(f"note: this config differs from the one study {name!r} was created with (on {created.get('host')}, "
            f"{created.get('created')}) in more than paths and device; its trials will be compared with theirs")
    counts = study_counts(study_obj.get_trials(deepcopy=False))
    say(f"study {name!r} in {redact(url)}: {counts['done']} trials done, {counts['running']} running, "
        f"target {n_trials}; trial runs in {folder}")
    payload = {"config": copy.deepcopy(config.to_dict()), "source": config.source, "spec": spec, "base": base,
               "storage": url, "study": name, "folder": str(folder), "trials": n_trials,
               "scoring": scoring or default_scoring(),
               "seed": (config.seed if seed is None else seed) if jobs == 1 else None}
    bar = _progress(progress and n_trials > 0, console)
    best_seen = [math.inf]
    shown: set[int] = set()

    def describe(t) -> str | None:
        from optuna.trial import TrialState

        if t.state == TrialState.COMPLETE:
            best_seen[0] = min(best_seen[0], t.value)
            return f"trial {t.number}: {metric} {t.value:.4g} (best {best_seen[0]:.4g})"
        if t.state == TrialState.PRUNED:
            return f"trial {t.number}: pruned at epoch {t.user_attrs.get('pruned_at_epoch', '?')}"
        if t.state == TrialState.FAIL:
            return f"trial {t.number}: failed: {t.user_attrs.get('fail_reason', '?')}"
        return None

    interrupted = False
    workers: list[dict[str, Any]] = []
    with bar:
        task = bar.add_task("trials", total=max(n_trials, counts["done"]), completed=counts["done"])

        def refresh(trial_list=None) -> None:
            trial_list = trial_list if trial_list is not None else study_obj.get_trials(deepcopy=False)
            c = study_counts(trial_list)
            bar.update(task, completed=c["done"], total=max(n_trials, c["counted"]),
                       description=f"trials (complete {c['complete']}, pruned {c['pruned']}, failed {c['fail']}, "
                                   f"running {c['running']})")
            retried = retried_numbers(trial_list)
            for t in trial_list:
                if t.number not in shown and t.number not in retried and t.state.is_finished():
                    shown.add(t.number)
                    line = describe(t)
                    if line and console is not None:
                        bar.console.print(line, markup=False, highlight=False, soft_wrap=True)

        if n_trials > 0:
            if jobs == 1:
                with GracefulSigint():
                    info = run_worker(payload, 0, extra_plugins, on_done=lambda frozen: refresh())
                workers.append(info)
                interrupted = info["interrupted"]
            else:
                fatal: list[tuple[str, str]] = []

                def on_result(key, kind, value):
                    if kind == "ok":
                        workers.append(value)
                        return False
                    fatal.append((kind, value))
                    return True

                interrupted = run_pool(_pool_worker, [(i, payload) for i in range(jobs)], jobs, on_result,
                                       poll=refresh) or any(w.get("interrupted") for w in workers)
                if fatal:
                    kind, value = fatal[0]
                    if kind == "user":
                        raise UserError(value)
                    raise RuntimeError(f"a tune worker failed: {value}")
        refresh()
    results = write_results(study_obj, folder, metric, url)
    return TuneResult(folder, name, url, results, interrupted, workers)


def _progress(enabled: bool, console):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, disable=not enabled, transient=False)


def print_results(console, res: TuneResult, metric: str) -> None:
    from rich.table import Table

    r = res.results
    c = r["counts"]
    console.print(f"study {res.study_name!r}: {c['complete']} complete, {c['pruned']} pruned, {c['fail']} failed"
                  + (f", {c['running']} running elsewhere" if c["running"] else "")
                  + (f", {c['waiting']} queued" if c["waiting"] else ""), markup=False, soft_wrap=True)
    best = r.get("best")
    if best is not None:
        console.print(f"best: trial {best.number}, {metric} {best.value:.4g}", markup=False, soft_wrap=True)
        for k, v in best.params.items():
            console.print(f"  {k} = {v!r}", markup=False, soft_wrap=True)
    imp = r["importances"]
    if imp.get("importances"):
        table = Table(title=f"parameter importances (PED-ANOVA, top {imp['target_quantile']:.0%} of "
                            f"{imp['trials']} complete trials)")
        table.add_column("parameter")
        table.add_column("importance", justify="right")
        for k, v in imp["importances"].items():
            table.add_row(k, f"{v:.3f}")
        console.print(table)
    elif imp.get("note"):
        console.print(f"importances: {imp['note']}", markup=False, soft_wrap=True)
    files = [str(r[k]) for k in ("best_toml", "trials_csv", "history_png") if k in r]
    console.print("results: " + ", ".join(files + [str(res.folder / "importances.json")]), markup=False, soft_wrap=True)
    console.print(f"open the study in a browser: {r['dashboard']}   (pip install optuna-dashboard)", markup=False, soft_wrap=True)


def cmd_tune(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ganlab.config import load_config

    config = load_config(args.config, args.set, args.plugin)
    console = Console(highlight=False)
    res = tune(config, trials=args.trials, jobs=args.jobs, storage=args.storage, study=args.study,
               progress=not args.quiet, console=console)
    print_results(console, res, parse_tune(config).options.metric)
    if res.interrupted:
        again = " ".join(["ganlab tune", args.config] + ([f"--trials {args.trials}"] if args.trials is not None else [])
                         + ([f"--storage {redact(args.storage)}"] if args.storage else [])
                         + ([f"--study {args.study}"] if args.study else [])
                         + [f"--set {s}" for s in args.set] + [f"--plugin {p}" for p in args.plugin])
        console.print(f"interrupted: the running trials wrote checkpoints and are queued again. Continue with:\n"
                      f"  {again}", markup=False, soft_wrap=True)
        return 130
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "tune", help="Optuna search of tricks and hyper-parameters with MiFID as the objective",
        description="Search the experiment's [tune] space with Optuna, minimizing MiFID at the end of each "
                    "trial's budget; intermediate evaluations feed the pruner. Several machines may run the same "
                    "command against one --storage (PostgreSQL). Rerunning continues the study.")
    p.add_argument("config", help="experiment TOML with a [tune] table, e.g. experiments/baseline.toml")
    p.add_argument("--trials", type=int, default=None,
                   help="trials the study should hold in all, over every worker and machine (default tune.trials, "
                        "100); 0 only writes the results")
    p.add_argument("--jobs", type=int, default=1, help="worker processes on this machine (default 1)")
    p.add_argument("--storage", metavar="URL", default=None,
                   help="Optuna storage: postgresql://user@host/db to share the study between machines, or a "
                        "SQLite file (default: runs/<name>/tune-<study>/study.db)")
    p.add_argument("--study", metavar="NAME", default=None, help="study name (default tune.study, else the "
                                                                   "experiment name)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.epochs=50 (repeatable)")
    p.add_argument("--plugin", action="append", default=[], metavar="PATH", help="load a trick from this file")
    p.set_defaults(func=cmd_tune)
