"""Region labellers of FFHQ-aligned faces (tedigan.data.face_regions / face_attributes, the reader in
tedigan.models.attribute_reader): hand-labelled fixture faces read back their labels, the person matte of
the selfie segmentation port, and the labeller fit's bookkeeping."""

import json

import numpy as np
import pytest
import torch

from tedigan.data.face_attributes import ATTRIBUTES, INPUTS, AttributeModel, RegionLabeller
from tedigan.data.face_regions import FEATURES, face_oval, hair_mask, region_features


@pytest.fixture(scope="module")
def labelled(fixtures_dir):
    from tedigan.data.io import load_image, to_tensor

    folder = fixtures_dir("faces_labelled", "labels.json")
    labels = json.loads((folder / "labels.json").read_text())
    images = torch.stack([to_tensor(load_image(folder / name), 256) for name in labels])
    return images, list(labels.values())


@pytest.fixture(scope="module")
def reader():
    from tedigan import assets
    from tedigan.models.attribute_reader import RegionAttributeReader

    try:
        return RegionAttributeReader.from_package()
    except assets.MissingWeightsError as err:
        pytest.skip(f"face judge weights not installed: {err}")


def test_fixture_faces_read_back_their_hand_labels(labelled, reader):
    images, hand = labelled
    reads, wrong = 0, []
    for got, want in zip(reader.labels(images), hand):
        for attribute in ATTRIBUTES:
            if want.get(attribute) is None or (attribute == "hair_color" and want["baldness"] == "bald"):
                continue
            reads += 1
            if got[attribute] != want[attribute]:
                wrong.append((attribute, got[attribute], want[attribute]))
    # the labellers are 0.87-0.95 accurate on the held-out hand labels (hair colour 0.61): of these 8 faces'
    # 40-odd reads (the hard cases among them) at most two may miss; today two do, on one face (a light
    # blond crown read as bald, so its hair colour as none)
    assert reads >= 40 and len(wrong) <= 2, wrong
    values = {(a, w[a]) for w in hand for a in ATTRIBUTES}
    for needed in [
        ("hair_color", "blond"),
        ("hair_color", "red"),
        ("baldness", "bald"),
        ("eyewear", "sunglasses"),
    ]:
        assert needed in values  # the fixtures cover the hard cases


def test_selfie_matte_covers_the_face_and_not_everything(labelled, reader):
    images, _ = labelled
    mattes = reader.segmentation(images)[:, 0].numpy()
    lms = reader.landmark_judge.landmarks(images).numpy()
    for matte, lm in zip(mattes, lms):
        oval = face_oval(lm, 256)
        assert matte[oval].mean() > 0.95
        assert (matte < 0.1).mean() > 0.05  # some background
        hair = hair_mask(matte, lm)
        assert not (hair & oval).any()


