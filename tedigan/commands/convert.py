"""``tedigan convert rosinality CKPT.pt --out DIR`` / ``tedigan convert nvlabs NET.pkl --out DIR``: a released StyleGAN2 checkpoint as
``DIR/generator`` and ``DIR/discriminator`` (safetensors + config.json; :mod:`tedigan.convert`).

A file that cannot be read safely (damaged, not a checkpoint, a pickle that would run code) is refused in
one line, whatever the parser's complaint was: the file is untrusted input, never a bug of ours.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tedigan import cli

HELP = "convert a rosinality (.pt) or NVlabs (.pkl) StyleGAN2 checkpoint to generator/ + discriminator/"


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "convert",
        help=HELP,
        description="Convert a released StyleGAN2 checkpoint to tedigan safetensors folders.",
        epilog="examples:\n  tedigan convert rosinality 550000.pt --out converted/\n"
        "  tedigan convert nvlabs network-snapshot.pkl --out converted/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    formats = parser.add_subparsers(title="formats", dest="format", metavar="<format>", required=True)
    ros = formats.add_parser(
        "rosinality",
        help="rosinality/stylegan2-pytorch .pt (keys g_ema, d, latent_avg)",
        description="Convert a rosinality/stylegan2-pytorch checkpoint (.pt) to tedigan safetensors folders.",
    )
    ros.add_argument("checkpoint", type=Path, help="rosinality .pt (keys g_ema, d, latent_avg)")
    ros.add_argument("--lr-mlp", type=float, default=0.01, help="mapping lr multiplier used in training")
    ros.add_argument("--generator-key", default="g_ema", help="which generator to convert (g_ema or g)")
    nv = formats.add_parser(
        "nvlabs",
        help="NVlabs stylegan2-ada-pytorch network pickle .pkl, read without running its code",
        description="Convert an NVlabs stylegan2-ada-pytorch network pickle (.pkl) to tedigan safetensors "
        "folders, without executing any code from the pickle.",
    )
    nv.add_argument("checkpoint", type=Path, help="NVlabs network pickle (keys G, D, G_ema)")
    nv.add_argument("--generator", default="G_ema", choices=("G_ema", "G"), help="which generator to convert")
    for sub in (ros, nv):
        sub.add_argument(
            "--out", type=Path, required=True, help="output dir; writes generator/ and discriminator/"
        )
        sub.add_argument("--overwrite", action="store_true", help="replace existing output folders")
    return parser


def run(args: argparse.Namespace) -> int:
    from tedigan.convert import ConversionError, check_out_dir

    if not args.checkpoint.is_file():
        raise ConversionError(f"{args.checkpoint}: no such file")
    check_out_dir(args.out, args.overwrite)
    cli.check_writable(args.out, "--out")
    try:
        _convert(args)
    except Exception as err:  # noqa: BLE001 - any failure to parse an untrusted file is a refusal
        if isinstance(err, cli.user_errors()):
            raise
        msg = " ".join(str(err).split())[:400] or "unreadable file"
        raise ConversionError(f"{type(err).__name__}: {msg}") from err
    return 0


def _convert(args: argparse.Namespace) -> None:
    if args.format == "rosinality":
        from tedigan.convert.rosinality import load_rosinality

        G, D, latent_avg = load_rosinality(
            args.checkpoint, lr_mlp=args.lr_mlp, generator_key=args.generator_key
        )
        extra = {
            "source": "rosinality",
            "checkpoint": str(args.checkpoint),
            "w_avg": "checkpoint latent_avg" if latent_avg is not None else "estimated (10000 samples)",
        }
        d_extra = {"source": "rosinality"}
    else:
        from tedigan.convert.nvlabs import load_nvlabs

        G, D = load_nvlabs(args.checkpoint, generator=args.generator)
        extra = {"source": "nvlabs", "checkpoint": str(args.checkpoint), "network": args.generator}
        d_extra = {"source": "nvlabs", "network": "D"}
    g_dir = G.save_pretrained(args.out / "generator", extra=extra)
    cfg = G.config
    if args.format == "rosinality":
        print(
            f"generator: {cfg.arch} {cfg.resolution}px z={cfg.z_dim} w={cfg.w_dim} n_mlp={cfg.n_mlp} "
            f"num_ws={cfg.num_ws} channels={cfg.channels} -> {g_dir}"
        )
    else:
        print(
            f"generator: {cfg.resolution}px z={cfg.z_dim} w={cfg.w_dim} n_mlp={cfg.n_mlp} num_ws={cfg.num_ws} "
            f"channels={cfg.channels_per_resolution()} -> {g_dir}"
        )
    if D is None:
        print("discriminator: none in the checkpoint")
        return
    d_dir = D.save_pretrained(args.out / "discriminator", extra=d_extra)
    if args.format == "rosinality":
        print(
            f"discriminator: {D.config.arch} {D.config.resolution}px channels={D.config.channels} -> {d_dir}"
        )
    else:
        print(
            f"discriminator: {D.config.resolution}px channels={D.config.channels_per_resolution()} -> {d_dir}"
        )
