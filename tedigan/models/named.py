"""Networks known by name rather than by folder (the names are in :mod:`tedigan.domains`).

``load_generator("mobilestylegan", device, resolution)`` is the FFHQ MobileStyleGAN of the ``random-face``
package (research / non-commercial weights); any other name is a generator folder.
``face_judge("faceapi" | "human")`` judges the face vocabulary's attributes (expression, gender, and age group
binned from the age): face-api labels the face data and may drive an optimisation, human is the independent
judge that benchmarks score with. Training stages, layer analysis, the benchmarks and the CLIs all take these
names.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tedigan.domains import FACE_JUDGES, NAMED_GENERATORS
from tedigan.models.judge import BinnedJudge, Judge

__all__ = ["face_judge", "load_generator", "load_judge"]


def load_generator(path: str | Path, device: torch.device | str = "cpu", resolution: int | None = None):
    """A generator in eval mode with no trainable parameters: a named one (rendering at ``resolution``,
    default 256) or a generator folder (``<generator stage out>/generator``)."""
    if str(path) in NAMED_GENERATORS:
        from tedigan.models.ports.mobilestylegan import MobileStyleGAN

        G = MobileStyleGAN.from_package(device=device, resolution=resolution or 256)
        return G.eval().requires_grad_(False)
    from tedigan.models.stylegan2 import Generator

    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"generator_path {path} holds no trained generator: train one first "
            "(pipelines/train_stage.py --stage generator) and point generator_path at its <output_dir>/generator, "
            f"or name one of {sorted(NAMED_GENERATORS)}"
        )
    return Generator.from_pretrained(path, map_location=device).eval().requires_grad_(False)


def face_judge(name: str = "faceapi", device: str | torch.device = "cpu") -> Judge:
    """A judge of the face vocabulary's attributes (:data:`FACE_JUDGES`). Raises ``MissingWeightsError``."""
    from tedigan.data.faces import AGE_GROUPS

    if name == "faceapi":
        from tedigan.models.ports.faceapi import FaceApiJudge

        inner = FaceApiJudge.from_package(heads=("expression", "age_gender"))
    elif name == "human":
        from tedigan.models.ports.human import HumanJudge

        inner = HumanJudge.from_package(nets=("emotion", "faceres"))
    else:
        raise ValueError(f"unknown face judge {name!r}: use one of {FACE_JUDGES}")
    return BinnedJudge(inner, "age", "age_group", list(AGE_GROUPS)).to(device).eval()


def load_judge(path: str | Path, device: str | torch.device = "cpu") -> Judge:
    """A face judge by name (:data:`FACE_JUDGES`) or an attribute-classifier folder (the classifier stage's
    ``<output_dir>/model``), in eval mode. Raises ``FileNotFoundError`` for a folder without one."""
    if str(path) in FACE_JUDGES:
        return face_judge(str(path), device)
    from tedigan.models.classifier import AttributeClassifier

    if not (Path(path) / "config.json").is_file():
        raise FileNotFoundError(
            f"{path} holds no attribute classifier: train one (pipelines/train_stage.py --stage classifier) "
            f"or name a face judge, one of {FACE_JUDGES}"
        )
    return AttributeClassifier.from_pretrained(path, map_location=device).eval()
