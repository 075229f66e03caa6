"""The ImageNet-feature probe that labels generated faces for the attribute boundaries
(tedigan.training.face_probe): its features, its fit on hand labels, and the rows it feeds."""

import numpy as np
import pytest
import torch

from tedigan.training.face_probe import PROBE_ATTRIBUTES, fit_probe, probe_features


def _hand(n: int, rng) -> tuple[np.ndarray, dict[int, dict]]:
    """Features with a planted direction per attribute and hand labels for the first half of the faces."""
    x = rng.normal(size=(n, 40)).astype(np.float32)
    hand = {}
    for i in range(n // 2):
        hand[i] = {
            "eyewear": ("none", "glasses", "sunglasses")[int(x[i, 0] > 0.5) + int(x[i, 0] > 1.5)],
            "headwear": "hat" if x[i, 1] > 1.0 else "none",
            "hair_color": None if x[i, 1] > 1.0 else ("blond" if x[i, 2] > 0 else "brown"),
            "baldness": None if x[i, 1] > 1.0 else "hair",
        }
    return x, hand


def test_the_probe_reads_planted_attributes_and_blanks_hair_under_hats():
    x, hand = _hand(1200, np.random.default_rng(0))
    fit = fit_probe(x, hand, c=1.0)
    assert set(fit) == {"eyewear", "headwear", "hair_color", "baldness"} - {"baldness"}  # one value: no probe
    assert fit.info["eyewear"]["accuracy"] > 0.8 and fit.info["headwear"]["accuracy"] > 0.9
    assert fit.info["eyewear"]["support"]["sunglasses"] == sum(
        h["eyewear"] == "sunglasses" for h in hand.values()
    )
    unseen = np.arange(600, 1200)  # faces with no hand label are labelled too
    truth = np.where(x[unseen, 0] > 1.5, "sunglasses", np.where(x[unseen, 0] > 0.5, "glasses", "none"))
    assert (fit["eyewear"][unseen] == truth).mean() > 0.8
    hats = fit["headwear"] == "hat"
    assert hats.any() and (fit["hair_color"][hats] == "").all() and (fit["hair_color"][~hats] != "").all()
    assert "headwear" in PROBE_ATTRIBUTES and fit["hair_color"].dtype.kind == "U"


def test_hat_rows_are_kept_but_never_measured_as_an_edit():
    from tedigan.training.face_boundaries import KEPT_ONLY, fit_boundaries

    rng = np.random.default_rng(1)
    n, d = 800, 12
    w = torch.tensor(rng.normal(size=(n, d)), dtype=torch.float32)
    labels = {
        "headwear": np.where(w.numpy()[:, 2] > 0.8, "hat", "none"),
        "hair_color": np.where(w.numpy()[:, 3] > 0, "blond", "brown"),
        "age": 40 + 10 * w.numpy()[:, 7],
        "female": 1 / (1 + np.exp(-2 * w.numpy()[:, 8])),
        "happy": 1 / (1 + np.exp(-2 * w.numpy()[:, 5])),
    }
    b = fit_boundaries(w, labels, torch.zeros(d), {}, c=1.0)
    assert "headwear=hat" in b.names and "headwear" in KEPT_ONLY
    assert "expression=happy" not in b.names  # attributes with no labels at all get no rows
    # a blond edit holds the hat score where it was
    w0 = w[:4]
    moved = b.edit(w0[:, None].repeat(1, 3, 1), {"hair_color": "blond"}, 1.0, layers=[0, 1, 2], gains=False)[
        :, 0
    ]
    k = b.row("headwear", "hat")
    before, after = w0 @ b.normals[k], moved @ b.normals[k]
    assert torch.allclose(before, after, atol=1e-3)


def test_probe_features_of_images():
    from tedigan import assets

    try:
        assets.lpips_backbone_state_dict("alex")
    except assets.MissingWeightsError as err:
        pytest.skip(f"LPIPS AlexNet backbone not installed: {err}")
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 64, 64, generator=g) * 2 - 1
    f = probe_features(images)
    assert f.shape == (2, 17 * (192 + 256 + 256)) and np.isfinite(f).all()
    assert np.allclose(f[1:], probe_features(images[1:]), atol=1e-4)  # per image, batch-independent
    assert not np.allclose(f[0], f[1])
    # a reader of fitted probes reads the images it was fitted on back, hair blank under a hat
    from tedigan.training.face_probe import ProbeReader

    imgs = torch.rand(8, 3, 64, 64, generator=g) * 2 - 1
    imgs[4:, 0] = 1.0  # a red cast on half of them
    feats = probe_features(imgs)
    hand = {
        i: {"headwear": "hat" if i >= 4 else "none", "hair_color": "red" if i >= 4 else "black"}
        for i in range(8)
    }
    reader = ProbeReader(fit_probe(feats, hand, c=1.0))
    read = reader.labels(imgs)
    assert [r["headwear"] for r in read] == [h["headwear"] for h in hand.values()]
    assert [r["hair_color"] for r in read] == ["black"] * 4 + ["none"] * 4
