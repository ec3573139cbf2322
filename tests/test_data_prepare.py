"""`ganlab data prepare`: cropping, filtering, bad inputs, the cache, determinism, the CLI, the real subset."""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from data_fixtures import MIXED_EXPECTED, dogs_add, dogs_cfg, dogs_clean_root, dogs_mixed_root  # noqa: F401
from ganlab.data import prepare as P
from ganlab.data.cli import register
from ganlab.data.voc import AnnotationError, Box, parse_annotation_bytes
from ganlab.errors import DataError


def cfg_for(cfg, root: Path, **changes):
    return dataclasses.replace(cfg, root=str(root), **changes)


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ganlab")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


# ------------------------------------------------------------------------------------------ annotations

def test_parse_voc_reads_every_box():
    xml = (b"<annotation><size><width>50</width><height>40</height><depth>3</depth></size>"
           b"<object><name>a</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>35</ymax>"
           b"</bndbox></object><object><name>b</name><bndbox><xmin>5.0</xmin><ymin>6</ymin><xmax>49</xmax>"
           b"<ymax>39</ymax></bndbox></object></annotation>")
    ann = parse_annotation_bytes(xml)
    assert (ann.width, ann.height, ann.depth) == (50, 40, 3)
    assert ann.boxes == [Box("a", 1, 2, 30, 35), Box("b", 5, 6, 49, 39)]
    for bad in (b"<annotation><size>", b"<notvoc/>", b"<annotation><size><width>x</width><height>1</height></size>"
                b"</annotation>"):
        with pytest.raises(AnnotationError):
            parse_annotation_bytes(bad)


def test_box_clamp_and_half_open_width():
    assert Box("d", -5, 3, 120, 90).clamp(100, 80) == Box("d", 0, 3, 100, 80)
    assert Box("d", 0, 0, 10, 10).width == 10  # [xmin, xmax): xmax - xmin, as PIL's crop
    empty = Box("d", 150, 150, 200, 200).clamp(100, 100)
    assert empty.width == 0 and empty.height == 0


# ------------------------------------------------------------------------------------------ the report

def test_mixed_inputs_report_every_reason(dogs_cfg, dogs_mixed_root):
    folder = P.ensure_prepared(cfg_for(dogs_cfg, dogs_mixed_root), progress=False)
    report = P.read_report(folder)
    for key, value in MIXED_EXPECTED.items():
        assert report[key] == value, key
    images = torch.load(folder / "images.pt", weights_only=True)
    assert images.dtype == torch.uint8 and images.shape == (7, 3, 64, 64)
    manifest = P.read_manifest(folder)
    assert [int(r["index"]) for r in manifest] == list(range(7))
    first = manifest[0]
    assert (first["image_id"], first["breed"], first["wnid"]) == ("n00000001_1", "Alpha_dog", "n00000001")
    assert (first["xmin"], first["ymin"], first["xmax"], first["ymax"]) == ("40", "30", "140", "130")
    assert (first["width"], first["height"]) == ("200", "160")
    clamped = next(r for r in manifest if r["image_id"] == "n00000001_4")
    assert (clamped["xmax"], clamped["ymax"]) == ("160", "160")  # the box was cut to the image
    with open(folder / "dropped.csv") as fh:
        reasons = sorted(r["reason"] for r in csv.DictReader(fh))
    assert reasons.count("aspect") == 1 and reasons.count("unreadable_image") == 2
    # the converted images are RGB crops that look like their source, not black or inverted
    gray = next(r for r in manifest if r["image_id"] == "n00000002_2")
    crop = images[int(gray["index"])]
    assert (crop[0] == crop[1]).all() and (crop[1] == crop[2]).all() and crop.float().mean() > 20


