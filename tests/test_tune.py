"""`ganlab tune`: real Optuna studies (SQLite, PostgreSQL when GANLAB_TEST_POSTGRES is set), real trainer runs,
real worker processes. Trials are tiny (16x16, widths 4, 2-3 epochs of 6 steps) and, except in the CLI test,
scored with the metrics package's fast stand-in feature network instead of Inception (Scoring("stand-in")):
the machinery around MiFID is under test here, the metric itself in test_metrics_*.
"""
from __future__ import annotations

import json
import os
import sys
import tomllib
import uuid
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from ganlab.config import build_config, load_config
from ganlab.errors import ConfigError
from ganlab.sweep import Scoring
from ganlab.trainer import train
from ganlab.tune import open_storage, parse_tune, storage_url, study_counts, tune, tune_folder

sys.path.insert(0, str(Path(__file__).parent))
from conftest import tiny_raw  # noqa: E402

STAND_IN = Scoring("stand-in")

# A test trick: `level` sets how much the sampled images look like the (uniform noise) training images, so
# MiFID is predictable; `fail` makes the run diverge or raise.
QUALITY_PLUGIN = '''
from dataclasses import dataclass
import torch
from ganlab import Trick, hookimpl, opt


@dataclass
class QualityOptions:
    level: float = opt(1.0, "1: samples like the training set; 0: all black", min=0.0, max=1.0)
    fail: str = opt("none", "none, nan (diverge) or raise", choices=("none", "nan", "raise"))


class _Images(torch.nn.Module):
    def __init__(self, level, size):
        super().__init__()
        self.level, self.size = level, size

    def forward(self, z):
        g = torch.Generator().manual_seed(int(z.abs().sum().item() * 1000) % (2 ** 31))
        noise = torch.rand(z.shape[0], 3, self.size, self.size, generator=g) * 2 - 1
        return self.level * noise + (1 - self.level) * -1.0


class Quality(Trick):
    name = "quality"
    Options = QualityOptions

    @hookimpl
    def ganlab_sampling_generator(self, state):
        return _Images(self.options.level, state.config.data.image_size)

    @hookimpl
    def ganlab_after_d_loss(self, state):
        if self.options.fail == "nan" and state.step >= 2:
            state.d_loss = state.d_loss * float("nan")

    @hookimpl
    def ganlab_fake_batch(self, state):
        if self.options.fail == "raise" and state.step == 3:
            raise RuntimeError("quality says no")
'''


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def setup(tmp_path):
    """A tiny experiment (uniform-noise training images in a tensor file) and a `make(tune=..., **sections)`."""
    g = torch.Generator().manual_seed(123)
    images = tmp_path / "images.pt"
    torch.save(torch.randint(0, 256, (48, 3, 16, 16), generator=g, dtype=torch.uint8), images)
    plugin = tmp_path / "quality.py"
    plugin.write_text(QUALITY_PLUGIN)

    def make(tune_table: dict, tricks: dict | None = None, **sections) -> object:
        tricks = {"soft_labels": {}, "input_noise": {}} if tricks is None else tricks
        raw = tiny_raw(tmp_path, tricks=tricks, data={"tensor": str(images), "cache_dir": str(tmp_path / "cache")},
                       eval={"every_epochs": 1, "n_images": 16, "eps": 0.0}, plugins=[str(plugin)], **sections)
        raw["tune"] = tune_table
        return build_config(raw, source=str(tmp_path / "tiny.toml"))

    return make


def trials_of(config, name=None):
    spec = parse_tune(config)
    name = name or config.name
    url = storage_url(spec.options.storage, tune_folder(config, name))
    return optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)


# --- the [tune] table ---------------------------------------------------------------------------------------

