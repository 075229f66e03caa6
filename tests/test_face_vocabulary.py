"""The face vocabulary reads what people ask of a face editor: hair colour, baldness, bangs, eyewear, facial
hair, makeup (besides expression, age group and gender), with negation, composition and ages as numbers; it
survives a save → load round trip, and the shipped faces model carries it."""

from __future__ import annotations

import pytest

from tedigan.data.faces import AGE_GROUPS, FACE_VOCABULARY, age_group
from tedigan.data.vocabulary import Vocabulary, VocabularyError
from tedigan.pipeline import DEFAULT_MODEL_DIR

V = FACE_VOCABULARY
FACES_DIR = DEFAULT_MODEL_DIR.parent / "faces"

NEW_ATTRIBUTES = {
    "hair_color": ["black", "brown", "blond", "red", "gray"],
    "baldness": ["hair", "bald"],
    "bangs": ["none", "bangs"],
    "eyewear": ["none", "glasses", "sunglasses"],
    "facial_hair": ["none", "beard"],
    "makeup": ["none", "lipstick"],
}

# (attribute, value, phrasings that must read as exactly {attribute: value})
SINGLE = [
    ("hair_color", "blond", ["blond hair", "a blonde", "fair hair", "golden hair", "platinum", "flaxen locks",
                             "make the hair golden", "blonde-haired"]),
    ("hair_color", "black", ["black hair", "dark hair", "raven", "raven-haired", "jet-black hair",
                             "her hair should be dark"]),
    ("hair_color", "brown", ["brunette", "brown hair", "chestnut", "dark brown hair", "light brown curls"]),
    ("hair_color", "red", ["red hair", "redhead", "ginger", "auburn", "copper hair", "hair that is ginger",
                           "make the hair red"]),
    ("hair_color", "gray", ["gray hair", "grey hair", "white hair", "silver hair", "grey-haired",
                            "gray-haired", "going grey", "turn the hair silver", "salt and pepper hair"]),
    ("baldness", "bald", ["bald", "bald head", "shaved head", "hairless", "balding", "no hair",
                          "shave his head", "receding hairline"]),
    ("baldness", "hair", ["full head of hair", "thick hair", "give him hair", "grow hair", "not bald",
                          "no longer bald", "make the hair thicker"]),
    ("bangs", "bangs", ["bangs", "fringe", "a fringe", "with bangs", "side-swept bangs"]),
    ("bangs", "none", ["no bangs", "without bangs", "remove the bangs", "no fringe"]),
    ("eyewear", "glasses", ["glasses", "eyeglasses", "spectacles", "specs", "reading glasses",
                            "give her glasses", "bespectacled"]),
    ("eyewear", "sunglasses", ["sunglasses", "shades", "sun glasses", "dark glasses", "put on sunglasses",
                               "aviator sunglasses"]),
    ("eyewear", "none", ["no glasses", "without glasses", "remove the glasses", "take off his glasses",
                         "take his glasses off", "take his glasses away", "remove the sunglasses",
                         "lose the shades", "no sunglasses"]),
    ("facial_hair", "beard", ["beard", "bearded", "full beard", "goatee", "stubble", "moustache", "mustache",
                              "facial hair", "grow a beard"]),
    ("facial_hair", "none", ["no beard", "clean-shaven", "clean shaven", "shave the beard", "beardless",
                             "remove the moustache", "without facial hair", "get rid of the stubble",
                             "a shaved beard", "a shaved face"]),
    ("makeup", "lipstick", ["lipstick", "red lips", "makeup", "make-up", "wearing makeup", "lip gloss",
                            "red lipstick", "paint her lips red", "her lips are pink"]),
    ("makeup", "none", ["no makeup", "bare-faced", "no lipstick", "remove her makeup", "without make-up",
                        "take off the lipstick"]),
    ("expression", "neutral", ["stop smiling", "no longer frowning", "a straight face"]),
]  # fmt: skip


@pytest.mark.parametrize(
    "text, attribute, value",
    [(text, a, v) for a, v, texts in SINGLE for text in texts],
)
def test_each_new_value_from_several_phrasings(text, attribute, value):
    assert V.read(text).values == {attribute: value}, text


def test_the_new_attributes_and_values_are_named_as_other_code_expects():
    assert {a: list(vs) for a, vs in V.attributes.items() if a in NEW_ATTRIBUTES} == NEW_ATTRIBUTES
    assert list(V.attributes)[:3] == ["expression", "age_group", "gender"]
    assert "hair_color" not in V.absent  # a negated colour is dropped, never read the wrong way round
    assert {a: V.absent[a] for a in NEW_ATTRIBUTES if a in V.absent} == {
        "baldness": "hair",
        "bangs": "none",
        "eyewear": "none",
        "facial_hair": "none",
        "makeup": "none",
    }


