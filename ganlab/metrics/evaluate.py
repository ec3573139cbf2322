"""Scoring generated images against a reference set: the functions the CLI and the trainer share.

* :func:`score_features` / :func:`score_images`: FID, d, d_thr and MiFID of one set against reference stats.
* :class:`Evaluator`: built once per training run; loads the network on first use and the reference stats
  (cached on disk), then ``evaluate(generate, n)`` scores n freshly generated images.
* :func:`load_image_folder`: a folder or zip of images (a Kaggle submission, another tool's output) as uint8.
"""
from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from ganlab.metrics import fid as F
from ganlab.metrics.cache import ReferenceStats, reference_stats
from ganlab.metrics.features import InceptionFeatures, check_uint8_images, to_uint8
from ganlab.metrics.fid import MetricError

if TYPE_CHECKING:
    from ganlab.config import Config

REFERENCE_KINDS = {"train": "crops", "kaggle": "whole"}  # [eval] reference -> load_images(kind)
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def score_features(gen_features: np.ndarray, ref: ReferenceStats, eps: float = F.DEFAULT_EPS,
                   device: torch.device | str | None = None) -> dict:
    """{"fid", "d", "d_thr", "mifid", "n"} of generated pool_3 features against a reference."""
    mu, sigma = F.feature_stats(gen_features)
    fid = F.frechet_distance(mu, sigma, ref.mu, ref.sigma, factor2=ref.factor)
    d = F.memorization_distance(gen_features, None, ref_normalized=ref.normalized, device=device)
    return F.score(fid, d, gen_features.shape[0], eps)


def score_images(images_uint8: torch.Tensor, ref_stats: ReferenceStats, eps: float = F.DEFAULT_EPS,
                 extractor: InceptionFeatures | None = None, progress: bool = False) -> dict:
    """Score uint8 images (N, 3, H, W) (or float in [-1, 1], quantized first) against `ref_stats`."""
    images_uint8 = to_uint8(images_uint8)
    check_uint8_images(images_uint8)
    if images_uint8.shape[0] < 2:
        raise MetricError(f"FID needs at least 2 images, got {images_uint8.shape[0]}")
    extractor = extractor or InceptionFeatures()
    feats = extractor(images_uint8, progress=progress, desc="images")
    return score_features(feats, ref_stats, eps, device=_matmul_device(extractor.device))


def _matmul_device(device: torch.device) -> torch.device | None:
    return device if device.type == "cuda" else None


def default_cache_dir(config: "Config") -> Path:
    return Path(config.data.cache_dir) / "reference_cache"


def load_reference_images(config: "Config", reference: str) -> torch.Tensor:
    """The [eval] reference set as uint8 (N, 3, 64, 64): "train" = the prepared crops, "kaggle" = whole images."""
    if reference not in REFERENCE_KINDS:
        raise MetricError(f"unknown reference {reference!r}; use one of {', '.join(REFERENCE_KINDS)} or a folder")
    from ganlab.data.prepare import load_images  # written alongside; imported only when needed

    images = load_images(config.data, REFERENCE_KINDS[reference])
    check_uint8_images(images)
    if images.shape[0] < 2:
        raise MetricError(f"the {reference} reference set has {images.shape[0]} image(s); FID needs at least 2")
    return images


class Evaluator:
    """MiFID of a generator during training (and for `ganlab eval`).

    ``Evaluator(config, device)``: nothing is loaded until the first :meth:`evaluate`. Reference stats come
    from ``<config.data.cache_dir>/reference_cache`` (or `cache_dir`) when cached, else are computed from
    ``ganlab.data.prepare.load_images`` and cached. `reference_images` (uint8) replaces the [eval] reference;
    `extractor` replaces the Inception network (tests); `progress` shows rich progress bars.
    """

    def __init__(self, config: "Config", device: torch.device | str, cache_dir: str | os.PathLike | None = None, *,
                 extractor: InceptionFeatures | None = None, reference_images: torch.Tensor | None = None,
                 reference_name: str | None = None, progress: bool = False):
        self.config = config
        self.device = torch.device(device)
        self.eps = float(config.eval.eps)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir(config)
        self.extractor = extractor or InceptionFeatures(self.device, batch_size=config.eval.batch_size)
        self.progress = progress
        self._reference_images = reference_images
        self.reference_name = reference_name or ("images" if reference_images is not None else config.eval.reference)
        self._ref: ReferenceStats | None = None

    @property
    def reference(self) -> ReferenceStats:
        """The reference stats (computed or read from the cache on first use)."""
        if self._ref is None:
            images = self._reference_images
            if images is None:
                images = load_reference_images(self.config, self.config.eval.reference)
            self._ref = reference_stats(images, self.extractor, self.cache_dir, progress=self.progress,
                                        description=self.reference_name)
            self._reference_images = None  # the stats hold all we need
        return self._ref

    def evaluate(self, generate: Callable[[int], torch.Tensor], n: int | None = None) -> dict:
        """Score n images from ``generate(k)`` (float in [-1, 1], (k, 3, H, W), any device).

        Returns ``{"fid", "d", "d_thr", "mifid", "n"}``.
        """
        n = int(n if n is not None else self.config.eval.n_images)
        ref = self.reference
        feats = self.extractor.from_generator(generate, n, progress=self.progress)
        return score_features(feats, ref, self.eps, device=_matmul_device(self.extractor.device))

    def score_images(self, images: torch.Tensor) -> dict:
        """Score a tensor of images (uint8, or float in [-1, 1])."""
        return score_images(images, self.reference, self.eps, self.extractor, self.progress)


