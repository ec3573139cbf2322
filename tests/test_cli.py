"""The command line as a user meets it: exit codes, one-line errors, no tracebacks."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from ganlab.cli import main

ROOT = Path(__file__).resolve().parents[1]


def ganlab(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "ganlab", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_help_lists_every_subcommand():
    out = ganlab("--help").stdout
    for cmd in ("run", "plugins", "data", "eval", "ablate", "tune", "new-trick"):
        assert cmd in out


def test_bad_config_is_one_line_exit_2_no_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('extends = "%s"\n[train]\nlr_g = -1\n' % (ROOT / "experiments" / "baseline.toml"))
    proc = ganlab("run", str(bad))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0
    assert "bad.toml: train.lr_g: must be > 0.0, got -1" in proc.stderr


def test_unknown_trick_lists_known_ones(tmp_path, capsys):
    bad = tmp_path / "t.toml"
    bad.write_text("[tricks.mixup]\nenabled = true\n")
    assert main(["run", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "tricks.mixup: unknown trick; known tricks are: activation, augment, batch_norm, ema, input_noise, soft_labels, spectral_norm" in err


def test_missing_dataset_says_how_to_get_it(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("GANLAB_DATA_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    code = main(["run", str(ROOT / "experiments" / "quick.toml"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "ganlab data fetch" in err


def test_run_resume_and_dry_run(tmp_path, capsys):
    images = tmp_path / "imgs.pt"
    torch.save(torch.randint(0, 256, (24, 3, 16, 16), dtype=torch.uint8), images)
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(f'''name = "cli"\nruns_dir = "{tmp_path / 'runs'}"\n
[model]\nlatent_dim = 8\ng_width = 4\nd_width = 4\n
[data]\nimage_size = 16\ntensor = "{images}"\n
[train]\nepochs = 2\nbatch_size = 8\nlog_every = 1\ncheckpoint_every = 1\nmax_steps = 3\n
[tricks.soft_labels]\n''')
    assert main(["run", str(cfg), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "[tricks.soft_labels]" in out and "real = 0.8" in out and "parameters" in out
    assert not (tmp_path / "runs").exists()
    assert main(["run", str(cfg), "--quiet"]) == 0
    run_dir = tmp_path / "runs" / "cli" / "00000-cli"
    assert [json.loads(x)["step"] for x in (run_dir / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    assert main(["run", "--resume", str(run_dir), "--set", "train.max_steps=6", "--quiet"]) == 0
    assert [json.loads(x)["step"] for x in (run_dir / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4, 5, 6]
    assert main(["run", "--resume", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_plugins_lists_tricks_sources_and_hooks(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    for name in ("input_noise", "soft_labels", "batch_norm", "activation", "augment", "builtin", "real_batch",
                 "d_targets", "make_norm"):
        assert name in out


def test_plugins_events_shows_firing_order(capsys):
    assert main(["plugins", str(ROOT / "experiments" / "baseline.toml"), "--events"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("ganlab_real_batch"))
    assert line.split(None, 1)[1].strip() == "augment -> input_noise"
