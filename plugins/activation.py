"""activation: choose the hidden-layer activation of G and of D.

The paper uses LeakyReLU in both networks; off, G uses ReLU and D LeakyReLU(0.2) (the original DCGAN).
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ganlab import Trick, hookimpl, opt

ACTIVATIONS = ("relu", "leaky_relu", "elu", "selu", "gelu", "silu")


@dataclass
class ActivationOptions:
    g: str = opt("leaky_relu", "G's activation: " + ", ".join(ACTIVATIONS), choices=ACTIVATIONS)
    d: str = opt("leaky_relu", "D's activation: " + ", ".join(ACTIVATIONS), choices=ACTIVATIONS)
    slope: float = opt(0.2, "negative slope of leaky_relu", min=0.0, max=1.0)


def make_activation(kind: str, slope: float) -> nn.Module:
    if kind == "leaky_relu":
        return nn.LeakyReLU(slope, inplace=True)
    return {"relu": nn.ReLU, "elu": nn.ELU, "selu": nn.SELU, "silu": nn.SiLU}.get(kind, nn.GELU)(
        **({"inplace": True} if kind in ("relu", "elu", "selu", "silu") else {}))


class Activation(Trick):
    name = "activation"
    Options = ActivationOptions

    @hookimpl
    def ganlab_make_activation(self, net: str, config) -> nn.Module:
        return make_activation(self.options.g if net == "G" else self.options.d, self.options.slope)
