"""`ganlab data show`: the PNG grids of raw images with boxes (Fig. 1) and of the cleaned crops (Fig. 2)."""
from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch
from PIL import Image

from data_fixtures import dogs_cfg, dogs_mixed_root  # noqa: F401
from ganlab.data.cli import register
from ganlab.data.show import DROPPED, KEPT, crops_grid, raw_boxes_grid, show


def count_color(im: Image.Image, color: tuple[int, int, int]) -> int:
    return int((np.asarray(im.convert("RGB")) == np.array(color, np.uint8)).all(axis=-1).sum())


def test_raw_grid_draws_kept_and_dropped_boxes(dogs_cfg, dogs_mixed_root):
    cfg = dataclasses.replace(dogs_cfg, root=str(dogs_mixed_root))
    grid = raw_boxes_grid(cfg, n=16, tile=128, ncol=4)
    # readable images with a matching, non-empty annotation: 9 of the fixture's 16 -> 3 rows of 4 tiles
    assert grid.size == (4 * 128 + 5 * 4, 3 * 128 + 4 * 4)
    assert count_color(grid, KEPT) > 100 and count_color(grid, DROPPED) > 100
    assert raw_boxes_grid(cfg, n=16, tile=128, ncol=4).tobytes() == grid.tobytes()  # seeded


def test_crops_grid_layout():
    images = torch.zeros((5, 3, 8, 8), dtype=torch.uint8)
    images[:, 0] = 200
    grid = crops_grid(images, n=64, ncol=4, scale=2)
    assert grid.size == (4 * 16 + 5 * 2, 2 * 16 + 3 * 2)
    assert count_color(grid, (200, 0, 0)) == 5 * 16 * 16


def test_show_writes_both_pngs(dogs_cfg, dogs_mixed_root, tmp_path):
    cfg = dataclasses.replace(dogs_cfg, root=str(dogs_mixed_root), image_size=16)
    paths = show(cfg, tmp_path / "fig", n_raw=4, n_crops=9, progress=False)
    assert [p.name for p in paths] == ["raw_boxes.png", "crops.png"]
    with Image.open(paths[1]) as im:
        assert im.format == "PNG" and im.size == (8 * 32 + 9 * 2, 32 + 2 * 2)  # 7 crops of 16 px, x2


def test_cli_show(dogs_cfg, dogs_mixed_root, tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="ganlab")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["data", "show", "--root", str(dogs_mixed_root), "--cache-dir", str(tmp_path / "c"),
                              "--workers", "1", "--dest", str(tmp_path / "figs"), "--raw", "2", "--no-progress"])
    assert args.func(args) == 0
    assert (tmp_path / "figs" / "raw_boxes.png").exists() and (tmp_path / "figs" / "crops.png").exists()
    assert "crops.png" in capsys.readouterr().out
