"""Reference-stats cache and the Evaluator, with the fast stand-in extractor (not the Inception network)."""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from ganlab.config import build_config
from ganlab.errors import UserError
from ganlab.metrics import cache as C
from ganlab.metrics.evaluate import Evaluator, score_images
from ganlab.metrics.features import stand_in_extractor


class Counting:
    """Wraps an extractor, counting the images it is asked for."""

    def __init__(self, ex):
        self.ex, self.calls = ex, 0

    @property
    def id(self):
        return self.ex.id

    @property
    def device(self):
        return self.ex.device

    def __call__(self, images, progress=False, desc=""):
        self.calls += 1
        return self.ex(images, progress=progress, desc=desc)

    def from_generator(self, *a, **kw):
        return self.ex.from_generator(*a, **kw)


def images(n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 64, 64), generator=g, dtype=torch.uint8)


def test_cache_written_once_then_read(tmp_path):
    ref = images(12, 0)
    ex = Counting(stand_in_extractor(dim=64))
    s1 = C.reference_stats(ref, ex, tmp_path)
    assert ex.calls == 1 and not s1.from_cache
    files = list(tmp_path.glob("ref-*.npz"))
    assert len(files) == 1 and not list(tmp_path.glob(".*tmp"))
    s2 = C.reference_stats(ref.clone(), ex, tmp_path)
    assert ex.calls == 1 and s2.from_cache  # same content: read, not recomputed
    for name in ("mu", "sigma", "factor", "features"):
        np.testing.assert_array_equal(getattr(s1, name), getattr(s2, name))
    np.testing.assert_allclose(s2.factor @ s2.factor.T, s2.sigma, atol=1e-10)


def test_changed_reference_or_extractor_never_reuses_the_cache(tmp_path):
    ref = images(12, 0)
    ex = Counting(stand_in_extractor(dim=64, seed=0))
    C.reference_stats(ref, ex, tmp_path)
    changed = ref.clone()
    changed[3, 1, 10, 10] ^= 1  # one bit of one pixel
    s = C.reference_stats(changed, ex, tmp_path)
    assert ex.calls == 2 and not s.from_cache
    other = Counting(stand_in_extractor(dim=64, seed=1))  # another network
    s = C.reference_stats(ref, other, tmp_path)
    assert other.calls == 1 and not s.from_cache
    assert len(list(tmp_path.glob("ref-*.npz"))) == 3
    # the same images in another shape are other content too
    assert C.images_digest(ref) != C.images_digest(ref.reshape(12, 3, 32, 128))


def test_corrupt_cache_is_recomputed(tmp_path):
    ref = images(8, 2)
    ex = Counting(stand_in_extractor(dim=64))
    s = C.reference_stats(ref, ex, tmp_path)
    path = C.cache_path(tmp_path, s.key)
    path.write_bytes(path.read_bytes()[:100])  # truncated by a crash
    s2 = C.reference_stats(ref, ex, tmp_path)
    assert ex.calls == 2 and not s2.from_cache
    assert C.reference_stats(ref, ex, tmp_path).from_cache


def test_no_cache_dir_computes_without_writing(tmp_path):
    ex = Counting(stand_in_extractor(dim=64))
    C.reference_stats(images(5, 0), ex, None)
    C.reference_stats(images(5, 0), ex, None)
    assert ex.calls == 2


def test_score_images_training_images_as_generated():
    ref_imgs = images(20, 3)
    ex = stand_in_extractor(dim=64)
    ref = C.reference_stats(ref_imgs, ex)
    # the training images themselves, slightly perturbed: near-copies
    noisy = (ref_imgs[:10].int() + torch.randint(-3, 4, ref_imgs[:10].shape)).clamp(0, 255).to(torch.uint8)
    s = score_images(noisy, ref, eps=0.1, extractor=ex)
    assert 0 < s["d"] < 0.1 and s["d_thr"] == s["d"]
    assert s["mifid"] == s["fid"] / (s["d"] + 1e-15)
    assert s["mifid"] == pytest.approx(s["fid"] / s["d"], rel=1e-6)
    far = score_images(images(10, 4), ref, eps=1e-9, extractor=ex)  # eps tiny: no penalty
    assert far["d_thr"] == 1.0 and far["mifid"] == pytest.approx(far["fid"])
    with pytest.raises(UserError, match="at least 2"):
        score_images(ref_imgs[:1], ref, extractor=ex)


def tiny_config(tmp_path, **eval_keys):
    raw = {"device": "cpu", "data": {"cache_dir": str(tmp_path / "prepared")},
           "eval": {"n_images": 6, "batch_size": 4, **eval_keys}}
    return build_config(raw, source="test")


def test_evaluator_reads_reference_through_load_images_and_caches(tmp_path, monkeypatch):
    calls = []
    ref_imgs = images(16, 5)

    def load_images(cfg, kind):
        calls.append(kind)
        return ref_imgs

    monkeypatch.setitem(sys.modules, "ganlab.data.prepare", types.SimpleNamespace(load_images=load_images))
    config = tiny_config(tmp_path, reference="kaggle")
    ex = Counting(stand_in_extractor(dim=64, batch_size=4))
    ev = Evaluator(config, torch.device("cpu"), extractor=ex)
    g = torch.Generator().manual_seed(0)
    seen = []

    def generate(k):
        seen.append(k)
        return torch.rand(k, 3, 64, 64, generator=g) * 2 - 1

    out = ev.evaluate(generate, 6)
    assert set(out) >= {"fid", "d", "mifid", "n"} and out["n"] == 6
    assert calls == ["whole"] and sum(seen) == 6
    assert list((tmp_path / "prepared" / "reference_cache").glob("ref-*.npz"))
    out2 = ev.evaluate(generate, 6)  # reference kept in memory
    assert calls == ["whole"] and ex.calls == 1 and out2["fid"] != out["fid"]
    ev2 = Evaluator(config, "cpu", extractor=ex)  # a new run: reference from the disk cache
    ev2.evaluate(generate, 6)
    assert ex.calls == 1 and ev2.reference.from_cache and calls == ["whole", "whole"]


def test_evaluator_train_reference_is_the_crops(tmp_path, monkeypatch):
    kinds = []
    monkeypatch.setitem(sys.modules, "ganlab.data.prepare", types.SimpleNamespace(
        load_images=lambda cfg, kind: kinds.append(kind) or images(8, 6)))
    ev = Evaluator(tiny_config(tmp_path, reference="train"), "cpu", tmp_path / "c",
                   extractor=stand_in_extractor(dim=64))
    ev.evaluate(lambda k: torch.zeros(k, 3, 64, 64).uniform_(-1, 1), 4)
    assert kinds == ["crops"] and list((tmp_path / "c").glob("ref-*.npz"))


def test_evaluator_errors(tmp_path):
    ev = Evaluator(tiny_config(tmp_path), "cpu", extractor=stand_in_extractor(dim=64), reference_images=images(6, 0))
    with pytest.raises(UserError, match="NaN"):
        ev.evaluate(lambda k: torch.full((k, 3, 64, 64), float("nan")), 4)
    with pytest.raises(UserError, match="at least 2"):
        ev.evaluate(lambda k: torch.zeros(k, 3, 64, 64), 1)
