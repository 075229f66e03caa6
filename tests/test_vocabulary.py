"""The domain vocabulary: phrases, value words next to their noun, negation to the absent value, unknown
prompts refused; save/load round trip; the pipeline carries it and refuses what it cannot read."""

from __future__ import annotations

import json

import pytest

from tedigan.commands import entry
from tedigan.data import Vocabulary, VocabularyError, builtin_vocabulary, vocabulary_for
from tedigan.data.avatars import AVATAR_VOCABULARY, PHRASES, captions, sample_record
from tedigan.pipeline import DEFAULT_MODEL_DIR, PromptNotUnderstood, TediGANPipeline

edit_cli = entry("edit")

V = AVATAR_VOCABULARY


@pytest.mark.parametrize(
    "text, expected",
    [
        # synonyms the vocabulary reads but the captions never use
        ("give him a goatee", {"facial_hair": "beard"}),
        ("remove the goatee", {"facial_hair": "none"}),
        ("dye the hair platinum", {"hair_color": "blond"}),
        ("auburn locks", {"hair_color": "red"}),
        ("curly locks", {"hair_style": "curly"}),
        ("make the skin darker", {"skin_tone": "dark"}),
        ("make the skin lighter", {"skin_tone": "light"}),
        ("dark glasses", {"eyewear": "sunglasses"}),  # "dark" is a skin word only next to "skin"
        # negation: the attribute's absent value, never the value named
        ("please take the spectacles away", {"eyewear": "none"}),
        ("take his shades off", {"eyewear": "none"}),
        ("take away the spectacles", {"eyewear": "none"}),
        ("get rid of her fedora", {"hat": "none"}),
        ("he should not be grinning", {"mouth": "neutral"}),
        ("no more moustache", {"facial_hair": "none"}),
        ("removing the beanie and adding shades", {"hat": "none", "eyewear": "sunglasses"}),
        # value words next to their noun, in any order
        ("her hair should be raven", {"hair_color": "black"}),
        ("dye the hair copper", {"hair_color": "red"}),
        ("hair: chestnut", {"hair_color": "brown"}),
        ("wavy bubblegum pink hair", {"hair_style": "curly", "hair_color": "pink"}),
        # negating an attribute without an absent value is dropped, never read the wrong way round
        ("not bald", {}),
        ("words it does not know", {}),
    ],
)
def test_reading(text, expected):
    assert V.read(text).values == expected, text


def test_negation_stays_inside_its_clause():
    assert V.read("no hat, glasses").values == {"hat": "none", "eyewear": "glasses"}
    assert V.read("without a beard but with a grin").values == {"facial_hair": "none", "mouth": "smiling"}
    reading = V.read("stop frowning")
    assert reading.values == {"mouth": "neutral"} and reading.negated == ["mouth"]


def test_generated_captions_read_back_exactly():
    for i in range(60):
        record = sample_record(f"vocab-test:{i}")
        for caption in captions(record, f"vocab-test:{i}:c", n=4):
            for attribute, value in V.read(caption).values.items():
                assert record[attribute] == value, (caption, attribute)


def test_every_phrase_reads_as_its_value():
    for attribute, values in PHRASES.items():
        for value, phrases in values.items():
            for phrase in phrases:
                assert V.read(phrase).values.get(attribute) == value, phrase


def test_read_only_synonyms_are_never_written():
    from tedigan.data.avatars.captions import READ_ONLY_HAIR_WORDS, READ_ONLY_PHRASES

    # the read-only synonyms (read in test_reading): the caption grammar never writes them, so the training
    # captions (and the text codes and prototypes made from them) stay as they were
    words = {w for vs in READ_ONLY_PHRASES.values() for ps in vs.values() for w in ps}
    words |= {w for ws in READ_ONLY_HAIR_WORDS.values() for w in ws} | {"darker", "lighter", "locks"}
    for i in range(300):
        for caption in captions(sample_record(i), i, n=10):
            assert not words & set(caption.replace(",", " ").split()), caption


def test_the_shipped_vocabulary_is_the_avatar_one():
    assert Vocabulary.load(DEFAULT_MODEL_DIR).to_dict() == V.to_dict()


def test_save_load_round_trip_and_errors(tmp_path):
    V.save(tmp_path)
    again = Vocabulary.load(tmp_path)
    assert again.to_dict() == V.to_dict() and again.read("lose the shades").values == {"eyewear": "none"}
    assert builtin_vocabulary(str(tmp_path / "vocabulary.json")).domain == "avatars"
    (tmp_path / "vocabulary.json").write_text("{")
    with pytest.raises(VocabularyError, match="not valid JSON"):
        Vocabulary.load(tmp_path)
    (tmp_path / "vocabulary.json").write_text(
        json.dumps({"domain": "x", "attributes": {"a": {"b": []}}, "absent": {"a": "z"}})
    )
    with pytest.raises(VocabularyError, match="absent"):
        Vocabulary.load(tmp_path)
    with pytest.raises(VocabularyError, match="unknown vocabulary"):
        builtin_vocabulary("klingon")
    assert vocabulary_for("folder", tmp_path / "nowhere") is None
    assert vocabulary_for("avatars", tmp_path) is V
    assert "eyewear: none (no glasses" in V.describe()


def test_the_shipped_model_carries_its_vocabulary(tiny_pipe, tmp_path, monkeypatch, capsys):
    assert (DEFAULT_MODEL_DIR / "vocabulary.json").is_file()
    shipped = TediGANPipeline.from_pretrained()
    assert shipped.vocabulary is not None and shipped.vocabulary.domain == "avatars"
    with pytest.raises(PromptNotUnderstood, match="does not understand"):
        shipped.edit(DEFAULT_MODEL_DIR.parent.parent.parent / "examples" / "face.png", "make it pop")
    saved = tiny_pipe.save_pretrained(tmp_path / "m")
    assert json.loads((saved / "model_index.json").read_text())["vocabulary"] == "vocabulary.json"
    assert TediGANPipeline.from_pretrained(saved).vocabulary.to_dict() == tiny_pipe.vocabulary.to_dict()
    # the CLI refuses in one line and writes nothing
    monkeypatch.chdir(tmp_path)
    from PIL import Image

    Image.new("RGB", (16, 16), (200, 150, 120)).save(tmp_path / "f.png")
    rc = edit_cli(["--image", "f.png", "--text", "make it pop", "--model", str(saved)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "does not understand" in err
    assert not (tmp_path / "f_edited.png").exists()
    # explicit layers edit anyway
    assert (
        edit_cli(["--image", "f.png", "--text", "make it pop", "--model", str(saved), "--layers", "0,1"]) == 0
    )
