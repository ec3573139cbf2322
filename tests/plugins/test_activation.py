import pytest
from torch import nn

from ganlab.trainer import Trainer


def acts(module):
    return [type(m).__name__ for m in module.modules()
            if isinstance(m, (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.SELU, nn.GELU, nn.SiLU))]


def test_default_is_leaky_relu_in_both(make_config, tiny_images):
    s = Trainer(make_config(tricks={"activation": {"slope": 0.1}}), quiet=True, images=tiny_images).state
    assert set(acts(s.G)) == {"LeakyReLU"} and set(acts(s.D)) == {"LeakyReLU"}
    assert all(m.negative_slope == 0.1 for m in s.G.modules() if isinstance(m, nn.LeakyReLU))


@pytest.mark.parametrize("g, d, gname, dname", [("elu", "selu", "ELU", "SELU"), ("gelu", "silu", "GELU", "SiLU"),
                                                 ("relu", "relu", "ReLU", "ReLU")])
def test_choice_per_network(make_config, tiny_images, g, d, gname, dname):
    s = Trainer(make_config(tricks={"activation": {"g": g, "d": d}}), quiet=True, images=tiny_images).state
    assert set(acts(s.G)) == {gname} and set(acts(s.D)) == {dname}
    assert len(acts(s.G)) == 2 and len(acts(s.D)) == 2  # every hidden layer


def test_off_is_the_original_dcgan(make_config, tiny_images):
    s = Trainer(make_config(tricks={"activation": {"enabled": False, "g": "elu"}}), quiet=True, images=tiny_images).state
    assert set(acts(s.G)) == {"ReLU"} and set(acts(s.D)) == {"LeakyReLU"}
