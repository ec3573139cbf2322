"""`ganlab data fetch | prepare | show` (registered by ganlab.cli)."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

# command-line flag -> [data] key
DATA_FLAGS = (
    ("--root", "root", str, "raw Stanford Dogs folder with Images/ and Annotation/ (beats $GANLAB_DATA_ROOT)"),
    (("--cache-dir", "--out"), "cache_dir", str, "where the prepared sets go (one folder per inputs+settings)"),
    ("--size", "image_size", int, "side of the stored images in pixels"),
    ("--min-aspect", "min_aspect", float, "drop crops whose width/height is below this"),
    ("--max-aspect", "max_aspect", float, "drop crops whose width/height is above this"),
    ("--min-box-side", "min_box_side", int, "low-quality rule: drop crops whose shorter side is below this (pixels)"),
    ("--workers", "workers", int, "processes (0: one per CPU core)"),
)


def _toml_value(value) -> str:
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    return repr(value)


def data_config(args: argparse.Namespace):
    """The [data] table of CONFIG (or the built-in defaults) with the command line's overrides."""
    from ganlab.config import DataConfig, load_config
    from ganlab.options import parse_table

    given = {key: getattr(args, key) for _, key, _, _ in DATA_FLAGS if getattr(args, key, None) is not None}
    if args.config:
        overrides = list(args.set) + [f"data.{k}={_toml_value(v)}" for k, v in given.items()]
        return load_config(args.config, overrides).data
    table: dict = {}
    for item in args.set:
        from ganlab.config import parse_override

        key, value = parse_override(item)
        if not key.startswith("data."):
            continue  # without CONFIG only the [data] keys matter here
        table[key[5:]] = value
    table.update(given)
    if not table:
        return DataConfig()
    return parse_table(DataConfig, table, "data", lambda key: "command line")


def _root(args: argparse.Namespace) -> Path | None:
    return Path(args.root) if getattr(args, "root", None) else None


def cmd_fetch(args: argparse.Namespace) -> int:
    from ganlab.config import DataConfig
    from ganlab.data.fetch import fetch
    from ganlab.data.prepare import data_root

    dest = Path(args.dest) if args.dest else data_root(DataConfig())
    fetch(dest, url_base=args.url_base, progress=not args.no_progress, retries=args.retries,
          keep_archives=args.keep_archives, force=args.force)
    if not args.dest and not os.environ.get("GANLAB_DATA_ROOT"):
        print(f"data in {dest} (the default [data] root)")
    else:
        print(f"data in {dest} (set [data] root or GANLAB_DATA_ROOT={dest} to use it)")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from ganlab.data.prepare import ensure_prepared, read_report, summarize

    cfg = data_config(args)
    kinds = ("crops", "whole") if args.kind == "both" else (args.kind,)
    for kind in kinds:
        folder = ensure_prepared(cfg, kind, progress=not args.no_progress, root=_root(args), force=args.force,
                                 draft_margin=args.draft_margin)
        print(summarize(read_report(folder)))
        print(f"  -> {folder}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from ganlab.data.show import show

    cfg = data_config(args)
    paths = show(cfg, args.dest, n_raw=args.raw, n_crops=args.crops, seed=args.seed, root=_root(args),
                 progress=not args.no_progress)
    for p in paths:
        print(p)
    return 0


def _data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="experiment TOML whose [data] table to use (default: built-in defaults)")
    for flags, key, typ, text in DATA_FLAGS:
        flags = (flags,) if isinstance(flags, str) else flags
        p.add_argument(*flags, dest=key, type=typ, default=None, help=text)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set data.image_size=32 (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(subparsers) -> None:
    p = subparsers.add_parser("data", help="fetch, prepare and show the Stanford Dogs data",
                              description="Fetch, prepare and show the Stanford Dogs data.")
    sub = p.add_subparsers(dest="data_command", metavar="{fetch,prepare,show}")
    sub.required = True

    f = sub.add_parser("fetch", help="download and unpack images.tar and annotation.tar",
                       description="Download the official Stanford Dogs images.tar and annotation.tar, verify "
                                   "their size and SHA-256, and unpack them into DEST (resumes a partial "
                                   "download; does nothing when the data is already there).")
    f.add_argument("--dest", default=None, help="folder to unpack into (default: $GANLAB_DATA_ROOT, else "
                                                "data/stanford-dogs)")
    f.add_argument("--url-base", default=None, metavar="URL",
                   help="a mirror folder holding images.tar and annotation.tar (default: $GANLAB_DOGS_MIRROR, "
                        "else the dataset's site)")
    f.add_argument("--retries", type=int, default=3, help="reconnections after a dropped connection (default 3)")
    f.add_argument("--keep-archives", action="store_true", help="keep the .tar files after unpacking")
    f.add_argument("--force", action="store_true", help="download and unpack even when the data is there")
    f.add_argument("--no-progress", action="store_true", help="no progress bar")
    f.set_defaults(func=cmd_fetch)

    pr = sub.add_parser("prepare", help="crop, filter and resize into a cached uint8 tensor",
                        description="Turn the raw folder into the cleaned training set (kind crops) or the "
                                    "whole-image reference set (kind whole), cached by inputs and settings.")
    _data_options(pr)
    pr.add_argument("--kind", choices=("crops", "whole", "both"), default="crops",
                    help="crops: the paper's training set; whole: every image squashed to size x size")
    pr.add_argument("--draft-margin", type=float, default=None, metavar="M",
                    help="JPEG draft decoding keeps >= M x size pixels per crop side (default 1.0 for crops, "
                         "2.0 for whole; 0: off)")
    pr.add_argument("--force", action="store_true", help="rebuild even when a valid cache exists")
    pr.set_defaults(func=cmd_prepare)

    sh = sub.add_parser("show", help="PNG grids of raw images with boxes and of the cleaned crops",
                        description="Write DEST/raw_boxes.png (images with their boxes: green kept, red dropped "
                                    "with the reason) and DEST/crops.png (a sample of the prepared crops).")
    _data_options(sh)
    sh.add_argument("--dest", default="data/figures", help="output folder (default data/figures)")
    sh.add_argument("--raw", type=int, default=16, help="images in raw_boxes.png (default 16)")
    sh.add_argument("--crops", type=int, default=64, help="crops in crops.png (default 64)")
    sh.add_argument("--seed", type=int, default=0, help="seed of the samples (default 0)")
    sh.set_defaults(func=cmd_show)

