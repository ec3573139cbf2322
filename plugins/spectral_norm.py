"""spectral_norm: spectral normalization of D's convolutions (Miyato et al., 2018).

Written only against ganlab's public API: it wraps layers in ganlab_models_built, before the optimizers
are made. The power-iteration vectors live in D's state dict, so checkpoints and resumes carry them.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ganlab import Trick, hookimpl, opt


@dataclass
class SpectralNormOptions:
    d: bool = opt(True, "normalize D's convolutions")
    g: bool = opt(False, "normalize G's transposed convolutions too")
    power_iterations: int = opt(1, "power iterations per forward pass", min=1)


def apply_spectral_norm(net: nn.Module, power_iterations: int) -> int:
    """Parametrize every convolution of `net`; returns how many."""
    convs = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    for m in convs:
        # a transposed conv's weight is (in, out, k, k): its output dimension is 1
        spectral_norm(m, n_power_iterations=power_iterations, dim=1 if isinstance(m, nn.ConvTranspose2d) else 0)
    return len(convs)


class SpectralNorm(Trick):
    name = "spectral_norm"
    Options = SpectralNormOptions

    @hookimpl
    def ganlab_models_built(self, G: nn.Module, D: nn.Module, config) -> None:
        if self.options.d:
            apply_spectral_norm(D, self.options.power_iterations)
        if self.options.g:
            apply_spectral_norm(G, self.options.power_iterations)
