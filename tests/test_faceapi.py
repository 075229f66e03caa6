"""face-api ports (tedigan.models.ports.faceapi) against tfjs references made by @vladmandic/face-api 1.7.15.

The references are ``<fixtures>/real_faces/faceapi_ref.pt`` (see its README; ``conftest.fixture_roots``
says where ``<fixtures>`` is looked for); the weights come from the npm package (``tedigan assets
--fetch-npm``). Tests that need either skip with the reason when it is absent.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tedigan import assets
from tedigan.models.ports import faceapi as fa
from tedigan.models.ports.tfjs import TfjsFormatError

TOL = 1e-5  # probabilities, landmarks, descriptors (README: a faithful float32 port reaches ≤ 1e-5)
TOL_AGE = 1e-4  # years


@pytest.fixture(scope="module")
def ref(fixtures_dir) -> dict:
    return torch.load(fixtures_dir("real_faces", "faceapi_ref.pt") / "faceapi_ref.pt", weights_only=True)


@pytest.fixture(scope="module")
def package_dir() -> Path:
    try:
        return assets.npm_model_dir(fa.PACKAGE)
    except assets.MissingWeightsError as err:
        pytest.skip(f"face-api weights absent: {err}")


@pytest.fixture(scope="module")
def judge(package_dir) -> fa.FaceApiJudge:
    return fa.FaceApiJudge.from_package(package_dir)


def _err(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def _check(judge, x_nhwc: torch.Tensor, ref: dict, keys: dict[str, str]) -> None:
    """Every net on face-api's NHWC batch tensor against the reference keys (quantity → key)."""
    nets = judge.nets
    with torch.no_grad():
        out = {}
        if "expression" in keys:
            out["expression"] = nets["expression"].forward_input(x_nhwc)
        if "age" in keys:
            out["age"], out["gender"] = nets["age_gender"].forward_input(x_nhwc)
        if "landmarks" in keys:
            out["landmarks"] = nets["landmarks"].forward_input(x_nhwc)
        if "descriptor" in keys:
            out["descriptor"] = nets["recognition"].forward_input(x_nhwc)
    for q, key in keys.items():
        assert out[q].shape == ref[key].shape, q
        assert _err(out[q], ref[key]) <= (TOL_AGE if q == "age" else TOL), (q, _err(out[q], ref[key]))


# ------------------------------------------------------------------------------- net-level references


def test_random_inputs(judge, ref):
    _check(judge, ref["expression.x"], ref, {"expression": "expression.probs"})
    _check(judge, ref["age_gender.x"], ref, {"age": "age_gender.age", "gender": "age_gender.gender_probs"})
    _check(judge, ref["landmark68.x"], ref, {"landmarks": "landmark68.landmarks"})
    _check(judge, ref["recognition.x"], ref, {"descriptor": "recognition.descriptor"})


def test_u8_face_crops(judge, ref):
    keys = {q: f"faces.u8.{k}" for q, k in [("expression", "expression_probs"), ("age", "age")]}
    keys |= {"gender": "faces.u8.gender_probs", "landmarks": "faces.u8.landmarks"}
    _check(judge, ref["faces.crop112_u8"].float(), ref, keys)
    _check(judge, ref["faces.crop150_u8"].float(), ref, {"descriptor": "faces.u8.descriptor"})
    # the two people are told apart, each face reads as its label
    d = ref["faces.u8.descriptor"]
    assert judge.distance(d[:1], d[1:]).item() > judge.same_person_threshold


# -------------------------------------------------------------------------------------- preprocessing


