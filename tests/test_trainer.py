from __future__ import annotations

import json
import tomllib

import pytest
import torch
from PIL import Image

from ganlab import hookimpl
from ganlab.config import config_from_dict
from ganlab.errors import DataError, PluginError
from ganlab.rundir import load_checkpoint
from ganlab.trainer import Trainer, train


def losses(run_dir):
    return [(r["step"], r["d_loss"], r["g_loss"]) for r in map(json.loads, (run_dir / "metrics.jsonl").open())
            if "d_loss" in r]


def test_end_to_end_run_folder(make_config, tiny_images):
    config = make_config(train={"sample_every": 6})
    result = train(config, quiet=True, images=tiny_images)
    rd = result.run_dir
    assert result.status == "finished" and result.step == 12  # 2 epochs x 6 batches
    assert rd.parent.name == "tiny" and rd.name == "00000-tiny"
    saved = tomllib.loads((rd / "config.toml").read_text())
    assert config_from_dict(saved).to_dict() == config.to_dict()
    lines = [json.loads(x) for x in (rd / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [2, 4, 6, 8, 10, 12]
    for key in ("epoch", "d_loss", "g_loss", "d_real", "d_fake", "img_per_s", "input_noise/std"):
        assert key in lines[-1]
    assert lines[0]["input_noise/std"] > lines[-1]["input_noise/std"]  # the schedule decays
    for step in (6, 12):
        with Image.open(rd / f"fakes{step:06d}.png") as im:
            assert im.size == (2 + 2 * 18, 2 + 2 * 18)  # 4 samples of 16x16 in a 2x2 grid, 2 px padding
    ckpt = load_checkpoint(rd / "checkpoints" / "latest.pt")
    assert ckpt["step"] == 12 and {"G", "D", "opt_g", "opt_d", "rng", "tricks", "plugins", "config"} <= set(ckpt)
    assert json.loads((rd / "status.json").read_text())["status"] == "finished"
    assert "finished at step 12" in (rd / "log.txt").read_text()
    assert not list(rd.rglob("*.tmp"))


def test_same_seed_same_losses_other_seed_other_losses(make_config, tiny_images):
    a = losses(train(make_config(), quiet=True, images=tiny_images).run_dir)
    b = losses(train(make_config(), quiet=True, images=tiny_images).run_dir)
    c = losses(train(make_config(seed=1), quiet=True, images=tiny_images).run_dir)
    assert a == b
    assert a != c


def test_resume_continues_exactly(make_config, tiny_images, stop_at):
    full = losses(train(make_config(), quiet=True, images=tiny_images).run_dir)
    # stop after 4 steps (mid-epoch), then resume the same folder to the end
    first = train(make_config(), quiet=True, images=tiny_images, extra_plugins=[stop_at(4)])
    assert first.step == 4 and first.status == "stopped"
    resumed = Trainer(make_config(), first.run_dir, resume=True, quiet=True, images=tiny_images).run()
    assert resumed.status == "finished" and resumed.step == 12
    assert losses(resumed.run_dir) == full


def test_ctrl_c_writes_a_checkpoint_and_resume_matches(make_config, tiny_images, interrupt_once):
    full = losses(train(make_config(), quiet=True, images=tiny_images).run_dir)
    first = train(make_config(), quiet=True, images=tiny_images, extra_plugins=[interrupt_once(6)])
    assert first.status == "interrupted" and first.step == 7  # the step in flight finishes
    assert json.loads((first.run_dir / "status.json").read_text())["status"] == "interrupted"
    assert load_checkpoint(first.run_dir / "checkpoints" / "latest.pt")["step"] == 7
    resumed = Trainer(make_config(), first.run_dir, resume=True, quiet=True, images=tiny_images).run()
    assert losses(resumed.run_dir) == full


class PoisonAt:
    def __init__(self, step):
        self.step = step

    @hookimpl
    def ganlab_after_d_loss(self, state):
        if state.step >= self.step:
            state.d_loss = state.d_loss * float("nan")


def test_nan_loss_stops_the_run_as_diverged_and_keeps_last_good_checkpoint(make_config, tiny_images):
    result = train(make_config(), quiet=True, images=tiny_images, extra_plugins=[PoisonAt(5)])
    assert result.status == "diverged"
    status = json.loads((result.run_dir / "status.json").read_text())
    assert status["status"] == "diverged"
    ckpt = load_checkpoint(result.run_dir / "checkpoints" / "latest.pt")
    assert ckpt["step"] == 4  # checkpoint_every = 4: written before the poison
    assert all(torch.isfinite(v).all() for v in ckpt["G"].values() if v.is_floating_point())


class Boom:
    @hookimpl
    def ganlab_fake_batch(self, state):
        if state.step == 5:
            raise RuntimeError("kaboom")


def test_plugin_raising_names_plugin_and_hook(make_config, tiny_images):
    with pytest.raises(PluginError, match=r"'boom' raised in ganlab_fake_batch: RuntimeError: kaboom") as info:
        trainer = Trainer(make_config(), quiet=True, images=tiny_images)
        trainer.pm.register(Boom(), name="boom")
        trainer.run()
    rd = trainer.rd.path
    assert json.loads((rd / "status.json").read_text())["status"] == "failed"
    assert load_checkpoint(rd / "checkpoints" / "latest.pt")["step"] == 4  # the last one before the error
    assert str(rd) in str(info.value)


def test_stop_flag_ends_training(make_config, tiny_images, stop_at):
    result = train(make_config(), quiet=True, images=tiny_images, extra_plugins=[stop_at(3)])
    assert result.status == "stopped" and result.step == 3


def test_too_few_images_for_one_batch(make_config, tiny_images):
    with pytest.raises(DataError, match="fewer than one batch"):
        train(make_config(train={"batch_size": 64}), quiet=True, images=tiny_images)


def test_missing_tensor_file_is_a_data_error(make_config, tmp_path):
    with pytest.raises(DataError, match="no such file"):
        train(make_config(data={"tensor": str(tmp_path / "nope.pt")}), quiet=True)


def test_bf16_autocast_trains(make_config, tiny_images):
    result = train(make_config(precision="bf16", train={"max_steps": 4}), quiet=True, images=tiny_images)
    assert result.status == "finished"
    assert all(abs(x) < 100 for _, d, g in losses(result.run_dir) for x in (d, g))


class EvalRecorder:
    def __init__(self):
        self.seen = []

    @hookimpl
    def ganlab_on_eval(self, state, metrics):
        self.seen.append((state.step, metrics["mifid"]))


def test_evaluation_during_training(make_config, tiny_images, tmp_path):
    """Real MiFID (Inception) every epoch: metrics lines, the hook, best.pt and the curve."""
    config = make_config(eval={"every_epochs": 1, "n_images": 4}, data={"cache_dir": str(tmp_path / "cache")})
    recorder = EvalRecorder()
    result = train(config, quiet=True, images=tiny_images[:24], extra_plugins=[recorder])  # 3 steps an epoch
    rd = result.run_dir
    evals = [json.loads(x) for x in (rd / "metrics.jsonl").read_text().splitlines() if "mifid" in x]
    assert [e["step"] for e in evals] == [3, 6] and [s for s, _ in recorder.seen] == [3, 6]
    for e in evals:
        assert e["n"] == 4 and e["fid"] > 0 and e["mifid"] == pytest.approx(e["fid"] / (e["d_thr"] + 1e-15))
    best = min(evals, key=lambda e: e["mifid"])
    assert result.best["step"] == best["step"]
    assert load_checkpoint(rd / "checkpoints" / "best.pt")["step"] == best["step"]
    with Image.open(rd / "mifid.png") as im:
        assert im.size[0] > 100
    # evaluation draws from its own noise stream: training losses are those of a run without it
    plain = train(make_config(), quiet=True, images=tiny_images[:24])
    assert losses(rd) == losses(plain.run_dir)
