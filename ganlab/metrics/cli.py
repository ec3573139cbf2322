"""`ganlab eval`: MiFID and FID of a trained generator, or of any folder of images.

    ganlab eval RUN_DIR|CHECKPOINT [--n 10000] [--checkpoint latest|best] [--save-png DIR [--zip]] [--json]
    ganlab eval --images DIR|ZIP --reference DIR|ZIP|train|kaggle [--config TOML] [--json]
    ganlab eval --reference DIR|ZIP|train|kaggle [--config TOML]     (compute and cache the reference stats)
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import torch

from ganlab.errors import UserError

KINDS = ("train", "kaggle")
# The trainer's evaluation draws its noise from torch.Generator().manual_seed(config.seed + 2): with the same
# offset, `ganlab eval RUN --checkpoint best --n <eval.n_images>` reproduces the MiFID logged for best.pt.
EVAL_SEED_OFFSET = 2


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", help="MiFID and FID of a trained generator or a folder of images",
        description="Score a trained generator (a run folder or a checkpoint) or a folder of images with MiFID "
                    "and FID, exactly as Kaggle's Generative Dog Images competition did.")
    p.add_argument("target", nargs="?", metavar="RUN_DIR|CHECKPOINT",
                   help="a run folder (uses checkpoints/latest.pt, or --checkpoint best) or a .pt checkpoint")
    p.add_argument("--images", metavar="DIR|ZIP", help="score the images in this folder or zip instead of a generator")
    p.add_argument("--reference", metavar="DIR|ZIP|train|kaggle",
                   help="reference set: train (prepared crops), kaggle (whole images at 64x64, the public board) "
                        "or a folder/zip of images (default: the config's eval.reference)")
    p.add_argument("--config", metavar="TOML", help="with --images: the experiment file whose [data] locates the "
                                                    "train/kaggle reference (default: built-in defaults)")
    p.add_argument("--checkpoint", choices=("latest", "best"), default="latest",
                   help="which checkpoint of a run folder (default: latest)")
    p.add_argument("--n", type=int, default=10000, help="images to generate (default: 10000, as the competition)")
    p.add_argument("--eps", type=float, default=None, help="memorization threshold (default: the config's eval.eps)")
    p.add_argument("--batch-size", type=int, default=None, help="images per forward pass (default: eval.batch_size)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the latent noise (default: the config's seed + 2, the stream the training-time "
                        "evaluation draws from)")
    p.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N (default: the config's device)")
    p.add_argument("--save-png", metavar="DIR", help="also write the generated images as 64x64 PNGs into DIR")
    p.add_argument("--zip", action="store_true", help="with --save-png: write DIR/images.zip (the submission file)")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="reference-stats cache (default: <data.cache_dir>/reference_cache)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the reference-stats cache")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=handler)


# --------------------------------------------------------------------------------------------------


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r}: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} asked for, but CUDA is not available here; use auto or cpu")
    return device


def _load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a torch file, pickled objects
        raise UserError(f"{path}: not a readable ganlab checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(ckpt, dict) or "G" not in ckpt:
        raise UserError(f"{path}: not a ganlab checkpoint (no generator weights 'G' in it)")
    return ckpt


def resolve_target(target: str, which: str = "latest"):
    """(config, checkpoint path, checkpoint dict) of a run folder or a checkpoint file."""
    from ganlab.config import config_from_dict, load_config

    path = Path(target)
    if path.is_dir():
        ckpt_path = path / "checkpoints" / f"{which}.pt"
        if not ckpt_path.is_file():
            have = sorted(p.name for p in (path / "checkpoints").glob("*.pt"))
            hint = f" (it has: {', '.join(have)})" if have else ""
            kind = "run folder" if (path / "config.toml").exists() else "folder"
            raise UserError(f"{path}: {kind} without checkpoints/{which}.pt{hint}")
        ckpt = _load_checkpoint(ckpt_path)
        if isinstance(ckpt.get("config"), dict):
            config = config_from_dict(ckpt["config"], source=str(ckpt_path))
        elif (path / "config.toml").is_file():
            config = load_config(path / "config.toml")
        else:
            raise UserError(f"{path}: no config.toml and no config in {ckpt_path}")
        return config, ckpt_path, ckpt
    if path.is_file():
        ckpt = _load_checkpoint(path)
        if isinstance(ckpt.get("config"), dict):
            config = config_from_dict(ckpt["config"], source=str(path))
        elif (path.parent.parent / "config.toml").is_file():
            config = load_config(path.parent.parent / "config.toml")
        else:
            raise UserError(f"{path}: the checkpoint holds no config and no run folder's config.toml is above it")
        return config, path, ckpt
    raise UserError(f"{target}: no such run folder or checkpoint")


def build_generator(config, ckpt: dict[str, Any], device: torch.device) -> torch.nn.Module:
    """The generator the run sampled and scored with, in eval mode: G as the config builds it (plugins
    included) with the checkpoint's weights, or what a trick answers to ganlab_sampling_generator (an EMA
    of G, restored from the checkpoint's plugin state), as the trainer picks it."""
    from ganlab.models import build_models
    from ganlab.plugins import make_plugin_manager
    from ganlab.state import TrainState

    pm = make_plugin_manager(config)
    G, D = build_models(config, pm)
    state = {k.removeprefix("_orig_mod.").removeprefix("module."): v for k, v in ckpt["G"].items()}
    try:
        G.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"the checkpoint's G does not fit the model its config builds: {first}") from None
    G = G.to(device)
    run_state = TrainState(config=config, device=device, G=G, D=D.to(device), opt_g=None, opt_d=None)
    pm.hook.ganlab_load_state_dict(state=run_state, state_dict=ckpt.get("plugins", {}))
    sampler = pm.hook.ganlab_sampling_generator(state=run_state) or G
    return sampler.to(device).eval()