def test_tune_table_is_validated_with_the_key_and_what_is_allowed(setup):
    cases = [
        ({"pruner": "asha"}, "tune.pruner: 'asha' is not allowed; choose one of 'median', 'hyperband', 'none'"),
        ({"trials": -1}, "tune.trials: must be >= 0"),
        ({"colour": 1}, "tune.colour: unknown key; the keys of [tune] are:"),
        ({"toggle": ["mixup"]}, "tune.toggle: unknown trick 'mixup'; known tricks are:"),
        ({"toggle": 3}, 'tune.toggle: expected "all" or a list of trick names'),
        ({"params": {"train.lr_g": {"low": 1e-3, "high": 1e-4}}}, "tune.params.train.lr_g: low must be below high"),
        ({"params": {"train.lr_g": {"low": 0.0, "high": 1e-3, "log": True}}},
         "tune.params.train.lr_g: a log range needs low > 0"),
        ({"params": {"train.lr_g": {"low": 0.0, "high": 1e-3}}},
         "tune.params.train.lr_g: 0.0 is not a valid value: must be > 0.0"),
        ({"params": {"train.lr_q": {"low": 0.1, "high": 1.0}}}, "tune.params.train.lr_q: no such config key"),
        ({"params": {"train.batch_size": {"low": 8, "high": 32.5}}},
         "tune.params.train.batch_size: train.batch_size is an integer"),
        ({"params": {"tricks.soft_labels.real": {"low": 0.5, "high": 1.5}}},
         "tune.params.tricks.soft_labels.real: 1.5 is not a valid value: must be >= 0.0 and <= 1.0"),
        ({"params": {"tricks.activation.g": {"choices": ["relu"]}}},
         "tune.params.tricks.activation.g: trick 'activation' has no [tricks.activation] table"),
        ({"params": {"tricks.input_noise.schedule": {"low": 0, "high": 1}}},
         "holds str values: give choices"),
        ({"params": {"tricks.input_noise.schedule": {"choices": ["linear", "sideways"]}}},
         "tune.params.tricks.input_noise.schedule: 'sideways' is not a valid value"),
        ({"params": {"tricks.soft_labels.enabled": {"choices": [True, False]}}},
         "switch tricks on and off with tune.toggle"),
        ({"params": {"train.lr_g": {"low": 1e-4, "high": 1e-3, "spread": 2}}}, "unknown key(s) spread"),
        ({"params": {"train.lr_g": 0.1}}, "tune.params.train.lr_g: expected a range"),
    ]
    for table, message in cases:
        with pytest.raises(ConfigError) as info:
            parse_tune(setup(table))
        assert message in str(info.value), (table, str(info.value))
        assert str(info.value).startswith(str(Path(setup({}).source)))


def test_search_space_forms_and_conditional_parameters(setup):
    config = setup({"toggle": "all", "params": {
        "train": {"lr_g": {"low": 1e-5, "high": 1e-3, "log": True}},       # nested table form
        "tricks.input_noise.std": {"low": 0.01, "high": 0.3},                  # quoted dotted key
        "train.batch_size": {"low": 4, "high": 8, "step": 4},
        "tricks.quality.level": {"choices": [0.5, 1.0]}}},
        tricks={"soft_labels": {}, "input_noise": {}, "quality": {"enabled": False}})
    spec = parse_tune(config)
    assert spec.toggle == ["soft_labels", "input_noise", "quality"]  # "all": every trick with a table
    kinds = {p.name: (p.kind, p.trick) for p in spec.params}
    assert kinds == {"train.lr_g": ("float", None), "tricks.input_noise.std": ("float", "input_noise"),
                     "train.batch_size": ("int", None), "tricks.quality.level": ("categorical", "quality")}
    # with input_noise off its std is not sampled (a conditional parameter)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    from ganlab.tune import full_base, sample

    base = full_base(config, spec.toggle)
    seen = set()
    for _ in range(12):
        trial = study.ask()
        raw = sample(trial, spec, base)
        build_config(raw)  # every sample is a valid config
        on = raw["tricks"]["input_noise"]["enabled"]
        assert ("tricks.input_noise.std" in trial.params) == on
        seen.add(on)
        study.tell(trial, 1.0)
    assert seen == {True, False}


def test_default_space_without_a_tune_table(setup):
    spec = parse_tune(setup({}))
    assert spec.default_space and spec.toggle == ["soft_labels", "input_noise"]
    assert [p.name for p in spec.params] == ["train.lr_g", "train.lr_d", "train.beta1"]


# --- real studies -------------------------------------------------------------------------------------------

