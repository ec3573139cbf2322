import torch
from torch import nn
from torch.nn.utils import parametrize

from ganlab.trainer import Trainer


def parametrized(net):
    return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
            and parametrize.is_parametrized(m, "weight")]


def test_on_normalizes_every_conv_of_d_to_spectral_norm_one(make_config, tiny_images):
    trainer = Trainer(make_config(tricks={"spectral_norm": {"power_iterations": 3}}, train={"max_steps": 2}),
                      quiet=True, images=tiny_images)
    D, G = trainer.state.D, trainer.state.G
    assert len(parametrized(D)) == 3 and not parametrized(G)
    trainer.run()  # trains through the parametrization
    for _ in range(30):  # let the power iteration converge, then check sigma(W) ~ 1
        D(torch.zeros(2, 3, 16, 16))
    D.eval()
    for m in parametrized(D):
        w = m.weight.detach().flatten(1)
        assert abs(torch.linalg.matrix_norm(w, ord=2).item() - 1.0) < 0.05
    # the optimizer updates the original weights
    originals = {id(m.parametrizations.weight.original) for m in parametrized(D)}
    assert originals <= {id(p) for group in trainer.state.opt_d.param_groups for p in group["params"]}


def test_g_too(make_config, tiny_images):
    s = Trainer(make_config(tricks={"spectral_norm": {"g": True}}), quiet=True, images=tiny_images).state
    assert len(parametrized(s.G)) == 3


def test_off_leaves_d_plain(make_config, tiny_images):
    s = Trainer(make_config(tricks={"spectral_norm": {"enabled": False}}), quiet=True, images=tiny_images).state
    assert not parametrized(s.D)
