"""Run folders, like stylegan2-ada's: runs/<experiment>/<NNNNN>-<name>/ holding

    config.toml        the resolved config (every default filled in)
    metrics.jsonl      one JSON object per logging interval and per evaluation
    fakes<step>.png    sample grids from a fixed noise batch
    checkpoints/       latest.pt, snapshot-<step>.pt, best.pt (lowest MiFID)
    log.txt            what the run printed
    status.json        running | finished | stopped | interrupted | diverged | failed, with the step

Every file that a crash could leave half-written is written to a temp file and renamed into place.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call write(tmp) on a temp file beside `path`, then rename it over `path` (atomic on POSIX)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def save_checkpoint(path: Path, data: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: torch.save(data, tmp))


def load_checkpoint(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def new_run_dir(runs_dir: str | Path, experiment: str) -> Path:
    """runs/<experiment>/<NNNNN>-<experiment>/ with the next free number."""
    parent = Path(runs_dir) / experiment
    parent.mkdir(parents=True, exist_ok=True)
    for _ in range(100):  # another process may take the same number: mkdir is the lock
        numbers = [int(m.group(1)) for p in parent.iterdir() if (m := re.match(r"(\d{5})-", p.name))]
        path = parent / f"{max(numbers, default=-1) + 1:05d}-{experiment}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a run folder under {parent}")


class RunDir:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"

    @property
    def config_file(self) -> Path:
        return self.path / "config.toml"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def latest(self) -> Path:
        return self.checkpoints / "latest.pt"

    def fakes(self, step: int) -> Path:
        return self.path / f"fakes{step:06d}.png"

    def append_metrics(self, record: dict[str, Any]) -> None:
        with open(self.metrics_file, "a") as fh:
            fh.write(json.dumps(record) + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_file.exists():
            return []
        return [json.loads(line) for line in self.metrics_file.read_text().splitlines() if line.strip()]

    def truncate_metrics(self, step: int) -> None:
        """Drop lines logged after `step` (written after the checkpoint a resume starts from)."""
        keep = [r for r in self.read_metrics() if r.get("step", 0) <= step]
        atomic_write_text(self.metrics_file, "".join(json.dumps(r) + "\n" for r in keep))

    def log(self, line: str) -> None:
        with open(self.path / "log.txt", "a") as fh:
            fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")

    def set_status(self, status: str, step: int, **extra: Any) -> None:
        record = {"status": status, "step": step, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra}
        atomic_write_text(self.path / "status.json", json.dumps(record, indent=1) + "\n")

    def status(self) -> dict[str, Any]:
        path = self.path / "status.json"
        return json.loads(path.read_text()) if path.exists() else {}