def test_real_sqlite_study_writes_results_and_a_runnable_best_toml(setup, tmp_path):
    config = setup({"toggle": ["soft_labels", "input_noise"], "startup_trials": 2, "pruner": "none",
                    "params": {"train.lr_g": {"low": 1e-4, "high": 1e-2, "log": True},
                               "tricks.input_noise.std": {"low": 0.01, "high": 0.3}}})
    res = tune(config, trials=5, scoring=STAND_IN, progress=False)
    folder = tmp_path / "runs" / "tiny" / "tune-tiny"
    assert res.folder == folder and (folder / "study.db").exists()
    trials = trials_of(config)
    assert [t.number for t in trials] == [0, 1, 2, 3, 4]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    # trial 0 is the config as written; each trial's run folder holds a finished run with its evaluations
    assert trials[0].user_attrs["baseline"] and trials[0].params == {
        "tricks.soft_labels.enabled": True, "tricks.input_noise.enabled": True, "train.lr_g": 5e-4,
        "tricks.input_noise.std": 0.1}
    for t in trials:
        rd = Path(t.user_attrs["run_dir"])
        assert rd == folder / f"trial-{t.number:05d}"
        assert json.loads((rd / "status.json").read_text())["status"] == "finished"
        evals = [json.loads(x) for x in (rd / "metrics.jsonl").read_text().splitlines() if "mifid" in x]
        assert [e["step"] for e in evals] == [6, 12]
        assert t.value == pytest.approx(evals[-1]["mifid"])  # the objective: MiFID at the end of the budget
        assert sorted(t.intermediate_values) == [1, 2]  # reported at step = epochs trained
        assert {"build", "train", "final_eval", "report"} <= set(t.user_attrs["timings"])
    # results
    best = min(trials, key=lambda t: t.value)
    assert res.results["best"].number == best.number
    rows = (folder / "trials.csv").read_text().splitlines()
    assert rows[0].startswith("number,state,mifid,epochs") and len(rows) == 6
    assert (folder / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    imp = json.loads((folder / "importances.json").read_text())
    assert imp["evaluator"] == "PedAnovaImportanceEvaluator" and imp["trials"] == 5
    assert set(imp["importances"]) <= set().union(*(t.params for t in trials))
    assert res.results["dashboard"] == f"optuna-dashboard sqlite:///{folder / 'study.db'}"
    # best.toml: the best trial's config, runnable as it is
    cfg = load_config(folder / "best.toml")
    assert cfg.name == "tiny-best" and cfg.train.lr_g == best.params["train.lr_g"]
    for t in ("soft_labels", "input_noise"):
        assert cfg.tricks[t]["enabled"] == best.params[f"tricks.{t}.enabled"]
    assert "tune" not in tomllib.loads((folder / "best.toml").read_text())
    quick = load_config(folder / "best.toml", ["eval.every_epochs=0"])  # no Inception here
    assert train(quick, quiet=True).status == "finished"


def test_pruning_really_prunes(setup):
    config = setup({"toggle": [], "pruner": "median", "prune_startup_trials": 1,
                    "params": {"tricks.quality.level": {"choices": [1.0, 0.0]}}},
                   tricks={"quality": {}}, train={"epochs": 3})
    spec = parse_tune(config)
    url = storage_url("", tune_folder(config, "tiny"))
    study = optuna.create_study(study_name="tiny", storage=open_storage(url), direction="minimize")
    for level in (1.0, 0.0, 1.0, 0.0):  # good, bad, good, bad
        study.enqueue_trial({"tricks.quality.level": level})
    assert spec.options.pruner == "median"
    tune(config, trials=4, scoring=STAND_IN, progress=False)
    trials = trials_of(config)
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.COMPLETE,
                                         TrialState.PRUNED]
    for t in trials[1::2]:  # the bad ones stop at their first evaluation: 1 epoch of 3
        rd = Path(t.user_attrs["run_dir"])
        assert list(t.intermediate_values) == [1] and t.user_attrs["pruned_at_epoch"] == 1
        status = json.loads((rd / "status.json").read_text())
        assert status["status"] == "stopped" and status["step"] == 6
        assert t.intermediate_values[1] > 2 * trials[0].intermediate_values[1]
    assert sorted(trials[0].intermediate_values) == [1, 2, 3]
    assert (Path(trials[0].user_attrs["run_dir"]) / "checkpoints" / "latest.pt").exists()