def test_crop_coordinates_and_resize_match_pil(dogs_cfg, tmp_path):
    """A red box on blue: the crop is red all over; with draft off it equals PIL's own Lanczos resize."""
    root = tmp_path / "dogs"
    pixels = np.zeros((200, 240, 3), np.uint8)
    pixels[...] = (0, 0, 255)
    pixels[40:140, 60:160] = (255, 0, 0)  # rows ymin..ymax-1, cols xmin..xmax-1
    dogs_add(root, "n00000009-Red_dog", "r1", 240, 200, [(60, 40, 160, 140)], pixels=pixels, fmt="PNG")
    cfg = cfg_for(dogs_cfg, root, image_size=32)
    images = P.load_images(cfg, progress=False)
    crop = images[0].permute(1, 2, 0).numpy().astype(int)
    assert images.shape == (1, 3, 32, 32)
    # inside, away from the filter's reach at the border: pure red
    assert (abs(crop[2:-2, 2:-2] - [255, 0, 0]) <= 2).all()
    with Image.open(root / "Images/n00000009-Red_dog/r1.jpg") as im:
        ref = np.asarray(im.convert("RGB").resize((32, 32), Image.Resampling.LANCZOS, box=(60, 40, 160, 140)))
    assert (crop == ref).all()


def test_draft_decode_stays_close_to_full_decode(dogs_cfg, tmp_path):
    root = tmp_path / "dogs"
    dogs_add(root, "n00000005-Big_dog", "big", 1024, 768, [(100, 50, 900, 740)], seed=3)
    cfg = cfg_for(dogs_cfg, root)
    draft = P.ensure_prepared(cfg, progress=False)
    full = P.ensure_prepared(cfg, progress=False, draft_margin=0)
    assert draft != full  # the margin is part of the cache key
    assert P.read_report(draft)["decoded_at_scale"] == {"8": 1}  # 690 px box: 86 px at 1/8 >= 64
    assert P.read_report(full)["decoded_at_scale"] == {"1": 1}
    a = torch.load(draft / "images.pt", weights_only=True).int()
    b = torch.load(full / "images.pt", weights_only=True).int()
    diff = (a - b).abs().float()
    assert diff.mean() < 2.0 and diff.max() < 40


def test_whole_kind_needs_no_annotation(dogs_cfg, dogs_mixed_root):
    folder = P.ensure_prepared(cfg_for(dogs_cfg, dogs_mixed_root, image_size=16), "whole", progress=False)
    report = P.read_report(folder)
    # 16 image files, 2 unreadable (truncated, not an image); annotations play no part
    assert (report["images"], report["kept"], report["images_skipped"]) == (16, 14, {"unreadable_image": 2})
    images = torch.load(folder / "images.pt", weights_only=True)
    assert images.shape == (14, 3, 16, 16)
    row = P.read_manifest(folder)[0]
    assert (row["xmin"], row["ymin"], row["xmax"], row["ymax"]) == ("0", "0", row["width"], row["height"])
    # the filters do not change the whole set
    again = P.ensure_prepared(cfg_for(dogs_cfg, dogs_mixed_root, image_size=16, min_box_side=99), "whole",
                              progress=False)
    assert again == folder


def test_min_box_side_is_the_low_quality_rule(dogs_cfg, dogs_clean_root):
    cfg = cfg_for(dogs_cfg, dogs_clean_root, min_box_side=101)  # the boxes are 100 x 100
    with pytest.raises(DataError, match="too_small 6"):
        P.ensure_prepared(cfg, progress=False)
    folder = P.ensure_prepared(cfg_for(dogs_cfg, dogs_clean_root, min_box_side=100), progress=False)
    assert P.read_report(folder)["kept"] == 6


# ------------------------------------------------------------------------------------------ cache, determinism

