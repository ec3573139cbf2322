"""Experiment configs: TOML -> typed, validated Config.

Like nanoGPT's configurator: every default lives here, once, with a comment (the `help` of each field);
an experiment file carries only its differences, may `extends = "other.toml"` (relative to itself), and
`--set key=value` overrides any key. An unknown key, a wrong type or a value out of range is a ConfigError
naming the file and the key.

Tables: top level (name, seed, device...), [model], [train], [data], [eval], [tune] and one
[tricks.<name>] table per trick, in the order the tricks run. A trick without a table is off.
"""
from __future__ import annotations

import copy
import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ganlab.errors import ConfigError
from ganlab.options import opt, parse_table


@dataclass
class ModelConfig:
    latent_dim: int = opt(128, "length of the Gaussian latent vector z", min=1)
    g_width: int = opt(64, "channels of G's last hidden layer (DCGAN's ngf); layers have 8x, 4x, 2x, 1x", min=1)
    d_width: int = opt(64, "channels of D's first layer (DCGAN's ndf); layers have 1x, 2x, 4x, 8x", min=1)
    init_std: float = opt(0.02, "std of the N(0, std) initialization of conv weights (DCGAN)", min=0.0)


@dataclass
class TrainConfig:
    epochs: int = opt(750, "passes over the training set", min=1)
    max_steps: int = opt(0, "stop after this many steps (0: no limit; the epochs decide)", min=0)
    batch_size: int = opt(32, "images per mini-batch (real and generated each)", min=1)
    lr_g: float = opt(5e-4, "Adam learning rate of G", min=0.0, min_exclusive=True)
    lr_d: float = opt(5e-4, "Adam learning rate of D", min=0.0, min_exclusive=True)
    beta1: float = opt(0.5, "Adam beta1", min=0.0, max=1.0)
    beta2: float = opt(0.999, "Adam beta2", min=0.0, max=1.0)
    log_every: int = opt(50, "steps between lines of metrics.jsonl and progress updates", min=1)
    sample_every: int = opt(1000, "steps between fakes<step>.png grids (0: only at the end)", min=0)
    n_samples: int = opt(64, "images in each sample grid (fixed noise batch)", min=1)
    checkpoint_every: int = opt(500, "steps between writes of checkpoints/latest.pt", min=1)
    snapshot_every: int = opt(0, "steps between kept checkpoints/snapshot-<step>.pt (0: none)", min=0)


@dataclass
class DataConfig:
    root: str = opt("data/stanford-dogs", "raw Stanford Dogs folder (Images/, Annotation/); env GANLAB_DATA_ROOT overrides")
    cache_dir: str = opt("data/prepared", "where `ganlab data prepare` writes the cleaned set (one folder per setting)")
    tensor: str = opt("", "train from this uint8 tensor file (N, 3, H, W) instead of the prepared set")
    image_size: int = opt(64, "side of the stored and trained images in pixels", min=8)
    min_aspect: float = opt(0.8, "drop crops whose width/height is below this", min=0.0)
    max_aspect: float = opt(1.25, "drop crops whose width/height is above this", min=0.0)
    min_box_side: int = opt(32, "low-quality rule: drop crops whose shorter side is below this many pixels", min=1)
    workers: int = opt(0, "processes for `prepare` (0: one per CPU core)", min=0)


@dataclass
class EvalConfig:
    every_epochs: int = opt(0, "compute MiFID every this many epochs during training (0: off)", min=0)
    n_images: int = opt(1000, "generated images per evaluation during training", min=2)
    reference: str = opt("train", "reference set: train (the prepared crops) or kaggle (whole images at 64x64)",
                         choices=("train", "kaggle"))
    eps: float = opt(0.1, "memorization threshold: d_thr = d if d < eps else 1", min=0.0)
    batch_size: int = opt(50, "images per forward pass of the feature network", min=1)


@dataclass
class TopLevel:
    """The keys at the top of an experiment file."""

    name: str = opt("experiment", "experiment name: runs go to <runs_dir>/<name>/")
    seed: int = opt(0, "seed of every random number generator (same seed, same numbers on CPU)", min=0)
    device: str = opt("auto", "auto (CUDA when present), cpu, cuda or cuda:N")
    precision: str = opt("fp32", "fp32, or bf16 (autocast; weights and optimizer stay fp32)", choices=("fp32", "bf16"))
    runs_dir: str = opt("runs", "folder that holds the run folders")
    plugins: list[str] = opt([], "extra plugin files (paths relative to the TOML file that names them)")


@dataclass
class Config(TopLevel):
    """A whole experiment: the top-level keys, one typed section per table, and the trick tables."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    # tricks: name -> resolved table ({"enabled": bool, option: value, ...}), in TOML order (= run order)
    tricks: dict[str, dict[str, Any]] = field(default_factory=dict)
    # tune: the [tune] table as written (validated by ganlab.tune)
    tune: dict[str, Any] = field(default_factory=dict)
    # where the config came from, and which file set each dotted key (for error messages)
    source: str = ""
    origins: dict[str, str] = field(default_factory=dict, repr=False)

    def origin(self, key: str) -> str | None:
        return self.origins.get(key, self.source or None)

    def enabled_tricks(self) -> list[str]:
        return [name for name, table in self.tricks.items() if table.get("enabled", True)]

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain TOML-able data (no source bookkeeping)."""
        d = dataclasses.asdict(self)
        d.pop("source"), d.pop("origins")
        if not d["tune"]:
            d.pop("tune")
        return d


