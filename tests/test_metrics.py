"""Metrics: FID/KID/precision-recall maths, the real FID Inception extractor, PPL, linear separability, the
registry and the CLI. Networks are tiny or stand-ins except where the real network is the point."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from tedigan import metrics
from tedigan.metrics import fid as fidm
from tedigan.metrics import ppl as pplm
from tedigan.metrics import separability as sepm
from tedigan.models.classifier import AttributeClassifier, ClassifierConfig
from tedigan.models.stylegan2 import Generator, GeneratorConfig

ALL = ["fid", "kid", "pr", "ppl_w", "ppl_z", "separability"]


# ------------------------------------------------------------------------------------------ helpers


def tiny_generator(seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    cfg = GeneratorConfig(resolution=16, z_dim=16, w_dim=16, n_mlp=2, channel_base=256, channel_max=16)
    return Generator(cfg).eval()


class StubGenerator(nn.Module):
    """Duck-typed generator whose image shows tanh(w[:3]) as flat colour planes (so w can be read back)."""

    z_dim, w_dim, num_ws, resolution = 8, 8, 2, 8

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.weight = nn.Parameter(torch.randn(8, 8, generator=g) / math.sqrt(8))

    def mapping(self, z: torch.Tensor, truncation_psi: float = 1.0) -> torch.Tensor:
        return (z @ self.weight.T)[:, None].repeat(1, self.num_ws, 1)

    def synthesis(self, ws: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        return ws[:, 0, :3].tanh()[:, :, None, None].expand(-1, 3, 8, 8)


class FakeClassifier(nn.Module):
    """Head "sign": the sign of w[0] (read from the image), confidently. Head "random": coin flips."""

    def __init__(self) -> None:
        super().__init__()
        self.rng = torch.Generator().manual_seed(123)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = images[:, 0, 0, 0]
        sign = torch.stack([-20 * x, 20 * x], dim=1)
        rand = torch.randn(images.shape[0], 2, generator=self.rng) * 3
        return {"sign": sign, "random": rand}


class CountingExtractor(nn.Module):
    """Stand-in feature network: mean colour and spread per channel, counts its images."""

    cache_id = "counting-extractor-v1"

    def __init__(self) -> None:
        super().__init__()
        self.seen = 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.seen += images.shape[0]
        flat = images.flatten(2)
        return torch.cat([flat.mean(2), flat.std(2), flat[:, :, :4].flatten(1)], dim=1)


def fake_dataset(n: int, seed: int = 0, size: int = 8) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    return [
        {"image": torch.rand(3, size, size, generator=g) * 2 - 1, "caption": "", "captions": [], "index": i}
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def lpips_alex():
    # The PPL machinery is the point here, not the backbone: AlexNet LPIPS is ~10x cheaper than VGG on CPU
    # (the CLI test runs the default VGG).
    from tedigan.losses.perceptual import LPIPS

    return LPIPS("alex")


# --------------------------------------------------------------------------------------------- FID


def test_fid_identical_sets_is_zero():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(300, 16))
    assert fidm.fid_from_features(feats, feats, "sqrtm") == pytest.approx(0.0, abs=1e-6)
    assert fidm.fid_from_features(feats, feats, "svd") == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_matches_closed_form():
    rng = np.random.default_rng(1)
    d = 12
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    # diagonal: |dmu|^2 + sum (s1 - s2)^2
    s1, s2 = rng.uniform(0.5, 2, d), rng.uniform(0.5, 2, d)
    expected = ((mu1 - mu2) ** 2).sum() + ((s1 - s2) ** 2).sum()
    assert fidm.frechet_distance(mu1, np.diag(s1**2), mu2, np.diag(s2**2)) == pytest.approx(
        expected, rel=1e-9
    )
    # full covariance A vs c^2 A: (A c^2 A)^(1/2) = c A, so FID = |dmu|^2 + (1 - c)^2 Tr(A)
    m = rng.normal(size=(d, d))
    a = m @ m.T + 0.1 * np.eye(d)
    expected = ((mu1 - mu2) ** 2).sum() + (1 - 3.0) ** 2 * np.trace(a)
    assert fidm.frechet_distance(mu1, a, mu2, 9.0 * a) == pytest.approx(expected, rel=1e-8)


def test_fid_of_sampled_shifted_gaussians():
    rng = np.random.default_rng(2)
    shift = np.full(8, 0.5)
    a = rng.normal(size=(20000, 8))
    b = rng.normal(size=(20000, 8)) + shift
    # sampling noise of the mean difference alone has a std of ~0.03 here
    assert fidm.fid_from_features(a, b) == pytest.approx(float(shift @ shift), abs=0.1)


def test_fid_svd_identity_equals_sqrtm_and_handles_rank_deficiency():
    rng = np.random.default_rng(3)
    a, b = np.abs(rng.normal(size=(200, 32))), np.abs(rng.normal(size=(150, 32)) + 0.3)
    assert fidm.fid_from_features(a, b, "svd") == pytest.approx(
        fidm.fid_from_features(a, b, "sqrtm"), rel=1e-7
    )
    small_a, small_b = a[:10], b[:12]  # fewer samples than dimensions: singular covariances
    v_svd = fidm.fid_from_features(small_a, small_b, "svd")
    v_sqrtm = fidm.fid_from_features(small_a, small_b, "sqrtm")
    assert np.isfinite(v_svd) and v_svd > 0
    assert v_svd == pytest.approx(v_sqrtm, rel=1e-4)
    with pytest.raises(ValueError, match="method"):
        fidm.fid_from_features(a, b, "nope")


# --------------------------------------------------------------------------------------- KID and PR


def test_kid_near_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(4)
    x, y = np.abs(rng.normal(size=(400, 64))), np.abs(rng.normal(size=(400, 64)))
    z = np.abs(rng.normal(size=(400, 64))) + 0.5
    same, same_std = fidm.kernel_inception_distance(x, y, num_subsets=20, subset_size=200)
    diff, _ = fidm.kernel_inception_distance(x, z, num_subsets=20, subset_size=200)
    assert abs(same) < 3 * same_std + 1e-3
    assert diff > 0.05 and diff > 50 * abs(same)


def test_precision_recall_identical_and_disjoint():
    rng = np.random.default_rng(5)
    a = rng.normal(size=(100, 16))
    assert fidm.precision_recall(a, a.copy(), k=3) == (1.0, 1.0)
    far = rng.normal(size=(100, 16)) + 100.0
    assert fidm.precision_recall(a, far, k=3) == (0.0, 0.0)
    # generated samples covering only half of the real support (2-D, where k-NN balls stay local):
    # precision stays high, recall drops to about one half
    real = rng.normal(size=(400, 2))
    gen = rng.normal(size=(800, 2))
    gen = gen[gen[:, 0] > 0][:200]
    p, r = fidm.precision_recall(real, gen, k=3)
    assert p > 0.9 and 0.35 < r < 0.7


# ------------------------------------------------------------------------------- Inception features


def test_inception_extractor_on_real_images():
    net = fidm.InceptionFeatures()
    g = torch.Generator().manual_seed(0)
    imgs = torch.rand(3, 3, 64, 64, generator=g) * 2 - 1
    batch = torch.cat([imgs, imgs[:1]])  # the 4th image repeats the 1st
    feats = net(batch)
    assert feats.shape == (4, 2048) and torch.isfinite(feats).all()
    assert torch.allclose(feats[0], feats[3], atol=1e-5)
    assert not torch.allclose(feats[0], feats[1])
    gray = net(imgs[:1].mean(1, keepdim=True))  # single-channel images are accepted
    assert gray.shape == (1, 2048)


# --------------------------------------------------------------------------------------------- PPL


def test_slerp_and_filtered_mean():
    a, b = torch.randn(5, 7, dtype=torch.float64), torch.randn(5, 7, dtype=torch.float64)
    an = a / a.norm(dim=1, keepdim=True)
    bn = b / b.norm(dim=1, keepdim=True)
    assert torch.allclose(pplm.slerp(a, b, torch.zeros(5, dtype=torch.float64)), an)
    assert torch.allclose(pplm.slerp(a, b, torch.ones(5, dtype=torch.float64)), bn)
    mid = pplm.slerp(a, b, torch.full((5,), 0.5, dtype=torch.float64))
    assert torch.allclose((mid * an).sum(1), (mid * bn).sum(1))  # equal angles to both ends
    d = np.concatenate([np.ones(990), np.full(5, 1e6), np.full(5, -1e6)])
    assert pplm.filtered_mean(d) == pytest.approx(1.0)


def test_ppl_tiny_generator_finite_positive_deterministic_and_sensitive(lpips_alex):
    G = tiny_generator()

    def ppl(gen, space, sampling, num=64):
        dist = pplm.path_lengths(gen, lpips_alex, num, space=space, sampling=sampling, batch_size=64, seed=3)
        return pplm.filtered_mean(dist)

    w1, z1 = ppl(G, "w", "end"), ppl(G, "z", "full")
    assert np.isfinite(w1) and w1 > 0 and np.isfinite(z1) and z1 > 0
    assert ppl(G, "w", "end", 8) == ppl(G, "w", "end", 8)  # seeded latents and constant noise

    # Stronger styles (affine weights x4) make the image move more per unit of latent path.
    G2 = copy.deepcopy(G)
    with torch.no_grad():
        for name, p in G2.named_parameters():
            if name.endswith("affine.weight"):
                p.mul_(4.0)
    assert ppl(G2, "w", "end") > 1.2 * w1
    assert ppl(G2, "z", "full") > 1.2 * z1


# ---------------------------------------------------------------------------------- separability


def test_conditional_entropy():
    y = np.array([0, 1] * 50)
    assert sepm.conditional_entropy(y, y) == 0.0
    assert sepm.conditional_entropy(y, np.zeros(100)) == pytest.approx(math.log(2))
    assert sepm.conditional_entropy(y, np.array([0, 0, 1, 1] * 25)) == pytest.approx(math.log(2))


def test_separability_toy_sign_is_separable_random_is_not():
    out = metrics.compute(
        "separability", generator=StubGenerator(), classifier=FakeClassifier(), num=200, batch_size=64
    )["separability"]
    per = out["per_attribute"]
    sign = next(v for k, v in per.items() if k.startswith("sign="))
    rand = next(v for k, v in per.items() if k.startswith("random="))
    assert sign < 0.05
    assert rand > 0.4
    assert out["value"] == pytest.approx(math.exp(sign + rand))
    assert out["num"] == 200 and out["num_kept"] == 100


def test_separability_modes():
    rng = np.random.default_rng(0)
    lat = rng.normal(size=(60, 4))
    p = np.eye(3)[rng.integers(0, 3, 60)] * 0.9 + 0.05  # three-valued head
    maj = sepm.binary_problems({"h": p}, "majority")
    each = sepm.binary_problems({"h": p}, "each")
    assert len(maj) == 1 and len(each) == 3
    score = sepm.separability_score(lat, {"h": p}, "each")
    assert set(score["per_attribute"]) == set(each)


# -------------------------------------------------------------------------------------- registry


def test_registry_lists_metrics_and_rejects_unknown_names():
    assert set(ALL) <= set(metrics.list_metrics())
    assert set(ALL) <= set(metrics.METRICS)
    with pytest.raises(metrics.UnknownMetricError, match="unknown metric.*'fidd'.*available: .*fid"):
        metrics.compute("fid,fidd", generator=StubGenerator())
    with pytest.raises(ValueError, match="needs real images"):
        metrics.compute("fid", generator=StubGenerator())
    with pytest.raises(ValueError, match="needs an attribute classifier"):
        metrics.compute("separability", generator=StubGenerator())
    with pytest.raises(TypeError, match="unknown metric option"):
        metrics.compute("ppl_w", generator=StubGenerator(), nmu=3)
    with pytest.raises(ValueError, match="already registered"):
        metrics.register("fid")(lambda ctx: {})


def test_compute_shares_features_and_caches_real_stats(tmp_path):
    extractor = CountingExtractor()
    ctx = dict(
        generator=StubGenerator(),
        dataset=fake_dataset(12),
        feature_extractor=extractor,
        num=10,
        batch_size=4,
        cache_dir=tmp_path / "cache",
        data_key="fake-data-v1",
    )
    out = metrics.compute(["fid", "kid", "pr"], **ctx)
    assert extractor.seen == 10 + 10  # generated and real features extracted once for three metrics
    assert out["fid"]["value"] > 0 and out["fid"]["num_real"] == 10 and out["fid"]["num_fake"] == 10
    assert {"value", "std", "seconds"} <= set(out["kid"])
    assert 0 <= out["pr"]["precision"] <= 1 and 0 <= out["pr"]["recall"] <= 1
    cached = list((tmp_path / "cache").glob("*.npz"))
    assert len(cached) == 1
    with np.load(cached[0]) as data:
        assert data["features"].shape == (10, 18) and data["sigma"].shape == (18, 18)

    again = metrics.compute(["fid"], **ctx)  # fresh context: real features come from the disk cache
    assert extractor.seen == 20 + 10
    assert again["fid"]["value"] == pytest.approx(out["fid"]["value"])
    metrics.compute(["fid"], **{**ctx, "num_real": 11})  # another count is another cache entry
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2


def test_reused_context_keeps_real_features_but_regenerates(tmp_path):
    extractor, G = CountingExtractor(), StubGenerator()
    ctx = metrics.make_context(generator=G, dataset=fake_dataset(8), feature_extractor=extractor, num=8)
    first = metrics.compute("fid", ctx)["fid"]["value"]
    with torch.no_grad():
        G.weight.mul_(2.0)  # a training step changes the weights in place
    second = metrics.compute("fid", ctx)["fid"]["value"]
    assert extractor.seen == 8 + 8 + 8  # real once, generated twice
    assert second != pytest.approx(first)


def test_append_results_writes_json_lines(tmp_path):
    path = tmp_path / "sub" / "metrics.jsonl"
    metrics.append_results(path, {"metrics": {"fid": {"value": np.float32(1.5)}}, "bad": float("nan")})
    metrics.append_results(path, {"metrics": {"kid": {"value": torch.tensor(0.25)}}})
    rows = metrics.read_results(path)
    assert len(rows) == 2 and rows[0]["metrics"]["fid"]["value"] == 1.5 and rows[0]["bad"] is None
    assert rows[1]["metrics"]["kid"]["value"] == 0.25 and "timestamp" in rows[1]


# -------------------------------------------------------------------------------------------- CLI


def _png_folder(root, n: int = 6, size: int = 16):
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        arr = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
        Image.fromarray(arr).save(root / f"img{i}.png")
    return root


@pytest.mark.slow
def test_cli_end_to_end(tmp_path, capsys):
    from tedigan.commands import main

    model = tmp_path / "model"
    tiny_generator().save_pretrained(model / "generator")
    torch.manual_seed(0)
    clf_cfg = ClassifierConfig(
        resolution=16, widths=[4, 8], heads={"hair": ["dark", "light"], "hat": ["no", "yes"]}
    )
    AttributeClassifier(clf_cfg).save_pretrained(model / "classifier")
    data = _png_folder(tmp_path / "data")

    argv = [
        "--model",
        str(model),
        "--metrics",
        ",".join(ALL),
        "--data-kind",
        "folder",
        "--data-root",
        str(data),
    ]
    assert main(["metrics", *argv, "--num", "8", "--batch", "8", "--seed", "1"]) == 0
    row = json.loads(capsys.readouterr().out)
    rows = [json.loads(line) for line in (model / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0] == json.loads(json.dumps(row))
    res = rows[0]["metrics"]
    assert set(res) == set(ALL)
    assert res["fid"]["value"] > 0 and res["fid"]["num_real"] == 6 and res["fid"]["num_fake"] == 8
    assert res["ppl_w"]["value"] > 0 and res["ppl_z"]["value"] > 0
    assert 1.0 <= res["separability"]["value"] <= 4.0  # two binary attributes: at most 2 * ln 2 nats
    assert all(res[m]["seconds"] >= 0 for m in ALL)
    assert rows[0]["num"] == 8 and "timestamp" in rows[0] and rows[0]["seconds"] > 0
    assert list((data / ".fid_cache").glob("real-*.npz"))  # real features cached next to the data

    # clear errors
    for bad, msg in [
        (["--model", str(tmp_path / "missing")], "does not exist"),
        (["--model", str(data)], "holds no generator"),
        (["--model", str(model), "--metrics", "fid"], "--data-root"),
        (["--model", str(model), "--metrics", "fid", "--data-kind", "folder", "--data-root", str(tmp_path / "x")],
         "cannot open the real data"),
        (["--model", str(model), "--metrics", "bogus"], "unknown metric"),
        (["--model", str(model / "generator"), "--metrics", "separability"], "attribute classifier"),
    ]:  # fmt: skip
        assert main(["metrics", *bad]) == 2
        err = capsys.readouterr().err
        assert msg in err and len(err.strip().splitlines()) == 1, err


def test_text_metrics_take_typed_inputs():
    from tedigan.metrics.text import TextEval

    codes = torch.randn(5, 3, 4, generator=torch.Generator().manual_seed(0))
    index = torch.tensor([0, 0, 1, 2, 3, 4])[:5]
    ev = TextEval(
        captions=[f"c{i}" for i in range(5)], image_index=index, image_codes=codes, codes=codes[index]
    )
    r = metrics.compute("text_l2,text_retrieval", text=ev)
    assert r["text_l2"]["value"] == 0 and r["text_retrieval"]["top1"] == 1.0
    with pytest.raises(ValueError, match="held-out captions"):
        metrics.compute("text_l2")
    with pytest.raises(ValueError, match="codes= .* or text_encoder"):
        TextEval(captions=["a"], image_index=torch.tensor([0]), image_codes=codes)