@pytest.mark.parametrize(
    "text, expected",
    [
        # composition
        ("blond hair and a beard", {"hair_color": "blond", "facial_hair": "beard"}),
        ("a bald man with sunglasses", {"baldness": "bald", "eyewear": "sunglasses", "gender": "male"}),
        ("no glasses, blond hair", {"eyewear": "none", "hair_color": "blond"}),
        ("remove his beard and give him glasses", {"facial_hair": "none", "eyewear": "glasses"}),
        ("red lipstick and dark hair", {"makeup": "lipstick", "hair_color": "black"}),
        ("blond bangs", {"hair_color": "blond", "bangs": "bangs"}),
        ("a ginger man with a full beard", {"hair_color": "red", "gender": "male", "facial_hair": "beard"}),
        (
            "a smiling young woman with red lips and glasses",
            {
                "expression": "happy",
                "age_group": "young",
                "gender": "female",
                "makeup": "lipstick",
                "eyewear": "glasses",
            },
        ),  # fmt: skip
        # gray hair is a colour, old is an age; together both
        ("grey hair", {"hair_color": "gray"}),
        ("an old man", {"age_group": "old", "gender": "male"}),
        ("an old man with grey hair", {"age_group": "old", "gender": "male", "hair_color": "gray"}),
        ("a white-haired woman", {"hair_color": "gray", "gender": "female"}),
        ("a bold man", {"gender": "male"}),  # "old" inside "bold" is no age
        ("a golden smile", {"expression": "happy"}),  # "golden" is a hair colour only next to hair
        ("a black man", {"gender": "male"}),  # nor "black" without hair
        # sunglasses never also read as glasses
        ("sunglasses", {"eyewear": "sunglasses"}),
        ("take the sunglasses off", {"eyewear": "none"}),
        # negation of an attribute without an absent value is dropped
        ("not blond", {}),
        # nothing known
        ("make it pretty", {}),
        ("purple elephant", {}),
        ("pink hair", {}),
        ("the sky is blue", {}),
    ],
)
def test_composition_and_ambiguity(text, expected):
    assert V.read(text).values == expected, text


@pytest.mark.parametrize(
    "text, group",
    [
        ("make him 70", "old"),
        ("make her look 20", "young"),
        ("70 years old", "old"),
        ("a 70 year old man", "old"),
        ("in his 60s", "old"),
        ("in her 60's", "old"),
        ("in their early 40s", "middle_aged"),
        ("in his late 50s", "middle_aged"),
        ("a 5-year-old", "child"),
        ("a 5-year-old boy", "child"),
        ("aged 8", "child"),
        ("she is 25", "young"),
        ("a 30-something", "young"),
        ("a 45 year old woman", "middle_aged"),
        ("make him 100", "old"),
        ("in his sixties", "old"),
        ("in her fifties", "middle_aged"),
    ],
)
def test_ages_written_as_numbers(text, group):
    assert V.read(text).values["age_group"] == group, text


def test_numeric_ages_follow_the_age_groups_bins():
    for years in (0, 4, 12, 13, 20, 34, 35, 40, 54, 55, 70, 99):
        assert V.read(f"{years} years old").values == {"age_group": age_group(years)}, years
    assert V.numbers["age_group"]["bins"] == [[g, None if u == float("inf") else u] for g, u in AGE_GROUPS]
    assert V.read("a 5-year-old boy").values == {"age_group": "child", "gender": "male"}
    assert V.read("make him 1970").values == {}  # four digits are no age


def test_save_load_round_trip(tmp_path):
    path = V.save(tmp_path)
    again = Vocabulary.load(path)
    assert again == V and again.to_dict() == V.to_dict()
    for text in ("make him 70", "remove the glasses", "an old man with grey hair", "not bald", "no beard"):
        assert again.read(text).values == V.read(text).values, text


def test_the_shipped_faces_model_carries_this_vocabulary():
    shipped = Vocabulary.load(FACES_DIR)
    assert shipped.to_dict() == V.to_dict()
    assert shipped.read("make him 70 with sunglasses").values == {"age_group": "old", "eyewear": "sunglasses"}


def test_vocabularies_without_numbers_are_saved_as_before(tmp_path):
    plain = Vocabulary(domain="t", attributes={"a": {"x": ["ex"]}})
    assert "numbers" not in plain.to_dict()
    assert Vocabulary.load(plain.save(tmp_path)) == plain


@pytest.mark.parametrize(
    "numbers, match",
    [
        ({"b": {"forms": ["# years"], "bins": [["x", None]]}}, "unknown"),
        ({"a": {"forms": ["# years"], "bins": [["nope", None]]}}, "unknown"),
        ({"a": {"forms": ["years"], "bins": [["x", None]]}}, "one '#'"),
        ({"a": {"forms": ["# years"], "bins": []}}, "needs bins"),
        ({"a": {"forms": ["# years"], "bins": [["x", 10], ["y", 5]]}}, "ascend"),
        ({"a": {"forms": ["# years"], "bins": [["x", None], ["y", 5]]}}, "ascend"),
    ],
)
def test_malformed_numbers_are_refused(numbers, match):
    with pytest.raises(VocabularyError, match=match):
        Vocabulary(domain="t", attributes={"a": {"x": [], "y": []}}, numbers=numbers)
