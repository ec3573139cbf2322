"""`ganlab data prepare`: the raw Stanford Dogs folder -> a cached uint8 tensor of cleaned images.

Two kinds of set:

* ``crops`` (the paper's training set): every dog box of every annotated image, clamped to the image; a box
  is dropped when it is empty, when its width/height lies outside [min_aspect, max_aspect], or when its
  shorter side is below ``min_box_side`` pixels (the low-quality rule); each kept box is resized to
  image_size x image_size with PIL's antialiased Lanczos filter (the paper's ``Image.ANTIALIAS``).
* ``whole`` (the Kaggle public board's reference set): every readable image, whole, squashed to
  image_size x image_size; no annotation needed, nothing filtered.

A cache folder ``<cache_dir>/<kind>-<size>px-<key>/`` holds:

* ``images.pt``: a uint8 tensor (N, 3, H, W) (``torch.load(..., weights_only=True)``);
* ``manifest.csv``: one row per tensor index (image id, breed, box, original size, source path);
* ``dropped.csv``: every dropped box and skipped image with its reason;
* ``report.json``: counts kept and dropped per reason, with a few examples of each;
* ``settings.json``: the settings, the input root and the cache key.

The key is the SHA-256 of the settings (kind, size, filters, draft margin, resampling), the cache format
version, Pillow's version (its JPEG decoder decides the bytes) and the sorted list of input files with their
sizes and modification times (``Images/`` and, for crops, ``Annotation/``). Changing any of them gives a new
folder; an unchanged one is reused without decoding anything. Old folders are left alone (delete them by
hand). A folder is built under a temporary name and renamed into place when complete, so a crash never
leaves a half cache that looks valid.

The work is spread over processes (``workers``, 0 = one per core) in chunks of the sorted image list and
reassembled in that order: the output is byte-identical whatever the number of workers.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import os
import shutil
import tempfile
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Iterable, Iterator

import PIL
import torch

from ganlab.config import DataConfig
from ganlab.data import crops as _crops
from ganlab.data.crops import BOX_REASONS, IMAGE_REASONS, ImageResult, Settings
from ganlab.data.voc import Item, scan
from ganlab.errors import DataError

CACHE_VERSION = 1
KINDS = ("crops", "whole")
ENV_ROOT = "GANLAB_DATA_ROOT"
FILES = ("images.pt", "manifest.csv", "dropped.csv", "report.json", "settings.json")
MANIFEST_FIELDS = ("index", "image_id", "breed", "wnid", "xmin", "ymin", "xmax", "ymax", "width", "height", "path")
DROPPED_FIELDS = ("image_id", "breed", "xmin", "ymin", "xmax", "ymax", "reason", "detail", "path")
N_EXAMPLES = 5


def data_root(cfg: DataConfig) -> Path:
    """The raw Stanford Dogs folder: $GANLAB_DATA_ROOT when set, else ``cfg.root``."""
    env = os.environ.get(ENV_ROOT, "").strip()
    return Path(env if env else cfg.root).expanduser()


def settings_for(cfg: DataConfig, kind: str = "crops", draft_margin: float | None = None) -> Settings:
    """The Settings of a kind of set from the [data] table (draft_margin: None = the default)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if draft_margin is None:
        draft_margin = _crops.DRAFT_MARGINS[kind]
    margin = float(draft_margin)
    if margin < 0:
        raise DataError(f"draft margin must be >= 0 (0: no draft decoding), got {margin}")
    if kind == "whole":  # no filter: the filter settings must not change the whole set's key
        return Settings(kind=kind, image_size=cfg.image_size, min_aspect=0.0, max_aspect=0.0, min_box_side=0,
                        draft_margin=margin)
    if cfg.min_aspect > cfg.max_aspect:
        raise DataError(f"data.min_aspect ({cfg.min_aspect}) is above data.max_aspect ({cfg.max_aspect}): "
                        "every crop would be dropped")
    return Settings(kind=kind, image_size=cfg.image_size, min_aspect=cfg.min_aspect, max_aspect=cfg.max_aspect,
                    min_box_side=cfg.min_box_side, draft_margin=margin)