def test_same_inputs_same_bytes_whatever_the_workers(dogs_cfg, dogs_mixed_root, tmp_path):
    one = P.ensure_prepared(cfg_for(dogs_cfg, dogs_mixed_root, cache_dir=str(tmp_path / "c1"), workers=1),
                            progress=False)
    two = P.ensure_prepared(cfg_for(dogs_cfg, dogs_mixed_root, cache_dir=str(tmp_path / "c2"), workers=2),
                            progress=False)
    assert one.name == two.name  # workers are not part of the key
    for name in ("images.pt", "manifest.csv", "dropped.csv", "report.json"):
        assert (one / name).read_bytes() == (two / name).read_bytes(), name


def test_cache_is_reused_and_rebuilt_when_inputs_or_settings_change(dogs_cfg, dogs_clean_root):
    cfg = cfg_for(dogs_cfg, dogs_clean_root)
    folder = P.ensure_prepared(cfg, progress=False)
    stamp = (folder / "images.pt").stat().st_mtime_ns, (folder / "images.pt").stat().st_ino
    assert P.ensure_prepared(cfg, progress=False) == folder
    assert ((folder / "images.pt").stat().st_mtime_ns, (folder / "images.pt").stat().st_ino) == stamp
    # a changed setting: another folder
    assert P.ensure_prepared(cfg_for(dogs_cfg, dogs_clean_root, image_size=32), progress=False) != folder
    assert P.ensure_prepared(cfg_for(dogs_cfg, dogs_clean_root, max_aspect=1.3), progress=False) != folder
    # a changed input file: another folder
    ann = next((dogs_clean_root / "Annotation").rglob("img_0"))
    ann.write_text(ann.read_text().replace("<xmin>10</xmin>", "<xmin>11</xmin>"))
    changed = P.ensure_prepared(cfg, progress=False)
    assert changed != folder and P.read_manifest(changed)[0]["xmin"] == "11"
    # an incomplete folder is rebuilt, no stray temporary folders are left
    (changed / "report.json").unlink()
    assert P.ensure_prepared(cfg, progress=False) == changed and (changed / "report.json").exists()
    assert not [p for p in Path(cfg.cache_dir).iterdir() if p.name.startswith(".")]


def test_force_rebuilds(dogs_cfg, dogs_clean_root):
    cfg = cfg_for(dogs_cfg, dogs_clean_root)
    folder = P.ensure_prepared(cfg, progress=False)
    before = (folder / "images.pt").read_bytes()
    ino = (folder / "images.pt").stat().st_ino
    assert P.ensure_prepared(cfg, progress=False, force=True) == folder
    assert (folder / "images.pt").read_bytes() == before and (folder / "images.pt").stat().st_ino != ino


def test_load_images_is_uint8_nchw(dogs_cfg, dogs_clean_root):
    images = P.load_images(cfg_for(dogs_cfg, dogs_clean_root, image_size=24), progress=False)
    assert images.dtype == torch.uint8 and images.shape == (6, 3, 24, 24)


# ------------------------------------------------------------------------------------------ roots and errors

def test_missing_images_folder_is_one_clear_error(dogs_cfg, tmp_path):
    with pytest.raises(DataError, match="ganlab data fetch") as info:
        P.ensure_prepared(cfg_for(dogs_cfg, tmp_path / "nowhere"), progress=False)
    assert "GANLAB_DATA_ROOT" in str(info.value)
    (tmp_path / "only_images" / "Images").mkdir(parents=True)
    with pytest.raises(DataError, match="annotation"):
        P.ensure_prepared(cfg_for(dogs_cfg, tmp_path / "only_images"), progress=False)


def test_env_root_overrides_config(dogs_cfg, dogs_clean_root, monkeypatch):
    cfg = cfg_for(dogs_cfg, Path("/does/not/exist"))
    assert P.data_root(cfg) == Path("/does/not/exist")
    monkeypatch.setenv("GANLAB_DATA_ROOT", str(dogs_clean_root))
    assert P.data_root(cfg) == dogs_clean_root
    assert P.load_images(cfg, progress=False).shape[0] == 6


# ------------------------------------------------------------------------------------------ the CLI

