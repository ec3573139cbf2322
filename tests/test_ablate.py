"""`ganlab ablate`: real tiny runs (16x16, widths 4, 2 epochs of 6 steps), scored with the metrics package's fast
stand-in feature network (Scoring("stand-in")) instead of Inception: the ablation machinery is under test here,
the metric in test_metrics_* (and the real-Inception path of sweeps in test_tune's CLI test).
"""
from __future__ import annotations

import csv
import io
import json
import statistics
import sys
import tomllib
from pathlib import Path

import pytest
import torch

from ganlab import sweep
from ganlab.ablate import ablate, choose_tricks, plan_variants
from ganlab.config import build_config
from ganlab.errors import UserError
from ganlab.sweep import Scoring

sys.path.insert(0, str(Path(__file__).parent))
from conftest import tiny_raw  # noqa: E402

STAND_IN = Scoring("stand-in")

# A local (third-party) trick that makes the run diverge when it is on.
SABOTEUR = '''
from ganlab import Trick, hookimpl


class Saboteur(Trick):
    name = "saboteur"

    @hookimpl
    def ganlab_after_d_loss(self, state):
        if state.step >= 2:
            state.d_loss = state.d_loss * float("nan")
'''


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def make(tmp_path):
    g = torch.Generator().manual_seed(123)
    images = tmp_path / "images.pt"
    torch.save(torch.randint(0, 256, (48, 3, 16, 16), generator=g, dtype=torch.uint8), images)

    def make_config(tricks=None, **sections):
        tricks = {"soft_labels": {}, "input_noise": {}} if tricks is None else tricks
        raw = tiny_raw(tmp_path, tricks=tricks, data={"tensor": str(images), "cache_dir": str(tmp_path / "cache")},
                       eval={"every_epochs": 1, "n_images": 16, "eps": 0.0}, **sections)
        return build_config(raw, source=str(tmp_path / "tiny.toml"))

    return make_config