def test_failed_trials_are_recorded_with_their_reason_and_the_study_goes_on(setup):
    config = setup({"toggle": [], "pruner": "none", "sampler": "random",
                    "params": {"tricks.quality.fail": {"choices": ["none", "nan", "raise"]}}},
                   tricks={"quality": {}})
    url = storage_url("", tune_folder(config, "tiny"))
    study = optuna.create_study(study_name="tiny", storage=open_storage(url), direction="minimize")
    for fail in ("nan", "raise", "none"):
        study.enqueue_trial({"tricks.quality.fail": fail})
    res = tune(config, trials=4, scoring=STAND_IN, progress=False)
    trials = trials_of(config)
    assert len(trials) == 4
    assert trials[0].state == TrialState.FAIL
    assert trials[0].user_attrs["fail_reason"].startswith("diverged: a loss became NaN or Inf by step")
    assert trials[1].state == TrialState.FAIL
    assert "trick 'quality' raised in ganlab_fake_batch: RuntimeError: quality says no" in \
        trials[1].user_attrs["fail_reason"]
    assert trials[2].state == TrialState.COMPLETE and trials[3].state.is_finished()
    assert res.results["counts"]["fail"] >= 2
    csv = (res.folder / "trials.csv").read_text()
    assert "diverged: a loss became NaN" in csv and "quality says no" in csv


def test_ctrl_c_leaves_the_study_resumable_and_the_trial_continues_from_its_checkpoint(setup, interrupt_once):
    config = setup({"toggle": ["soft_labels"], "pruner": "none", "startup_trials": 1,
                    "params": {"train.lr_g": {"low": 1e-4, "high": 1e-2, "log": True}}})
    first = tune(config, trials=3, scoring=STAND_IN, progress=False, extra_plugins=[interrupt_once(8)])
    assert first.interrupted
    trials = trials_of(config)
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
    assert trials[0].user_attrs["fail_reason"] == "interrupted (Ctrl-C) at step 9"
    assert trials[1].params == trials[0].params and trials[1].system_attrs["retry_history"] == [0]
    rd = Path(trials[0].user_attrs["run_dir"])
    assert json.loads((rd / "status.json").read_text()) | {"time": 0} == {"status": "interrupted", "step": 9, "time": 0}
    assert study_counts(trials)["counted"] == 1

    again = tune(config, trials=3, scoring=STAND_IN, progress=False)  # the same command again
    assert not again.interrupted
    trials = trials_of(config)
    assert [t.state for t in trials] == [TrialState.FAIL] + [TrialState.COMPLETE] * 3
    resumed = trials[1]
    assert resumed.user_attrs["run_dir"] == str(rd) and resumed.user_attrs["resumed_from_step"] == 9
    assert sorted(resumed.intermediate_values) == [1, 2]  # epoch 1 re-reported from the run's metrics.jsonl
    assert "resume at step 9" in (rd / "log.txt").read_text()
    assert study_counts(trials) == {"complete": 3, "pruned": 0, "fail": 0, "running": 0, "waiting": 0,
                                    "retried": 1, "counted": 3, "done": 3}
    assert "fail (queued again)" in (again.folder / "trials.csv").read_text()
    # the same command once more does nothing: the study holds its 3 trials
    tune(config, trials=3, scoring=STAND_IN, progress=False)
    assert len(trials_of(config)) == 4
    # the resumed trial ends exactly where an uninterrupted trial with the same parameters ends
    optuna.load_study(study_name="tiny", storage=storage_url("", again.folder)).enqueue_trial(resumed.params)
    tune(config, trials=4, scoring=STAND_IN, progress=False)
    fresh = trials_of(config)[-1]
    assert fresh.params == resumed.params and "resumed_from_step" not in fresh.user_attrs
    assert fresh.value == resumed.value and fresh.intermediate_values == resumed.intermediate_values


def _check_shared_study(trials, n, folder=None):
    """Every trial accounted for: n numbered trials, all finished, distinct run folders, two workers."""
    assert sorted(t.number for t in trials) == list(range(n))
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials), [t.state for t in trials]
    dirs = [t.user_attrs["run_dir"] for t in trials]
    assert len(set(dirs)) == n
    for t in trials:
        status = json.loads((Path(t.user_attrs["run_dir"]) / "status.json").read_text())
        assert status["status"] in ("finished", "stopped")
        if folder is not None:
            assert Path(t.user_attrs["run_dir"]).parent == folder
    assert len({t.user_attrs["pid"] for t in trials}) == 2  # both processes ran trials


