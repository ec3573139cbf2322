"""The `ganlab` command: run | plugins | data | eval | ablate | tune | new-trick."""
from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

from ganlab import __version__
from ganlab.errors import UserError


def _console():
    from rich.console import Console

    return Console(stderr=False, highlight=False)


def cmd_run(args: argparse.Namespace) -> int:
    from ganlab.config import dump_toml, load_config
    from ganlab.trainer import Trainer

    if args.resume:
        if args.config:
            raise UserError(f"--resume takes the config from {args.resume}/config.toml; leave out {args.config}")
        cfg_file = Path(args.resume) / "config.toml"
        if not cfg_file.exists():
            raise UserError(f"--resume {args.resume}: not a run folder (no config.toml in it)")
        config = load_config(cfg_file, args.set, args.plugin)
    elif not args.config:
        raise UserError("ganlab run needs a CONFIG file (for example experiments/baseline.toml) or --resume RUN_DIR")
    else:
        config = load_config(args.config, args.set, args.plugin)
    console = _console()
    if args.dry_run:
        from ganlab.models import build_models
        from ganlab.plugins import make_plugin_manager

        pm = make_plugin_manager(config)
        G, D = build_models(config, pm)
        console.print(dump_toml(config.to_dict()), markup=False)
        console.print(f"# tricks, in the order they run: {', '.join(config.enabled_tricks()) or 'none'}")
        console.print(f"# G: {sum(p.numel() for p in G.parameters()):,} parameters; "
                      f"D: {sum(p.numel() for p in D.parameters()):,} parameters")
        return 0
    trainer = Trainer(config, args.resume, resume=bool(args.resume), quiet=args.quiet)
    if not args.quiet:
        console.print(f"run folder: {trainer.rd.path}")
    result = trainer.run()
    resume_cmd = f"ganlab run --resume {result.run_dir}"
    if result.status == "interrupted":
        print(f"interrupted at step {result.step}; checkpoint written. Resume with:\n  {resume_cmd}")
        return 130
    if result.status == "diverged":
        print(f"diverged: a loss became NaN or Inf by step {result.step}; status recorded in "
              f"{result.run_dir}/status.json, last good checkpoint kept in {result.run_dir}/checkpoints/")
        return 1
    if not args.quiet:
        last = result.last
        line = f"{result.status} at step {result.step}: {result.run_dir}"
        if last:
            line += f" (D loss {last['d_loss']:.3f}, G loss {last['g_loss']:.3f})"
        if result.best:
            line += f"; best MiFID {result.best['mifid']:.2f} at step {result.best['step']}"
        console.print(line, markup=False)
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from ganlab.config import load_config
    from ganlab.options import describe
    from ganlab.plugins import available_tricks, hook_names, make_plugin_manager

    console = _console()
    if args.hooks:
        from ganlab import hookspecs

        for name in hook_names():
            doc = inspect.getdoc(getattr(hookspecs, name)) or ""
            console.print(f"[bold]{name}[/bold]{inspect.signature(getattr(hookspecs, name))}")
            console.print("    " + doc.splitlines()[0] if doc else "", markup=False)
        return 0
    config = load_config(args.config, args.set, args.plugin) if args.config else None
    if args.events:
        if config is None:
            raise UserError("--events needs a CONFIG: it shows which plugins fire for that experiment")
        pm = make_plugin_manager(config)
        for name in hook_names():
            impls = [i.plugin_name for i in reversed(getattr(pm.hook, name).get_hookimpls())]
            console.print(f"{name:28s} {' -> '.join(impls) if impls else '-'}", markup=False)
        return 0
    from rich.table import Table

    table = Table(title="ganlab tricks")
    for col in ("trick", "from", "hooks", "options (default)"):
        table.add_column(col)
    files = config.plugins if config else [str(Path(p).resolve()) for p in args.plugin]
    for name, src in sorted(available_tricks(files).items()):
        hooks = trick_hooks(src.cls)
        opts = ", ".join(f"{k}={v!r}" for k, v, _ in describe(src.cls.Options))
        table.add_row(name, src.where, "\n".join(h.removeprefix("ganlab_") for h in hooks), opts)
    console.print(table)
    return 0


def trick_hooks(cls: type) -> list[str]:
    """The hooks a trick class implements (ganlab_configure, which every Trick has, left out)."""
    from ganlab.plugins import hook_names

    return [n for n in hook_names() if n != "ganlab_configure" and hasattr(getattr(cls, n, None), "ganlab_impl")]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ganlab", description="A plugin-based ablation framework for GANs.")
    parser.add_argument("--version", action="version", version=f"ganlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key, e.g. --set train.lr_g=2e-4 (repeatable)")
        p.add_argument("--plugin", action="append", default=[], metavar="PATH", help="load a trick from this file")

    p = sub.add_parser("run", help="train a GAN from an experiment TOML", description="Train a GAN from an experiment TOML.")
    p.add_argument("config", nargs="?", help="experiment TOML, e.g. experiments/baseline.toml")
    common(p)
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its latest checkpoint")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and the models, train nothing")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("plugins", help="list the tricks, where they come from and their hooks")
    p.add_argument("config", nargs="?", help="experiment TOML (adds its local plugin files)")
    common(p)
    p.add_argument("--hooks", action="store_true", help="list every hook with its signature")
    p.add_argument("--events", action="store_true", help="for CONFIG: which plugins fire at each hook, in order")
    p.set_defaults(func=cmd_plugins)

    for module in ("ganlab.data.cli", "ganlab.metrics.cli", "ganlab.ablate", "ganlab.tune", "ganlab.scaffold"):
        try:
            mod = __import__(module, fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        print(f"ganlab: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("ganlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
