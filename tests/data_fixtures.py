"""Tiny Stanford-Dogs-shaped folders in real formats (JPEG/PNG written by PIL, VOC XML), for the data tests.

Imported by tests/test_data_*.py (``from data_fixtures import ...``); the fixtures carry a ``dogs_`` prefix.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganlab.config import DataConfig


def dogs_pixels(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth colour pattern with some texture, (height, width, 3) uint8 (JPEG-friendly, not flat)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 128 + 100 * np.sin(x / (7 + seed % 5))
    g = 128 + 100 * np.cos(y / (9 + seed % 3))
    b = (x + y) * 255 / (width + height)
    img = np.stack([r, g, b], axis=-1) + rng.normal(0, 8, (height, width, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def dogs_write_image(path: Path, width: int, height: int, *, seed: int = 0, mode: str = "RGB",
                     fmt: str = "JPEG", pixels: np.ndarray | None = None, quality: int = 92) -> Path:
    """An image file at `path` (name ending .jpg whatever `fmt` is)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = dogs_pixels(width, height, seed) if pixels is None else pixels
    im = Image.fromarray(arr, "RGB")
    if mode != "RGB":
        im = im.convert(mode)
    kwargs = {"quality": quality} if fmt == "JPEG" else {}
    im.save(path, format=fmt, **kwargs)
    return path


def dogs_voc_xml(width: int, height: int, boxes: list[tuple[int, int, int, int]], name: str = "dog",
                 depth: int = 3) -> str:
    objects = "".join(
        f"\t<object>\n\t\t<name>{name}</name>\n\t\t<pose>Unspecified</pose>\n\t\t<truncated>0</truncated>\n"
        f"\t\t<difficult>0</difficult>\n\t\t<bndbox>\n\t\t\t<xmin>{x0}</xmin>\n\t\t\t<ymin>{y0}</ymin>\n"
        f"\t\t\t<xmax>{x1}</xmax>\n\t\t\t<ymax>{y1}</ymax>\n\t\t</bndbox>\n\t</object>\n"
        for x0, y0, x1, y1 in boxes)
    return (f"<annotation>\n\t<folder>x</folder>\n\t<filename>x</filename>\n\t<source>\n\t\t<database>ImageNet "
            f"database</database>\n\t</source>\n\t<size>\n\t\t<width>{width}</width>\n\t\t<height>{height}</height>"
            f"\n\t\t<depth>{depth}</depth>\n\t</size>\n\t<segment>0</segment>\n{objects}</annotation>")


def dogs_add(root: Path, folder: str, image_id: str, width: int, height: int,
             boxes: list[tuple[int, int, int, int]] | None, *, ann_size: tuple[int, int] | None = None,
             seed: int = 0, **image_kwargs) -> Path:
    """One image (and its annotation unless boxes is None) in the Stanford Dogs layout."""
    img = dogs_write_image(root / "Images" / folder / f"{image_id}.jpg", width, height, seed=seed, **image_kwargs)
    if boxes is not None:
        aw, ah = ann_size or (width, height)
        ann = root / "Annotation" / folder / image_id
        ann.parent.mkdir(parents=True, exist_ok=True)
        ann.write_text(dogs_voc_xml(aw, ah, boxes, name=folder.split("-", 1)[1]))
    return img


# What the mixed fixture holds, reason by reason (the tests assert these numbers).
MIXED_EXPECTED = {
    "images": 16,
    "boxes": 14,
    "kept": 7,
    "boxes_pass_aspect": 8,
    "images_skipped": {"no_annotation": 1, "bad_annotation": 2, "unreadable_image": 2, "size_mismatch": 1,
                       "no_boxes": 1},
    "boxes_dropped": {"empty_box": 2, "aspect": 1, "too_small": 1, "image_skipped": 3},
    "converted_to_rgb": {"CMYK": 1, "L": 1, "PNG": 1},
    "annotations_without_image": 1,
}


