"""FID, the memorization distance and MiFID as small pure functions (numpy in, floats out).

As the Kaggle "Generative Dog Images" competition scored them (``REFERENCE.md``):

* FID = |mu_g - mu_r|^2 + Tr(S_g + S_r - 2 sqrt(S_g S_r)), S = np.cov(features, rowvar=False).
* d = mean over generated i of min over reference j of 1 - |cos(g_i, r_j)|, rows summing to 0 dropped.
* d_thr = d if d < eps else 1;  MiFID = FID / (d_thr + 1e-15).

The matrix square root
----------------------
FID needs only Tr sqrt(S_g S_r). For symmetric positive semi-definite A and B = F F^T (F: B's Cholesky
factor, or its symmetric root B^{1/2} when B is singular), A B = A F F^T has the same eigenvalues as
F^T A F (X Y and Y X share their non-zero eigenvalues), which is symmetric PSD; so the eigenvalues of A B are
real and >= 0, its principal square root has the eigenvalues sqrt(lambda_i), and
Tr sqrt(A B) = sum_i sqrt(lambda_i(F^T A F)). A symmetric eigensolver (``eigvalsh``, float64) gives those
eigenvalues: backward stable, real arithmetic, no iteration, valid for singular covariances (fewer images
than 2048). Rounding can make zero eigenvalues slightly negative; they are clipped to 0 (a true zero
eigenvalue contributes at most sqrt(1e-16 * |C|) to the trace). The reference's F is computed once and
cached with its stats, so an evaluation costs two triangular products and one ``eigvalsh``.
``scipy.linalg.sqrtm`` instead takes a complex Schur form of the non-symmetric product and runs its
recurrence (about 15x slower at 2048-d); for (near-)singular products it can return spurious imaginary
parts or non-finite values, after which the competition retried with 1e-6 * I added to both covariances,
which biases the result. :func:`frechet_distance_scipy` reproduces that path exactly, for comparison.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from ganlab.errors import UserError

MIFID_EPSILON = 1e-15  # as REFERENCE.md; the Kaggle demo notebook wrote 10e-15 (= 1e-14): no difference unless d == 0
DEFAULT_EPS = 0.1
SCIPY_FALLBACK_OFFSET = 1e-6


class MetricError(UserError):
    """Images or features that cannot be scored (too few, empty, NaN, wrong shape)."""


# --------------------------------------------------------------------------------------------------
# Square roots


def _check_square(name: str, m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"{name} must be a square matrix, got shape {m.shape}")
    if not np.isfinite(m).all():
        raise MetricError(f"{name} contains NaN or infinite values")
    return m


def sqrtm_psd(a: np.ndarray) -> np.ndarray:
    """The symmetric PSD square root of a symmetric PSD matrix (eigh in float64; negative roundoff clipped)."""
    a = _check_square("matrix", a)
    a = (a + a.T) * 0.5  # symmetrize away roundoff (np.cov output is symmetric to the last bit anyway)
    w, u = np.linalg.eigh(a)
    return (u * np.sqrt(np.clip(w, 0.0, None))) @ u.T


def psd_factor(b: np.ndarray) -> np.ndarray:
    """F with F F^T = B: Cholesky's lower triangle when B is positive definite, else B's symmetric root."""
    b = _check_square("B", b)
    try:
        return np.linalg.cholesky(b)
    except np.linalg.LinAlgError:  # singular (fewer samples than dimensions) or not quite PSD by roundoff
        return sqrtm_psd(b)


def trace_sqrt_product(a: np.ndarray, b: np.ndarray, factor_b: np.ndarray | None = None) -> float:
    """Tr sqrt(A B) for symmetric PSD A, B: the sum of sqrt(eigvalsh(F^T A F)) for any F with F F^T = B.

    F^T A F has the eigenvalues of A F F^T = A B and is symmetric PSD. F is B's Cholesky factor (lower
    triangular: the two products cost one matrix product's worth, with BLAS trmm) or, when B is singular,
    its symmetric root. `factor_b`: F if already known (the reference's is cached with its stats).
    """
    a = _check_square("A", a)
    b = _check_square("B", b) if factor_b is None else None
    f = psd_factor(b) if factor_b is None else _check_square("factor_b", factor_b)
    if a.shape != f.shape:
        raise ValueError(f"A and B differ in shape: {a.shape} vs {f.shape}")
    if not np.triu(f, 1).any():  # lower triangular
        from scipy.linalg.blas import dtrmm

        af = dtrmm(1.0, f, a, side=1, lower=1)                 # A F
        c = dtrmm(1.0, f, af, side=0, lower=1, trans_a=1)      # F^T (A F)
    else:
        c = f.T @ a @ f
    lam = np.linalg.eigvalsh(c)  # reads one triangle; c is symmetric up to rounding
    return float(np.sqrt(np.clip(lam, 0.0, None)).sum())


# --------------------------------------------------------------------------------------------------
# Statistics and FID


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) in float64, as the scorer: np.mean(axis=0), np.cov(rowvar=False)."""
    f = check_feature_matrix(features, "features")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def check_feature_matrix(features: np.ndarray, what: str, min_rows: int = 2) -> np.ndarray:
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2:
        raise MetricError(f"{what}: expected a (N, D) feature matrix, got shape {f.shape}")
    if f.shape[0] < min_rows:
        raise MetricError(f"{what}: FID needs at least {min_rows} images (a covariance), got {f.shape[0]}")
    bad = ~np.isfinite(f).all(axis=1)
    if bad.any():
        raise MetricError(f"{what}: {int(bad.sum())} of {f.shape[0]} feature rows are NaN or infinite")
    return f


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     factor2: np.ndarray | None = None) -> float:
    """FID between N(mu1, sigma1) and N(mu2, sigma2); `factor2`: :func:`psd_factor` of sigma2, if cached."""
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"shapes differ: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}")
    if not (np.isfinite(mu1).all() and np.isfinite(mu2).all()):
        raise MetricError("a mean feature vector contains NaN or infinite values")
    diff = mu1 - mu2
    tr_covmean = trace_sqrt_product(sigma1, sigma2, factor_b=factor2)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)