def n_workers(requested: int) -> int:
    if requested > 0:
        return requested
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def missing_root_message(root: Path) -> str:
    return (f"no Stanford Dogs images at {root / 'Images'}: run `ganlab data fetch --dest {root}` to download "
            f"them, or point {ENV_ROOT} (or [data] root, or --root) at a folder that holds Images/ and "
            f"Annotation/")


def scan_root(root: Path, kind: str) -> tuple[list[Item], list[str], list[tuple[str, int, int]]]:
    """The sorted items of `root`, its orphan annotations and the input files' stats; DataError when the
    folders the kind needs are missing."""
    try:
        items, orphans, stats = scan(root, with_stats=True)
    except FileNotFoundError:
        raise DataError(missing_root_message(root)) from None
    if kind == "crops" and not (root / "Annotation").is_dir():
        raise DataError(f"no annotations at {root / 'Annotation'}: the crops need the Stanford Dogs "
                        f"annotation.tar (`ganlab data fetch --dest {root}` gets both archives)")
    if kind == "whole":
        stats = [s for s in stats if s[0].startswith("Images/")]
    return items, orphans, stats


def cache_key(settings: Settings, stats: Iterable[tuple[str, int, int]]) -> str:
    h = hashlib.sha256()
    head = {"cache_version": CACHE_VERSION, "pillow": PIL.__version__, "settings": dataclasses.asdict(settings)}
    h.update(json.dumps(head, sort_keys=True).encode())
    for rel, size, mtime in stats:
        h.update(f"\n{rel}\t{size}\t{mtime}".encode())
    return h.hexdigest()


def folder_name(settings: Settings, key: str) -> str:
    return f"{settings.kind}-{settings.image_size}px-{key[:16]}"


# --------------------------------------------------------------------------------------------- building

def _chunks(items: list[Item], size: int) -> list[list[Item]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _progress(enabled: bool, description: str, total: int):
    """A rich progress bar on stderr (a no-op object when disabled)."""
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("images"),
                   TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True), transient=False)
    bar.add_task(description, total=total)
    return bar