def read_csv(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_variants_of_each_mode():
    tricks = ["augment", "input_noise", "soft_labels"]
    names = lambda mode: [v.name for v in plan_variants(tricks, mode)]  # noqa: E731
    assert names("leave-one-out") == ["baseline", "no-augment", "no-input_noise", "no-soft_labels"]
    assert names("add-one-in") == ["baseline", "bare", "only-augment", "only-input_noise", "only-soft_labels"]
    assert names("both") == names("leave-one-out") + names("add-one-in")[1:]
    v = {v.name: v for v in plan_variants(tricks, "both")}
    assert v["no-input_noise"].on == ("augment", "soft_labels") and v["bare"].on == ()
    assert v["only-soft_labels"].on == ("soft_labels",) and v["baseline"].on == tuple(tricks)
    with pytest.raises(UserError, match="--mode must be one of"):
        plan_variants(tricks, "all")


def test_which_tricks_are_ablated(make):
    config = make({"soft_labels": {}, "input_noise": {"enabled": False}, "activation": {}})
    assert choose_tricks(config, None) == ["soft_labels", "activation"]  # the enabled ones, in run order
    assert choose_tricks(config, ["augment", "activation", "input_noise"]) == ["input_noise", "activation", "augment"]
    with pytest.raises(UserError, match="--tricks: unknown trick 'mixup'; known tricks are: activation"):
        choose_tricks(config, ["mixup"])
    with pytest.raises(UserError, match="no enabled trick to ablate"):
        choose_tricks(make({}), None)


def test_ablation_runs_every_variant_and_seed_and_writes_the_tables(make):
    config = make()
    res = ablate(config, seeds=2, mode="both", scoring=STAND_IN, progress=False)
    assert res.out.parent == Path(config.runs_dir) / "tiny" and res.out.name.startswith("ablate-")
    assert res.complete and not res.interrupted and res.trained == 12 and res.skipped == 0
    expected = {"baseline": (True, True), "no-soft_labels": (False, True), "no-input_noise": (True, False),
                "bare": (False, False), "only-soft_labels": (True, False), "only-input_noise": (False, True)}
    for variant, (soft, noise) in expected.items():
        for seed in (0, 1):
            rd = res.out / variant / f"seed-{seed}"
            cfg = tomllib.loads((rd / "config.toml").read_text())
            assert cfg["seed"] == seed and cfg["name"] == f"tiny-{variant}"
            assert cfg["tricks"]["soft_labels"]["enabled"] is soft
            assert cfg["tricks"]["input_noise"]["enabled"] is noise
            result = json.loads((rd / "result.json").read_text())
            assert result["status"] == "finished" and result["step"] == 12
            last_eval = [json.loads(x) for x in (rd / "metrics.jsonl").read_text().splitlines() if "mifid" in x][-1]
            assert result["mifid"] == last_eval["mifid"] and last_eval["step"] == 12  # the end of the budget
    # seeds change the runs
    a, b = (json.loads((res.out / "baseline" / f"seed-{s}" / "result.json").read_text())["mifid"] for s in (0, 1))
    assert a != b
    # runs.csv: one row per run; summary.csv: mean +- std per variant and the change against the baseline
    runs = read_csv(res.out / "runs.csv")
    assert len(runs) == 12 and [r["variant"] for r in runs[:4]] == ["baseline", "baseline", "no-soft_labels",
                                                                    "no-soft_labels"]
    summary = read_csv(res.out / "summary.csv")
    assert [r["variant"] for r in summary] == list(expected)
    by = {r["variant"]: r for r in summary}
    for variant in expected:
        values = [float(r["mifid"]) for r in runs if r["variant"] == variant]
        assert float(by[variant]["mifid_mean"]) == pytest.approx(statistics.fmean(values))
        assert float(by[variant]["mifid_std"]) == pytest.approx(statistics.stdev(values))
    base = float(by["baseline"]["mifid_mean"])
    assert float(by["no-soft_labels"]["delta_baseline"]) == pytest.approx(float(by["no-soft_labels"]["mifid_mean"]) - base)
    assert float(by["only-input_noise"]["delta_bare"]) == pytest.approx(
        float(by["only-input_noise"]["mifid_mean"]) - float(by["bare"]["mifid_mean"]))
    assert by["baseline"]["delta_baseline"] == "" and by["no-soft_labels"]["delta_bare"] == ""
    md = (res.out / "summary.md").read_text()
    assert md.startswith("# Ablation of tiny: both, 2 seeds (0, 1)")
    assert "| variant | tricks on | scored | MiFID mean ± std | change vs baseline |" in md
    assert f"| baseline | soft_labels+input_noise | 2/2 | {base:.2f} ± " in md
    assert "## What each trick is worth" in md and "| soft_labels |" in md
    assert (res.out / "ablation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plan = json.loads((res.out / "plan.json").read_text())
    assert plan["seeds"] == [0, 1] and plan["tricks"] == ["soft_labels", "input_noise"]
    assert {e["trick"] for e in res.effects} == {"soft_labels", "input_noise"}


def test_rerun_resumes_interrupted_runs_and_skips_finished_ones(make, interrupt_once):
    config = make()
    first = ablate(config, seeds=1, mode="leave-one-out", scoring=STAND_IN, progress=False,
                   extra_plugins=[interrupt_once(8)])
    assert first.interrupted and first.runs == []  # the baseline was interrupted at step 9, nothing else ran
    rd = first.out / "baseline" / "seed-0"
    assert json.loads((rd / "status.json").read_text())["status"] == "interrupted"
    assert not (rd / "result.json").exists() and not (first.out / "no-soft_labels").exists()

    second = ablate(config, seeds=1, mode="leave-one-out", scoring=STAND_IN, progress=False)
    assert second.out == first.out and second.resumed and second.complete
    assert second.trained == 3 and second.skipped == 0
    assert "resume at step 9" in (rd / "log.txt").read_text()
    baseline = json.loads((rd / "result.json").read_text())
    assert baseline["resumed_from"] == 9 and baseline["status"] == "finished" and baseline["step"] == 12

    stamp = {p: p.stat().st_mtime_ns for p in first.out.rglob("result.json")}
    third = ablate(config, seeds=1, mode="leave-one-out", scoring=STAND_IN, progress=False)
    assert third.out == first.out and third.trained == 0 and third.skipped == 3
    assert {p: p.stat().st_mtime_ns for p in first.out.rglob("result.json")} == stamp
    assert [r["variant"] for r in read_csv(third.out / "summary.csv")] == ["baseline", "no-soft_labels",
                                                                           "no-input_noise"]
    # another plan is another ablation folder
    other = ablate(config, seeds=1, mode="add-one-in", tricks=["soft_labels"], scoring=STAND_IN, progress=False)
    assert other.out != first.out and other.trained == 3
    # the resumed baseline scores exactly as an uninterrupted one
    assert json.loads((other.out / "baseline" / "seed-0" / "result.json").read_text())["mifid"] == \
        baseline["mifid"]


def test_parallel_processes_give_the_serial_results(make, tmp_path):
    config = make()
    serial = ablate(config, seeds=1, mode="leave-one-out", scoring=STAND_IN, progress=False, out=tmp_path / "serial")
    parallel = ablate(config, seeds=1, mode="leave-one-out", jobs=2, scoring=STAND_IN, progress=False,
                      out=tmp_path / "parallel")
    assert parallel.complete and parallel.trained == 3
    key = lambda rows: {(r["variant"], r["seed"]): (r["status"], r["step"], r["mifid"]) for r in rows}  # noqa: E731
    assert key(parallel.runs) == key(serial.runs)


def test_cli_ablate_with_a_local_trick_that_diverges(make, tmp_path, capsys, monkeypatch):
    from ganlab.cli import main

    monkeypatch.setattr(sweep, "DEFAULT_SCORING", STAND_IN)  # the CLI's plumbing; Inception: see test_tune
    plugin = tmp_path / "saboteur.py"
    plugin.write_text(SABOTEUR)
    images = make().data.tensor
    cfg = tmp_path / "abl.toml"
    cfg.write_text(f'''name = "abl"
runs_dir = "{tmp_path / 'runs'}"
device = "cpu"
plugins = ["saboteur.py"]
[model]
latent_dim = 8
g_width = 4
d_width = 4
[data]
image_size = 16
tensor = "{images}"
cache_dir = "{tmp_path / 'cache'}"
[train]
epochs = 2
batch_size = 8
log_every = 2
sample_every = 0
n_samples = 4
[eval]
every_epochs = 0
n_images = 16
eps = 0.0
[tricks.soft_labels]
[tricks.saboteur]
''')
    code = main(["ablate", str(cfg), "--seeds", "1", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "ablation of abl (leave-one-out, seeds [0])" in out
    assert "what each trick is worth" in out
    folder = next((tmp_path / "runs" / "abl").glob("ablate-*"))
    summary = {r["variant"]: r for r in read_csv(folder / "summary.csv")}
    assert list(summary) == ["baseline", "no-soft_labels", "no-saboteur"]
    assert summary["baseline"]["status"] == "diverged 1" and summary["baseline"]["scored"] == "0"
    assert summary["no-saboteur"]["status"] == "finished 1" and summary["no-saboteur"]["mifid_mean"]
    # every_epochs = 0: scored once, at the end
    evals = [x for x in (folder / "no-saboteur" / "seed-0" / "metrics.jsonl").read_text().splitlines() if "mifid" in x]
    assert len(evals) == 1 and json.loads(evals[0])["step"] == 12
    assert f"reports: {folder}/summary.md" in out
    # user mistakes: one line, exit 2
    assert main(["ablate", str(cfg), "--tricks", "mixup"]) == 2
    assert "--tricks: unknown trick 'mixup'" in capsys.readouterr().err
    assert main(["ablate", str(cfg), "--seeds", "2", "--out", str(folder)]) == 2
    assert "holds an ablation with another plan" in capsys.readouterr().err
