"""The human ports (emotion, faceres, MobileFaceNet) against tfjs's own outputs, and HumanJudge.

References: ``<fixtures>/real_faces/human_ref.pt`` (tfjs 4.22 cpu backend, see that folder's README) and,
for the legacy resize and the real faces, ``faceapi_ref.pt``. Weights: the extracted npm packages.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from tedigan import assets
from tedigan.models.ports.tfjs import TfjsFormatError


def _fixture(fixtures_dir, name: str) -> dict:
    return torch.load(fixtures_dir("real_faces", name) / name, weights_only=True)


@pytest.fixture(scope="module")
def ref(fixtures_dir) -> dict:
    return _fixture(fixtures_dir, "human_ref.pt")


@pytest.fixture(scope="module")
def faces(fixtures_dir) -> torch.Tensor:
    """The two face-api fixture faces (a man, a smiling woman) at 512², [2, 3, 512, 512] in [-1, 1]."""
    return _fixture(fixtures_dir, "faceapi_ref.pt")["faces.img512_u8"].permute(0, 3, 1, 2).float() / 127.5 - 1


@pytest.fixture(scope="module")
def judge():
    from tedigan.models.ports.human import HumanJudge

    try:
        return HumanJudge.from_package()
    except assets.MissingWeightsError as err:
        pytest.skip(f"human weights are not installed: {err}")


def _nchw(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2)


def test_emotion_matches_tfjs(ref, judge):
    with torch.no_grad():
        probs = judge.emotion(_nchw(ref["emotion.x"]))
    assert (probs - ref["emotion.probs"]).abs().max() <= 1e-5


def test_faceres_matches_tfjs(ref, judge):
    with torch.no_grad():
        out = judge.faceres(_nchw(ref["faceres.x"]))
    assert (out.gender - ref["faceres.gender"][:, 0]).abs().max() <= 1e-5
    assert (out.age_probs - ref["faceres.age_probs"]).abs().max() <= 1e-5
    # the descriptor reaches 3.2, so 1e-5 is a ~3e-6 relative error (the port is at 3.5e-6 absolute)
    assert ref["faceres.descriptor"].abs().max() <= 3.3
    assert (out.descriptor - ref["faceres.descriptor"]).abs().max() <= 1e-5


def test_mobilefacenet_matches_tfjs(ref, judge):
    with torch.no_grad():
        emb = judge.mobilefacenet(_nchw(ref["mobilefacenet.x"]))
    assert (emb - ref["mobilefacenet.embedding"]).abs().max() <= 1e-5
    assert torch.allclose(emb.norm(dim=1), torch.ones(2), atol=1e-6)


def test_built_layers_follow_the_graph(judge):
    """Spot checks of what the reader derived: TF 'SAME' padding, depthwise groups, PReLU, heads."""
    from torch import nn

    from tedigan.models.ports.human import ConvAct, Residual, TfConv2d, _same_pads

    assert _same_pads(224, 3, 2, 1) == (0, 1)  # stride-2 3×3 on an even size: all padding after
    assert _same_pads(29, 3, 2, 1) == (1, 1)
    convs = [m for m in judge.faceres.modules() if isinstance(m, TfConv2d)]
    assert len(convs) == 27 and convs[0].stride == (2, 2) and convs[1].groups == 32
    assert sum(isinstance(m, nn.ReLU6) for m in judge.faceres.modules()) == 27
    assert judge.faceres.age.out_features == 100 and judge.faceres.gender.out_features == 1
    assert sum(isinstance(m, Residual) for m in judge.emotion.modules()) == 2
    mfn = judge.mobilefacenet
    assert sum(isinstance(m, Residual) for m in mfn.modules()) == 12
    assert sum(isinstance(m, nn.PReLU) for m in mfn.modules()) == 17
    assert isinstance(mfn.features[-1], ConvAct) and mfn.features[-1].conv.out_channels == 192


def test_legacy_resize_matches_tfjs(fixtures_dir):
    """face-api's dlib-box crop: tfjs slice + resizeBilinear(150, false) then floor(v + 0.5), bit for bit."""
    from tedigan.models.ports.human import crop_resize_legacy

    d = _fixture(fixtures_dir, "faceapi_ref.pt")
    x, y, s, _ = d["faces.box_dlib_512"].tolist()
    crop = crop_resize_legacy(_nchw(d["faces.img512_u8"]).float(), (x, y, s, s), 150)
    assert torch.equal(torch.floor(crop + 0.5), _nchw(d["faces.crop150_u8"]).float())


def test_judge_reads_the_fixture_faces(judge, faces):
    with torch.no_grad():
        out = judge(faces)
    assert judge.attribute_values["expression"][3] == "happy"
    assert out.labels(judge.attribute_values) == {
        "expression": ["neutral", "happy"],
        "gender": ["male", "female"],
    }
    for p in out.probs.values():
        assert torch.allclose(p.sum(dim=1), torch.ones(2), atol=1e-5)
    assert 30 < out.values["age"][0] < 45 and 18 < out.values["age"][1] < 35
    assert (out.values["age_human"] - out.values["age"]).abs().max() < 5
    assert out.embedding.shape == (2, judge.embedding_dim) == (2, 1024)  # faceres, the default identity
    # the shipped MobileFaceNet barely depends on its input (see HumanJudge): two people lie ~0.01 apart
    from tedigan.models.ports.human import HumanJudge

    mfn = HumanJudge(mobilefacenet=judge.mobilefacenet, embedding="mobilefacenet")
    with torch.no_grad():
        emb = mfn(faces).embedding
    assert emb.shape == (2, 192) and mfn.distance(emb[:1], emb[1:]) < 0.05


