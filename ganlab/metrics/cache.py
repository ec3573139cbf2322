"""Reference statistics (mean, covariance, its factor for the FID square root, features), cached on disk.

The cache key is a SHA-256 over the reference images themselves (shape and every byte) and the feature
extractor's id (the network file's SHA-1 and the preprocessing version), so a changed reference set or
extractor never reuses a stale file. One file per key, ``<cache_dir>/ref-<key[:20]>.npz``, written to a
temp file and renamed into place; a file that does not load, or whose stored key differs, is recomputed.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ganlab.metrics.fid import check_feature_matrix, normalize_rows, psd_factor

FORMAT = 2


@dataclass
class ReferenceStats:
    """What scoring needs of a reference set; `features` are the raw float32 pool_3 rows (all of them)."""

    mu: np.ndarray
    sigma: np.ndarray
    factor: np.ndarray  # F with F F^T = sigma (fid.psd_factor): what every FID against this set needs
    features: np.ndarray
    key: str = ""
    extractor: str = ""
    description: str = ""
    from_cache: bool = False
    _normalized: np.ndarray | None = field(default=None, repr=False)

    @property
    def n(self) -> int:
        return int(self.features.shape[0])

    @property
    def normalized(self) -> np.ndarray:
        """Rows summing to 0 dropped, the rest L2-normalized (float64), for the memorization distance."""
        if self._normalized is None:
            self._normalized = normalize_rows(self.features)
        return self._normalized

    @classmethod
    def from_features(cls, features: np.ndarray, **kw) -> "ReferenceStats":
        f64 = check_feature_matrix(features, "reference features")
        mu, sigma = f64.mean(axis=0), np.cov(f64, rowvar=False)
        del f64
        return cls(mu=mu, sigma=sigma, factor=psd_factor(sigma), features=np.asarray(features, np.float32), **kw)


def images_digest(images: torch.Tensor) -> str:
    """SHA-256 of a uint8 image tensor's shape and bytes."""
    if images.dtype != torch.uint8:
        raise ValueError(f"expected uint8 images, got {images.dtype}")
    h = hashlib.sha256(f"uint8{tuple(images.shape)}".encode())
    arr = images.detach().cpu().contiguous().numpy()
    flat = arr.reshape(-1)
    step = 1 << 26
    for start in range(0, flat.size, step):
        h.update(memoryview(flat[start:start + step]))
    return h.hexdigest()


def cache_key(images_digest_hex: str, extractor_id: str) -> str:
    return hashlib.sha256(f"ganlab-reference-stats/{FORMAT}|{images_digest_hex}|{extractor_id}".encode()).hexdigest()


def cache_path(cache_dir: str | os.PathLike, key: str) -> Path:
    return Path(cache_dir) / f"ref-{key[:20]}.npz"


def save(stats: ReferenceStats, path: Path) -> None:
    """Write atomically: temp file beside `path`, then os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, "key": stats.key, "extractor": stats.extractor, "description": stats.description,
            "n": stats.n, "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, mu=stats.mu, sigma=stats.sigma, factor=stats.factor, features=stats.features,
                     meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; the cache is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: Path, key: str) -> ReferenceStats | None:
    """The cached stats if `path` holds them for exactly this key; None if absent, stale or unreadable."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(z["meta"].tobytes().decode())
            if meta.get("format") != FORMAT or meta.get("key") != key:
                return None
            stats = ReferenceStats(mu=z["mu"], sigma=z["sigma"], factor=z["factor"], features=z["features"],
                                   key=key, extractor=meta.get("extractor", ""),
                                   description=meta.get("description", ""), from_cache=True)
        d = stats.mu.shape[0]
        if stats.sigma.shape != (d, d) or stats.factor.shape != (d, d) or stats.features.shape[1:] != (d,):
            return None
        return stats
    except Exception:  # truncated or foreign file: recompute (and overwrite)
        return None


def reference_stats(images: torch.Tensor, extractor, cache_dir: str | os.PathLike | None = None,
                    progress: bool = False, description: str = "") -> ReferenceStats:
    """Stats of uint8 reference images (N, 3, H, W) for `extractor`, read from / written to `cache_dir`.

    `extractor`: a callable ``(images_uint8, progress=, desc=) -> float32 (N, D)`` with an ``id`` string
    (:class:`ganlab.metrics.features.InceptionFeatures`). No `cache_dir`: computed, not cached.
    """
    key = cache_key(images_digest(images), extractor.id)
    path = cache_path(cache_dir, key) if cache_dir is not None else None
    if path is not None:
        cached = load(path, key)
        if cached is not None:
            return cached
    feats = extractor(images, progress=progress, desc=f"reference {description}".strip())
    stats = ReferenceStats.from_features(feats, key=key, extractor=extractor.id, description=description)
    if path is not None:
        save(stats, path)
    return stats