def frechet_distance_scipy(mu1, sigma1, mu2, sigma2, eps: float = SCIPY_FALLBACK_OFFSET) -> float:
    """The competition's own code path: scipy.linalg.sqrtm, retried with eps*I added when not finite."""
    import scipy.linalg

    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    diff = mu1 - mu2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        covmean, _ = scipy.linalg.sqrtm(sigma1.dot(sigma2), disp=False)
        if not np.isfinite(covmean).all():
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"Imaginary component {np.max(np.abs(covmean.imag))}")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


# --------------------------------------------------------------------------------------------------
# Memorization distance and MiFID


def normalize_rows(features: np.ndarray, dtype=np.float64) -> np.ndarray:
    """Rows summing to 0 dropped (as the scorer), the others scaled to unit L2 norm."""
    f = np.asarray(features)
    keep = f.sum(axis=1) != 0
    f = np.array(f if keep.all() else f[keep], dtype=dtype)  # one copy, in `dtype`
    f /= np.sqrt(np.einsum("ij,ij->i", f, f))[:, None]  # row norms without an (N, D) temporary
    return f


def memorization_distance(gen_features: np.ndarray, ref_features: np.ndarray, *,
                          ref_normalized: np.ndarray | None = None, max_chunk_bytes: int = 128 << 20,
                          device=None) -> float:
    """d = mean_i min_j (1 - |cos(g_i, r_j)|), computed in float64 in chunks of generated rows.

    Only one (chunk x N_ref) block of similarities exists at a time (at most `max_chunk_bytes`), so 10,000
    generated x 20,000 reference features need the normalized reference (20,000 x 2048 x 8 bytes = 330 MB)
    plus 128 MB, not the 1.6 GB of the full matrix. `ref_normalized`: :func:`normalize_rows` of the
    reference, if already made. `device`: a torch device for the products (default: CPU).
    """
    import torch

    g = np.asarray(gen_features)
    if g.ndim != 2 or g.shape[0] < 1:
        raise MetricError(f"generated features: expected a non-empty (N, D) matrix, got shape {g.shape}")
    if ref_normalized is None:
        check_feature_matrix(ref_features, "reference features", min_rows=1)
        ref_normalized = normalize_rows(ref_features)
    if g.ndim != 2 or ref_normalized.ndim != 2 or g.shape[1] != ref_normalized.shape[1]:
        raise ValueError(f"feature widths differ: {g.shape} vs {ref_normalized.shape}")
    if not np.isfinite(g).all():
        raise MetricError("generated features contain NaN or infinite values")
    keep = g.sum(axis=1) != 0
    if not keep.any():
        raise MetricError("every generated feature row sums to 0: nothing to compare")
    if ref_normalized.shape[0] == 0:
        raise MetricError("every reference feature row sums to 0: nothing to compare")
    g = g[keep]
    dev = torch.device(device) if device is not None else torch.device("cpu")
    r = torch.from_numpy(np.ascontiguousarray(ref_normalized, dtype=np.float64)).to(dev)
    rows = max(1, int(max_chunk_bytes) // (8 * r.shape[0]))
    total = 0.0
    for start in range(0, g.shape[0], rows):
        chunk = torch.from_numpy(normalize_rows(g[start:start + rows])).to(dev)
        sim = chunk @ r.T                              # (rows, N_ref) cosines
        best = sim.abs_().amax(dim=1)                  # max_j |cos| ...
        total += float((1.0 - best).sum())             # ... so min_j (1 - |cos|) = 1 - max_j |cos|
        del sim
    return total / g.shape[0]


def threshold_distance(d: float, eps: float = DEFAULT_EPS) -> float:
    """d_thr = d if d < eps else 1 (d == eps counts as no memorization)."""
    return d if d < eps else 1.0


def mifid(fid: float, d: float, eps: float = DEFAULT_EPS) -> float:
    """MiFID = FID / (d_thr + 1e-15)."""
    return fid / (threshold_distance(d, eps) + MIFID_EPSILON)


def score(fid: float, d: float, n: int, eps: float = DEFAULT_EPS) -> dict:
    """The result dict every ganlab evaluation returns."""
    if not (math.isfinite(fid) and math.isfinite(d)):
        raise MetricError(f"FID ({fid}) or d ({d}) is not finite")
    d_thr = threshold_distance(d, eps)
    return {"fid": float(fid), "d": float(d), "d_thr": float(d_thr), "mifid": float(mifid(fid, d, eps)), "n": int(n)}