def make_generate(G: torch.nn.Module, config, device: torch.device, seed: int):
    """``generate(k)``: k images in [-1, 1] from G, noise from a seeded CPU generator (same on any device)."""
    gen = torch.Generator().manual_seed(seed)
    latent = config.model.latent_dim
    bf16 = getattr(config, "precision", "fp32") == "bf16"

    @torch.no_grad()
    def generate(k: int) -> torch.Tensor:
        z = torch.randn(k, latent, generator=gen).to(device)
        if bf16:
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
                return G(z).float()
        return G(z).float()

    return generate


def _reference(spec: str, config, progress: bool):
    """(uint8 images, description, notes) of --reference / eval.reference."""
    from ganlab.metrics.evaluate import load_image_folder, load_reference_images

    if spec in KINDS and not spec.startswith(("./", "/")):
        images = load_reference_images(config, spec)
        return images, spec, []
    images, notes = load_image_folder(spec, image_size=64, progress=progress)
    return images, str(Path(spec)), notes


def handler(args: argparse.Namespace) -> int:
    from ganlab.metrics.cache import reference_stats
    from ganlab.metrics.evaluate import default_cache_dir, load_image_folder, save_pngs, score_features
    from ganlab.metrics.features import InceptionFeatures

    reference_only = not args.target and not args.images and bool(args.reference)
    if bool(args.target) == bool(args.images) and not reference_only:
        raise UserError("ganlab eval takes RUN_DIR|CHECKPOINT, or --images DIR with --reference, or --reference "
                        "alone (to compute and cache the reference statistics)")
    if args.zip and not args.save_png:
        raise UserError("--zip goes with --save-png DIR")
    if args.images and args.save_png:
        raise UserError("--save-png writes generated images; with --images there is nothing to generate")
    if args.n < 2:
        raise UserError(f"--n {args.n}: FID needs at least 2 images")
    if args.eps is not None and not (args.eps >= 0 and math.isfinite(args.eps)):
        raise UserError(f"--eps {args.eps}: must be a number >= 0")
    if args.batch_size is not None and args.batch_size < 1:
        raise UserError("--batch-size must be >= 1")
    progress = not args.no_progress
    notes: list[str] = []

    if args.target:
        if args.config:
            raise UserError("--config goes with --images; a run folder or checkpoint carries its own config")
        config, ckpt_path, ckpt = resolve_target(args.target, args.checkpoint)
    else:
        from ganlab.config import build_config, load_config

        config = load_config(args.config) if args.config else build_config({}, source="(defaults)")
        ckpt_path, ckpt = None, None
        if not args.reference and not args.config:
            raise UserError("--images needs --reference DIR|ZIP|train|kaggle (or --config with [eval] reference)")
    device = _device(args.device or config.device)
    eps = config.eval.eps if args.eps is None else args.eps
    extractor = InceptionFeatures(device, batch_size=args.batch_size or config.eval.batch_size)
    cache_dir = None if args.no_cache else (Path(args.cache_dir) if args.cache_dir else default_cache_dir(config))

    ref_spec = args.reference or config.eval.reference
    ref_images, ref_desc, ref_notes = _reference(ref_spec, config, progress)
    notes += ref_notes
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    ref = reference_stats(ref_images, extractor, cache_dir, progress=progress, description=ref_desc)
    del ref_images
    matmul_device = device if device.type == "cuda" else None

    result: dict[str, Any] = {}
    if reference_only:
        result = {"reference": ref_desc, "n_reference": ref.n, "reference_cached": ref.from_cache, "key": ref.key,
                  "cache_dir": str(cache_dir) if cache_dir else None}
        if args.json:
            print(json.dumps(result))
        else:
            state = "read from" if ref.from_cache else ("written to" if cache_dir else "computed (not cached:")
            print(f"reference {ref_desc}: {ref.n} images; statistics {state} {cache_dir or '--no-cache)'}")
        return 0
    if args.images:
        images, img_notes = load_image_folder(args.images, image_size=64, progress=progress)
        for note in img_notes:
            print(f"note: {note}", file=sys.stderr)
        notes += img_notes
        if images.shape[0] < 2:
            raise UserError(f"{args.images}: {images.shape[0]} image; FID needs at least 2")
        feats = extractor(images, progress=progress, desc="images")
        result.update(score_features(feats, ref, eps, device=matmul_device))
        result["images"] = str(args.images)
    else:
        G = build_generator(config, ckpt, device)
        seed = config.seed + EVAL_SEED_OFFSET if args.seed is None else args.seed
        generate = make_generate(G, config, device, seed)
        out = extractor.from_generator(generate, args.n, progress=progress, keep_images=bool(args.save_png))
        feats, kept = out if args.save_png else (out, None)
        result.update(score_features(feats, ref, eps, device=matmul_device))
        result.update({"checkpoint": str(ckpt_path), "step": ckpt.get("step"), "seed": seed})
        if args.save_png:
            where = save_pngs(kept, args.save_png, zip_file=args.zip)
            result["saved"] = str(where)
    result.update({"reference": ref_desc, "n_reference": ref.n, "eps": eps, "reference_cached": ref.from_cache,
                   "device": str(device)})
    if notes:
        result["notes"] = notes
    if args.json:
        print(json.dumps(result))
    else:
        _print_human(result)
    return 0


def _print_human(r: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    what = r.get("images") or f"{r['checkpoint']} (step {r.get('step')}, seed {r.get('seed')})"
    table = Table(title=f"{what} vs reference {r['reference']}", show_header=True)
    for col in ("MiFID", "FID", "d", "d_thr", "n", "n ref"):
        table.add_column(col, justify="right")
    table.add_row(f"{r['mifid']:.3f}", f"{r['fid']:.3f}", f"{r['d']:.4f}", f"{r['d_thr']:.4f}", str(r["n"]),
                  str(r["n_reference"]))
    console = Console(highlight=False)
    console.print(table)
    memo = ("below eps: the memorization penalty applies (MiFID = FID / d)" if r["d"] < r["eps"]
            else f"d >= eps {r['eps']:g}: no memorization penalty (MiFID = FID)")
    console.print(memo, markup=False)
    if r.get("saved"):
        console.print(f"images written to {r['saved']}", markup=False)
