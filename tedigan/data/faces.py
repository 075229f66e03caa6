"""The face domain's words: its vocabulary (expression, age group, gender) and a caption grammar.

Faces are judged, not rendered: the labels come from face judges (:mod:`tedigan.models.ports.faceapi`) reading
generated faces, so this module only knows words. :data:`FACE_VOCABULARY` reads prompts (``"make her smile"``,
``"stop frowning"``, ``"an older man"``); :func:`face_captions` writes ten captions per face from its labels,
with synonyms and varied order, as Multi-Modal-CelebA-HQ has ten per image. :func:`age_group` bins an age in
years into the vocabulary's groups. :class:`GeneratedFaceDataset` reads the face data set that
:mod:`tedigan.training.face_data` makes (``make_dataset("faces", root, split=...)``).
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from tedigan.data.io import load_image, make_sample, to_tensor
from tedigan.data.vocabulary import Vocabulary

__all__ = [
    "AGE_GROUPS",
    "EXPRESSIONS",
    "FACE_VOCABULARY",
    "GENDERS",
    "GeneratedFaceDataset",
    "age_group",
    "face_captions",
]

#: in the face-api expression net's order
EXPRESSIONS = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
GENDERS = ("male", "female")
#: (group, upper age bound in years, exclusive)
AGE_GROUPS = (("child", 13.0), ("young", 35.0), ("middle_aged", 55.0), ("old", float("inf")))

_PHRASES: dict[str, dict[str, list[str]]] = {
    "expression": {
        "neutral": [
            "neutral expression",
            "serious",
            "expressionless",
            "straight face",
            "blank expression",
            "calm",
        ],
        "happy": [
            "smiling",
            "smile",
            "smiles",
            "happy",
            "grinning",
            "grin",
            "laughing",
            "cheerful",
            "joyful",
        ],
        "sad": ["sad", "frowning", "frown", "unhappy", "gloomy", "sorrowful", "crying"],
        "angry": ["angry", "furious", "mad", "annoyed", "scowling", "scowl"],
        "fearful": ["fearful", "scared", "afraid", "frightened", "terrified"],
        "disgusted": ["disgusted", "disgust", "repulsed"],
        "surprised": ["surprised", "astonished", "shocked", "amazed", "open-mouthed"],
    },
    "age_group": {
        "child": [
            "child",
            "kid",
            "little boy",
            "little girl",
            "small boy",
            "small girl",
            "toddler",
            "young child",
        ],
        "young": ["young", "younger", "youthful", "teenager", "teen", "in their twenties", "young adult"],
        "middle_aged": [
            "middle-aged",
            "middle aged",
            "in his forties",
            "in her forties",
            "in their forties",
            "mature",
        ],
        "old": ["old", "older", "elderly", "aged", "senior", "grandfather", "grandmother"],
    },
    "gender": {
        "male": ["man", "male", "guy", "gentleman", "masculine", "boy"],
        "female": ["woman", "female", "lady", "feminine", "girl"],
    },
}

#: the face vocabulary (negating an expression means a neutral one: "stop smiling")
FACE_VOCABULARY = Vocabulary(
    domain="faces",
    attributes=_PHRASES,
    absent={"expression": "neutral"},
)

_SUBJECT = {
    ("male", "child"): ["a little boy", "a small boy", "a male child"],
    ("female", "child"): ["a little girl", "a small girl", "a female child"],
    ("male", "young"): ["a young man", "a young guy", "a youthful man"],
    ("female", "young"): ["a young woman", "a young lady", "a youthful woman"],
    ("male", "middle_aged"): ["a middle-aged man", "a man in his forties", "a mature man"],
    ("female", "middle_aged"): ["a middle-aged woman", "a woman in her forties", "a mature woman"],
    ("male", "old"): ["an old man", "an elderly man", "a senior gentleman"],
    ("female", "old"): ["an old woman", "an elderly woman", "a senior lady"],
}
_ADJ = {
    "neutral": ["serious", "calm", "expressionless"],
    "happy": ["smiling", "happy", "cheerful", "grinning"],
    "sad": ["sad", "unhappy", "frowning"],
    "angry": ["angry", "annoyed", "scowling"],
    "fearful": ["scared", "frightened", "fearful"],
    "disgusted": ["disgusted"],
    "surprised": ["surprised", "astonished", "shocked"],
}
_HAS = {
    "neutral": ["a neutral expression", "a straight face", "a blank expression"],
    "happy": ["a smile", "a big smile", "a grin"],
    "sad": ["a frown", "a sad expression"],
    "angry": ["an angry expression", "a scowl"],
    "fearful": ["a frightened look", "a scared expression"],
    "disgusted": ["a disgusted expression"],
    "surprised": ["a surprised expression", "a shocked look"],
}


def age_group(years: float) -> str:
    """The vocabulary's age group of an age in years."""
    for name, upper in AGE_GROUPS:
        if years < upper:
            return name
    return AGE_GROUPS[-1][0]


