"""`ganlab eval` end to end, with the fast stand-in extractor in place of the Inception network."""
from __future__ import annotations

import json
import sys
import types
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from ganlab.cli import main
from ganlab.config import build_config, dump_toml
from ganlab.metrics import features
from ganlab.metrics.evaluate import load_image_folder, save_pngs


@pytest.fixture(autouse=True)
def stand_in(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # a default cache dir (data/prepared/...) lands in the test's folder
    stand_in_extractor = features.stand_in_extractor  # built from the real class, captured before patching
    monkeypatch.setattr(features, "InceptionFeatures",
                        lambda device="cpu", batch_size=50, **kw: stand_in_extractor(device, batch_size, dim=64))


def write_pngs(folder, n, seed, size=64, mode="RGB"):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        a = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(a, "RGB").convert(mode).save(folder / f"{i:03d}.png")
    return folder


def run_json(capsys, *argv):
    code = main(["eval", *argv, "--json", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out), err


def test_images_against_reference_folder(tmp_path, capsys):
    imgs, ref = write_pngs(tmp_path / "gen", 8, 1), write_pngs(tmp_path / "ref", 10, 2)
    cache = tmp_path / "cache"
    r, _ = run_json(capsys, "--images", str(imgs), "--reference", str(ref), "--cache-dir", str(cache))
    assert set(r) >= {"fid", "d", "d_thr", "mifid", "n", "reference", "n_reference"}
    assert r["n"] == 8 and r["n_reference"] == 10 and r["reference_cached"] is False
    assert r["mifid"] == pytest.approx(r["fid"] / (r["d_thr"] + 1e-15))
    r2, _ = run_json(capsys, "--images", str(imgs), "--reference", str(ref), "--cache-dir", str(cache))
    assert r2["reference_cached"] is True and r2["fid"] == r["fid"]
    # --reference alone: compute (here: read) and cache the reference statistics
    r3, _ = run_json(capsys, "--reference", str(ref), "--cache-dir", str(cache))
    assert r3["reference_cached"] is True and r3["n_reference"] == 10
    # human-readable output
    assert main(["eval", "--images", str(imgs), "--reference", str(ref), "--no-cache", "--no-progress"]) == 0
    assert "MiFID" in capsys.readouterr().out


def test_modes_and_sizes_are_converted_and_said(tmp_path, capsys):
    gen = write_pngs(tmp_path / "gen", 4, 1, mode="L")
    write_pngs(gen / "sub", 2, 3, size=80, mode="RGBA")
    ref = write_pngs(tmp_path / "ref", 5, 2)
    r, err = run_json(capsys, "--images", str(gen), "--reference", str(ref), "--no-cache")
    assert r["n"] == 6
    assert "not RGB (L x4, RGBA x2) and were converted to RGB" in err
    assert "were not 64x64 (80x80 x2) and were resized to 64x64" in err
    assert len(r["notes"]) == 2


@pytest.mark.parametrize("setup, message", [
    (lambda p: p / "missing", "no such folder"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "no images"),
    (lambda p: write_pngs(p / "one", 1, 0), "at least 2"),
    (lambda p: ((p / "bad").mkdir(), (p / "bad" / "x.png").write_text("not a png"), p / "bad")[-1],
     "not a readable image"),
])
def test_bad_folders_are_clear_errors(tmp_path, capsys, setup, message):
    ref = write_pngs(tmp_path / "ref", 4, 2)
    code = main(["eval", "--images", str(setup(tmp_path)), "--reference", str(ref), "--no-cache", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_argument_errors(tmp_path, capsys):
    for argv in (["eval"], ["eval", "x", "--images", "y"], ["eval", "--images", str(tmp_path)],
                 ["eval", str(tmp_path), "--zip"], ["eval", str(tmp_path), "--n", "1"],
                 ["eval", str(tmp_path / "nope")]):
        assert main(argv) == 2, argv
        assert capsys.readouterr().err.startswith("ganlab: error:")


def make_run(tmp_path, image_size=64):
    from ganlab.models import build_models
    from ganlab.plugins import make_plugin_manager

    raw = {"name": "t", "device": "cpu", "seed": 3, "model": {"latent_dim": 8, "g_width": 4, "d_width": 4},
           "data": {"image_size": image_size, "cache_dir": str(tmp_path / "prepared")},
           "eval": {"batch_size": 4, "reference": "train"}, "tricks": {}}
    config = build_config(raw, source="t")
    G, _ = build_models(config, make_plugin_manager(config))
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.toml").write_text(dump_toml(config.to_dict()))
    torch.save({"G": G.state_dict(), "config": config.to_dict(), "step": 7}, run / "checkpoints" / "latest.pt")
    return run


def test_run_dir_generates_scores_and_saves_pngs(tmp_path, capsys, monkeypatch):
    run = make_run(tmp_path)
    ref_imgs = torch.randint(0, 256, (9, 3, 64, 64), dtype=torch.uint8)
    kinds = []
    monkeypatch.setitem(sys.modules, "ganlab.data.prepare",
                        types.SimpleNamespace(load_images=lambda cfg, kind: kinds.append(kind) or ref_imgs))
    r, _ = run_json(capsys, str(run), "--n", "6", "--save-png", str(tmp_path / "png"))
    assert kinds == ["crops"] and r["reference"] == "train" and r["n_reference"] == 9
    assert r["n"] == 6 and r["step"] == 7 and r["seed"] == 3 + 2  # the training-time evaluation's stream
    pngs = sorted((tmp_path / "png").glob("*.png"))
    assert [p.name for p in pngs] == [f"{i:05d}.png" for i in range(6)]
    assert Image.open(pngs[0]).size == (64, 64) and Image.open(pngs[0]).mode == "RGB"
    # the saved PNGs are exactly what was scored: scoring them as a folder gives the same numbers
    r_png, _ = run_json(capsys, "--images", str(tmp_path / "png"), "--reference", str(write_pngs(tmp_path / "r", 3, 0)),
                        "--no-cache")
    r_again, _ = run_json(capsys, str(run), "--n", "6", "--reference", str(tmp_path / "r"))
    assert r_png["fid"] == pytest.approx(r_again["fid"], rel=1e-12)
    # a checkpoint file works as well, and --zip writes the submission file
    r3, _ = run_json(capsys, str(run / "checkpoints" / "latest.pt"), "--n", "6", "--save-png", str(tmp_path / "z"),
                     "--zip", "--reference", str(tmp_path / "r"))
    assert r3["fid"] == r_again["fid"]  # same seed, same images
    with zipfile.ZipFile(tmp_path / "z" / "images.zip") as zf:
        assert sorted(zf.namelist()) == [f"{i:05d}.png" for i in range(6)]
    zipped, _ = load_image_folder(tmp_path / "z" / "images.zip")
    folder, _ = load_image_folder(tmp_path / "png")
    assert torch.equal(zipped, folder)
    # --checkpoint best is missing here: a clear error naming what is there
    assert main(["eval", str(run), "--checkpoint", "best", "--no-progress"]) == 2
    assert "latest.pt" in capsys.readouterr().err


def test_not_a_checkpoint(tmp_path, capsys):
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"garbage")
    assert main(["eval", str(bad), "--no-progress"]) == 2
    assert "not a readable ganlab checkpoint" in capsys.readouterr().err
    torch.save({"D": {}}, bad)
    assert main(["eval", str(bad), "--no-progress"]) == 2
    assert "no generator weights" in capsys.readouterr().err


def test_save_pngs_roundtrip(tmp_path):
    imgs = torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8)
    save_pngs(imgs, tmp_path / "a")
    back, notes = load_image_folder(tmp_path / "a")
    assert torch.equal(back, imgs) and notes == []