def test_region_features_are_finite_and_named(labelled, reader):
    images, _ = labelled
    feats = reader.features(images[:2])
    assert feats.shape == (2, len(FEATURES)) and np.isfinite(feats).all()
    img = ((images[0] + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    lm = reader.landmark_judge.landmarks(images[:1])[0].numpy()
    matte = reader.segmentation(images[:1])[0, 0].numpy()
    assert list(region_features(img, lm, matte)) == list(FEATURES)


def test_attribute_model_round_trip_and_unseen_values():
    rng = np.random.default_rng(0)
    inputs = INPUTS["eyewear"]
    x = rng.normal(size=(60, len(inputs)))
    y = ["glasses" if v > 0 else "none" for v in x[:, 0]]
    m = AttributeModel.fit(ATTRIBUTES["eyewear"], inputs, x, y)
    full = np.zeros((60, len(FEATURES)))
    full[:, [FEATURES.index(k) for k in inputs]] = x
    p = m.probs(full)
    assert p.shape == (60, 3) and np.allclose(p.sum(1), 1)
    assert (np.array(ATTRIBUTES["eyewear"])[p.argmax(1)] == np.array(y)).mean() > 0.9
    assert p[:, 2].max() < 1e-6  # sunglasses was never labelled: never predicted
    back = AttributeModel.from_json(json.loads(json.dumps(m.to_json())))
    assert np.allclose(back.probs(full), p)


def test_fit_labeller_reports_held_out_accuracy(tmp_path):
    from tedigan.training.face_attributes import fit_labeller

    rng = np.random.default_rng(1)
    n = 200
    feats = rng.normal(size=(n, len(FEATURES)))
    hand = {}
    for i in range(n):
        lips = feats[i, FEATURES.index("lips_da")]
        hand[i] = {a: None for a in ATTRIBUTES}
        hand[i]["makeup"] = "lipstick" if lips > 0.5 else "none"
    lab = fit_labeller(feats, hand, out=tmp_path / "l.json")
    m = lab.models["makeup"]
    assert m.accuracy > 0.9 and m.balanced_accuracy > 0.85
    assert m.support["lipstick"] + m.support["none"] == n
    assert RegionLabeller.load(tmp_path / "l.json").models["makeup"].accuracy == m.accuracy


def test_local_edits_are_blended_through_the_hair_mask(labelled, reader):
    from tedigan.pipeline.regions import blend, local_region, region_masks

    assert local_region({"hair_color": "blond"}) == "hair"
    assert local_region({"hair_color": "blond", "eyewear": "glasses"}) is None
    assert local_region({"expression": "happy"}) is None
    images, _ = labelled
    src = images[:2]
    edit = src.flip(1)  # any other image: channels swapped
    masks = region_masks(reader, src, edit)
    assert masks.shape == (2, 1, 256, 256) and masks.min() >= 0 and masks.max() <= 1
    lms = reader.landmark_judge.landmarks(src).numpy()
    for m, lm in zip(masks[:, 0].numpy(), lms):
        oval = face_oval(lm, 256)
        assert m[oval].mean() < 0.1  # the face is kept
        assert m[~oval].max() > 0.9  # the hair is taken from the edit
    out = blend(src, edit, masks)
    assert torch.allclose(out, src + (edit - src) * masks)
    assert torch.equal(blend(src, edit, torch.zeros_like(masks)), src)


def test_long_hair_below_the_mouth_joins_the_mask_where_the_edit_changed_it():
    from tedigan.pipeline.regions import _hair_below

    size = 64
    t = np.linspace(np.pi, 0.0, 17)  # a jaw line: a half circle under the eyes' line
    lm = np.zeros((68, 2))
    lm[:17] = np.stack([0.5 + 0.22 * np.cos(t), 0.45 + 0.3 * np.sin(t)], axis=1)
    lm[17:27] = [0.5, 0.35]  # brows
    lm[8] = [0.5, 0.75]  # chin
    upper = np.zeros((size, size), bool)
    upper[2:28, 8:56] = True
    upper &= ~face_oval(lm, size)
    matte = np.zeros((size, size), np.float32)
    matte[2:, 8:56] = 1.0
    rec = np.zeros((size, size, 3), np.float32)
    rec[..., 0] = 30.0  # dark hair everywhere...
    edit = rec.copy()
    edit[:40, :, 0] = 80.0  # ...turned light down to row 40 by the edit
    rec[50:, 30:34] = [50.0, 60.0, 0.0]  # a red collar: not hair-coloured, not changed
    edit[50:, 30:34] = [50.0, 60.0, 0.0]
    below = _hair_below(upper, (matte, matte), (lm, lm), (rec, edit))
    assert below[30:40, 8:12].all()  # long hair the edit changed, joined to the hair above
    assert not below[42:, :].any()  # unchanged by the edit
    assert not below[:, :8].any() and not below[:, 56:].any()  # not the person
    assert not (below & upper).any() and not (below & face_oval(lm, size)).any()
    # changed, hair-coloured pixels not joined to the hair above stay out: cut the change down the middle
    edit[:, 28:36, 0] = 30.0
    left = upper.copy()
    left[:, 28:] = False
    only = _hair_below(left, (matte, matte), (lm, lm), (rec, edit))
    assert only[30:40, 8:12].all() and not only[:, 28:].any()


def test_gray_hair_loses_its_hue_inside_the_mask_only():
    import torch

    from tedigan.pipeline.regions import neutral_chroma, neutralise

    assert neutral_chroma({"hair_color": "gray"}) == 0.25 and neutral_chroma({"hair_color": "blond"}) is None
    img = torch.tensor([0.2, 0.4, 0.9]).view(1, 3, 1, 1).expand(1, 3, 4, 4).clone()  # blue everywhere
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2] = 1.0
    out = neutralise(img, mask, 0.25)
    luma = lambda x: (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1)  # noqa: E731
    assert torch.allclose(luma(out), luma(img), atol=1e-6)  # brightness kept
    spread = lambda x: x.amax(1) - x.amin(1)  # noqa: E731
    assert torch.allclose(
        spread(out)[..., :2], 0.25 * spread(img)[..., :2], atol=1e-6
    )  # a quarter of the hue
    assert torch.equal(out[..., 2:], img[..., 2:])  # outside the mask: untouched