def dogs_make_mixed(root: Path) -> Path:
    """Good and bad inputs side by side: every reason of the report occurs (see MIXED_EXPECTED)."""
    a, b = "n00000001-Alpha_dog", "n00000002-Beta_dog"
    dogs_add(root, a, "n00000001_1", 200, 160, [(40, 30, 140, 130)], seed=1)  # kept
    dogs_add(root, a, "n00000001_2", 300, 200, [(10, 10, 130, 120), (0, 50, 200, 130)], seed=2)  # kept + aspect
    dogs_add(root, a, "n00000001_3", 120, 120, [(10, 10, 30, 30)], seed=3)  # too_small (20 px)
    dogs_add(root, a, "n00000001_4", 160, 160, [(80, 70, 400, 390)], seed=4)  # outside: clamped to 80x90, kept
    dogs_add(root, a, "n00000001_5", 160, 160, [(200, 200, 260, 260), (50, 50, 50, 90)], seed=5)  # 2 empty
    dogs_add(root, a, "n00000001_6", 900, 700, [(100, 80, 740, 690)], seed=6)  # large: draft-decoded, kept
    dogs_add(root, b, "n00000002_1", 150, 150, [(20, 20, 120, 120)], seed=7, fmt="PNG")  # PNG named .jpg
    dogs_add(root, b, "n00000002_2", 150, 150, [(20, 20, 120, 120)], seed=8, mode="L")  # grayscale JPEG
    dogs_add(root, b, "n00000002_3", 150, 150, [(20, 20, 120, 120)], seed=9, mode="CMYK")  # CMYK JPEG
    trunc = dogs_add(root, b, "n00000002_4", 300, 300, [(20, 20, 220, 220)], seed=10)  # truncated JPEG
    data = trunc.read_bytes()
    trunc.write_bytes(data[: len(data) // 2])
    junk = dogs_add(root, b, "n00000002_5", 100, 100, [(10, 10, 90, 90)], seed=11)  # not an image at all
    junk.write_bytes(b"this is not a JPEG file\n" * 20)
    dogs_add(root, b, "n00000002_6", 100, 100, None, seed=12)  # no annotation
    dogs_add(root, b, "n00000002_7", 100, 100, [(10, 10, 90, 90)], seed=13)
    (root / "Annotation" / b / "n00000002_7").write_text("<annotation><size><width>100</wid")  # malformed XML
    dogs_add(root, b, "n00000002_8", 100, 100, [(10, 10, 90, 90)], seed=14)
    (root / "Annotation" / b / "n00000002_8").write_text(
        "<annotation><object><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox>"
        "</object></annotation>")  # no <size>
    dogs_add(root, b, "n00000002_9", 120, 100, [(10, 10, 90, 90)], ann_size=(100, 120), seed=15)  # size mismatch
    dogs_add(root, b, "n00000002_10", 100, 100, [], seed=16)  # valid annotation without objects
    (root / "Annotation" / b / "n00000002_99").write_text(dogs_voc_xml(100, 100, [(0, 0, 50, 50)]))  # no image
    return root


def dogs_make_clean(root: Path, n: int = 6, size: tuple[int, int] = (160, 140)) -> Path:
    """n plain RGB JPEGs with one square-ish box each (all kept)."""
    for i in range(n):
        folder = "n00000003-Gamma_dog" if i % 2 else "n00000004-Delta_dog"
        dogs_add(root, folder, f"img_{i}", size[0], size[1], [(10 + i, 12, 110 + i, 112)], seed=20 + i)
    return root


def dogs_png_bytes(width: int, height: int, seed: int = 0) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(dogs_pixels(width, height, seed), "RGB").save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def dogs_mixed_root(tmp_path) -> Path:
    return dogs_make_mixed(tmp_path / "dogs")


@pytest.fixture
def dogs_clean_root(tmp_path) -> Path:
    return dogs_make_clean(tmp_path / "clean")


@pytest.fixture
def dogs_cfg(tmp_path, monkeypatch) -> DataConfig:
    """Defaults with the cache in tmp_path, one worker, and no GANLAB_DATA_ROOT from the environment."""
    monkeypatch.delenv("GANLAB_DATA_ROOT", raising=False)
    return DataConfig(root=str(tmp_path / "dogs"), cache_dir=str(tmp_path / "cache"), workers=1)
