"""The MiFID-over-training curve (the paper's Fig. 7) from a run's metrics.jsonl."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def read_points(metrics_jsonl: Path, key: str = "mifid") -> list[tuple[float, int, float]]:
    """(epoch, step, value) of every line holding a finite number under `key`; malformed lines skipped."""
    points = []
    path = Path(metrics_jsonl)
    if not path.exists():
        return points
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a crash
            continue
        if not isinstance(rec, dict):
            continue
        value = rec.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value in (
                float("inf"), float("-inf")):
            continue
        points.append((float(rec.get("epoch", 0) or 0), int(rec.get("step", 0) or 0), float(value)))
    return points


def plot_curve(metrics_jsonl: Path, out_png: Path, key: str = "mifid") -> None:
    """Draw `key` against the epoch from the lines of metrics.jsonl that have it, written atomically.

    Each line is a JSON object with at least "step" and "epoch". Nothing to draw: no file is written.
    The best (lowest) point is marked.
    """
    points = read_points(metrics_jsonl, key)
    if not points:
        return
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # no pyplot: no global state, safe off the main thread

    points.sort(key=lambda p: (p[1], p[0]))
    epochs = [p[0] for p in points]
    values = [p[2] for p in points]
    label = {"mifid": "MiFID", "fid": "FID"}.get(key, key)
    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(epochs, values, marker="o", markersize=3, linewidth=1.5, color="tab:blue", label=label)
    best = min(range(len(values)), key=values.__getitem__)
    ax.plot([epochs[best]], [values[best]], marker="*", markersize=12, color="tab:red", linestyle="none",
            label=f"best {values[best]:.2f} (epoch {epochs[best]:g}, step {points[best][1]})")
    ax.set_xlabel("epoch")
    ax.set_ylabel(label)
    ax.set_title(f"{label} over training")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_png.parent, prefix=f".{out_png.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, out_png)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