def test_two_worker_processes_share_one_sqlite_study(setup):
    config = setup({"toggle": ["soft_labels", "input_noise"], "pruner": "none", "startup_trials": 2,
                    "params": {"train.lr_g": {"low": 1e-4, "high": 1e-2, "log": True}}})
    res = tune(config, trials=4, jobs=2, scoring=STAND_IN, progress=False)
    assert len(res.workers) == 2 and sum(w["ran"] for w in res.workers) == 4
    _check_shared_study(trials_of(config), 4, res.folder)
    assert (res.folder / "study.db.ask.lock").exists()


@pytest.mark.skipif(not os.environ.get("GANLAB_TEST_POSTGRES"), reason="set GANLAB_TEST_POSTGRES to a PostgreSQL URL")
def test_two_processes_on_one_postgresql_study(setup):
    url = os.environ["GANLAB_TEST_POSTGRES"]
    name = f"ganlab-test-{uuid.uuid4().hex[:10]}"
    config = setup({"toggle": ["soft_labels"], "pruner": "median", "prune_startup_trials": 2, "startup_trials": 2,
                    "params": {"train.lr_g": {"low": 1e-4, "high": 1e-2, "log": True}}})
    try:
        res = tune(config, trials=4, jobs=2, storage=url, study=name, scoring=STAND_IN, progress=False)
        storage = open_storage(storage_url(url, Path()))
        trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
        _check_shared_study(trials, 4, res.folder)
        assert res.results["dashboard"].startswith("optuna-dashboard postgresql+psycopg")
        assert (res.folder / "best.toml").exists() and not (res.folder / "study.db").exists()
    finally:
        try:
            optuna.delete_study(study_name=name, storage=open_storage(storage_url(url, Path())))
        except KeyError:
            pass


def test_a_study_made_for_another_space_is_refused(setup):
    tune(setup({"toggle": ["soft_labels"]}), trials=0, scoring=STAND_IN, progress=False)
    from ganlab.errors import UserError

    with pytest.raises(UserError, match="was created with another search space"):
        tune(setup({"toggle": ["input_noise"]}), trials=0, scoring=STAND_IN, progress=False)


# --- the command line, with the real Inception MiFID --------------------------------------------------------

def test_cli_tune_with_real_mifid(tmp_path, capsys, monkeypatch):
    """A trial of a tiny DCGAN on a tiny Stanford-Dogs-shaped folder, scored with the real Inception."""
    from data_fixtures import dogs_add

    from ganlab.cli import main

    monkeypatch.delenv("GANLAB_DATA_ROOT", raising=False)
    root = tmp_path / "dogs"
    for i in range(12):
        dogs_add(root, "n02085620-Chihuahua", f"n02085620_{i}", 80, 72, [(4, 4, 76, 68)], seed=i)
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(f'''name = "clitune"
runs_dir = "{tmp_path / 'runs'}"
device = "cpu"
[model]
latent_dim = 8
g_width = 4
d_width = 4
[data]
image_size = 16
root = "{root}"
cache_dir = "{tmp_path / 'prepared'}"
[train]
epochs = 1
batch_size = 4
log_every = 1
sample_every = 0
n_samples = 4
[eval]
every_epochs = 1
n_images = 8
[tricks.soft_labels]
[tune]
toggle = ["soft_labels"]
baseline_first = false
sampler = "random"
''')
    code = main(["tune", str(cfg), "--trials", "1", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0, out
    folder = tmp_path / "runs" / "clitune" / "tune-clitune"
    assert "study 'clitune': 1 complete, 0 pruned, 0 failed" in out
    assert f"optuna-dashboard sqlite:///{folder / 'study.db'}" in out
    assert "importances: too few completed trials (1; at least 4 are needed)" in out
    trials = optuna.load_study(study_name="clitune", storage=f"sqlite:///{folder / 'study.db'}").trials
    assert all(20 < t.value < 2000 for t in trials)  # a real MiFID of noise-like images
    assert (folder / "best.toml").exists() and (folder / "history.png").exists()
    # rerun: the study holds its trial already, nothing new runs
    assert main(["tune", str(cfg), "--trials", "1", "--quiet"]) == 0
    assert len(optuna.load_study(study_name="clitune", storage=f"sqlite:///{folder / 'study.db'}").trials) == 1
    # a bad [tune] is one line naming the key, exit 2
    bad = tmp_path / "bad.toml"
    bad.write_text(f'extends = "{cfg}"\n[tune]\npruner = "asha"\n')
    assert main(["tune", str(bad), "--trials", "1"]) == 2
    assert "tune.pruner: 'asha' is not allowed" in capsys.readouterr().err
