"""`ganlab data show`: PNG grids of the raw images with their boxes (the paper's Fig. 1) and of the cleaned
crops (Fig. 2).

* ``raw_boxes.png``: a seeded sample of annotated images, each fitted into a square tile, with every box
  drawn: green when kept, red when dropped, labelled with the reason (aspect, too_small, empty_box).
* ``crops.png``: a seeded sample of the prepared training set (built first when needed), at its stored size.
"""
from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from ganlab.config import DataConfig
from ganlab.data.crops import filter_boxes, to_rgb
from ganlab.data.prepare import data_root, ensure_prepared, scan_root, settings_for
from ganlab.data.voc import AnnotationError, parse_annotation

KEPT = (40, 200, 60)
DROPPED = (230, 40, 40)
BACKGROUND = (255, 255, 255)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _grid(tiles: list[Image.Image], ncol: int, tile: int, pad: int) -> Image.Image:
    nrow = max(1, -(-len(tiles) // ncol))
    grid = Image.new("RGB", (ncol * tile + (ncol + 1) * pad, nrow * tile + (nrow + 1) * pad), BACKGROUND)
    for i, t in enumerate(tiles):
        r, c = divmod(i, ncol)
        x = pad + c * (tile + pad) + (tile - t.width) // 2
        y = pad + r * (tile + pad) + (tile - t.height) // 2
        grid.paste(t, (x, y))
    return grid


def raw_boxes_grid(cfg: DataConfig, n: int = 16, seed: int = 0, tile: int = 256, ncol: int = 4,
                   root: Path | None = None) -> Image.Image:
    """Fig. 1: n annotated images with their boxes drawn (green kept, red dropped with the reason)."""
    root = Path(root) if root is not None else data_root(cfg)
    settings = settings_for(cfg, "crops")
    items, _, _ = scan_root(root, "crops")
    items = [it for it in items if it.annotation is not None]
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    font = _font(max(10, tile // 18))
    tiles = []
    for i in order:
        if len(tiles) >= n:
            break
        item = items[i]
        try:
            ann = parse_annotation(root / item.annotation)
            with Image.open(root / item.image) as im:
                if im.size != (ann.width, ann.height) or not ann.boxes:
                    continue
                res = im.draft("RGB", (tile, tile)) if im.format == "JPEG" else None
                scale = ann.width / res[1][2] if res else 1.0
                rgb = to_rgb(im, 1)[0]
        except (AnnotationError, OSError, ValueError, SyntaxError):
            continue
        f = tile / max(ann.width, ann.height)
        view = rgb.resize((max(1, round(ann.width * f)), max(1, round(ann.height * f))), Image.Resampling.LANCZOS,
                          box=(0, 0, ann.width / scale, ann.height / scale))
        draw = ImageDraw.Draw(view)
        for box, reason in filter_boxes(ann.boxes, ann.width, ann.height, settings):
            color = KEPT if reason is None else DROPPED
            xy = [box.xmin * f, box.ymin * f, max(box.xmin * f, box.xmax * f - 1), max(box.ymin * f, box.ymax * f - 1)]
            draw.rectangle(xy, outline=color, width=max(2, tile // 128))
            label = "kept" if reason is None else reason
            if box.height > 0 and box.width > 0:
                label += f" {box.width / box.height:.2f}"
            tx, ty = xy[0] + 3, xy[1] + 2
            bbox = draw.textbbox((tx, ty), label, font=font)
            draw.rectangle(bbox, fill=(0, 0, 0))
            draw.text((tx, ty), label, fill=color, font=font)
        tiles.append(view)
    return _grid(tiles, ncol, tile, pad=4)


def crops_grid(images, n: int = 64, seed: int = 0, ncol: int = 8, scale: int = 1) -> Image.Image:
    """Fig. 2: n images of a uint8 (N, 3, H, W) tensor, in a seeded random order, as a grid."""
    count = int(images.shape[0])
    idx = list(range(count))
    random.Random(seed).shuffle(idx)
    idx = idx[:n]
    size = int(images.shape[-1])
    tiles = []
    for i in idx:
        arr = images[i].permute(1, 2, 0).contiguous().numpy()
        t = Image.fromarray(arr, "RGB")
        if scale != 1:
            t = t.resize((size * scale, size * scale), Image.Resampling.NEAREST)
        tiles.append(t)
    return _grid(tiles, ncol, size * scale, pad=2)


def show(cfg: DataConfig, dest: str | Path, n_raw: int = 16, n_crops: int = 64, seed: int = 0,
         root: Path | None = None, progress: bool = True, scale: int = 2) -> list[Path]:
    """Write dest/raw_boxes.png and dest/crops.png; return their paths."""
    import torch

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    raw = raw_boxes_grid(cfg, n=n_raw, seed=seed, root=root)
    folder = ensure_prepared(cfg, "crops", progress=progress, root=root)
    images = torch.load(folder / "images.pt", weights_only=True)
    crops = crops_grid(images, n=n_crops, seed=seed, scale=scale)
    out = []
    for name, im in (("raw_boxes.png", raw), ("crops.png", crops)):
        path = dest / name
        tmp = path.with_name(f".{name}.tmp")
        im.save(tmp, format="PNG")
        tmp.replace(path)
        out.append(path)
    return out