def _naive_legacy_resize(x: torch.Tensor, out: int) -> torch.Tensor:
    """tfjs's legacy resizeBilinear written out pixel by pixel (the kernel's formula, float64)."""
    c, n_h, n_w = x.shape
    y = torch.empty(c, out, out, dtype=torch.float64)
    for r in range(out):
        sr = r * (n_h / out)
        r0, r1 = max(0, int(sr // 1)), min(n_h - 1, -int(-sr // 1))
        for q in range(out):
            sc = q * (n_w / out)
            c0, c1 = max(0, int(sc // 1)), min(n_w - 1, -int(-sc // 1))
            top = x[:, r0, c0] + (x[:, r0, c1] - x[:, r0, c0]) * (sc - c0)
            bot = x[:, r1, c0] + (x[:, r1, c1] - x[:, r1, c0]) * (sc - c0)
            y[:, r, q] = top + (bot - top) * (sr - r0)
    return y


@pytest.mark.parametrize("n, out", [(13, 5), (7, 7), (5, 12)])
def test_legacy_resize_matches_formula(n, out):
    x = torch.rand(1, 3, n, n, generator=torch.Generator().manual_seed(n), dtype=torch.float64) * 255
    got = fa.legacy_resize_bilinear(x, out)[0]
    assert _err(got, _naive_legacy_resize(x[0], out)) < 1e-10
    if n != out:  # the legacy rule is not torch's align_corners=False
        torch_resize = F.interpolate(x, size=(out, out), mode="bilinear", align_corners=False)[0]
        assert _err(got, torch_resize) > 1e-3


def test_pad_to_square_rounding():
    x = torch.ones(1, 1, 3, 6)  # d = 3: Math.round(1.5) = 2 rows after, 1 before
    p = fa.pad_to_square(x)
    assert p.shape[-2:] == (6, 6)
    assert p[0, 0, :, 0].tolist() == [0, 1, 1, 1, 0, 0]
    p = fa.pad_to_square(torch.ones(1, 1, 4, 2))  # taller: columns, 1 before and 1 after
    assert p[0, 0, 0].tolist() == [0, 1, 1, 0]


def test_crops_round_to_the_u8_crops(ref):
    """The float crops of face-api's pipeline, rounded as floor(v + 0.5), give the stored u8 crops."""
    img = ref["faces.img512_u8"].permute(0, 3, 1, 2).float()
    for box, size, key in [(fa.BOX_ALIGNED_512, 112, "crop112_u8"), (fa.BOX_DLIB_512, 150, "crop150_u8")]:
        x, crop_box = fa.face_api_input(img, box, size)
        assert crop_box == tuple(box)
        diff = (torch.floor(x + 0.5) - ref[f"faces.{key}"].permute(0, 3, 1, 2).float()).abs()
        # a value within float rounding of a half may round the other way (none do here)
        assert diff.max() <= 1 and (diff > 0).sum() <= 30


def test_pipeline_from_u8_image(judge, ref):
    """face_api_input on the u8 512² image, then the nets, against face-api's own pipeline."""
    img = ref["faces.img512_u8"].permute(0, 3, 1, 2).float()
    x112, box = fa.face_api_input(img, fa.BOX_ALIGNED_512, 112)
    x150, _ = fa.face_api_input(img, fa.BOX_DLIB_512, 150)
    p = "faces.pipeline."
    with torch.no_grad():
        age, gender = judge.nets["age_gender"](x112)
        lm = fa.landmarks_post_process(judge.nets["landmarks"](x112), box[2:])
        assert _err(judge.nets["expression"](x112), ref[p + "expression_probs"]) <= TOL
        assert _err(age, ref[p + "age"]) <= TOL_AGE
        assert _err(gender, ref[p + "gender_probs"]) <= TOL
        assert _err(lm, ref[p + "landmarks"]) <= TOL
        assert _err(judge.nets["recognition"](x150), ref[p + "descriptor"]) <= TOL


@pytest.mark.parametrize("upscale", [1, 2])
def test_judge_on_images(judge, ref, upscale):
    """The judge on [-1, 1] images (512², and 1024² by pixel doubling, which it pools back to 512²)."""
    img = ref["faces.img512_u8"].permute(0, 3, 1, 2).float() / 127.5 - 1.0
    img = img.repeat_interleave(upscale, -1).repeat_interleave(upscale, -2)
    p = "faces.pipeline."
    with torch.no_grad():
        j = judge(img)
        lm = judge.landmarks(img)
    assert _err(j.probs["expression"], ref[p + "expression_probs"]) <= TOL
    assert _err(j.values["age"], ref[p + "age"]) <= TOL_AGE
    assert _err(j.probs["gender"], ref[p + "gender_probs"]) <= TOL
    assert _err(j.embedding, ref[p + "descriptor"]) <= TOL
    x, y, w, h = fa.BOX_ALIGNED_512  # face-api's landmarks are relative to the crop; the judge's to the image
    ref_lm = (ref[p + "landmarks"] * torch.tensor([w, h]) + torch.tensor([x, y])) / fa.BOX_RESOLUTION
    assert _err(lm, ref_lm) <= TOL
    assert j.labels(judge.attribute_values) == {
        "expression": ["neutral", "happy"],
        "gender": ["male", "female"],
    }


# --------------------------------------------------------------------------------- judge behaviour


def test_gradients_reach_the_image(judge, ref):
    img = ref["faces.img512_u8"][:1].permute(0, 3, 1, 2).float() / 127.5 - 1.0
    img = F.avg_pool2d(img, 2)  # 256²: the boxes scale with the image
    target = judge.descriptor(img.flip(-1)).detach()
    x = img.clone().requires_grad_(True)
    dist = fa.identity_distance(judge, x, target)
    assert 0 < dist.item() < judge.same_person_threshold  # a mirrored face is still the same person
    (dist.sum() + judge(x).probs["expression"][:, 1].sum()).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert fa.identity_distance(judge, img, img).abs().max().item() == 0.0


def test_heads_subset(package_dir):
    j = fa.FaceApiJudge(heads=("recognition",), path=package_dir)
    out = j(torch.zeros(1, 3, 64, 64))
    assert out.probs == {} and out.values == {} and out.embedding.shape == (1, 128)
    assert j.attribute_values == {} and j.same_person_threshold == 0.6
    with pytest.raises(RuntimeError, match="landmarks"):
        j.landmarks(torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match="heads"):
        fa.FaceApiJudge(heads=("expression", "beauty"), path=package_dir)
    with pytest.raises(ValueError, match="RGB"):
        j(torch.zeros(1, 1, 64, 64))


# ----------------------------------------------------------------------------------- damaged files


@pytest.fixture
def package_copy(package_dir, tmp_path) -> Path:
    """The package's weight folder with links to every file (replace one to damage it)."""
    (tmp_path / "model").mkdir()
    for f in (package_dir / "model").iterdir():
        (tmp_path / "model" / f.name).symlink_to(f)
    return tmp_path


def _replace(p: Path, data: bytes | str) -> None:
    p.unlink()
    p.write_bytes(data) if isinstance(data, bytes) else p.write_text(data)


def _one_line_error(kind: type[Exception], match: str, path: Path) -> None:
    with pytest.raises(kind, match=match) as err:
        fa.load_net("expression", path)
    assert "\n" not in str(err.value)


def test_truncated_bin(package_copy, package_dir):
    bin_file = package_copy / "model" / "face_expression_model.bin"
    _replace(bin_file, (package_dir / "model" / bin_file.name).read_bytes()[:-1000])
    _one_line_error(TfjsFormatError, "truncated", package_copy)


def test_damaged_manifest(package_copy, package_dir):
    manifest = package_copy / "model" / "face_expression_model-weights_manifest.json"
    text = (package_dir / "model" / manifest.name).read_text()
    _replace(manifest, text[: len(text) // 2])
    _one_line_error(TfjsFormatError, "not a readable tfjs JSON", package_copy)
    groups = json.loads(text)  # a well-formed manifest of another net: a weight is missing by name
    groups[0]["weights"][-2]["name"] = "fc/kernel"
    _replace(manifest, json.dumps(groups))
    _one_line_error(TfjsFormatError, "'fc/weights' is missing", package_copy)


def test_missing_file(package_copy):
    (package_copy / "model" / "face_expression_model.bin").unlink()
    _one_line_error(assets.MissingWeightsError, "face-api", package_copy)
    shutil.rmtree(package_copy / "model")
    _one_line_error(assets.MissingWeightsError, "face-api", package_copy)


def test_binned_judge_adds_soft_age_groups():
    from tedigan.models.judge import BinnedJudge, Judge, Judgement

    class Ages(Judge):
        attribute_values = {"gender": ["male", "female"]}

        def judge(self, images):
            b = images.shape[0]
            return Judgement(
                {"gender": torch.full((b, 2), 0.5)}, {"age": torch.tensor([5.0, 20.0, 40.0, 80.0])[:b]}
            )

    bins = [("child", 13.0), ("young", 35.0), ("middle_aged", 55.0), ("old", float("inf"))]
    j = BinnedJudge(Ages(), "age", "age_group", bins)
    assert j.attribute_values["age_group"] == ["child", "young", "middle_aged", "old"]
    out = j.judge(torch.zeros(4, 3, 8, 8))
    p = out.probs["age_group"]
    assert torch.allclose(p.sum(1), torch.ones(4)) and p.argmax(1).tolist() == [0, 1, 2, 3]
    assert "gender" in out.probs and out.values["age"].shape == (4,)
    with pytest.raises(ValueError, match="ascending"):
        BinnedJudge(Ages(), "age", "age_group", [("a", 5.0), ("b", 3.0)])