def test_faceres_identity_separates_the_two_faces(judge, faces):
    from tedigan.models.ports.human import HumanJudge, human_similarity

    ident = HumanJudge(faceres=judge.faceres, embedding="faceres")
    with torch.no_grad():
        e, e_flip = ident(faces).embedding, ident(faces.flip(3)).embedding
    assert ident.distance(e[:1], e[1:]) > ident.same_person_threshold  # two people
    assert (ident.distance(e, e_flip) < ident.same_person_threshold).all()  # a mirrored face is the same one
    assert human_similarity(e[:1], e[1:]) < 0.5


def test_options_pick_the_nets(judge, faces):
    from tedigan.models.ports.human import HumanJudge

    only = HumanJudge(emotion=judge.emotion, box="aligned")
    with torch.no_grad():
        out = only(faces[:, :, ::4, ::4])  # any input size: the box scales with it
    assert set(out.probs) == {"expression"} and not out.values and out.embedding is None
    assert only.attribute_values == {"expression": judge.attribute_values["expression"]}
    assert only.embedding_dim is None and only.same_person_threshold is None
    assert only.crop_box(128, 128) == (19, 41, 89, 81)
    with pytest.raises(ValueError, match="RGB images"):
        only(torch.zeros(1, 1, 64, 64))


def test_judge_is_differentiable(judge):
    torch.manual_seed(0)
    images = (torch.rand(1, 3, 96, 96) * 1.6 - 0.8).requires_grad_(True)
    out = judge(images)
    loss = (
        out.probs["expression"][:, 3].sum() + out.probs["gender"][:, 0].sum() + out.values["age"].sum() / 50
    )
    loss = loss + out.embedding[:, :8].sum()
    (grad,) = torch.autograd.grad(loss, images)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert all(not p.requires_grad for p in judge.parameters())


def test_gradient_matches_finite_differences(judge):
    """Directional derivative of the expected age (float64 copy, the crop-and-resize included)."""
    import copy

    from tedigan.models.ports.human import HumanJudge

    j = copy.deepcopy(HumanJudge(faceres=judge.faceres)).double()
    torch.manual_seed(1)
    x = (torch.rand(1, 3, 64, 64, dtype=torch.float64) * 1.6 - 0.8).requires_grad_(True)
    v = torch.randn_like(x)
    (g,) = torch.autograd.grad(j(x).values["age"].sum(), x)
    eps = 1e-7  # ReLU6 kinks everywhere: keep the step far below the distance to the nearest one
    with torch.no_grad():
        fd = (j(x + eps * v).values["age"] - j(x - eps * v).values["age"]).sum() / (2 * eps)
    assert torch.isclose((g * v).sum(), fd, rtol=1e-4, atol=1e-6)


def test_legacy_resize_gradcheck():
    from tedigan.models.ports.human import crop_resize_legacy

    x = torch.rand(1, 2, 9, 11, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: crop_resize_legacy(t, (1, 2, 8, 6), 5), (x,))


def _copy_package(src: Path, dst: Path) -> Path:
    for f in src.rglob("*"):
        if f.is_file():
            (dst / f.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, dst / f.relative_to(src))
    return dst


@pytest.fixture()
def human_copy(tmp_path, judge) -> Path:
    return _copy_package(assets.npm_model_dir("@vladmandic/human"), tmp_path / "human")


def _one_line_error(exc: type[Exception], **kw) -> str:
    from tedigan.models.ports.human import HumanJudge

    with pytest.raises(exc) as info:
        HumanJudge.from_package(nets=("emotion",), **kw)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_truncated_bin_is_a_clear_error(human_copy):
    b = human_copy / "models" / "emotion.bin"
    b.write_bytes(b.read_bytes()[:1000])
    msg = _one_line_error(TfjsFormatError, human_dir=human_copy)
    assert "truncated" in msg and "emotion" in msg


def test_damaged_model_json_is_a_clear_error(human_copy):
    (human_copy / "models" / "emotion.json").write_text('{"modelTopology": ')
    assert "emotion.json" in _one_line_error(TfjsFormatError, human_dir=human_copy)


def test_unexpected_graph_is_a_clear_error(human_copy):
    j = human_copy / "models" / "emotion.json"
    j.write_text(
        j.read_text()
        .replace('"op": "MaxPool"', '"op": "AvgPool"')
        .replace('"op":"MaxPool"', '"op":"AvgPool"')
    )
    assert "unexpected graph at node" in _one_line_error(TfjsFormatError, human_dir=human_copy)


def test_missing_folder_is_a_clear_error(tmp_path):
    assert "human" in _one_line_error(assets.MissingWeightsError, human_dir=tmp_path / "nowhere")
