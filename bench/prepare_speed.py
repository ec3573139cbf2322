"""Benchmark: `ganlab data prepare` against a plain single-process PIL loop, on the real Stanford Dogs subset.

    python bench/prepare_speed.py [ROOT] [--workers N] [--repeat N] [--json FILE]

ROOT defaults to $GANLAB_TEST_DOGS, else ../shared/data/stanford-dogs-subset (relative to the project).

It times, after one untimed pass that puts every file in the page cache:

1. the plain loop written below (what the paper's notebook did): for each annotation, open the image, and for
   each box that passes the filters, ``img.crop(box).convert("RGB").resize((64, 64), LANCZOS)``; one process;
2. ``ensure_prepared(..., force=True)``: the real command (scan, cache key, parallel draft-mode decode,
   crop and resize, writing images.pt and the rest), with all cores;
3. the same with draft mode off (every JPEG decoded at full size), which is also the reference of the
   pixel tolerance: the draft-mode crops are compared with these, pixel by pixel.

It prints images/s (input images) and crops/s of each, the speed-up, the CPU seconds used, and the
differences between the sets (max, mean, 99th and 99.9th percentile of |a - b| over all uint8 values, PSNR).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing

from ganlab.config import DataConfig  # noqa: E402
from ganlab.data import prepare as P  # noqa: E402


def plain_loop(root: Path, size: int = 64, min_aspect: float = 0.8, max_aspect: float = 1.25,
               min_side: int = 32) -> tuple[dict, int]:
    """The baseline: one process, full decode, crop then resize. Returns {(image_id, box): HWC array}."""
    out = {}
    n_images = 0
    ann_root = root / "Annotation"
    for folder in sorted(os.listdir(ann_root)):
        for name in sorted(os.listdir(ann_root / folder)):
            tree = ET.parse(ann_root / folder / name)
            img = Image.open(root / "Images" / folder / f"{name}.jpg")
            n_images += 1
            for obj in tree.getroot().findall("object"):
                bb = obj.find("bndbox")
                box = tuple(int(bb.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax"))
                w, h = box[2] - box[0], box[3] - box[1]
                if w <= 0 or h <= 0 or not (min_aspect <= w / h <= max_aspect) or min(w, h) < min_side:
                    continue
                crop = img.crop(box).convert("RGB").resize((size, size), Image.Resampling.LANCZOS)
                out[(name, box)] = np.asarray(crop)
            img.close()
    return out, n_images


def cpu_seconds() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn):
    t0, c0 = time.perf_counter(), cpu_seconds()
    result = fn()
    return result, time.perf_counter() - t0, cpu_seconds() - c0


def diff_stats(a: np.ndarray, b: np.ndarray) -> dict:
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    mse = float(((a.astype(np.float64) - b) ** 2).mean())
    per_image = d.reshape(d.shape[0], -1).mean(axis=1)
    return {"max": int(d.max()), "mean": round(float(d.mean()), 3), "p99": float(np.percentile(d, 99)),
            "p99.9": float(np.percentile(d, 99.9)), "worst_image_mean": round(float(per_image.max()), 2),
            "psnr_db": round(10 * np.log10(255 ** 2 / mse), 1) if mse else float("inf")}


def prepared(root: Path, cache: Path, workers: int, margin: float | None) -> tuple[dict, dict]:
    cfg = DataConfig(root=str(root), cache_dir=str(cache), workers=workers)
    folder = P.ensure_prepared(cfg, progress=False, force=True, root=root, draft_margin=margin)
    import torch

    images = torch.load(folder / "images.pt", weights_only=True).permute(0, 2, 3, 1).numpy()
    rows = P.read_manifest(folder)
    keyed = {(r["image_id"], (int(r["xmin"]), int(r["ymin"]), int(r["xmax"]), int(r["ymax"]))): images[i]
             for i, r in enumerate(rows)}
    return keyed, P.read_report(folder)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_root = os.environ.get("GANLAB_TEST_DOGS") or str(HERE.parent.parent / "shared/data/stanford-dogs-subset")
    ap.add_argument("root", nargs="?", default=default_root)
    ap.add_argument("--workers", type=int, default=0, help="prepare's processes (0: one per core)")
    ap.add_argument("--repeat", type=int, default=1, help="time each side this many times, keep the best")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    root = Path(args.root)
    if not (root / "Images").is_dir():
        print(f"no Images/ in {root}", file=sys.stderr)
        return 2
    os.environ.pop("GANLAB_DATA_ROOT", None)

    for p in root.rglob("*"):  # page cache: every side reads warm files
        if p.is_file():
            p.read_bytes()

    workers = P.n_workers(args.workers)
    with tempfile.TemporaryDirectory() as tmp:
        runs = {"plain": [], "prepare": [], "prepare_no_draft": []}
        for _ in range(args.repeat):
            (plain, n_images), wall, cpu = timed(lambda: plain_loop(root))
            runs["plain"].append((wall, cpu))
            (draft, report), wall, cpu = timed(lambda: prepared(root, Path(tmp) / "a", args.workers, None))
            runs["prepare"].append((wall, cpu))
            (full, _), wall, cpu = timed(lambda: prepared(root, Path(tmp) / "b", args.workers, 0.0))
            runs["prepare_no_draft"].append((wall, cpu))
    best = {k: min(v) for k, v in runs.items()}
    n_crops = len(plain)
    assert n_crops == report["kept"] == len(draft) == len(full), (n_crops, report["kept"], len(draft), len(full))
    keys = sorted(plain)
    stack = lambda d: np.stack([d[k] for k in keys])  # noqa: E731
    vs_full = diff_stats(stack(draft), stack(full))
    full_vs_plain = diff_stats(stack(full), stack(plain))
    draft_vs_plain = diff_stats(stack(draft), stack(plain))

    figures = {
        "root": str(root), "cores": os.cpu_count(), "workers": workers, "load_avg_1min": round(os.getloadavg()[0], 2),
        "images": n_images, "crops": n_crops, "decoded_at_scale": report["decoded_at_scale"],
        "draft_margin": report["settings"]["draft_margin"],
        **{f"{k}_s": round(v[0], 3) for k, v in best.items()},
        **{f"{k}_cpu_s": round(v[1], 3) for k, v in best.items()},
        "plain_images_per_s": round(n_images / best["plain"][0], 1),
        "prepare_images_per_s": round(n_images / best["prepare"][0], 1),
        "prepare_no_draft_images_per_s": round(n_images / best["prepare_no_draft"][0], 1),
        "speedup": round(best["plain"][0] / best["prepare"][0], 2),
        "speedup_no_draft": round(best["plain"][0] / best["prepare_no_draft"][0], 2),
        "draft_vs_full_decode": vs_full, "full_decode_vs_plain": full_vs_plain, "draft_vs_plain": draft_vs_plain,
    }
    print(f"real subset: {n_images} images, {n_crops} crops of 64x64; {workers} worker(s) on {os.cpu_count()} "
          f"cores; load average {figures['load_avg_1min']} at the end")
    print(f"{'':28}{'wall s':>8}{'images/s':>10}{'crops/s':>9}{'CPU s':>8}")
    for label, key in (("plain PIL loop (1 process)", "plain"), ("prepare (draft mode)", "prepare"),
                       ("prepare (full decode)", "prepare_no_draft")):
        wall, cpu = best[key]
        print(f"{label:28}{wall:8.2f}{n_images / wall:10.0f}{n_crops / wall:9.0f}{cpu:8.2f}")
    print(f"speed-up of prepare over the plain loop: {figures['speedup']}x "
          f"(full decode: {figures['speedup_no_draft']}x)")
    print(f"JPEGs decoded at 1/scale: {report['decoded_at_scale']} (draft margin {figures['draft_margin']})")
    for label, st in (("draft vs full decode", vs_full), ("full decode vs plain loop", full_vs_plain),
                      ("draft vs plain loop", draft_vs_plain)):
        print(f"|difference| {label:26} max {st['max']:3d}  mean {st['mean']:.3f}  p99 {st['p99']:.0f}  "
              f"p99.9 {st['p99.9']:.0f}  worst image mean {st['worst_image_mean']:.2f}  PSNR {st['psnr_db']} dB")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
