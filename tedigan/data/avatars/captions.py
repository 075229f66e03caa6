"""Captions: a small probabilistic grammar; PHRASES is its vocabulary, AVATAR_VOCABULARY reads prompts.

Part of :mod:`tedigan.data.avatars` (the package docstring explains the data set).
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Mapping
from typing import Any

from tedigan.data.avatars.attributes import ATTRIBUTES, _as_rng
from tedigan.data.vocabulary import NEGATORS, Vocabulary

# --------------------------------------------------------------------------------------------------------
# Captions: a small probabilistic grammar; PHRASES is its vocabulary, parse_prompt its inverse
# --------------------------------------------------------------------------------------------------------

#: hair colour adjectives (used in "<adj> hair", "<adj>-haired", "<adj> curls", "a <adj> afro")
HAIR_COLOR_WORDS: dict[str, tuple[str, ...]] = {
    "black": ("black", "jet-black", "raven"),
    "brown": ("brown", "chestnut", "brunette"),
    "blond": ("blond", "blonde", "golden"),
    "red": ("red", "ginger", "copper"),
    "gray": ("gray", "grey", "silver", "white"),
    "pink": ("pink", "pastel pink", "bubblegum pink"),
}


def _hair_color_phrases(value: str) -> tuple[str, ...]:
    words = HAIR_COLOR_WORDS.get(value, ())
    return tuple(f"{w}{suffix}" for w in words for suffix in (" hair", "-haired", " curls", " afro"))


#: attribute -> value -> key phrases. parse_prompt finds these (longest first); every caption contains
#: phrases for exactly the attributes it mentions. Hair-style phrases "<x> hair" also match "<x> <colour>
#: hair" ("long blond hair"); the generic "hat" means the fedora.
PHRASES: dict[str, dict[str, tuple[str, ...]]] = {
    "hair_color": {v: _hair_color_phrases(v) for v in ATTRIBUTES["hair_color"]},
    "hair_style": {
        "bald": (
            "bald",
            "bald head",
            "shaved head",
            "shaven head",
            "no hair",
            "hairless",
            "shave the head",
            "shave his head",
            "shave her head",
            "head shaved",
        ),
        "short": ("short hair", "short haircut", "cropped hair", "short-haired", "close-cropped hair"),
        "long": ("long hair", "straight hair", "flowing hair", "shoulder-length hair", "long-haired"),
        "curly": ("curly hair", "curls", "wavy hair", "curly-haired"),
        "afro": ("afro", "afro hairstyle"),
        "bun": ("bun", "topknot", "top knot"),
    },
    "eyewear": {
        "none": ("no glasses", "without glasses", "not wearing glasses", "no eyewear", "no sunglasses"),
        "glasses": ("glasses", "eyeglasses", "spectacles", "bespectacled", "reading glasses"),
        "sunglasses": ("sunglasses", "shades", "dark glasses", "sun glasses"),
    },
    "hat": {
        "none": ("no hat", "without a hat", "not wearing a hat", "bareheaded", "hatless"),
        "beanie": ("beanie", "knit cap", "knitted cap", "woolly hat"),
        "winter_hat": ("winter hat", "hat with ear flaps", "earflap hat", "trapper hat"),
        "fedora": ("fedora", "wide-brimmed hat", "brimmed hat", "hat"),
    },
    "mouth": {
        "smiling": ("smiling", "smile", "grinning", "grin", "happy", "cheerful"),
        "neutral": ("neutral expression", "serious", "straight face", "expressionless", "blank expression"),
        "sad": ("sad", "frowning", "frown", "unhappy", "gloomy"),
        "open": ("open mouth", "mouth open", "open-mouthed", "surprised", "shocked", "astonished"),
    },
    "facial_hair": {
        "none": ("clean-shaven", "no beard", "beardless", "without a beard", "no facial hair"),
        "beard": ("beard", "bearded", "full beard"),
        "moustache": ("moustache", "mustache", "moustached", "mustached"),
    },
    "skin_tone": {
        "light": ("light skin", "fair skin", "pale skin", "light-skinned", "fair-skinned", "pale-skinned"),
        "tan": ("tan skin", "tanned skin", "olive skin", "tan-skinned", "olive-skinned", "medium skin"),
        "brown": ("brown skin", "brown-skinned"),
        "dark": ("dark skin", "dark-skinned", "dark complexion"),
    },
}

# Surface forms of the grammar per attribute value and role: "adj" (before the noun), "has" (noun phrase
# after "with"/"has"), "wear" (noun phrase after "wearing"). Every form contains a PHRASES key phrase.
_FORMS: dict[str, dict[str, dict[str, tuple[str, ...]]]] = {
    "eyewear": {
        "none": {"has": ("no glasses",), "adj": ()},
        "glasses": {
            "wear": ("glasses", "a pair of glasses", "eyeglasses", "spectacles", "reading glasses"),
            "adj": ("bespectacled",),
        },
        "sunglasses": {
            "wear": ("sunglasses", "a pair of sunglasses", "dark sunglasses", "shades", "dark glasses")
        },
    },
    "hat": {
        "none": {"adj": ("bareheaded", "hatless"), "has": ("no hat",)},
        "beanie": {"wear": ("a beanie", "a knit cap", "a woolly hat", "a knitted cap")},
        "winter_hat": {"wear": ("a winter hat", "a hat with ear flaps", "a trapper hat", "an earflap hat")},
        "fedora": {"wear": ("a fedora", "a wide-brimmed hat", "a brimmed hat", "a hat")},
    },
    "mouth": {
        "smiling": {
            "adj": ("smiling", "grinning", "happy", "cheerful"),
            "has": ("a smile", "a big smile", "a grin"),
        },
        "neutral": {
            "adj": ("serious", "expressionless"),
            "has": ("a neutral expression", "a serious expression", "a straight face", "a blank expression"),
        },
        "sad": {"adj": ("sad", "frowning", "unhappy", "gloomy"), "has": ("a frown", "a sad expression")},
        "open": {
            "adj": ("surprised", "shocked", "open-mouthed", "astonished"),
            "has": ("an open mouth", "a surprised expression", "a shocked expression"),
        },
    },
    "facial_hair": {
        "none": {"adj": ("clean-shaven", "beardless"), "has": ("no beard", "no facial hair")},
        "beard": {"adj": ("bearded",), "has": ("a beard", "a full beard")},
        "moustache": {"adj": ("moustached", "mustached"), "has": ("a moustache", "a mustache")},
    },
    "skin_tone": {
        "light": {
            "adj": ("light-skinned", "fair-skinned", "pale-skinned"),
            "has": ("light skin", "fair skin", "pale skin"),
        },
        "tan": {"adj": ("tan-skinned", "olive-skinned"), "has": ("tan skin", "tanned skin", "olive skin")},
        "brown": {"adj": ("brown-skinned",), "has": ("brown skin",)},
        "dark": {"adj": ("dark-skinned",), "has": ("dark skin", "a dark complexion")},
    },
}
_STYLE_WORD = {"short": ("short",), "long": ("long", "straight", "flowing"), "curly": ("curly", "wavy")}
_CLOTHING_PHRASES = {
    "blazer_shirt": "a blazer",
    "blazer_sweater": "a blazer and sweater",
    "collar_sweater": "a collared sweater",
    "graphic_shirt": "a graphic t-shirt",
    "hoodie": "a hoodie",
    "overall": "overalls",
    "shirt_crew_neck": "a crew-neck t-shirt",
    "shirt_scoop_neck": "a scoop-neck top",
    "shirt_v_neck": "a v-neck t-shirt",
}
_NOUNS = ("person", "face", "cartoon face", "avatar", "cartoon character", "character", "cartoon person")
_BEARDED_NOUNS = ("man", "guy")


def _hair_forms(record: Mapping[str, Any], color: bool, style: bool, rng: random.Random) -> dict[str, str]:
    """One surface form per role for the hair item (colour and/or style)."""
    s, c = record["hair_style"], record["hair_color"]
    cw = rng.choice(HAIR_COLOR_WORDS[c]) if color else ""
    if color and style:
        if s in _STYLE_WORD:
            has = [f"{rng.choice(_STYLE_WORD[s])} {cw} hair"]
            if s == "curly":
                has.append(f"{cw} curls")
        elif s == "afro":
            has = [f"a {cw} afro"]
        else:  # bun
            has = [f"{cw} hair in a bun", f"{cw} hair tied in a bun", f"{cw} hair in a topknot"]
        return {"has": rng.choice(has)}
    if color:
        return {"has": f"{cw} hair", "adj": f"{cw}-haired"}
    forms = {
        "bald": {"adj": ("bald",), "has": ("a bald head", "a shaved head", "no hair")},
        "short": {"adj": ("short-haired",), "has": ("short hair", "a short haircut", "cropped hair")},
        "long": {"adj": ("long-haired",), "has": ("long hair", "long straight hair", "flowing hair")},
        "curly": {"adj": ("curly-haired",), "has": ("curly hair", "curls", "wavy hair")},
        "afro": {"has": ("an afro", "an afro hairstyle")},
        "bun": {"has": ("a bun", "hair in a bun", "a topknot")},
    }[s]
    return {role: rng.choice(opts) for role, opts in forms.items()}


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _article(phrase: str) -> str:
    return "an" if phrase[:1].lower() in "aeiou" else "a"


def caption_with_mentions(record: Mapping[str, Any], rng_or_seed: Any) -> tuple[str, dict[str, str]]:
    """One caption and the ``{attribute: value}`` it mentions (what :func:`parse_prompt` should recover)."""
    rng = _as_rng(rng_or_seed)
    mentioned: dict[str, str] = {}
    for name in ATTRIBUTES:
        value = record[name]
        if name == "hair_color" and value == "none":
            continue
        p = 0.25 if value == "none" else (0.55 if name in ("skin_tone", "hair_color") else 0.65)
        if rng.random() < p:
            mentioned[name] = value
    if not mentioned:
        mentioned["hair_style"] = record["hair_style"]

    adj: list[str] = []
    has: list[str] = []
    wear: list[str] = []
    names = list(mentioned)
    rng.shuffle(names)
    done_hair = False
    for name in names:
        value = mentioned[name]
        if name in ("hair_color", "hair_style"):
            if done_hair:
                continue
            done_hair = True
            forms = _hair_forms(record, "hair_color" in mentioned, "hair_style" in mentioned, rng)
        else:
            forms = {role: rng.choice(opts) for role, opts in _FORMS[name][value].items() if opts}
        roles = [r for r in forms if r != "adj" or len(adj) < 2]
        role = rng.choice(roles)
        {"adj": adj, "has": has, "wear": wear}[role].append(forms[role])
    if rng.random() < 0.15:
        wear.append(_CLOTHING_PHRASES[record["clothing"]])
    rng.shuffle(has)
    rng.shuffle(wear)

    nouns = _NOUNS + (_BEARDED_NOUNS if record["facial_hair"] != "none" else ())
    noun = rng.choice(nouns)
    head = " ".join([*adj, noun])
    template = rng.randrange(4)
    if template == 0:  # "a smiling man with blond hair wearing glasses"
        text = f"{_article(head)} {head}"
        if has:
            text += " with " + _join(has)
        if wear:
            text += (", " if has else " ") + "wearing " + _join(wear)
    elif template == 1:  # "This person has blond hair and wears sunglasses."
        text = f"This {head}"
        parts = []
        if has:
            parts.append("has " + _join(has))
        if wear:
            parts.append(rng.choice(("wears ", "is wearing ")) + _join(wear))
        text += " " + " and ".join(parts) + "." if parts else " is shown."
    elif template == 2:  # "cartoon avatar, blond hair, sunglasses, smiling"
        bits = [*has, *wear, *adj]
        rng.shuffle(bits)
        text = ", ".join([noun, *bits])
    else:  # "A smiling person. They have blond hair. They are wearing sunglasses."
        text = f"{_article(head).capitalize()} {head}."
        if has:
            text += " They have " + _join(has) + "."
        if wear:
            text += " They are wearing " + _join(wear) + "."
    text = re.sub(r"\s+", " ", text).strip()
    return text[0].upper() + text[1:] if rng.random() < 0.5 else text, mentioned


def captions(record: Mapping[str, Any], rng_or_seed: Any, n: int = 10) -> list[str]:
    """``n`` captions of a record (distinct where the grammar allows), each mentioning a random subset of
    its classified attributes in random order with random synonyms."""
    rng = _as_rng(rng_or_seed)
    out: list[str] = []
    for _ in range(n):
        text = ""
        for _try in range(8):
            text, _ = caption_with_mentions(record, rng)
            if text not in out:
                break
        out.append(text)
    return out


#: phrases and hair words the vocabulary reads but the caption grammar never writes (so the training captions,
#: and every text code and prototype made from them, stay as they were)
READ_ONLY_PHRASES: dict[str, dict[str, tuple[str, ...]]] = {
    "facial_hair": {"beard": ("goatee", "stubble")},
    "hair_color": {"blond": ("platinum blond", "platinum blonde")},
}
READ_ONLY_HAIR_WORDS: dict[str, tuple[str, ...]] = {"blond": ("platinum", "flaxen"), "red": ("auburn",)}


@functools.lru_cache(maxsize=1)
def _vocabulary() -> Vocabulary:
    """The avatar domain's :class:`~tedigan.data.vocabulary.Vocabulary` (saved with avatar pipelines)."""
    phrases = {a: {v: list(ps) for v, ps in values.items()} for a, values in PHRASES.items()}
    for a, values in ATTRIBUTES.items():  # every value listed, even without a phrase
        phrases[a] = {v: phrases[a].get(v, []) for v in values}
    # "<x> hair" style phrases also read as the word <x> next to "hair" ("long blond hair", "hair that is long")
    style_words = {
        v: [p[: -len(" hair")] for p in ps if p.endswith(" hair") and p[: -len(" hair")] not in NEGATORS]
        for v, ps in PHRASES["hair_style"].items()
    }
    for a, values in READ_ONLY_PHRASES.items():
        for v, ps in values.items():
            phrases[a][v] = [*phrases[a][v], *ps]
    hair_words = {v: [*ws, *READ_ONLY_HAIR_WORDS.get(v, ())] for v, ws in HAIR_COLOR_WORDS.items()}
    return Vocabulary(
        domain="avatars",
        attributes=phrases,
        nouns={
            "hair_color": ["hair", "curls", "afro", "locks"],
            "hair_style": ["hair", "locks"],
            "skin_tone": ["skin", "complexion"],
        },
        words={
            "hair_color": hair_words,
            "hair_style": {v: ws for v, ws in style_words.items() if ws},
            # comparatives next to "skin" ("make the skin darker"): the far end of the scale
            "skin_tone": {"dark": ["darker"], "light": ["lighter", "paler", "fairer"]},
        },
        absent={"eyewear": "none", "hat": "none", "facial_hair": "none", "mouth": "neutral"},
        noun_window=2,
    )


#: the avatar vocabulary: PHRASES, the hair words, and negation (``"remove the glasses"`` → no eyewear)
AVATAR_VOCABULARY = _vocabulary()


def parse_prompt(text: str) -> dict[str, str]:
    """Map free text to ``{attribute: value}`` with :data:`AVATAR_VOCABULARY` (see
    :meth:`tedigan.data.vocabulary.Vocabulary.read`: phrases longest first, value words next to their noun,
    negation to the absent value; attributes not mentioned are absent)."""
    return AVATAR_VOCABULARY.read(text).values
