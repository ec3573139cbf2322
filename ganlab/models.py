"""The symmetric DCGAN: G of transposed convolutions, D of strided convolutions, same depth and kernels.

For 64x64 images: G maps z (latent) to 4x4 with 8w channels, then doubles the side four times
(8w -> 4w -> 2w -> w -> 3) and ends in Tanh; D mirrors it (3 -> w -> 2w -> 4w -> 8w -> 1 logit). Other
sizes (powers of two) add or drop stride-2 layers. Normalization and activation layers are asked from the
plugins (ganlab_make_norm, ganlab_make_activation); with no answer there is no normalization, ReLU in G
and LeakyReLU(0.2) in D, and convolutions followed by no normalization get a bias.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable

import torch
from torch import nn

if TYPE_CHECKING:
    import pluggy

    from ganlab.config import Config

LayerFactory = Callable[[int], nn.Module]


def n_upsamplings(image_size: int) -> int:
    """Stride-2 layers between 4x4 and image_size (4 for 64x64)."""
    n = math.log2(image_size / 4)
    if n < 1 or n != int(n):
        raise ValueError(f"image_size must be a power of two >= 8, got {image_size}")
    return int(n)


def _block(conv: nn.Module, norm: nn.Module, act: nn.Module) -> list[nn.Module]:
    return [conv] + ([] if isinstance(norm, nn.Identity) else [norm]) + [act]


class Generator(nn.Module):
    def __init__(self, latent_dim: int, width: int, image_size: int,
                 make_norm: Callable[[int], nn.Module], make_act: Callable[[], nn.Module]):
        super().__init__()
        self.latent_dim = latent_dim
        n = n_upsamplings(image_size)
        chans = [width * 2 ** i for i in reversed(range(n))]  # 8w, 4w, 2w, w for 64x64
        layers: list[nn.Module] = []
        in_ch = latent_dim
        for i, out_ch in enumerate(chans):
            norm = make_norm(out_ch)
            bias = isinstance(norm, nn.Identity)
            conv = (nn.ConvTranspose2d(in_ch, out_ch, 4, 1, 0, bias=bias) if i == 0
                    else nn.ConvTranspose2d(in_ch, out_ch, 4, 2, 1, bias=bias))
            layers += _block(conv, norm, make_act())
            in_ch = out_ch
        layers += [nn.ConvTranspose2d(in_ch, 3, 4, 2, 1, bias=True), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], self.latent_dim, 1, 1))


class Discriminator(nn.Module):
    def __init__(self, width: int, image_size: int,
                 make_norm: Callable[[int], nn.Module], make_act: Callable[[], nn.Module]):
        super().__init__()
        n = n_upsamplings(image_size)
        chans = [width * 2 ** i for i in range(n)]  # w, 2w, 4w, 8w for 64x64
        layers: list[nn.Module] = []
        in_ch = 3
        for i, out_ch in enumerate(chans):
            # DCGAN leaves D's first layer unnormalized: it sees the images themselves
            norm = nn.Identity() if i == 0 else make_norm(out_ch)
            conv = nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=isinstance(norm, nn.Identity))
            layers += _block(conv, norm, make_act())
            in_ch = out_ch
        layers += [nn.Conv2d(in_ch, 1, 4, 1, 0, bias=True)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()


def init_weights(module: nn.Module, std: float) -> None:
    """DCGAN initialization: conv weights N(0, std), normalization scales N(1, std), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d, nn.LayerNorm)):
            if getattr(m, "weight", None) is not None:
                nn.init.normal_(m.weight, 1.0, std)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)


def build_models(config: "Config", pm: "pluggy.PluginManager") -> tuple[Generator, Discriminator]:
    """G and D with the layers the plugins choose, initialized; ganlab_models_built has fired."""
    hook = pm.hook
    defaults = {"G": lambda: nn.ReLU(inplace=True), "D": lambda: nn.LeakyReLU(0.2, inplace=True)}

    def norm(net: str) -> LayerFactory:
        return lambda ch: hook.ganlab_make_norm(net=net, channels=ch, config=config) or nn.Identity()

    def act(net: str) -> Callable[[], nn.Module]:
        return lambda: hook.ganlab_make_activation(net=net, config=config) or defaults[net]()

    m, size = config.model, config.data.image_size
    G = Generator(m.latent_dim, m.g_width, size, norm("G"), act("G"))
    D = Discriminator(m.d_width, size, norm("D"), act("D"))
    init_weights(G, m.init_std)
    init_weights(D, m.init_std)
    hook.ganlab_models_built(G=G, D=D, config=config)
    return G, D
