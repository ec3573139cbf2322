"""Data: fetch the raw Stanford Dogs files, prepare the cleaned uint8 set, and feed it to training."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ganlab.errors import DataError

if TYPE_CHECKING:
    from ganlab.config import DataConfig


def load_tensor_file(path: str | Path) -> torch.Tensor:
    """A uint8 (N, 3, H, W) tensor saved with torch.save, checked."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data.tensor: no such file: {path}")
    try:
        images = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:
        raise DataError(f"data.tensor: {path} is not a tensor file torch.load can read ({exc})") from None
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        what = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, torch.Tensor) else type(images).__name__
        raise DataError(f"data.tensor: {path} must hold a uint8 tensor (N, 3, H, W), got {what}")
    return images


def load_training_images(cfg: "DataConfig", progress: bool = True) -> torch.Tensor:
    """The training set as uint8 (N, 3, H, W): the `tensor` file if set, else the prepared crops."""
    if cfg.tensor:
        images = load_tensor_file(cfg.tensor)
    else:
        from ganlab.data.prepare import ensure_prepared

        images = torch.load(ensure_prepared(cfg, "crops", progress=progress) / "images.pt", weights_only=True)
    if images.shape[-1] != cfg.image_size or images.shape[-2] != cfg.image_size:
        raise DataError(f"the training images are {tuple(images.shape[-2:])} but data.image_size is "
                        f"{cfg.image_size}; prepare them at that size or change data.image_size")
    return images
