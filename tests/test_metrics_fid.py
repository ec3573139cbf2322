"""The pure functions of ganlab.metrics.fid: square roots, FID, memorization distance, MiFID."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from scipy.stats import ortho_group

from ganlab.errors import UserError
from ganlab.metrics import fid as F


# --- the competition's own code, verbatim in substance, as the oracle ---------------------------------

def kaggle_cosine_distance(features1, features2):
    def normalize_rows(x):
        return np.nan_to_num(x / np.linalg.norm(x, ord=2, axis=1, keepdims=True))

    f1 = features1[np.sum(features1, axis=1) != 0]
    f2 = features2[np.sum(features2, axis=1) != 0]
    d = 1.0 - np.abs(np.matmul(normalize_rows(f1), normalize_rows(f2).T))
    return np.mean(np.min(d, axis=1))


def random_psd(n, rank=None, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rank or n + 3, n))
    return x.T @ x / x.shape[0]


TRIDIAG = np.array([[2.0, -1.0, 0.0], [-1.0, 2.0, -1.0], [0.0, -1.0, 2.0]])  # PD: it is its square's root


# --- square roots ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("a, root", [
    (np.diag([4.0, 9.0]), np.diag([2.0, 3.0])),
    (np.array([[5.0, 4.0], [4.0, 5.0]]), np.array([[2.0, 1.0], [1.0, 2.0]])),
    (np.array([[1.0, 0.0], [0.0, 0.0]]), np.array([[1.0, 0.0], [0.0, 0.0]])),  # singular
    (np.zeros((3, 3)), np.zeros((3, 3))),
    (TRIDIAG @ TRIDIAG, TRIDIAG),
])
def test_sqrtm_psd_known_roots(a, root):
    np.testing.assert_allclose(F.sqrtm_psd(a), root, atol=1e-12)


def test_sqrtm_psd_squares_back_and_matches_scipy():
    a = random_psd(50, seed=1)
    r = F.sqrtm_psd(a)
    np.testing.assert_allclose(r @ r, a, atol=1e-12)
    np.testing.assert_allclose(r, r.T, atol=0)
    np.testing.assert_allclose(r, scipy.linalg.sqrtm(a).real, atol=1e-10)


def test_trace_sqrt_product_commuting_known_value():
    # A = U diag(a) U^T, B = U diag(b) U^T  =>  sqrt(AB) = U diag(sqrt(a b)) U^T exactly
    u = ortho_group.rvs(40, random_state=3)
    a = np.linspace(0.0, 5.0, 40)  # includes a 0: singular
    b = np.linspace(3.0, 0.5, 40) ** 2
    A, B = (u * a) @ u.T, (u * b) @ u.T
    expected = np.sqrt(a * b).sum()
    # the zero eigenvalue comes out as roundoff ~1e-16 * |C|, whose root adds ~1e-8: exact to that
    assert F.trace_sqrt_product(A, B) == pytest.approx(expected, abs=1e-7)
    assert F.trace_sqrt_product(B, A) == pytest.approx(expected, abs=1e-7)
    assert F.trace_sqrt_product(A, A) == pytest.approx(a.sum(), abs=1e-7)  # Tr sqrt(A^2) = Tr A
    full = np.diag(np.linspace(1.0, 5.0, 40))  # no zero eigenvalue: exact to rounding
    assert F.trace_sqrt_product((u * np.diag(full)) @ u.T, B) == pytest.approx(
        np.sqrt(np.diag(full) * b).sum(), rel=1e-13)


def test_trace_sqrt_product_matches_scipy_on_non_commuting():
    A, B = random_psd(30, seed=4), random_psd(30, seed=5)
    expected = np.trace(scipy.linalg.sqrtm(A @ B)).real
    assert F.trace_sqrt_product(A, B) == pytest.approx(expected, rel=1e-10)
    # with B's factor given (the cached reference), the same: Cholesky factor or symmetric root
    assert F.trace_sqrt_product(A, B, factor_b=F.psd_factor(B)) == pytest.approx(expected, rel=1e-10)
    assert F.trace_sqrt_product(A, B, factor_b=F.sqrtm_psd(B)) == pytest.approx(expected, rel=1e-10)
    np.testing.assert_allclose(F.psd_factor(B), np.linalg.cholesky(B))


def test_psd_factor_falls_back_to_the_root_for_singular_matrices():
    S = random_psd(20, rank=5, seed=9)
    f = F.psd_factor(S)
    np.testing.assert_allclose(f @ f.T, S, atol=1e-12)
    np.testing.assert_allclose(f, F.sqrtm_psd(S))


def test_trace_sqrt_product_rank_deficient_like_few_images():
    # 10 samples in 64-d: both covariances have rank 9, as with fewer images than features
    rng = np.random.default_rng(6)
    A = np.cov(rng.standard_normal((10, 64)), rowvar=False)
    B = np.cov(rng.standard_normal((10, 64)) ** 2, rowvar=False)
    lam = np.linalg.eigvals(A @ B)  # reference: eigenvalues of the product itself
    expected = np.sqrt(np.clip(lam.real, 0, None)).sum()
    assert F.trace_sqrt_product(A, B) == pytest.approx(expected, rel=1e-8)


def test_square_root_input_errors():
    with pytest.raises(ValueError):
        F.sqrtm_psd(np.ones((2, 3)))
    with pytest.raises(UserError, match="NaN"):
        F.sqrtm_psd(np.array([[1.0, np.nan], [np.nan, 1.0]]))
    with pytest.raises(ValueError):
        F.trace_sqrt_product(np.eye(2), np.eye(3))


# --- FID -----------------------------------------------------------------------------------------------

def test_fid_of_a_set_with_itself_is_zero_and_matches_scipy_path():
    rng = np.random.default_rng(7)
    x = np.abs(rng.standard_normal((300, 32)))
    y = np.abs(rng.standard_normal((300, 32))) * 1.3 + 0.1
    mx, sx = F.feature_stats(x)
    my, sy = F.feature_stats(y)
    assert abs(F.frechet_distance(mx, sx, mx, sx)) < 1e-10
    fid = F.frechet_distance(mx, sx, my, sy)
    assert fid > 0.1
    assert fid == pytest.approx(F.frechet_distance_scipy(mx, sx, my, sy), rel=1e-9)
    assert fid == pytest.approx(F.frechet_distance(mx, sx, my, sy, factor2=F.psd_factor(sy)), rel=1e-12)


def test_fid_of_gaussians_closed_form():
    # 1-d: FID = (m1 - m2)^2 + (s1 - s2)^2
    assert F.frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4.0 + 1.0)


def test_feature_stats_errors():
    with pytest.raises(UserError, match="at least 2"):
        F.feature_stats(np.ones((1, 8)))
    bad = np.ones((4, 8))
    bad[2, 3] = np.nan
    with pytest.raises(UserError, match="NaN"):
        F.feature_stats(bad)
    with pytest.raises(UserError):
        F.feature_stats(np.ones(8))


# --- memorization distance and MiFID ------------------------------------------------------------------

def test_memorization_distance_matches_the_competition_code_and_chunks():
    rng = np.random.default_rng(8)
    gen = np.abs(rng.standard_normal((97, 48))).astype(np.float32)
    ref = np.abs(rng.standard_normal((131, 48))).astype(np.float32)
    gen[5] = 0.0  # rows summing to 0 are dropped on both sides
    ref[7] = 0.0
    expected = kaggle_cosine_distance(gen.astype(np.float64), ref.astype(np.float64))
    assert F.memorization_distance(gen, ref) == pytest.approx(expected, rel=1e-12)
    # tiny chunks (one row of similarities at a time): the same number
    assert F.memorization_distance(gen, ref, max_chunk_bytes=1) == pytest.approx(expected, rel=1e-12)
    assert F.memorization_distance(gen, None, ref_normalized=F.normalize_rows(ref), max_chunk_bytes=8 * 131 * 10) \
        == pytest.approx(expected, rel=1e-12)


def test_memorization_uses_absolute_cosine():
    ref = np.array([[1.0, 2.0, 3.0], [0.0, 1.0, 0.0]])
    gen = -ref[:1] * 2.0  # opposite direction: |cos| = 1, d = 0
    assert F.memorization_distance(gen, ref) == pytest.approx(0.0, abs=1e-15)
    orth = np.array([[1.0, 0.0, 0.0]])
    d = F.memorization_distance(orth, np.array([[0.0, 1.0, 0.0]]))
    assert d == pytest.approx(1.0)


def test_memorization_errors():
    with pytest.raises(UserError, match="sums to 0"):
        F.memorization_distance(np.zeros((3, 4)), np.ones((3, 4)))
    with pytest.raises(UserError, match="NaN"):
        F.memorization_distance(np.full((3, 4), np.nan), np.ones((3, 4)))


def test_threshold_edge_and_mifid():
    assert F.threshold_distance(0.05, 0.1) == 0.05
    assert F.threshold_distance(0.1, 0.1) == 1.0  # d == eps: no penalty, d_thr = 1
    assert F.threshold_distance(0.2, 0.1) == 1.0
    assert F.threshold_distance(0.1, 0.2) == 0.1  # eps configurable
    assert F.mifid(40.0, 0.1, 0.1) == pytest.approx(40.0)
    assert F.mifid(40.0, 0.05, 0.1) == 40.0 / (0.05 + 1e-15)
    s = F.score(40.0, 0.05, 10, 0.1)
    assert s == {"fid": 40.0, "d": 0.05, "d_thr": 0.05, "mifid": 40.0 / (0.05 + 1e-15), "n": 10}
    with pytest.raises(UserError):
        F.score(float("nan"), 0.2, 10)
