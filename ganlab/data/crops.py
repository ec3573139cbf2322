"""The per-image work of `prepare`: read an annotation, filter its boxes, decode, crop and resize.

Pure PIL (no torch) and deterministic: the results only depend on the (sorted) order of the inputs, never
on how the work was scheduled over processes.

Reasons an image is skipped (``IMAGE_REASONS``) and a box is dropped (``BOX_REASONS``) are the keys of the
report. The filters run in this order: empty box, aspect ratio, low quality (shorter side in pixels).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ganlab.data.voc import AnnotationError, Box, Item, parse_annotation

# image-level reasons (the image contributes nothing)
NO_ANNOTATION = "no_annotation"  # Images/... has no Annotation/... file
BAD_ANNOTATION = "bad_annotation"  # not XML, no <size>, a field missing or not a number
UNREADABLE_IMAGE = "unreadable_image"  # not an image, truncated or corrupt data
SIZE_MISMATCH = "size_mismatch"  # the annotation's <size> is not the image's size: the boxes cannot be trusted
NO_BOXES = "no_boxes"  # a valid annotation with no <object>
IMAGE_REASONS = (NO_ANNOTATION, BAD_ANNOTATION, UNREADABLE_IMAGE, SIZE_MISMATCH, NO_BOXES)

# box-level reasons
EMPTY_BOX = "empty_box"  # zero area once clamped to the image (outside it, or xmax <= xmin)
ASPECT = "aspect"  # width/height outside [min_aspect, max_aspect]
TOO_SMALL = "too_small"  # shorter side below min_box_side pixels (the low-quality rule)
IMAGE_SKIPPED = "image_skipped"  # the box's image was skipped (unreadable, size mismatch)
BOX_REASONS = (EMPTY_BOX, ASPECT, TOO_SMALL, IMAGE_SKIPPED)

# Default JPEG draft margins (see Settings.draft_margin). Measured on the real subset against a full decode:
# crops at 1.0 differ by a mean 1.44, 99th percentile 9, max 56 gray levels (PSNR 40.4 dB) and prepare 2.2x
# less CPU; the whole images, the metrics' reference set, use 2.0 (mean 0.32, p99 2, max 28, PSNR 51.8 dB).
DRAFT_MARGINS = {"crops": 1.0, "whole": 2.0}
DRAFT_MARGIN = DRAFT_MARGINS["crops"]
RESAMPLE = Image.Resampling.LANCZOS  # the paper's Image.ANTIALIAS; PIL's resize is antialiased


@dataclass(frozen=True)
class Settings:
    """Everything that changes the bytes of a prepared set (all of it goes into the cache key)."""

    kind: str = "crops"  # crops: the paper's training set; whole: every whole image squashed to size x size
    image_size: int = 64
    min_aspect: float = 0.8
    max_aspect: float = 1.25
    min_box_side: int = 32
    # JPEG draft mode: decode at 1/2, 1/4 or 1/8 scale (DCT scaling) when the region to resize still
    # keeps at least draft_margin * image_size pixels on its shorter side at that scale; 0 turns it off
    # (docs/data.md and bench/prepare_speed.py give the pixel tolerance).
    draft_margin: float = DRAFT_MARGIN
    resample: str = "lanczos"


@dataclass
class ImageResult:
    skip: str | None = None  # an IMAGE_REASONS value, or None
    detail: str = ""  # what went wrong, for the report's examples
    size: tuple[int, int] = (0, 0)  # the image's (width, height) as decoded at full size
    converted: str = ""  # "" or the source mode/format converted to RGB, e.g. "L", "CMYK", "PNG"
    boxes: tuple = ()  # ((Box clamped, reason or None), ...) in annotation order
    pixels: bytes = b""  # the kept outputs, each size*size*3 bytes of HWC RGB, in box order
    scale: int = 1  # the JPEG draft scale used (1: full decode)


def filter_boxes(boxes: list[Box], width: int, height: int, s: Settings) -> list[tuple[Box, str | None]]:
    """Clamp each box to the image and give it the first reason that drops it (None: kept)."""
    out = []
    for box in boxes:
        b = box.clamp(width, height)
        if b.width <= 0 or b.height <= 0:
            out.append((b, EMPTY_BOX))
        elif not (s.min_aspect <= b.width / b.height <= s.max_aspect):
            out.append((b, ASPECT))
        elif min(b.width, b.height) < s.min_box_side:
            out.append((b, TOO_SMALL))
        else:
            out.append((b, None))
    return out


def draft_scale(width: int, height: int, regions: list[tuple[float, float]], s: Settings) -> int:
    """The largest JPEG DCT scale (1, 2, 4, 8) at which every region's shorter side keeps
    draft_margin * image_size pixels."""
    if s.draft_margin <= 0 or not regions:
        return 1
    shortest = min(min(w, h) for w, h in regions)
    limit = shortest / (s.draft_margin * s.image_size)
    for scale in (8, 4, 2):
        if scale <= limit and width // scale >= 1 and height // scale >= 1:
            return scale
    return 1


def to_rgb(im: Image.Image, scale: int) -> tuple[Image.Image, int, str]:
    """Decode the opened (not yet loaded) image as RGB, at 1/scale size when it is a JPEG (draft mode).
    Returns the image, the scale actually used and what was converted ("" for an RGB JPEG)."""
    converted = "" if im.format == "JPEG" else (im.format or "unknown")
    used = 1
    if scale > 1 and im.format == "JPEG":
        w, h = im.size
        res = im.draft("RGB", (w // scale, h // scale))
        if res is not None:
            used = max(1, round(w / res[1][2]))
    if im.mode != "RGB":
        converted = f"{converted}+{im.mode}" if converted else im.mode
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            rgba = im.convert("RGBA")
            bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))  # transparency on white
            return Image.alpha_composite(bg, rgba).convert("RGB"), used, converted
        return im.convert("RGB"), used, converted
    im.load()
    return im, used, converted


def resize_region(im: Image.Image, box: tuple[float, float, float, float], size: int) -> bytes:
    """The region `box` (in `im`'s pixel coordinates, floats allowed) resized to size x size, RGB bytes."""
    return im.resize((size, size), RESAMPLE, box=box).tobytes()


def process_image(root: Path, item: Item, s: Settings) -> ImageResult:
    """One image -> its kept outputs and the reasons for the rest. Never raises for bad data."""
    res = ImageResult()
    boxes: list[Box] = []
    if s.kind == "crops":
        if item.annotation is None:
            res.skip = NO_ANNOTATION
            return res
        try:
            ann = parse_annotation(root / item.annotation)
        except AnnotationError as exc:
            res.skip, res.detail = BAD_ANNOTATION, str(exc)
            return res
        if not ann.boxes:
            res.skip = NO_BOXES
            return res
        boxes = ann.boxes
        # judged against the annotation's size first: an image none of whose boxes survives is never opened
        judged = filter_boxes(boxes, ann.width, ann.height, s)
        regions = [(b.xmin, b.ymin, b.xmax, b.ymax) for b, why in judged if why is None]
        res.size = (ann.width, ann.height)
        if not regions:
            res.boxes = tuple(judged)
            return res
    path = root / item.image
    try:
        with warnings.catch_warnings(), Image.open(path) as im:
            warnings.simplefilter("ignore")  # PIL's "truncated"/EXIF warnings: the errors below decide
            width, height = im.size
            res.size = (width, height)
            if s.kind == "crops" and (ann.width, ann.height) != (width, height):
                res.skip = SIZE_MISMATCH
                res.detail = f"annotation says {ann.width}x{ann.height}, image is {width}x{height}"
                res.boxes = tuple((b, IMAGE_SKIPPED) for b in boxes)
                return res
            if s.kind == "whole":
                judged = []
                regions = [(0, 0, width, height)]
            scale = draft_scale(width, height, [(x1 - x0, y1 - y0) for x0, y0, x1, y1 in regions], s)
            rgb, used, res.converted = to_rgb(im, scale)
            res.scale = used
            pixels = [resize_region(rgb, tuple(c / used for c in r), s.image_size) for r in regions]
    except Exception as exc:  # noqa: BLE001 -- OSError (truncated), UnidentifiedImageError, DecompressionBombError...
        res.skip, res.detail = UNREADABLE_IMAGE, f"{type(exc).__name__}: {exc}".replace(f" '{path}'", "")
        res.boxes = tuple((b, IMAGE_SKIPPED) for b in boxes)
        return res
    res.boxes = tuple(judged)
    res.pixels = b"".join(pixels)
    return res


def process_chunk(root: str, items: list[Item], s: Settings) -> list[ImageResult]:
    """A worker's unit of work: a slice of the sorted item list, results in the same order."""
    base = Path(root)
    return [process_image(base, item, s) for item in items]