def face_captions(labels: Mapping[str, str], seed: str | int, n: int = 10) -> list[str]:
    """``n`` captions of a face with ``labels`` (``expression``, ``gender``, ``age_group``), each naming all
    three in varied words and order; deterministic in ``seed``."""
    rng = random.Random(f"faces:{seed}")
    expr, gender, age = labels["expression"], labels["gender"], labels["age_group"]
    subject = _SUBJECT[(gender, age)]
    out = []
    for _ in range(n):
        who = rng.choice(subject)
        form = rng.randrange(4)
        if form == 0:
            text = f"{who} who is {rng.choice(_ADJ[expr])}"
        elif form == 1:
            text = f"{who} with {rng.choice(_HAS[expr])}"
        elif form == 2:
            adj = rng.choice(_ADJ[expr])
            article = "an" if adj[0] in "aeiou" else "a"
            rest = who.split(" ", 1)[1]
            text = f"{article} {adj} {rest}"
        else:
            text = f"the face of {who}, {rng.choice(_ADJ[expr])}"
        out.append(text[0].upper() + text[1:] + ".")
    return out


class GeneratedFaceDataset(Dataset):
    """A face data set made by :mod:`tedigan.training.face_data`: one ``split`` (``train``/``val``/``test``, or
    ``all``) of its faces as the common sample dict, plus ``w`` ``[23, 512]`` (float32: the true W+ code the
    face was rendered from, for the encoder's latent loss) and ``labels`` (the training judge's verdict).

    ``with_codes=False`` leaves the codes out (a folder without ``codes.safetensors`` then also works)."""

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        resolution: int | None = 256,
        with_codes: bool = True,
    ) -> None:
        self.root, self.resolution = Path(root), resolution
        if not (self.root / "info.json").is_file():
            raise FileNotFoundError(
                f"no finished face data set in {self.root}: run `tedigan face-data --num 10000 "
                f"--out {self.root}` (it resumes where a killed build stopped)"
            )
        rows = [json.loads(line) for line in (self.root / "metadata.jsonl").read_text().splitlines() if line]
        if split not in ("train", "val", "test", "all"):
            raise ValueError(f"split must be train, val, test or all, got {split!r}")
        self.rows = [r for r in rows if split == "all" or r["split"] == split]
        self.codes = None
        if with_codes:
            from safetensors.torch import load_file

            self.codes = load_file(str(self.root / "codes.safetensors"))["ws"]
            if len(self.codes) != len(rows):
                raise ValueError(
                    f"{self.root}: {len(self.codes)} codes for {len(rows)} faces (rebuild the data set)"
                )

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.rows[index]
        image = to_tensor(load_image(self.root / row["file_name"]), self.resolution)
        w = self.codes[int(row["id"])].float() if self.codes is not None else None
        return make_sample(image, row["captions"], index, w=w, labels=dict(row["attributes"]))
