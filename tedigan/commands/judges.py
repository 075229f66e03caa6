"""``tedigan judges --model mobilestylegan --num 64 --out reports/faces``: what the face judges say about generated
faces (:mod:`tedigan.evaluation.judges`): ``judges.json`` and ``judges.jpg``."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tedigan import cli
from tedigan.domains import DOMAINS

HELP = "what the face judges say about generated faces (label distributions, agreement)"


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "judges",
        help=HELP,
        description="Let the face judges read generated faces; write their label distributions and agreement.",
        epilog="example: tedigan judges --model mobilestylegan --num 64 --out reports/faces",
    )
    face_generator = DOMAINS["faces"].generator
    parser.add_argument(
        "--model",
        default=face_generator,
        help=f"'{face_generator}' (the FFHQ generator) or a pipeline folder",
    )
    parser.add_argument("--num", type=int, default=64, help="faces to judge, seeds 0..num-1 (default 64)")
    parser.add_argument("--psi", type=float, default=0.7, help="truncation (default 0.7)")
    parser.add_argument(
        "--resolution", type=int, default=256, help=f"{face_generator}: render size (default 256)"
    )
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--out", required=True, help="folder for judges.json and judges.jpg")
    parser.add_argument("--device", default="cpu")
    return parser


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.num <= 10_000:
        raise cli.UsageError(f"--num must be in 1..10000, got {args.num}")
    if args.batch < 1:
        raise cli.UsageError(f"--batch must be >= 1, got {args.batch}")
    out = Path(args.out)
    cli.check_writable(out, "--out")
    from tedigan.evaluation.judges import judge_report, judge_samples, labelled_grid
    from tedigan.fs import atomic_write_text
    from tedigan.models.ports.faceapi import FaceApiJudge
    from tedigan.models.ports.human import HumanJudge

    named = cli.is_named_generator(args.model)
    try:
        G, _, what = cli.load_generator(args, args.resolution if named else None)
        judges = {
            "face-api": FaceApiJudge.from_package(heads=("expression", "age_gender")),
            "human": HumanJudge.from_package(nets=("emotion", "faceres")),
        }
    except ValueError as err:  # a resolution the generator cannot render, damaged judge weights
        raise cli.UsageError(str(err)) from None
    start = time.perf_counter()
    kwargs = {"resolution": args.resolution} if named else {}
    reads, first = judge_samples(G, judges, args.num, args.psi, args.batch, **kwargs)
    report = {
        "model": what,
        "num": args.num,
        "psi": args.psi,
        "seeds": f"0-{args.num - 1}",
        **judge_report(judges, reads),
        "seconds": round(time.perf_counter() - start, 1),
    }
    labelled_grid(first, reads, out / "judges.jpg")
    atomic_write_text(out / "judges.json", json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("judges", "agreement")}, indent=1)[:4000])
    print(f"-> {out}/judges.json, {out}/judges.jpg ({report['seconds']} s)")
    return 0
