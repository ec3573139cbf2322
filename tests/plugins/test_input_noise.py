import pytest
import torch

from ganlab.trainer import Trainer
from ganlab_plugins.input_noise import InputNoiseOptions, noise_std


def state_with_batch(config, images, step=0):
    trainer = Trainer(config, quiet=True, images=images)
    s = trainer.state
    s.step = step
    s.real = torch.zeros(64, 3, 16, 16)
    s.fake = torch.zeros(64, 3, 16, 16, requires_grad=True)
    return trainer, s


def test_on_adds_noise_of_the_scheduled_std_to_real_and_fake(make_config, tiny_images):
    config = make_config(tricks={"input_noise": {"std": 0.1}})
    trainer, s = state_with_batch(config, tiny_images)
    fake_in = s.fake
    trainer.hook.ganlab_real_batch(state=s)
    trainer.hook.ganlab_fake_batch(state=s)
    assert s.real.std().item() == pytest.approx(0.1, rel=0.05)
    assert s.fake.std().item() == pytest.approx(0.1, rel=0.05)
    assert s.log["input_noise/std"] == 0.1
    s.fake.sum().backward()  # still differentiable with respect to G's output
    assert fake_in.grad is not None


def test_std_decays_linearly_to_zero_over_the_run(make_config, tiny_images):
    config = make_config(tricks={"input_noise": {"std": 0.1}})  # 2 epochs of 6 steps
    trainer, s = state_with_batch(config, tiny_images, step=6)
    trainer.hook.ganlab_real_batch(state=s)
    assert s.log["input_noise/std"] == pytest.approx(0.05)
    assert s.real.std().item() == pytest.approx(0.05, rel=0.05)
    s.step, s.real = 12, torch.zeros(8, 3, 16, 16)
    trainer.hook.ganlab_real_batch(state=s)
    assert s.log["input_noise/std"] == 0.0 and torch.count_nonzero(s.real) == 0


def test_schedules_are_pure_functions_of_progress():
    lin = InputNoiseOptions(std=0.1, schedule="linear", horizon_epochs=10)
    assert [noise_std(lin, t, 750) for t in (0, 5, 10, 20)] == pytest.approx([0.1, 0.05, 0.0, 0.0])
    exp = InputNoiseOptions(std=0.1, schedule="exponential", horizon_epochs=10)
    assert noise_std(exp, 10, 750) == pytest.approx(0.1 * torch.exp(torch.tensor(-5.0)).item())
    whole_run = InputNoiseOptions(std=0.2)  # horizon 0: the run's length in epochs
    assert noise_std(whole_run, 375, 750) == pytest.approx(0.1)
    const = InputNoiseOptions(std=0.1, schedule="constant")
    assert noise_std(const, 700, 750) == 0.1


def test_off_leaves_batches_untouched(make_config, tiny_images):
    config = make_config(tricks={"input_noise": {"enabled": False}})
    trainer, s = state_with_batch(config, tiny_images)
    real, fake = s.real, s.fake
    trainer.hook.ganlab_real_batch(state=s)
    trainer.hook.ganlab_fake_batch(state=s)
    assert s.real is real and s.fake is fake and "input_noise/std" not in s.log


def test_default_horizon_is_the_runs_length_max_steps_included(make_config, tiny_images):
    config = make_config(tricks={"input_noise": {"std": 0.1}}, train={"epochs": 100, "max_steps": 12})
    trainer, s = state_with_batch(config, tiny_images, step=6)
    trainer.hook.ganlab_real_batch(state=s)
    assert s.log["input_noise/std"] == pytest.approx(0.05)