def process_items(root: Path, items: list[Item], settings: Settings, workers: int = 0,
                  progress: bool = False) -> Iterator[tuple[Item, ImageResult]]:
    """(item, result) for every item, in the items' order, computed by `workers` processes."""
    workers = min(n_workers(workers), max(1, len(items)))
    chunk = max(8, min(128, -(-len(items) // (workers * 16)))) if items else 1
    chunks = _chunks(items, chunk)
    bar = None
    if workers == 1:
        results: Iterable[list[ImageResult]] = (_crops.process_chunk(str(root), c, settings) for c in chunks)
        executor = None
    else:
        # the pool forks (or spawns) every worker on the first submit, before the progress thread starts
        executor = ProcessPoolExecutor(max_workers=workers)
        results = executor.map(_crops.process_chunk, [str(root)] * len(chunks), chunks, [settings] * len(chunks))
    try:
        bar = _progress(progress, f"prepare {settings.kind}", len(items))
        if bar is not None:
            bar.start()
        for c, res in zip(chunks, results):
            yield from zip(c, res)
            if bar is not None:
                bar.advance(bar.task_ids[0], len(c))
    finally:
        if bar is not None:
            bar.stop()
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


def build_set(root: Path, settings: Settings, workers: int = 0, progress: bool = False,
              items: list[Item] | None = None, orphans: list[str] | None = None
              ) -> tuple[torch.Tensor, list[dict], list[dict], dict[str, Any]]:
    """Prepare in memory: (uint8 tensor (N, 3, S, S), manifest rows, dropped rows, report)."""
    if items is None:
        items, orphans, _ = scan_root(root, settings.kind)
    size = settings.image_size
    manifest: list[dict] = []
    dropped: list[dict] = []
    pixels: list[bytes] = []
    image_skips: Counter = Counter()
    box_drops: Counter = Counter()
    converted: Counter = Counter()
    scales: Counter = Counter()
    examples: dict[str, list[str]] = {}
    n_boxes = 0

    def example(reason: str, text: str) -> None:
        lst = examples.setdefault(reason, [])
        if len(lst) < N_EXAMPLES:
            lst.append(text)

    for item, res in process_items(root, items, settings, workers, progress):
        n_boxes += len(res.boxes)
        if res.converted:
            converted[res.converted] += 1
        if res.skip:
            image_skips[res.skip] += 1
            example(res.skip, f"{item.image}: {res.detail}" if res.detail else item.image)
            dropped.append({"image_id": item.image_id, "breed": item.breed, "xmin": "", "ymin": "", "xmax": "",
                            "ymax": "", "reason": res.skip, "detail": res.detail, "path": item.image})
        if res.pixels:
            scales[str(res.scale)] += 1
            pixels.append(res.pixels)
        if settings.kind == "whole":
            if not res.skip:
                w, h = res.size
                manifest.append({"index": len(manifest), "image_id": item.image_id, "breed": item.breed,
                                 "wnid": item.wnid, "xmin": 0, "ymin": 0, "xmax": w, "ymax": h, "width": w,
                                 "height": h, "path": item.image})
            continue
        for box, reason in res.boxes:
            row = {"image_id": item.image_id, "breed": item.breed, "xmin": box.xmin, "ymin": box.ymin,
                   "xmax": box.xmax, "ymax": box.ymax}
            if reason is None:
                w, h = res.size
                manifest.append({"index": len(manifest), **row, "wnid": item.wnid, "width": w, "height": h,
                                 "path": item.image})
            else:
                box_drops[reason] += 1
                if reason != _crops.IMAGE_SKIPPED:
                    example(reason, f"{item.image}: box {box.xmin},{box.ymin},{box.xmax},{box.ymax}")
                dropped.append({**row, "reason": reason, "detail": "", "path": item.image})

    n = len(manifest)
    data = bytearray(b"".join(pixels))
    if len(data) != n * size * size * 3:
        raise RuntimeError(f"internal error: {len(data)} bytes for {n} images of {size}x{size}")
    if n:
        tensor = torch.frombuffer(data, dtype=torch.uint8).view(n, size, size, 3).permute(0, 3, 1, 2).contiguous()
    else:
        tensor = torch.zeros((0, 3, size, size), dtype=torch.uint8)

    report: dict[str, Any] = {
        "kind": settings.kind,
        "images": len(items),
        "annotations_without_image": len(orphans or []),
        "images_skipped": {r: image_skips.get(r, 0) for r in IMAGE_REASONS},
        "converted_to_rgb": dict(sorted(converted.items())),
        "kept": n,
    }
    if settings.kind == "crops":
        report["boxes"] = n_boxes
        report["boxes_pass_aspect"] = n + box_drops.get(_crops.TOO_SMALL, 0)
        report["boxes_dropped"] = {r: box_drops.get(r, 0) for r in BOX_REASONS}
    else:
        report["images_skipped"] = {r: image_skips.get(r, 0) for r in (_crops.UNREADABLE_IMAGE,)}
    report["decoded_at_scale"] = dict(sorted(scales.items(), key=lambda kv: int(kv[0])))
    report["settings"] = dataclasses.asdict(settings)
    report["examples"] = {k: examples[k] for k in sorted(examples)}
    if orphans:
        report["examples"]["annotations_without_image"] = orphans[:N_EXAMPLES]
    return tensor, manifest, dropped, report


# --------------------------------------------------------------------------------------------- the cache

def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _csv_bytes(rows: list[dict], fields: tuple[str, ...]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode()


def tensor_bytes(tensor: torch.Tensor) -> bytes:
    """torch.save of the tensor into memory (the archive name inside is fixed: same tensor, same bytes)."""
    buf = io.BytesIO()
    torch.save(tensor, buf)
    return buf.getvalue()


def is_complete(folder: Path) -> bool:
    return folder.is_dir() and all((folder / f).is_file() for f in FILES)


def cache_folder(cfg: DataConfig, kind: str = "crops", root: Path | None = None,
                 draft_margin: float | None = None) -> tuple[Path, Settings, list, list]:
    """The folder these inputs and settings map to (it may not exist yet), the settings, items and orphans."""
    root = Path(root) if root is not None else data_root(cfg)
    settings = settings_for(cfg, kind, draft_margin)
    items, orphans, stats = scan_root(root, kind)
    key = cache_key(settings, stats)
    return Path(cfg.cache_dir) / folder_name(settings, key), settings, items, orphans


def ensure_prepared(cfg: DataConfig, kind: str = "crops", progress: bool = True, *, root: Path | None = None,
                    force: bool = False, workers: int | None = None, draft_margin: float | None = None) -> Path:
    """The cache folder for these inputs and settings, built when missing, incomplete or `force`d.

    `root` overrides data_root(cfg) (the CLI's --root); `workers` overrides cfg.workers; `draft_margin`
    overrides the JPEG draft-mode margin (default 1.0 for crops, 2.0 for whole; 0 decodes every JPEG at
    full size).
    """
    root = Path(root) if root is not None else data_root(cfg)
    folder, settings, items, orphans = cache_folder(cfg, kind, root, draft_margin)
    if is_complete(folder) and not force:
        return folder
    tensor, manifest, dropped, report = build_set(root, settings, cfg.workers if workers is None else workers,
                                                 progress, items, orphans)
    if tensor.shape[0] == 0:
        skipped = ", ".join(f"{k} {v}" for k, v in report["images_skipped"].items() if v)
        boxes = ", ".join(f"{k} {v}" for k, v in report.get("boxes_dropped", {}).items() if v)
        raise DataError(f"no {kind} survived the preparation of {root} ({report['images']} images"
                        f"{'; skipped: ' + skipped if skipped else ''}{'; dropped boxes: ' + boxes if boxes else ''})")
    blob = tensor_bytes(tensor)
    settings_doc = {"cache_version": CACHE_VERSION, "key": folder.name, "pillow": PIL.__version__,
                    "root": str(root.resolve()), "settings": dataclasses.asdict(settings),
                    "shape": list(tensor.shape), "images_sha256": hashlib.sha256(blob).hexdigest()}
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".tmp-{folder.name}-"))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        _write_atomic(tmp / "images.pt", blob)
        _write_atomic(tmp / "manifest.csv", _csv_bytes(manifest, MANIFEST_FIELDS))
        _write_atomic(tmp / "dropped.csv", _csv_bytes(dropped, DROPPED_FIELDS))
        _write_atomic(tmp / "report.json", (json.dumps(report, indent=2) + "\n").encode())
        _write_atomic(tmp / "settings.json", (json.dumps(settings_doc, indent=2) + "\n").encode())
        if folder.exists():  # stale (incomplete) or forced: replace it
            shutil.rmtree(folder)
        try:
            os.rename(tmp, folder)
        except OSError:  # another process finished the same folder first: keep theirs
            if not is_complete(folder):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def read_report(folder: str | os.PathLike) -> dict[str, Any]:
    return json.loads((Path(folder) / "report.json").read_text())


def read_manifest(folder: str | os.PathLike) -> list[dict[str, str]]:
    with open(Path(folder) / "manifest.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def load_images(cfg: DataConfig, kind: str = "crops", progress: bool = True) -> torch.Tensor:
    """The prepared set as a uint8 tensor (N, 3, H, W) on the CPU, prepared first when needed."""
    folder = ensure_prepared(cfg, kind, progress=progress)
    tensor = torch.load(folder / "images.pt", weights_only=True)
    if not (isinstance(tensor, torch.Tensor) and tensor.dtype == torch.uint8 and tensor.dim() == 4):
        raise DataError(f"{folder / 'images.pt'} is not a uint8 (N, 3, H, W) tensor; delete {folder} to rebuild it")
    return tensor


def summarize(report: dict[str, Any]) -> str:
    """A few lines for the terminal."""
    if report["kind"] == "crops":
        lines = [f"crops: kept {report['kept']} of {report['boxes']} boxes in {report['images']} images "
                 f"({report['boxes_pass_aspect']} passed the aspect filter)"]
    else:
        lines = [f"whole: kept {report['kept']} of {report['images']} images"]
    skipped = {k: v for k, v in report["images_skipped"].items() if v}
    if skipped:
        lines.append("  images skipped: " + ", ".join(f"{k} {v}" for k, v in skipped.items()))
    dropped = {k: v for k, v in report.get("boxes_dropped", {}).items() if v}
    if dropped:
        lines.append("  boxes dropped: " + ", ".join(f"{k} {v}" for k, v in dropped.items()))
    if report.get("converted_to_rgb"):
        lines.append("  converted to RGB: " + ", ".join(f"{k} {v}" for k, v in report["converted_to_rgb"].items()))
    if report.get("annotations_without_image"):
        lines.append(f"  annotations without an image: {report['annotations_without_image']}")
    return "\n".join(lines)
