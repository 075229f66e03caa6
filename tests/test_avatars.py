"""Tests of the procedural avatar data set (tiny sizes: a few 32 px renders)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tedigan.data import avatars as A

RES = 32


def _bytes(r: A.RenderedAvatar) -> tuple[bytes, bytes, bytes]:
    return r.image.tobytes(), r.label.tobytes(), r.sketch.tobytes()


def test_records_are_deterministic_valid_and_json_able():
    assert A.sample_record(3) == A.sample_record(3)
    assert A.sample_record(3) != A.sample_record(4)
    seen = {name: set() for name in A.ATTRIBUTES}
    for i in range(400):
        record = A.sample_record(i)
        A.check_record(record)
        assert json.loads(json.dumps(record)) == record
        codes = A.encode_attributes(record)
        assert list(codes) == list(A.ATTRIBUTES)
        assert A.decode_attributes(codes) == {k: record[k] for k in A.ATTRIBUTES}
        for name, value in record.items():
            if name in seen:
                seen[name].add(value)
        assert (record["hair_style"] == "bald") == (record["hair_color"] == "none")
        assert record["hat"] == "none" or record["hair_style"] in A.HAT_HAIR_STYLES
    for name, values in A.ATTRIBUTES.items():  # every value is actually sampled
        assert seen[name] == set(values), name
    assert A.record_for(0, 5) == A.record_for(0, 5) != A.record_for(1, 5)


def test_render_is_deterministic_and_seed_dependent():
    record = A.record_for(0, 1)
    a, b = A.render(record, RES), A.render(dict(record), RES)
    assert _bytes(a) == _bytes(b)
    assert a.image.size == (RES, RES) and a.image.mode == "RGB"
    assert a.sketch.size == (RES, RES) and a.sketch.mode == "L"
    assert a.label.shape == (RES, RES) and a.label.dtype == np.uint8
    other = A.render(A.record_for(1, 1), RES)
    assert a.image.tobytes() != other.image.tobytes()


def test_label_map_segments_parts():
    base = A.record_for(0, 0)
    record = dict(
        base, hair_style="long", hair_type="straight_1", hair_color="blond", facial_hair_color="blond"
    )
    record = A.with_attribute(record, "eyewear", "sunglasses")
    record = A.with_attribute(record, "hat", "beanie")
    record = A.with_attribute(record, "facial_hair", "beard")
    A.check_record(record)
    r = A.render(record, 64)
    present = {A.PART_CLASSES[k] for k in np.unique(r.label)}
    assert {"background", "skin", "hair", "mouth", "eyewear", "hat", "facial_hair"} <= present
    assert r.label.max() < len(A.PART_CLASSES)
    # pixels of the hair colour are labelled hair or facial hair (the beard shares the colour)
    hair_rgb = np.array([int(A.HAIR_COLORS["blond"][i : i + 2], 16) for i in (1, 3, 5)])
    img = np.asarray(r.image).astype(int)
    close = np.abs(img - hair_rgb).max(-1) < 12
    hairy = np.isin(r.label[close], [A.PART_CLASSES.index("hair"), A.PART_CLASSES.index("facial_hair")])
    assert close.sum() > 100 and hairy.mean() > 0.9
    # sketch: dark lines on white
    sk = np.asarray(r.sketch)
    assert np.median(sk) == 255 and sk.min() < 64
    bald = A.render(A.with_attribute(A.with_attribute(record, "hat", "none"), "hair_style", "bald"), 64)
    assert A.PART_CLASSES.index("hair") not in np.unique(bald.label)


def test_with_attribute_changes_one_attribute_and_the_pixels():
    record = A.record_for(0, 2)
    before = A.render(record, RES)
    new_mouth = next(v for v in A.ATTRIBUTES["mouth"] if v != record["mouth"])
    edited = A.with_attribute(record, "mouth", new_mouth)
    assert edited == A.with_attribute(record, "mouth", new_mouth)  # the true result is well defined
    codes_a, codes_b = A.encode_attributes(record), A.encode_attributes(edited)
    assert [k for k in codes_a if codes_a[k] != codes_b[k]] == ["mouth"]
    assert A.render(edited, RES).image.tobytes() != before.image.tobytes()
    assert record["mouth"] != new_mouth  # the input is not modified

    for i in range(20):  # every listed edit is valid and changes exactly its own attribute
        rec = A.record_for(3, i)
        for name, value in A.valid_edits(rec):
            out = A.with_attribute(rec, name, value)
            A.check_record(out)
            ca, cb = A.encode_attributes(rec), A.encode_attributes(out)
            changed = [k for k in ca if ca[k] != cb[k]]
            assert changed == [name] or (
                name == "hair_style" and set(changed) == {"hair_style", "hair_color"}
            )


def test_with_attribute_dependencies():
    long_hair = dict(
        A.record_for(0, 0),
        hair_style="long",
        hair_type="straight_1",
        hair_color="red",
        facial_hair_color="red",
    )
    bald = A.with_attribute(long_hair, "hair_style", "bald")
    assert bald["hair_color"] == "none" and bald["facial_hair_color"] == "red"
    with pytest.raises(ValueError, match="bald"):
        A.with_attribute(bald, "hair_color", "blond")
    with pytest.raises(ValueError, match="bald"):
        A.with_attribute(long_hair, "hair_color", "none")
    assert A.with_attribute(bald, "hair_style", "short")["hair_color"] == "red"  # colour comes back
    hatted = A.with_attribute(long_hair, "hat", "fedora")
    with pytest.raises(ValueError, match="hat"):
        A.with_attribute(hatted, "hair_style", "short")
    with pytest.raises(ValueError, match="hat"):
        A.with_attribute(A.with_attribute(long_hair, "hair_style", "bun"), "hat", "beanie")
    with pytest.raises(ValueError, match="unknown attribute"):
        A.with_attribute(long_hair, "gender", "x")
    with pytest.raises(ValueError, match="no value"):
        A.with_attribute(long_hair, "hat", "crown")
    recolored = A.with_attribute(long_hair, "hair_color", "gray")
    assert recolored["facial_hair_color"] == "gray"


def test_captions_mention_consistent_attributes():
    for i in range(300):
        record = A.sample_record(i)
        caps = A.captions(record, i)
        assert len(caps) == 10 and all(isinstance(c, str) and c for c in caps)
        assert len(set(caps)) >= 7
        assert caps == A.captions(record, i)
        for cap in caps:
            parsed = A.parse_prompt(cap)
            assert parsed, cap
            for name, value in parsed.items():
                assert record[name] == value, (cap, name, value, record[name])
        text, mentioned = A.caption_with_mentions(record, 1000 + i)
        assert A.parse_prompt(text) == mentioned, text


def test_parse_prompt_examples():
    assert A.parse_prompt("A smiling man with long blond hair and sunglasses") == {
        "hair_color": "blond",
        "hair_style": "long",
        "eyewear": "sunglasses",
        "mouth": "smiling",
    }
    assert A.parse_prompt("no glasses, wearing a winter hat, dark-skinned, bald") == {
        "hair_style": "bald",
        "eyewear": "none",
        "hat": "winter_hat",
        "skin_tone": "dark",
    }
    assert A.parse_prompt("a bearded person in a hat with curly red hair") == {
        "hair_color": "red",
        "hair_style": "curly",
        "hat": "fedora",
        "facial_hair": "beard",
    }
    assert A.parse_prompt("nothing to see here") == {}
    for name, values in A.PHRASES.items():
        assert set(values) == set(A.ATTRIBUTES[name])


def test_build_dataset_and_avatar_dataset(tmp_path):
    import datasets

    out = A.build_dataset(tmp_path / "av", num=10, resolution=RES, seed=7, workers=1, progress=False)
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert [r["split"] for r in rows] == ["train"] * 8 + ["val"] + ["test"]
    for r in rows:
        for key in ("file_name", "label_file", "sketch_file"):
            assert (out / r[key]).is_file()
        assert len(r["captions"]) == 10
        assert r["attributes"] == {k: r["record"][k] for k in A.ATTRIBUTES}
        assert r["record"] == A.record_for(7, r["index"])
    info = json.loads((out / "info.json").read_text())
    assert info["num"] == 10 and info["resolution"] == RES and info["seed"] == 7 and info["workers"] == 1
    assert info["seconds_per_image"] > 0 and info["PART_CLASSES"] == list(A.PART_CLASSES)

    dd = datasets.load_from_disk(str(out / "hf"))
    assert {k: len(v) for k, v in dd.items()} == {"train": 8, "val": 1, "test": 1}
    assert set(dd["train"].column_names) == {
        "id",
        "image",
        "label",
        "sketch",
        "captions",
        "attributes",
        "record",
    }
    item = dd["val"][0]
    assert item["id"] == "000008" and item["image"].size == (RES, RES)
    assert np.array_equal(np.asarray(item["label"]), np.asarray(A.render(A.record_for(7, 8), RES).label))
    assert json.loads(item["record"]) == A.record_for(7, 8)
    assert set(item["attributes"]) == set(A.ATTRIBUTES)

    # growing/shrinking num or changing workers keeps each sample: it depends on (seed, index) only
    small = A.build_dataset(
        tmp_path / "small", num=3, resolution=RES, seed=7, workers=2, hf=False, progress=False
    )
    for i in range(3):
        sid = A.sample_id(i)
        assert (small / "images" / f"{sid}.png").read_bytes() == (out / "images" / f"{sid}.png").read_bytes()

    ds = A.AvatarDataset(out, split="train")
    assert len(ds) == 8 and len(ds.records) == 8
    item = ds[3]
    assert item["image"].shape == (3, RES, RES) and item["image"].dtype == torch.float32
    assert item["image"].min() >= -1.0 and item["image"].max() <= 1.0
    assert item["sketch"].shape == (1, RES, RES) and item["sketch"].max() == 1.0
    assert item["label"].shape == (RES, RES) and item["label"].dtype == torch.long
    assert item["attributes"].shape == (len(A.ATTRIBUTES),) and item["attributes"].dtype == torch.long
    assert item["caption"] in item["captions"] and len(item["captions"]) == 10
    assert item["index"] == 3
    assert item["attributes"].tolist() == list(A.encode_attributes(ds.records[3]).values())
    small_res = A.AvatarDataset(out, split="test", resolution=16)[0]
    assert small_res["image"].shape == (3, 16, 16) and small_res["label"].shape == (16, 16)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["image"].shape == (4, 3, RES, RES) and batch["attributes"].shape == (4, len(A.ATTRIBUTES))

    with pytest.raises(FileNotFoundError, match="tedigan avatars"):
        A.AvatarDataset(tmp_path / "missing")


def test_cli_preview(tmp_path, capsys):
    from PIL import Image

    from tedigan.commands import main

    path = tmp_path / "preview.png"
    assert (
        main(
            ["avatars", "--num", "0", "--resolution", str(RES), "--preview", str(path), "--preview-rows", "2"]
        )
        == 0
    )
    assert Image.open(path).size[1] >= 2 * RES
    assert main(["avatars", "--num", "3"]) == 2  # --out missing
    assert "--out is required" in capsys.readouterr().err
