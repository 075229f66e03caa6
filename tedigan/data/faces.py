"""The face domain's words: its vocabulary and a caption grammar.

Faces are judged, not rendered: the labels come from face judges (:mod:`tedigan.models.ports.faceapi`) reading
generated faces, so this module only knows words. :data:`FACE_VOCABULARY` reads prompts (``"make her smile"``,
``"stop frowning"``, ``"an older man"``, ``"make him 70"``, ``"blond hair and a beard"``, ``"remove the
glasses"``) as expression, age group and gender (what the judges label and the captions name) and hair colour,
baldness, bangs, eyewear, facial hair and makeup (what people ask of a face editor; read, never captioned).
An age written as a number (``"70 years old"``, ``"in his 60s"``, ``"a 5-year-old"``) is binned by
:data:`AGE_GROUPS` through the vocabulary's ``numbers`` (saved with it in ``vocabulary.json``).
:func:`face_captions` writes ten captions per face from its three labels, with synonyms and varied order, as
Multi-Modal-CelebA-HQ has ten per image. :func:`age_group` bins an age in years into the vocabulary's groups. :class:`GeneratedFaceDataset` reads the face data set that
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
    "HAIR_COLOR_WORDS",
    "GeneratedFaceDataset",
    "age_group",
    "face_captions",
]

#: in the face-api expression net's order
EXPRESSIONS = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
GENDERS = ("male", "female")
#: (group, upper age bound in years, exclusive)
AGE_GROUPS = (("child", 13.0), ("young", 35.0), ("middle_aged", 55.0), ("old", float("inf")))


def _decades(*decades: str) -> list[str]:
    """``"in his <decade>"`` for each pronoun (``"in their twenties"`` is already listed)."""
    return [
        f"in {who} {d}"
        for d in decades
        for who in ("his", "her", "their")
        if (who, d) != ("their", "twenties")
    ]


#: hair colour words: "<word> hair", "<word>-haired", "<word> curls"/"locks", and next to the hair nouns
#: ("make the hair golden", "hair that is ginger"); "dark" hair is black, "fair" hair blond, "white" hair gray
HAIR_COLOR_WORDS: dict[str, tuple[str, ...]] = {
    "black": ("black", "jet-black", "jet black", "raven", "ebony", "dark"),
    "brown": ("brown", "dark brown", "light brown", "chestnut", "brunette", "chocolate", "mousy"),
    "blond": (
        "blond",
        "blonde",
        "golden",
        "fair",
        "platinum",
        "platinum blond",
        "platinum blonde",
        "flaxen",
        "sandy",
        "honey blond",
        "bleached",
    ),
    "red": ("red", "ginger", "auburn", "copper", "strawberry", "russet"),
    "gray": (
        "gray",
        "grey",
        "silver",
        "silvery",
        "white",
        "salt-and-pepper",
        "salt and pepper",
        "greying",
        "graying",
    ),
}
#: hair colour phrases that stand alone (no hair noun needed)
_HAIR_COLOR_ALONE: dict[str, tuple[str, ...]] = {
    "black": ("raven",),
    "brown": ("brunette", "chestnut"),
    "blond": ("blond", "blonde", "platinum", "towhead", "towheaded"),
    "red": ("redhead", "red-head", "redheaded", "red-headed", "ginger", "auburn"),
    "gray": (
        "going gray",
        "going grey",
        "turn gray",
        "turn grey",
        "turning gray",
        "turning grey",
        "greying",
        "graying",
    ),
}
_HAIR_NOUNS = ["hair", "locks", "curls", "bangs", "fringe"]


def _hair_color_phrases(value: str) -> list[str]:
    words = HAIR_COLOR_WORDS[value]
    suffixes = (" hair", "-haired", " haired", " curls", " locks")
    return [f"{w}{s}" for w in words for s in suffixes] + list(_HAIR_COLOR_ALONE[value])


#: numbers read as an age: "#" is the number (``Vocabulary.numbers``), binned by AGE_GROUPS
_AGE_FORMS: list[str] = [
    "# years old",
    "# year old",
    "#-year-old",
    "#-years-old",
    "#-year old",
    "# yrs old",
    "# years of age",
    "#-something",
    "# something",
    *[f"{who} is #" for who in ("he", "she", "who")],
    "aged #",
    "age #",
    "age of #",
    *[f"{verb} {who} #" for verb in ("make", "makes", "making") for who in ("him", "her", "them", "me")],
    "look #",
    "looks #",
    "looking #",
    "turn #",
    "turns #",
    "turned #",
    *[
        f"in {who} {when}#{s}"
        for who in ("his", "her", "their")
        for when in ("", "early ", "mid ", "late ")
        for s in ("s", "'s")
    ],
]

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
        "young": [
            "young",
            "younger",
            "youthful",
            "teenager",
            "teen",
            "in their twenties",
            "young adult",
            *_decades("teens", "twenties", "thirties"),
        ],
        "middle_aged": [
            "middle-aged",
            "middle aged",
            "in his forties",
            "in her forties",
            "in their forties",
            "mature",
            *_decades("fifties"),
        ],
        "old": [
            "old",
            "older",
            "elderly",
            "aged",
            "senior",
            "grandfather",
            "grandmother",
            "grandpa",
            "grandma",
            "granny",
            "pensioner",
            "septuagenarian",
            "octogenarian",
            "nonagenarian",
            *_decades("sixties", "seventies", "eighties", "nineties"),
        ],
    },
    "gender": {
        "male": ["man", "male", "guy", "gentleman", "masculine", "boy"],
        "female": ["woman", "female", "lady", "feminine", "girl"],
    },
    # --- read, never captioned (the judges do not label these; the training captions stay as they were)
    "hair_color": {v: _hair_color_phrases(v) for v in HAIR_COLOR_WORDS},
    "baldness": {
        "hair": [
            "full head of hair",
            "thick hair",
            "a head of hair",
            "full hair",
            "thicker hair",
            "more hair",
            "with hair",
            "give him hair",
            "give her hair",
            "give him some hair",
            "give her some hair",
            "grow hair",
            "grow his hair",
            "grow her hair",
            "grow his hair back",
            "grow her hair back",
            "regrow hair",
            "regrow his hair",
            "regrow her hair",
            "hair transplant",
            "add hair",
        ],
        "bald": [
            "bald",
            "bald head",
            "bald-headed",
            "baldheaded",
            "balding",
            "hairless",
            "no hair",
            "without hair",
            "shaved head",
            "shaven head",
            "head shaved",
            "shave his head",
            "shave her head",
            "shave the head",
            "remove his hair",
            "remove her hair",
            "remove the hair",
            "receding hairline",
            "hair loss",
            "lose his hair",
            "lose her hair",
        ],
    },
    "bangs": {
        "none": ["no bangs", "without bangs", "no fringe", "without a fringe", "without fringe"],
        "bangs": [
            "bangs",
            "with bangs",
            "fringe",
            "a fringe",
            "side bangs",
            "side-swept bangs",
            "blunt bangs",
            "curtain bangs",
            "straight bangs",
        ],
    },
    "eyewear": {
        "none": [
            "no glasses",
            "without glasses",
            "not wearing glasses",
            "no eyeglasses",
            "no spectacles",
            "without spectacles",
            "no sunglasses",
            "without sunglasses",
            "no eyewear",
            "without eyewear",
        ],
        "glasses": [
            "glasses",
            "eyeglasses",
            "spectacles",
            "specs",
            "reading glasses",
            "bespectacled",
            "eye glasses",
            "prescription glasses",
            "round glasses",
            "rimmed glasses",
            "horn-rimmed glasses",
            "wire-rimmed glasses",
            "clear glasses",
            "thick glasses",
        ],
        "sunglasses": [
            "sunglasses",
            "shades",
            "sun glasses",
            "sun-glasses",
            "dark glasses",
            "tinted glasses",
            "aviators",
            "aviator sunglasses",
            "aviator glasses",
        ],
    },
    "facial_hair": {
        "none": [
            "clean-shaven",
            "clean shaven",
            "cleanshaven",
            "freshly shaven",
            "shaved beard",
            "shaved face",
            "shaven face",
            "smooth-shaven",
            "beardless",
            "no beard",
            "without a beard",
            "without beard",
            "no facial hair",
            "without facial hair",
            "no moustache",
            "no mustache",
            "no stubble",
            "shave the beard",
            "shave his beard",
            "shave off the beard",
            "shave off his beard",
            "shave him",
        ],
        "beard": [
            "beard",
            "bearded",
            "full beard",
            "facial hair",
            "goatee",
            "stubble",
            "stubbly",
            "moustache",
            "mustache",
            "moustached",
            "mustached",
            "unshaven",
            "sideburns",
            "five o'clock shadow",
            "grow a beard",
        ],
    },
    "makeup": {
        "none": [
            "no makeup",
            "no make-up",
            "without makeup",
            "without make-up",
            "makeup-free",
            "makeup free",
            "bare-faced",
            "barefaced",
            "bare face",
            "no lipstick",
            "without lipstick",
        ],
        "lipstick": [
            "lipstick",
            "red lips",
            "makeup",
            "make-up",
            "wearing makeup",
            "red lipstick",
            "lip gloss",
            "lipgloss",
            "painted lips",
            "glossy lips",
            "heavy makeup",
            "eye shadow",
            "eyeshadow",
            "eyeliner",
            "mascara",
        ],
    },
}

#: the face vocabulary. Negation means the absent value: a neutral expression ("stop smiling"), no eyewear /
#: facial hair / makeup / bangs ("remove the glasses"), hair ("not bald"); a negated hair colour, age or gender
#: is dropped. Hair colour and baldness also read value words next to their nouns ("make the hair golden",
#: "thick hair"); ages written as numbers are binned by AGE_GROUPS ("make him 70", "in her 40s").
FACE_VOCABULARY = Vocabulary(
    domain="faces",
    attributes=_PHRASES,
    nouns={"hair_color": _HAIR_NOUNS, "baldness": ["hair"], "makeup": ["lips"]},
    words={
        "hair_color": {v: list(ws) for v, ws in HAIR_COLOR_WORDS.items()},
        "makeup": {"lipstick": ["red", "painted", "pink", "glossy", "coloured", "colored", "ruby"]},
        "baldness": {"hair": ["thick", "thicker", "full", "fuller", "lush", "lots of", "plenty of"]},
    },
    absent={
        "expression": "neutral",
        "baldness": "hair",
        "bangs": "none",
        "eyewear": "none",
        "facial_hair": "none",
        "makeup": "none",
    },
    noun_window=2,
    numbers={
        "age_group": {
            "forms": _AGE_FORMS,
            "bins": [[g, None if upper == float("inf") else upper] for g, upper in AGE_GROUPS],
        }
    },
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