SECTIONS = {"model": ModelConfig, "train": TrainConfig, "data": DataConfig, "eval": EvalConfig}
TOP_KEYS = {f.name for f in dataclasses.fields(TopLevel)}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("(file)", "no such config file", str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("(syntax)", f"not valid TOML: {exc}", str(path)) from None


def _merge(base: dict, child: dict, origins: dict[str, str], file: str, prefix: str = "") -> dict:
    """Child's keys over base's, recursively; new keys keep the child's order after the base's."""
    out = dict(base)
    for key, value in child.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value, origins, file, dotted + ".")
        else:
            out[key] = copy.deepcopy(value)
            _record(value, dotted, origins, file)
    return out


def _record(value: Any, dotted: str, origins: dict[str, str], file: str) -> None:
    origins[dotted] = file
    if isinstance(value, dict):
        for k, v in value.items():
            _record(v, f"{dotted}.{k}", origins, file)


def read_layers(path: str | os.PathLike, origins: dict[str, str], _seen: tuple = ()) -> dict[str, Any]:
    """The TOML file merged over the files it extends (relative to itself); plugin paths made absolute."""
    path = Path(path).resolve()
    if path in _seen:
        raise ConfigError("extends", "circular extends: " + " -> ".join(str(p) for p in (*_seen, path)), str(path))
    raw = _read_toml(path)
    parent = raw.pop("extends", None)
    plugins = raw.get("plugins")
    if isinstance(plugins, list):
        raw["plugins"] = [str((path.parent / p).resolve()) if isinstance(p, str) else p for p in plugins]
    if parent is None:
        base: dict[str, Any] = {}
    elif not isinstance(parent, str):
        raise ConfigError("extends", f"expected a file name, got {parent!r}", str(path))
    else:
        parent_path = path.parent / parent
        if not parent_path.exists():
            raise ConfigError("extends", f"{parent!r} not found next to this file ({parent_path})", str(path))
        base = read_layers(parent_path, origins, (*_seen, path))
    return _merge(base, raw, origins, str(path))


def parse_override(item: str) -> tuple[str, Any]:
    """`key=value` from --set: the value is read as TOML (numbers, booleans, quoted strings, lists), else as text."""
    if "=" not in item:
        raise ConfigError(item, "--set takes key=value (for example train.lr_g=2e-4)", "--set")
    key, text = item.split("=", 1)
    key = key.strip()
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    return key, value


def apply_override(raw: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = raw
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(key, f"{part!r} is not a table", "--set")
    node[parts[-1]] = value


def load_config(path: str | os.PathLike, overrides: list[str] = (), extra_plugins: list[str] = ()) -> Config:
    """Read, merge, override and validate an experiment file into a Config (tricks validated by their plugins)."""
    origins: dict[str, str] = {}
    raw = read_layers(path, origins)
    for item in overrides:
        key, value = parse_override(item)
        apply_override(raw, key, value)
        _record(value, key, origins, "--set")
    if extra_plugins:
        raw["plugins"] = list(raw.get("plugins", [])) + [str(Path(p).resolve()) for p in extra_plugins]
        origins["plugins"] = "--plugin"
    return build_config(raw, source=str(Path(path)), origins=origins)


def build_config(raw: dict[str, Any], source: str = "", origins: dict[str, str] | None = None) -> Config:
    """Validate a merged raw dict (as read from TOML) into a Config."""
    origins = origins if origins is not None else {}
    where = lambda key: origins.get(key, source or None)  # noqa: E731
    raw = dict(raw)
    sections = {}
    for name, cls in SECTIONS.items():
        table = raw.pop(name, {})
        if not isinstance(table, dict):
            raise ConfigError(name, f"expected a table [{name}], got {table!r}", where(name))
        sections[name] = parse_table(cls, table, name, where)
    tricks_raw = raw.pop("tricks", {})
    if not isinstance(tricks_raw, dict):
        raise ConfigError("tricks", "expected tables [tricks.<name>]", where("tricks"))
    tune = raw.pop("tune", {})
    if not isinstance(tune, dict):
        raise ConfigError("tune", "expected a table [tune]", where("tune"))
    for key in raw:
        if key not in TOP_KEYS:
            known = ", ".join(sorted(TOP_KEYS | set(SECTIONS) | {"tricks", "tune", "extends"}))
            raise ConfigError(key, f"unknown key; top-level keys and tables are: {known}", where(key))
    top = parse_table(TopLevel, raw, "", where)
    config = Config(**dataclasses.asdict(top), **sections, tune=tune, source=source, origins=origins)
    from ganlab.plugins import resolve_trick_tables  # the tricks validate their own tables

    config.tricks = resolve_trick_tables(config, tricks_raw)
    return config


def config_from_dict(data: dict[str, Any], source: str = "") -> Config:
    """A Config from a resolved dict (as saved in a run folder)."""
    return build_config(copy.deepcopy(data), source=source)


def dump_toml(data: dict[str, Any]) -> str:
    """TOML text for the config's plain types: scalars and lists first, then tables (nested as [a.b])."""
    lines: list[str] = []

    def scalar(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(scalar(x) for x in v) + "]"
        raise TypeError(f"cannot write {type(v).__name__} to TOML")

    def key(k: str) -> str:
        return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else scalar(k)

    def table(d: dict, name: str) -> None:
        plain = {k: v for k, v in d.items() if not isinstance(v, dict)}
        subs = {k: v for k, v in d.items() if isinstance(v, dict)}
        if name and (plain or not subs):
            lines.append(f"\n[{name}]")
        for k, v in plain.items():
            lines.append(f"{key(k)} = {scalar(v)}")
        for k, v in subs.items():
            table(v, f"{name}.{key(k)}" if name else key(k))

    table(data, "")
    return "\n".join(lines).lstrip("\n") + "\n"
