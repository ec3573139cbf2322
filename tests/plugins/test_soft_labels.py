import torch

from ganlab.trainer import Trainer


def targets(config, images):
    trainer = Trainer(config, quiet=True, images=images)
    s = trainer.state
    s.real = torch.zeros(1000, 3, 16, 16)
    s.real_target, s.fake_target = 1.0, 0.0
    trainer.hook.ganlab_d_targets(state=s)
    return s


def test_on_sets_real_0_8_and_fake_0(make_config, tiny_images):
    s = targets(make_config(tricks={"soft_labels": {}}), tiny_images)
    assert (s.real_target, s.fake_target) == (0.8, 0.0)


def test_custom_values(make_config, tiny_images):
    s = targets(make_config(tricks={"soft_labels": {"real": 0.9, "fake": 0.1}}), tiny_images)
    assert (s.real_target, s.fake_target) == (0.9, 0.1)


def test_flip_probability_swaps_that_share_of_targets(make_config, tiny_images):
    s = targets(make_config(tricks={"soft_labels": {"flip_prob": 0.2}}), tiny_images)
    assert s.real_target.shape == (1000,) and s.fake_target.shape == (1000,)
    values = {round(v, 6) for v in s.real_target.tolist() + s.fake_target.tolist()}
    assert values == {0.8, 0.0}
    flipped_real = (s.real_target < 0.4).float().mean().item()
    flipped_fake = (s.fake_target > 0.4).float().mean().item()
    assert 0.15 < flipped_real < 0.25 and 0.15 < flipped_fake < 0.25
    assert 0.15 < s.log["soft_labels/flipped"] < 0.25


def test_off_keeps_hard_labels(make_config, tiny_images):
    s = targets(make_config(tricks={"soft_labels": {"enabled": False, "real": 0.7}}), tiny_images)
    assert (s.real_target, s.fake_target) == (1.0, 0.0)
