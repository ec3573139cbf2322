"""The MiFID-over-training curve."""
from __future__ import annotations

import json

from PIL import Image

from ganlab.metrics.plot import plot_curve, read_points


def test_plot_curve_draws_only_lines_with_the_key(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    lines = [{"step": 50, "epoch": 0.5, "d_loss": 1.2, "g_loss": 0.7},
             {"step": 100, "epoch": 1.0, "fid": 250.0, "d": 0.3, "mifid": 250.0, "n": 10},
             {"step": 150, "epoch": 1.5, "d_loss": 1.1},
             {"step": 200, "epoch": 2.0, "fid": 180.0, "d": 0.3, "mifid": 180.0, "n": 10},
             {"step": 300, "epoch": 3.0, "mifid": float("nan")}]
    text = "".join(json.dumps(r) + "\n" for r in lines) + '{"step": 400, "epo'  # last line cut short by a crash
    metrics.write_text(text)
    assert read_points(metrics) == [(1.0, 100, 250.0), (2.0, 200, 180.0)]
    out = tmp_path / "mifid.png"
    plot_curve(metrics, out)
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > 300
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left
    plot_curve(metrics, tmp_path / "fid.png", key="fid")
    assert (tmp_path / "fid.png").exists()


def test_plot_curve_without_points_writes_nothing(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text(json.dumps({"step": 1, "epoch": 0.1, "d_loss": 1.0}) + "\n")
    plot_curve(metrics, tmp_path / "mifid.png")
    plot_curve(tmp_path / "missing.jsonl", tmp_path / "mifid.png")
    assert not (tmp_path / "mifid.png").exists()