def test_cli_prepare_with_overrides(dogs_cfg, dogs_mixed_root, tmp_path, capsys):
    cache = tmp_path / "cli-cache"
    rc = run_cli(["data", "prepare", "--root", str(dogs_mixed_root), "--cache-dir", str(cache), "--size", "32",
                  "--workers", "1", "--no-progress", "--kind", "both"])
    out = capsys.readouterr().out
    assert rc == 0 and "crops: kept 7 of 14 boxes in 16 images" in out and "whole: kept 14 of 16" in out
    (crops,) = cache.glob("crops-32px-*")
    assert torch.load(crops / "images.pt", weights_only=True).shape == (7, 3, 32, 32)


def test_cli_prepare_reads_the_config_data_table(dogs_cfg, dogs_clean_root, tmp_path, capsys):
    toml = tmp_path / "exp.toml"
    toml.write_text(f'name = "x"\n[data]\nroot = "{dogs_clean_root}"\ncache_dir = "{tmp_path / "c"}"\n'
                    'image_size = 16\nworkers = 1\n')
    assert run_cli(["data", "prepare", str(toml), "--no-progress"]) == 0
    (folder,) = (tmp_path / "c").glob("crops-16px-*")
    assert P.read_report(folder)["kept"] == 6


def test_cli_config_override_error_is_a_user_error(dogs_cfg, dogs_clean_root, tmp_path):
    from ganlab.errors import UserError

    toml = tmp_path / "exp.toml"
    toml.write_text(f'[data]\nroot = "{dogs_clean_root}"\ncache_dir = "{tmp_path / "c"}"\nworkers = 1\n')
    with pytest.raises(UserError, match="too_small"):
        run_cli(["data", "prepare", str(toml), "--min-box-side", "101", "--no-progress"])
    with pytest.raises(UserError, match="image_size"):
        run_cli(["data", "prepare", "--size", "2", "--no-progress"])


def test_cli_missing_folder_exits_2(tmp_path, monkeypatch, capsys):
    from ganlab.cli import main

    monkeypatch.delenv("GANLAB_DATA_ROOT", raising=False)
    rc = main(["data", "prepare", "--root", str(tmp_path / "none"), "--cache-dir", str(tmp_path / "c"),
               "--no-progress"])
    assert rc == 2 and "ganlab data fetch" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ the real subset

REAL = os.environ.get("GANLAB_TEST_DOGS", "")


@pytest.mark.skipif(not REAL, reason="set GANLAB_TEST_DOGS to the real Stanford Dogs subset to run this")
def test_real_subset_counts(tmp_path, monkeypatch):
    """The 2,838 real images: 3,040 boxes, 1,364 pass the [0.8, 1.25] aspect filter, and none of those has a
    side under 32 pixels (the smallest box of the subset, 18 pixels, is dropped by the aspect filter first),
    so all 1,364 are kept."""
    from ganlab.config import DataConfig

    monkeypatch.delenv("GANLAB_DATA_ROOT", raising=False)
    cfg = DataConfig(root=REAL, cache_dir=str(tmp_path / "cache"), workers=0)
    folder = P.ensure_prepared(cfg, progress=False)
    report = P.read_report(folder)
    assert report["images"] == 2838 and report["boxes"] == 3040
    assert report["boxes_pass_aspect"] == 1364
    assert report["boxes_dropped"] == {"empty_box": 0, "aspect": 1676, "too_small": 0, "image_skipped": 0}
    assert report["kept"] == 1364 and sum(report["images_skipped"].values()) == 0
    assert report["annotations_without_image"] == 0 and report["converted_to_rgb"] == {}
    images = torch.load(folder / "images.pt", weights_only=True)
    assert images.shape == (1364, 3, 64, 64) and images.dtype == torch.uint8
    assert len(P.read_manifest(folder)) == 1364
    assert json.loads((folder / "settings.json").read_text())["shape"] == [1364, 3, 64, 64]
