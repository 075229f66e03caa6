"""``tedigan layer-analysis --generator DIR --classifier DIR --out DIR`` (also ``python -m
tedigan.editing.layer_analysis``): measure which W+ layers carry each attribute
(:mod:`tedigan.editing.layer_analysis`) and write ``layer_map.json`` + ``layer_map.png``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tedigan import cli

HELP = "measure which W+ layers carry each attribute (writes layer_map.json + layer_map.png)"


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "layer-analysis",
        help=HELP,
        description="Measure which W+ layers carry each attribute (swap layer groups between code pairs, "
        "classify) and write layer_map.json + layer_map.png.",
    )
    p.add_argument(
        "--generator",
        required=True,
        help="generator folder (config.json + model.safetensors), or mobilestylegan",
    )
    p.add_argument(
        "--classifier", required=True, help="attribute classifier folder, or a face judge: faceapi"
    )
    p.add_argument(
        "--resolution", type=int, default=256, help="--generator mobilestylegan: render size (default 256)"
    )
    p.add_argument("--out", required=True, help="output folder for layer_map.json and layer_map.png")
    p.add_argument("--pairs", type=int, default=200, help="code pairs to sample (default 200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=16, help="pairs per batch (default 16)")
    p.add_argument(
        "--groups",
        default="auto",
        choices=("auto", "pairs", "single"),
        help="layer groups to swap (auto: the generator's own blocks when it names them, else pairs)",
    )
    p.add_argument("--truncation", type=float, default=0.7, help="truncation psi of the sampled codes")
    p.add_argument(
        "--rule", default="relative", help="layer selection rule: relative (default) or cumulative"
    )
    p.add_argument("--threshold", type=float, default=0.5, help="relative rule: share of the best rate")
    p.add_argument("--coverage", type=float, default=0.8, help="cumulative rule: share of the total")
    p.add_argument("--min-rate", type=float, default=0.1, help="noise floor on follow rates")
    p.add_argument("--min-support", type=int, default=5, help="fewest differing pairs to trust a row")
    p.add_argument("--attributes", default=None, help="comma-separated subset of classifier heads")
    p.add_argument(
        "--encoder",
        default=None,
        help="image encoder folder: draw the pairs from E(x) of real images (needs --data-root) instead of "
        "random codes",
    )
    p.add_argument("--data-root", default=None, help="data set for --encoder (its --split images)")
    p.add_argument("--data-kind", default=None, help="kind of --data-root (a tedigan data-set kind)")
    p.add_argument("--split", default="val", help="split of --data-root (default val)")
    p.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--overwrite", action="store_true", help="replace an existing layer_map.json in --out")
    return p


def run(args: argparse.Namespace) -> int:
    import torch

    from tedigan.editing.layer_analysis import MAP_NAME, PLOT_NAME, RULES, analyze_layers, inverted_codes
    from tedigan.models.named import load_generator, load_judge

    if args.rule not in RULES:
        raise cli.UsageError(f"--rule must be one of {', '.join(RULES)}, got {args.rule!r}")
    out = Path(args.out)
    if (out / MAP_NAME).exists() and not args.overwrite:
        raise cli.UsageError(f"{out / MAP_NAME} exists: pass --overwrite to replace it")
    if args.encoder and not (args.data_root and args.data_kind):
        raise cli.UsageError("--encoder needs --data-root and --data-kind (the images to invert)")
    if args.pairs < 1 or args.batch < 1:
        raise cli.UsageError("--pairs and --batch must be >= 1")
    cli.check_writable(out, "--out")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    G = load_generator(args.generator, device, args.resolution)
    C = load_judge(args.classifier, device)
    codes = None
    if args.encoder:
        codes = inverted_codes(
            args.encoder, args.data_kind, args.data_root, args.split, G.config.resolution, device
        )
    result = analyze_layers(
        G,
        C,
        pairs=args.pairs,
        seed=args.seed,
        batch_size=args.batch,
        groups=args.groups,
        truncation_psi=args.truncation,
        attributes=args.attributes.split(",") if args.attributes else None,
        rule=args.rule,
        threshold=args.threshold,
        min_rate=args.min_rate,
        coverage=args.coverage,
        min_support=args.min_support,
        device=device,
        progress=not args.no_progress,
        codes=codes,
    )
    result.settings.update({"generator": str(args.generator), "classifier": str(args.classifier)})
    if args.encoder:
        result.settings.update({"encoder": str(args.encoder), "data": f"{args.data_root}:{args.split}"})
    path = result.save(out)
    width = max(len(a) for a in result.attributes)
    for a in result.attributes:
        print(
            f"{a:<{width}}  layers {result.layers[a]}  "
            f"(support {result.support[a]}, confidence {result.confidence[a]:.2f})"
        )
    print(f"wrote {path} and {path.parent / PLOT_NAME}")
    if not any(result.layers.values()):
        print(
            "tedigan layer-analysis: warning: no attribute was found in any layer group (every follow rate below "
            "the threshold): edits will fall back to the layers the text code moves most; a better-trained "
            "generator, more --pairs or a lower --threshold would help",
            file=sys.stderr,
        )
    return 0
