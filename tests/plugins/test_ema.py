import json

import torch

from ganlab.rundir import load_checkpoint
from ganlab.trainer import Trainer, train


def test_on_averages_g_and_samples_from_the_average(make_config, tiny_images):
    trainer = Trainer(make_config(tricks={"ema": {"decay": 0.5}}, train={"max_steps": 3}), quiet=True,
                      images=tiny_images)
    G = trainer.state.G
    start = [p.detach().clone() for p in G.parameters()]
    trainer.run()
    avg = trainer.sampling_generator()
    assert avg is not G and not avg.training
    for a, g, s in zip(avg.parameters(), G.parameters(), start):
        assert not torch.equal(a, g)  # lags behind G...
        assert not torch.equal(a, s)  # ...but moved from the start
    # after one more update with decay 0.5 the average is halfway between its old value and G
    old = [p.detach().clone() for p in avg.parameters()]
    trainer.hook.ganlab_after_step(state=trainer.state)
    for new, o, g in zip(avg.parameters(), old, G.parameters()):
        assert torch.allclose(new, 0.5 * o + 0.5 * g)


def test_average_is_in_the_checkpoint_and_resume_is_exact(make_config, tiny_images, stop_at):
    cfg = lambda **t: make_config(tricks={"ema": {"decay": 0.9}}, **t)  # noqa: E731
    full = train(cfg(), quiet=True, images=tiny_images)
    first = train(cfg(), quiet=True, images=tiny_images, extra_plugins=[stop_at(4)])  # mid-epoch
    ckpt = load_checkpoint(first.run_dir / "checkpoints" / "latest.pt")
    assert set(ckpt["plugins"]["ema"]["G"]) == set(ckpt["G"])
    resumed = Trainer(cfg(), first.run_dir, resume=True, quiet=True, images=tiny_images).run()
    a = load_checkpoint(full.run_dir / "checkpoints" / "latest.pt")["plugins"]["ema"]["G"]
    b = load_checkpoint(resumed.run_dir / "checkpoints" / "latest.pt")["plugins"]["ema"]["G"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    lines = lambda rd: [json.loads(x) for x in (rd / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    drop_speed = lambda rows: [{k: v for k, v in r.items() if k != "img_per_s"} for r in rows]  # noqa: E731
    assert drop_speed(lines(resumed.run_dir)) == drop_speed(lines(full.run_dir))


def test_off_samples_from_g(make_config, tiny_images):
    trainer = Trainer(make_config(tricks={"ema": {"enabled": False}}), quiet=True, images=tiny_images)
    assert trainer.sampling_generator() is trainer.state.G
    assert not load_checkpoint_keys(trainer)


def load_checkpoint_keys(trainer):
    return trainer._checkpoint_data()["plugins"]


def test_ganlab_eval_scores_the_average(make_config, tiny_images):
    from ganlab.metrics.cli import build_generator

    result = train(make_config(tricks={"ema": {"decay": 0.9}}, train={"max_steps": 3}), quiet=True,
                   images=tiny_images)
    ckpt = load_checkpoint(result.run_dir / "checkpoints" / "latest.pt")
    G = build_generator(make_config(tricks={"ema": {"decay": 0.9}}), ckpt, torch.device("cpu"))
    ema = ckpt["plugins"]["ema"]["G"]
    assert all(torch.equal(v, ema[k]) for k, v in G.state_dict().items())
    assert any(not torch.equal(ema[k], ckpt["G"][k]) for k in ema)