# --------------------------------------------------------------------------------------------------
# Folders of images


def _image_entries(path: Path) -> tuple[list[str], zipfile.ZipFile | None]:
    if path.is_dir():
        files = sorted(str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        return files, None
    if path.is_file() and zipfile.is_zipfile(path):
        zf = zipfile.ZipFile(path)
        names = sorted(n for n in zf.namelist() if not n.endswith("/") and Path(n).suffix.lower() in IMAGE_EXTS
                       and not n.startswith("__MACOSX/"))
        return names, zf
    if not path.exists():
        raise MetricError(f"{path}: no such folder")
    raise MetricError(f"{path}: not a folder or a zip file of images")


def load_image_folder(path: str | os.PathLike, image_size: int = 64, progress: bool = False
                      ) -> tuple[torch.Tensor, list[str]]:
    """All images under a folder (recursively) or in a zip, as uint8 (N, 3, image_size, image_size).

    Returns (images, notes). Images that are not RGB are converted (L, RGBA, P, CMYK...; alpha dropped),
    images of another size are resized to image_size x image_size (PIL Lanczos, as the competition's demo
    resized its reference); the notes say how many. No images, or an unreadable file: MetricError.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    names, zf = _image_entries(path)
    if not names:
        raise MetricError(f"{path}: no images ({', '.join(IMAGE_EXTS)}) found")
    out = torch.empty((len(names), 3, image_size, image_size), dtype=torch.uint8)
    modes: dict[str, int] = {}
    sizes: dict[tuple[int, int], int] = {}
    from ganlab.metrics.features import progress_bar

    try:
        with progress_bar(progress) as bar:
            task = bar.add_task(f"reading {path.name}", total=len(names), rate="")
            for i, name in enumerate(names):
                try:
                    if zf is not None:
                        im = Image.open(io.BytesIO(zf.read(name)))
                    else:
                        im = Image.open(name)
                    im.load()
                except (UnidentifiedImageError, OSError, zipfile.BadZipFile) as exc:
                    raise MetricError(f"{name}: not a readable image ({exc})") from None
                if im.mode != "RGB":
                    modes[im.mode] = modes.get(im.mode, 0) + 1
                    im = im.convert("RGB")
                if im.size != (image_size, image_size):
                    sizes[im.size] = sizes.get(im.size, 0) + 1
                    im = im.resize((image_size, image_size), Image.Resampling.LANCZOS)
                out[i] = torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1)
                bar.update(task, completed=i + 1)
    finally:
        if zf is not None:
            zf.close()
    notes = []
    if modes:
        what = ", ".join(f"{k} x{v}" for k, v in sorted(modes.items()))
        notes.append(f"{sum(modes.values())} of {len(names)} images in {path} were not RGB ({what}) and were "
                     "converted to RGB")
    if sizes:
        what = ", ".join(f"{w}x{h} x{c}" for (w, h), c in sorted(sizes.items(), key=lambda kv: -kv[1])[:5])
        notes.append(f"{sum(sizes.values())} of {len(names)} images in {path} were not {image_size}x{image_size} "
                     f"({what}) and were resized to {image_size}x{image_size} (Lanczos)")
    return out, notes


def save_pngs(images_uint8: torch.Tensor, out_dir: str | os.PathLike, zip_file: bool = False) -> Path:
    """Write images as the competition's submission: 64x64 RGB PNGs ``00000.png``...; or one ``images.zip``.

    Returns the folder, or the zip's path.
    """
    from PIL import Image

    check_uint8_images(images_uint8)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    arr = images_uint8.permute(0, 2, 3, 1).contiguous().cpu().numpy()
    width = max(5, len(str(len(arr) - 1)))
    names = [f"{i:0{width}d}.png" for i in range(len(arr))]
    if not zip_file:
        for name, a in zip(names, arr):
            Image.fromarray(a, "RGB").save(out_dir / name)
        return out_dir
    target = out_dir / "images.zip"
    tmp = target.with_name(f".{target.name}.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:  # PNG is compressed already
        for name, a in zip(names, arr):
            buf = io.BytesIO()
            Image.fromarray(a, "RGB").save(buf, format="PNG")
            zf.writestr(name, buf.getvalue())
    os.replace(tmp, target)
    return target
