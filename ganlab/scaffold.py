"""`ganlab new-trick NAME`: a plugin module and its test from a template, ready to run."""
from __future__ import annotations

import argparse
import keyword
import re
from importlib import resources
from pathlib import Path

from ganlab.errors import UserError


def class_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def new_trick(name: str, directory: Path, force: bool = False) -> tuple[Path, Path]:
    """Write <directory>/<name>.py and <directory>/test_<name>.py; returns both paths."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or keyword.iskeyword(name):
        raise UserError(f"trick name {name!r}: use lower_case letters, digits and _ (a Python identifier)")
    directory.mkdir(parents=True, exist_ok=True)
    module, test = directory / f"{name}.py", directory / f"test_{name}.py"
    for path in (module, test):
        if path.exists() and not force:
            raise UserError(f"{path} exists; pass --force to overwrite it")
    values = {"name": name, "cls": class_name(name), "module_path": module.name}
    templates = resources.files("ganlab") / "templates"
    module.write_text((templates / "trick.py.tmpl").read_text().format(**values))
    test.write_text((templates / "test_trick.py.tmpl").read_text().format(**values))
    return module, test


def cmd_new_trick(args: argparse.Namespace) -> int:
    module, test = new_trick(args.name, Path(args.dir), args.force)
    print(f"wrote {module}\nwrote {test}\n"
          f"try it:  python -m pytest {test}\n"
          f"use it:  plugins = [\"{module}\"] and [tricks.{args.name}] in an experiment TOML")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("new-trick", help="write a trick plugin and its test from a template")
    p.add_argument("name", help="the trick's name, e.g. mixup (its [tricks.<name>] table)")
    p.add_argument("--dir", default=".", help="folder to write the two files into (default: here)")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.set_defaults(func=cmd_new_trick)
