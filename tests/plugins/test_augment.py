import torch

from ganlab.trainer import Trainer
from ganlab_plugins.augment import crop_params, random_resized_crop_flip


def run_hook(config, images, real):
    trainer = Trainer(config, quiet=True, images=images)
    s = trainer.state
    s.real = real
    trainer.hook.ganlab_real_batch(state=s)
    return s.real


def test_on_changes_each_image_differently(make_config, tiny_images):
    torch.manual_seed(0)
    one = torch.linspace(-1, 1, 16 * 16 * 3).reshape(1, 3, 16, 16)
    batch = one.repeat(32, 1, 1, 1)
    out = run_hook(make_config(tricks={"augment": {}}), tiny_images, batch.clone())
    assert out.shape == batch.shape and out.dtype == batch.dtype
    assert not torch.equal(out, batch)
    # identical inputs, independent random parameters: the outputs differ from each other
    assert len({tuple(x.flatten()[:40].tolist()) for x in out}) > 16
    assert out.min() >= -1 and out.max() <= 1


def test_flip_alone_is_an_exact_mirror():
    x = torch.rand(5, 3, 16, 16)
    out = random_resized_crop_flip(x, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_prob=1.0)
    assert torch.allclose(out, x.flip(-1), atol=1e-5)
    same = random_resized_crop_flip(x, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_prob=0.0)
    assert torch.allclose(same, x, atol=1e-5)


def test_crop_params_follow_torchvision_ranges():
    torch.manual_seed(0)
    w, h = crop_params(20000, (0.8, 1.0), (3 / 4, 4 / 3), torch.device("cpu"))
    area = w * h
    assert (w <= 1).all() and (h <= 1).all()
    assert area.min() >= 0.8 - 1e-6 and area.max() <= 1.0 + 1e-6
    ratio = w / h
    assert ratio.min() >= 3 / 4 - 1e-5 and ratio.max() <= 4 / 3 + 1e-5
    assert (w < 1).float().mean() > 0.9  # crops, not the whole image, nearly always


def test_a_crop_zooms_in():
    # a horizontal ramp cropped to half width spans half the range of values
    ramp = torch.linspace(-1, 1, 64).expand(1, 3, 64, 64).contiguous()
    out = random_resized_crop_flip(ramp, scale=(0.5, 0.5), ratio=(0.5, 0.5), flip_prob=0.0)
    span = out[0, 0, 0, -1] - out[0, 0, 0, 0]
    assert 0.9 < span.item() < 1.1


def test_off_leaves_real_untouched(make_config, tiny_images):
    real = torch.rand(8, 3, 16, 16)
    out = run_hook(make_config(tricks={"augment": {"enabled": False}}), tiny_images, real)
    assert out is real
