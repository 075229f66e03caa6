"""``tedigan face-directions --data DIR --model DIR``: label a generated face data set with the region
attributes, fit the attribute boundaries in W, measure each attribute's style sites and gain, and write them
into a faces model folder (:mod:`tedigan.training.face_attributes`, :mod:`tedigan.training.face_boundaries`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tedigan import cli

HELP = "fit the faces model's attribute boundaries in W (hair colour, glasses, beard, ...) on generated faces"


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "face-directions",
        help=HELP,
        description="Label the faces of a `tedigan face-data --mixing-prob 0` data set with the region "
        "labellers (hair colour, baldness, bangs, eyewear, facial hair, lipstick) and face-api's labels, fit "
        "one boundary in W per attribute value (InterFaceGAN-style, the other attributes kept), measure where "
        "in W+ each attribute acts and how far to move, and write boundaries/ into the model folder.",
        epilog="example: tedigan face-data --num 4000 --psi 0.9 --mixing-prob 0 --out data/facesW4k && "
        "tedigan face-directions --data data/facesW4k --model tedigan/weights/faces",
    )
    p.add_argument("--data", type=Path, required=True, help="face data set made with --mixing-prob 0")
    p.add_argument("--model", type=Path, required=True, help="faces model folder to write boundaries/ into")
    p.add_argument(
        "--refit-labeller",
        action="store_true",
        help="refit the region labellers on the hand labels (only for the data set they were made on)",
    )
    p.add_argument("--faces", type=int, default=8, help="held-out faces per style-site measurement")
    p.add_argument("--c", type=float, default=0.01, help="inverse L2 strength of the boundary fits")
    p.add_argument(
        "--only",
        default=None,
        help="comma-separated attributes to measure again; the others keep the folder's layers and gains",
    )
    p.add_argument(
        "--labels",
        choices=("probe", "regions"),
        default="probe",
        help="what labels the faces the boundaries are fitted on: 'probe' (default), a linear probe on AlexNet's "
        "ImageNet features fitted on the hand labels, or 'regions', the region labellers",
    )
    p.add_argument(
        "--no-by-eye",
        action="store_true",
        help="forget the choices set by eye that the folder's boundaries record (info.set_by_eye: kept rows, "
        "layers, gains); by default they carry over the refit, the measured values beside them",
    )
    p.add_argument("--set-default", action="store_true", help="make 'boundary' the model's default edit mode")
    p.add_argument("--no-progress", action="store_true")
    return p


def run(args: argparse.Namespace) -> int:
    for need in ("info.json", "codes.safetensors", "metadata.jsonl"):
        if not (args.data / need).is_file():
            raise cli.UsageError(
                f"{args.data} is not a finished face data set (no {need}): run tedigan face-data"
            )
    info = json.loads((args.data / "info.json").read_text())
    if info.get("mixing_prob", 1) != 0:
        raise cli.UsageError(f"{args.data} was made with style mixing: boundaries need --mixing-prob 0 codes")
    index_file = args.model / "model_index.json"
    if not index_file.is_file():
        raise cli.UsageError(f"{args.model} is not a model folder (no model_index.json)")
    cli.check_writable(args.model / "boundaries", "--model")

    from safetensors.torch import load_file

    from tedigan.data.face_attributes import RegionLabeller
    from tedigan.models.attribute_reader import RegionAttributeReader
    from tedigan.models.ports.faceapi import FaceApiJudge
    from tedigan.models.ports.mobilestylegan import MobileStyleGAN
    from tedigan.training import face_attributes as fa
    from tedigan.training import face_boundaries as fb

    progress = not args.no_progress
    features = fa.region_features_of_dataset(args.data, progress=progress)
    labeller = (
        fa.fit_labeller(features, fa.read_hand_labels()) if args.refit_labeller else RegionLabeller.load()
    )
    probe = None
    if args.labels == "probe":
        from tedigan.training import face_probe

        probe = face_probe.fit_probe(
            face_probe.probe_features_of_dataset(args.data, progress=progress), fa.read_hand_labels()
        )
        for attribute, measured in probe.info.items():
            print(f"probe {attribute:12s} {measured}")
    labels = fb.dataset_labels(args.data, features, labeller, probe)
    codes = load_file(str(args.data / "codes.safetensors"))["ws"].float()
    G = MobileStyleGAN.from_package(resolution=int(info.get("resolution", 256)))
    w_avg = G.mapping.w_avg.detach().float().cpu()
    hand = fa.read_hand_labels()
    medians = fb.hand_value_medians(features, hand)
    boundaries = fb.fit_boundaries(codes, labels, w_avg, {}, c=args.c, value_medians=medians)
    from tedigan.editing.boundaries import AttributeBoundaries

    before = (
        AttributeBoundaries.load(args.model / "boundaries")
        if (args.model / "boundaries" / "config.json").is_file()
        else None
    )
    # choices made by eye on grids (recorded with their reasons in the folder) carry over a refit
    by_eye = {} if before is None or args.no_by_eye else dict(before.info.get("set_by_eye", {}))
    fb.keep_by_eye(boundaries, by_eye)
    only = None
    if args.only:
        if before is None:
            raise cli.UsageError(
                f"--only needs {args.model / 'boundaries'} to keep the other attributes from"
            )
        only = {a.strip() for a in args.only.split(",") if a.strip()}
        boundaries.layers.update({a: v for a, v in before.layers.items() if a not in only})
        boundaries.gains.update({r: g for r, g in before.gains.items() if r.split("=", 1)[0] not in only})
        old_sites = before.info.get("sites", {})
        boundaries.info["sites"] = {r: t for r, t in old_sites.items() if r.split("=", 1)[0] not in only}
    # the edits tried for the sites are read by the probe when it labelled the faces (the benchmark's region
    # statistics then check the chosen sites independently), else by the region labellers
    reader = RegionAttributeReader.from_package() if probe is None else face_probe.ProbeReader(probe)
    judge = FaceApiJudge.from_package(heads=("expression", "age_gender", "recognition"))
    fb.measure_sites(
        G, boundaries, codes, labels, reader, judge, faces=args.faces, progress=progress, only=only
    )
    fb.sites_by_eye(boundaries, by_eye)
    boundaries.info["data"] = {k: info.get(k) for k in ("num", "seed", "truncation_psi", "resolution")}
    boundaries.info["labels"] = {
        "source": args.labels,
        **({"probe": probe.info} if probe is not None else {}),
    }
    boundaries.save(args.model / "boundaries")
    index = json.loads(index_file.read_text())
    index.setdefault("components", {})["boundaries"] = "boundaries"
    if args.set_default:
        index.setdefault("defaults", {})["edit_mode"] = "boundary"
    from tedigan.fs import atomic_write_text

    atomic_write_text(index_file, json.dumps(index, indent=2) + "\n")
    for row, m in boundaries.info["rows"].items():
        print(f"{row:28s} {m}")
    for a, layers in boundaries.layers.items():
        print(f"{a}: layers {layers[0]}-{layers[-1]}, gain {boundaries.gains.get(a, 1.0):g}")
    return 0
