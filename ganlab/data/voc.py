"""Stanford Dogs layout and its PASCAL-VOC annotations (no torch here: worker processes import this cheaply).

Layout: ``Images/<wnid>-<breed>/<id>.jpg`` beside ``Annotation/<wnid>-<breed>/<id>`` (an XML file without
extension). One annotation holds the image size and one ``<object>`` per dog.

Coordinates. In the release ``xmin``/``ymin`` can be 0 and ``xmax`` reaches ``width - 1`` but never
``width``: the numbers are 0-based pixel indices. We read a box the way the paper's code (PIL
``img.crop((xmin, ymin, xmax, ymax))``) did: as the half-open pixel range ``[xmin, xmax) x [ymin, ymax)``, so
its width is ``xmax - xmin``. That is the convention under which 1,364 of the real subset's 3,040 boxes pass
the [0.8, 1.25] aspect filter (counting ``xmax`` inclusively would give 1,367); it drops at most one
pixel column and row of a box (under 0.5% of a median 238-pixel box).
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class AnnotationError(ValueError):
    """An annotation file that cannot be read or lacks a required field."""


@dataclass(frozen=True)
class Box:
    name: str
    xmin: int
    ymin: int
    xmax: int
    ymax: int

    def clamp(self, width: int, height: int) -> "Box":
        """The box cut to the image ``[0, width) x [0, height)``; may come out empty."""
        return Box(self.name, min(max(self.xmin, 0), width), min(max(self.ymin, 0), height),
                   max(min(self.xmax, width), 0), max(min(self.ymax, height), 0))

    @property
    def width(self) -> int:
        return self.xmax - self.xmin

    @property
    def height(self) -> int:
        return self.ymax - self.ymin


@dataclass
class Annotation:
    width: int
    height: int
    depth: int
    boxes: list[Box] = field(default_factory=list)


@dataclass(frozen=True)
class Item:
    """One image of the dataset: ids and paths relative to the root, annotation path or None."""

    image: str  # relative path, e.g. Images/n02085620-Chihuahua/n02085620_1271.jpg
    annotation: str | None  # relative path, or None when the image has no annotation file
    image_id: str  # n02085620_1271
    folder: str  # n02085620-Chihuahua

    @property
    def wnid(self) -> str:
        return self.folder.split("-", 1)[0]

    @property
    def breed(self) -> str:
        return self.folder.split("-", 1)[1] if "-" in self.folder else self.folder


def _int(node: ET.Element, path: str) -> int:
    el = node.find(path)
    if el is None or el.text is None:
        raise AnnotationError(f"missing <{path}>")
    text = el.text.strip()
    try:
        return int(text)
    except ValueError:
        try:
            value = float(text)  # some VOC tools write "12.0"
        except ValueError:
            raise AnnotationError(f"<{path}> is not a number: {text!r}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise AnnotationError(f"<{path}> is not a finite number: {text!r}") from None
        return int(round(value))


def parse_annotation_bytes(data: bytes) -> Annotation:
    """Parse one VOC XML document; raise AnnotationError when it is malformed or lacks a field."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise AnnotationError(f"not valid XML ({exc})") from None
    if root.tag != "annotation":
        raise AnnotationError(f"root element is <{root.tag}>, not <annotation>")
    size = root.find("size")
    if size is None:
        raise AnnotationError("missing <size>")
    width, height = _int(size, "width"), _int(size, "height")
    depth_el = size.find("depth")
    depth = _int(size, "depth") if depth_el is not None and (depth_el.text or "").strip() else 3
    boxes = []
    for obj in root.findall("object"):
        bnd = obj.find("bndbox")
        if bnd is None:
            raise AnnotationError("an <object> without <bndbox>")
        name_el = obj.find("name")
        name = (name_el.text or "").strip() if name_el is not None else ""
        boxes.append(Box(name, _int(bnd, "xmin"), _int(bnd, "ymin"), _int(bnd, "xmax"), _int(bnd, "ymax")))
    return Annotation(width, height, depth, boxes)


def parse_annotation(path: str | os.PathLike) -> Annotation:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AnnotationError(f"cannot read ({exc.strerror or exc})") from None
    return parse_annotation_bytes(data)


def _sorted_entries(path: str) -> list[os.DirEntry]:
    with os.scandir(path) as it:
        return sorted(it, key=lambda e: e.name)


def scan(root: Path, with_stats: bool = False) -> tuple[list[Item], list[str], list[tuple[str, int, int]]]:
    """The dataset's images in sorted order, the annotation files that have no image, and (with_stats) the
    (relative path, size, mtime_ns) of every input file, images then annotations, for the cache key.

    Raises FileNotFoundError when ``root/Images`` is missing (the caller turns it into a DataError).
    """
    images_dir = root / "Images"
    ann_dir = root / "Annotation"
    if not images_dir.is_dir():
        raise FileNotFoundError(str(images_dir))
    annotations: dict[tuple[str, str], str] = {}
    stats: list[tuple[str, int, int]] = []
    ann_stats: list[tuple[str, int, int]] = []
    if ann_dir.is_dir():
        for folder in _sorted_entries(str(ann_dir)):
            if not folder.is_dir() or folder.name.startswith("."):
                continue
            for f in _sorted_entries(folder.path):
                if f.name.startswith(".") or not f.is_file():
                    continue
                stem = f.name[:-4] if f.name.lower().endswith(".xml") else f.name
                rel = f"Annotation/{folder.name}/{f.name}"
                annotations[(folder.name, stem)] = rel
                if with_stats:
                    st = f.stat()
                    ann_stats.append((rel, st.st_size, st.st_mtime_ns))
    items: list[Item] = []
    for folder in _sorted_entries(str(images_dir)):
        if not folder.is_dir() or folder.name.startswith("."):
            continue
        for f in _sorted_entries(folder.path):
            if f.name.startswith(".") or not f.name.lower().endswith(IMAGE_SUFFIXES) or not f.is_file():
                continue
            stem = f.name.rsplit(".", 1)[0]
            rel = f"Images/{folder.name}/{f.name}"
            items.append(Item(rel, annotations.pop((folder.name, stem), None), stem, folder.name))
            if with_stats:
                st = f.stat()
                stats.append((rel, st.st_size, st.st_mtime_ns))
    orphans = sorted(annotations.values())
    return items, orphans, stats + ann_stats
