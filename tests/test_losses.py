import math

import torch

from ganlab.losses import bce, d_loss, g_loss
from ganlab.schedules import decay


def test_bce_matches_the_formula_and_is_stable_for_large_logits():
    x = torch.tensor([-3.0, 0.0, 2.0])
    p = torch.sigmoid(x)
    expected = -(0.8 * torch.log(p) + 0.2 * torch.log(1 - p)).mean()
    assert torch.allclose(bce(x, 0.8), expected)
    big = bce(torch.tensor([1000.0, -1000.0]), torch.tensor([0.0, 1.0]))
    assert math.isfinite(big.item()) and abs(big.item() - 1000.0) < 1e-3


def test_d_loss_is_the_sum_of_real_and_fake_bce():
    r, f = torch.randn(8), torch.randn(8)
    assert torch.allclose(d_loss(r, f, 0.8, 0.0), bce(r, 0.8) + bce(f, 0.0))


def test_g_loss_is_non_saturating():
    # -log D(G(z)): large when D rejects the fakes (logit -> -inf), where log(1 - D) would vanish
    assert g_loss(torch.tensor([-10.0])).item() > 9.9
    assert g_loss(torch.tensor([10.0])).item() < 1e-4


def test_decay_schedules():
    assert decay("linear", 1.0, 5, 10) == 0.5
    assert decay("cosine", 1.0, 5, 10) == 0.5000000000000001 or abs(decay("cosine", 1.0, 5, 10) - 0.5) < 1e-12
    assert decay("cosine", 1.0, 10, 10) == 0.0
    assert decay("linear", 1.0, 50, 10) == 0.0
    assert decay("exponential", 1.0, 0, 10) == 1.0
