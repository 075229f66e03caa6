"""The two domains tedigan ships pipelines for, and the networks known by name rather than by folder.

Pure data at the bottom of the house: this module imports nothing of tedigan, so every room may read it. The
code that builds these things (data sets, vocabularies, generators, judges, benchmarks) lives in its own room
and looks them up here by name.

- **avatars**: rendered by the project, every attribute known; the backbone is trained from scratch and the
  attribute judge is the classifier stage's model, so edits are scored against re-rendered ground truth.
- **faces**: photo-real FFHQ-aligned faces on the ported MobileStyleGAN (research / non-commercial weights);
  face-api labels the data and drives layer analysis, human's nets judge the benchmark independently.

The name ``faces`` means the domain: its shipped pipeline (``--model faces``), data kind and vocabulary. The
face *generator* alone has its own name, ``mobilestylegan`` (``--model mobilestylegan --seeds 0-7``,
``generator_path: mobilestylegan``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_MODEL",
    "DOMAINS",
    "FACE_JUDGES",
    "NAMED_GENERATORS",
    "NAMED_NETWORKS",
    "SHIPPED_MODELS",
    "Domain",
    "NamedNetwork",
]

_WEIGHTS = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class NamedNetwork:
    """A network loaded by name (``tedigan.models.named``): a ``"generator"`` or a ``"judge"``."""

    kind: str
    description: str


#: every network known by name; ``tedigan.models.named`` loads them
NAMED_NETWORKS: dict[str, NamedNetwork] = {
    "mobilestylegan": NamedNetwork(
        "generator", "MobileStyleGAN, FFHQ 1024 px (random-face package; research / non-commercial)"
    ),
    "faceapi": NamedNetwork("judge", "face-api (npm): expression, gender, age group; labels the face data"),
    "human": NamedNetwork("judge", "human (npm): emotion, gender, age group; the independent face judge"),
}
#: generator names -> what they are
NAMED_GENERATORS = {n: v.description for n, v in NAMED_NETWORKS.items() if v.kind == "generator"}
#: judges of the face vocabulary's attributes, by name
FACE_JUDGES = tuple(n for n, v in NAMED_NETWORKS.items() if v.kind == "judge")


@dataclass(frozen=True)
class Domain:
    """One domain. ``name`` is also its shipped pipeline's name (``from_pretrained(name)``, ``--model name``)."""

    name: str
    model_folder: str  # the shipped pipeline: tedigan/weights/<model_folder>
    data_kind: str  # make_dataset(kind, ...)
    vocabulary: str  # builtin_vocabulary(name)
    generator: (
        str | None
    )  # a NAMED_GENERATORS name; None: trained by the generator stage, stored in the pipeline
    judge: str | None  # labels data, drives layer analysis; None: the classifier stage's attribute classifier
    benchmark_judge: str | None  # scores the benchmark, independent of ``judge``; None: ground truth
    benchmark: str  # module: python -m <benchmark>
    preset: str  # bash train_all.sh <preset> trained the shipped pipeline

    @property
    def model_dir(self) -> Path:
        return _WEIGHTS / self.model_folder


DOMAINS: dict[str, Domain] = {
    "avatars": Domain(
        name="avatars",
        model_folder="avatars64",
        data_kind="avatars",
        vocabulary="avatars",
        generator=None,
        judge=None,
        benchmark_judge=None,
        benchmark="tedigan.evaluation.edit_benchmark",
        preset="avatars64",
    ),
    "faces": Domain(
        name="faces",
        model_folder="faces",
        data_kind="faces",
        vocabulary="faces",
        generator="mobilestylegan",
        judge="faceapi",
        benchmark_judge="human",
        benchmark="tedigan.evaluation.face_benchmark",
        preset="faces256",
    ),
}

#: the pipelines tedigan ships in ``tedigan/weights``, by name
SHIPPED_MODELS = {name: d.model_dir for name, d in DOMAINS.items()}
DEFAULT_MODEL = "avatars"
