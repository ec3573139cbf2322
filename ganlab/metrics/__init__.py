"""MiFID and FID exactly as Kaggle's "Generative Dog Images" competition scored them.

* :mod:`ganlab.metrics.features`: TF1 resize + NVIDIA's TorchScript port of TF inception-2015-12-05 (pool_3).
* :mod:`ganlab.metrics.fid`: the matrix square root, FID, memorization distance, MiFID (pure functions).
* :mod:`ganlab.metrics.cache`: reference statistics, cached on disk under a content hash.
* :mod:`ganlab.metrics.evaluate`: :class:`Evaluator` (training-time evaluation), :func:`score_images`.
* :mod:`ganlab.metrics.plot`: the MiFID-over-training curve. :mod:`ganlab.metrics.cli`: ``ganlab eval``.
"""
from __future__ import annotations

from ganlab.metrics.fid import (MetricError, frechet_distance, memorization_distance, mifid, psd_factor,
                                sqrtm_psd, threshold_distance, trace_sqrt_product)

__all__ = ["MetricError", "frechet_distance", "memorization_distance", "mifid", "psd_factor", "sqrtm_psd",
           "threshold_distance",
           "trace_sqrt_product", "Evaluator", "score_images", "score_features", "plot_curve"]


def __getattr__(name: str):  # the torch-heavy parts load on first use
    if name in ("Evaluator", "score_images", "score_features"):
        from ganlab.metrics import evaluate

        return getattr(evaluate, name)
    if name == "plot_curve":
        from ganlab.metrics.plot import plot_curve

        return plot_curve
    raise AttributeError(f"module 'ganlab.metrics' has no attribute {name!r}")
