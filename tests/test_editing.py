"""Control and editing: layer mixing (exact layers, broadcasting, validation), the layer-wise analysis on a
generator whose attributes live in known layers (map, json, heat map, CLI), prompt → layers, and the
instance-level optimisation (loss falls, steps=0, text term on the selected layers, mask, determinism, CLIP
with a tiny random CLIPModel, identity hook)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from tedigan.commands import main
from tedigan.data.avatars import AVATAR_VOCABULARY
from tedigan.editing import mixing
from tedigan.editing.layer_analysis import (
    LayerMap,
    analyze_layers,
    layer_groups,
    layers_for_prompt,
    select_layers,
    top_moved_layers,
)
from tedigan.editing.optimization import (
    CLIPLoss,
    IdentityLoss,
    OptimizationConfig,
    clip_preprocess,
    learning_rate,
    optimize_latent,
)
from tedigan.models.classifier import AttributeClassifier, ClassifierConfig
from tedigan.models.encoder import Encoder
from tedigan.models.stylegan2 import Generator

RES = 16  # num_ws = 6: pairs (0,1) (2,3) (4,5)
BRIGHT_LAYER, WARM_LAYER = 5, 1


@pytest.fixture(scope="module")
def G(tiny_generator) -> Generator:
    return tiny_generator(RES, w_avg_samples=256, noise_strength=0.1)


# ------------------------------------------------------------------------------------------------ mixing


def test_mix_touches_exactly_the_chosen_layers():
    gen = torch.Generator().manual_seed(0)
    content, style = torch.randn(3, 6, 16, generator=gen), torch.randn(3, 6, 16, generator=gen)
    for layers in (
        [1, 4],
        (4, 1, 1),
        {1, 4},
        range(1, 5, 3),
        torch.tensor([1, 4]),
        [False, True, False, False, True, False],
    ):
        out = mixing.mix(content, style, layers)
        assert out.shape == style.shape
        for i in range(6):
            assert torch.equal(out[:, i], (content if i in (1, 4) else style)[:, i]), (layers, i)
    assert torch.equal(mixing.mix(content, style, []), style)
    assert torch.equal(mixing.mix(content, style, range(6)), content)
    kept = style.clone()
    mixing.mix(content, style, [1, 4])[:] = 0  # the result is a new tensor: the inputs stay untouched
    assert torch.equal(style, kept)


def test_mix_broadcasts_a_single_content_code():
    one, many = torch.randn(1, 6, 16), torch.randn(5, 6, 16)
    out = mixing.mix(one, many, [0, 2])
    assert out.shape == (5, 6, 16)
    assert torch.equal(out[:, 0], one[:, 0].expand(5, -1)) and torch.equal(out[:, 1], many[:, 1])
    assert torch.equal(mixing.mix(one[0], many, [0, 2]), out)  # [num_ws, w_dim] counts as one code
    with pytest.raises(ValueError, match="batch"):
        mixing.mix(torch.randn(2, 6, 16), many, [0])
    with pytest.raises(ValueError, match="num_ws, w_dim"):
        mixing.mix(torch.randn(1, 5, 16), many, [0])


@pytest.mark.parametrize(
    "bad", [[6], [-1], [0, 9], [1.5], "01", [True, 2], [True] * 5, torch.tensor([0.0]), 3]
)
def test_bad_layers_raise(bad):
    with pytest.raises(ValueError):
        mixing.mix(torch.randn(1, 6, 16), torch.randn(2, 6, 16), bad)


def test_edit_codes_keeps_the_image_code_outside_the_layers():
    img, txt = torch.randn(4, 6, 16), torch.randn(1, 6, 16)
    out = mixing.edit_codes(img, txt, [2, 3])
    assert torch.equal(out[:, [0, 1, 4, 5]], img[:, [0, 1, 4, 5]])
    assert torch.equal(out[:, 2:4], txt[:, 2:4].expand(4, -1, -1))
    half = mixing.edit_codes(img, txt, [2, 3], strength=0.5)
    assert torch.allclose(half[:, 2:4], (img[:, 2:4] + txt[:, 2:4]) / 2, atol=1e-6)
    assert torch.equal(half[:, 0], img[:, 0])
    assert torch.equal(mixing.edit_codes(img, txt, [2, 3], strength=0.0), img)


def test_text_to_image_codes_deterministic_and_diverse(G):
    w_text = torch.randn(1, G.num_ws, G.w_dim)
    before = G.mapping.w_avg.clone()
    a = mixing.text_to_image_codes(w_text, G, [0, 1], num=4, seed=3, truncation_psi=0.7)
    b = mixing.text_to_image_codes(w_text, G, [0, 1], num=4, seed=3, truncation_psi=0.7)
    c = mixing.text_to_image_codes(w_text, G, [0, 1], num=4, seed=4, truncation_psi=0.7)
    assert a.shape == (4, G.num_ws, G.w_dim) and torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a[:, :2], w_text[:, :2].expand(4, -1, -1))  # the text code in the chosen layers
    assert (a[1:, 2:] - a[:1, 2:]).abs().amax(dim=(1, 2)).min() > 1e-3  # every sample differs elsewhere
    assert torch.equal(G.mapping.w_avg, before)  # w_avg not updated
    imgs = G.synthesis(a, noise_mode="const")
    assert (imgs[1:] - imgs[:1]).abs().amax(dim=(1, 2, 3)).min() > 1e-3  # diverse images
    with pytest.raises(ValueError):
        mixing.text_to_image_codes(w_text, G, [G.num_ws], num=2, seed=0)


# ----------------------------------------------------------------------------------------- layer analysis


class KnownLayers(nn.Module):
    """A generator whose 'brightness' is the sign of ``ws[:, 5, 0]`` and 'warmth' that of ``ws[:, 1, 1]``
    (both centred on their median), plus a faint real synthesis as distraction."""

    def __init__(self, G: Generator) -> None:
        super().__init__()
        self.G = G
        self.num_ws, self.z_dim, self.w_dim = G.num_ws, G.z_dim, G.w_dim
        with torch.no_grad():
            ws = G.mapping(torch.randn(512, G.z_dim, generator=torch.Generator().manual_seed(9)), 0.7)
        self.register_buffer("centre", ws[:, 0].median(dim=0).values)

    def mapping(self, z, truncation_psi=1.0, update_w_avg=None):
        return self.G.mapping(z, truncation_psi=truncation_psi, update_w_avg=False)

    def synthesis(self, ws, noise_mode="const"):
        base = 0.05 * torch.tanh(self.G.synthesis(ws, noise_mode=noise_mode))
        bright = torch.tanh(8 * (ws[:, BRIGHT_LAYER, 0] - self.centre[0])).reshape(-1, 1, 1, 1)
        warm = torch.tanh(8 * (ws[:, WARM_LAYER, 1] - self.centre[1])).reshape(-1, 1, 1, 1)
        rgb = torch.cat([0.5 * warm, -0.5 * warm, torch.zeros_like(warm)], dim=1)
        return 0.5 * bright + rgb + base


class ThresholdClassifier(nn.Module):
    """'bright' = mean intensity > 0; 'warm' = red minus green > 0."""

    def forward(self, images):
        m = images.mean(dim=(1, 2, 3))
        d = (images[:, 0] - images[:, 1]).mean(dim=(1, 2))
        return {"bright": torch.stack([-m, m], 1), "warm": torch.stack([-d, d], 1)}


def test_layer_analysis_finds_the_carrying_layers(G, tmp_path):
    fake = KnownLayers(G)
    result = analyze_layers(fake, ThresholdClassifier(), pairs=48, batch_size=24, seed=0)
    assert result.attributes == ["bright", "warm"]
    assert [g.layers for g in result.groups] == [(0, 1), (2, 3), (4, 5)]
    assert result.layers == {"bright": [4, 5], "warm": [0, 1]}
    assert min(result.support.values()) >= 10  # balanced attributes: many pairs differ
    assert all(0.5 <= c <= 1 for c in result.confidence.values())
    fr = result.follow_rate
    assert fr[0][2] > 0.9 and max(fr[0][0], fr[0][1]) < 0.2  # bright follows group (4,5) only
    assert fr[1][0] > 0.9 and max(fr[1][1], fr[1][2]) < 0.2
    single = analyze_layers(fake, ThresholdClassifier(), pairs=48, batch_size=48, seed=0, groups="single")
    assert single.layers == {"bright": [BRIGHT_LAYER], "warm": [WARM_LAYER]}
    again = analyze_layers(fake, ThresholdClassifier(), pairs=48, batch_size=16, seed=0)
    assert again.follow_rate == result.follow_rate  # batch size does not matter, the seed decides

    # pairs drawn from a given pool of codes (e.g. inverted real images) find the same layers
    with torch.no_grad():
        pool = G.mapping(torch.randn(64, G.z_dim, generator=torch.Generator().manual_seed(3)), 0.7)
    pooled = analyze_layers(fake, ThresholdClassifier(), pairs=48, batch_size=16, seed=0, codes=pool)
    assert pooled.layers == result.layers and pooled.settings["codes"] == "given"
    with pytest.raises(ValueError, match="codes must be"):
        analyze_layers(fake, ThresholdClassifier(), pairs=4, codes=pool[:1])

    path = result.save(tmp_path / "la")
    assert path.name == "layer_map.json" and (tmp_path / "la" / "layer_map.png").stat().st_size > 1000
    saved = json.loads(path.read_text())
    assert saved["layers"] == {"bright": [4, 5], "warm": [0, 1]}
    assert saved["settings"]["pairs"] == 48 and len(saved["follow_rate"]) == 2
    assert LayerMap.load(tmp_path / "la").to_dict() == result.to_dict()


def test_selection_rules_and_groups():
    groups = layer_groups(6)
    assert [g.name for g in groups] == ["4px w0-1", "8px w2-3", "16px w4-5"]
    assert select_layers([0.9, 0.5, 0.05], groups) == [0, 1, 2, 3]
    assert select_layers([0.9, 0.3, 0.05], groups) == [0, 1]
    assert select_layers([0.05, 0.02, None], groups) == []  # below the noise floor
    assert select_layers([0.6, 0.3, 0.1], groups, rule="cumulative", coverage=0.6) == [0, 1]
    assert select_layers([0.6, 0.3, 0.1], groups, rule="cumulative", coverage=0.8) == [0, 1, 2, 3]
    assert [g.layers for g in layer_groups(6, [[5, 3], [0]])] == [(3, 5), (0,)]
    with pytest.raises(ValueError):
        layer_groups(6, [[6]])
    with pytest.raises(ValueError):
        select_layers([0.5], groups, rule="sum")


def test_layer_analysis_cli(G, tmp_path, capsys):
    g_dir = G.save_pretrained(tmp_path / "generator")
    torch.manual_seed(0)
    heads = {"eyewear": ["none", "glasses", "sunglasses"], "mouth": ["smiling", "sad"]}
    c = AttributeClassifier(ClassifierConfig(resolution=RES, widths=[4, 8], heads=heads))
    c_dir = c.save_pretrained(tmp_path / "classifier")
    assert main(["layer-analysis", "--help"]) == 0
    assert "--pairs" in capsys.readouterr().out
    out = tmp_path / "out"
    args = ["--generator", str(g_dir), "--classifier", str(c_dir), "--out", str(out), "--pairs", "6"]
    assert (
        main(["layer-analysis", *args, "--batch", "4", "--seed", "1", "--device", "cpu", "--no-progress"])
        == 0
    )
    saved = json.loads((out / "layer_map.json").read_text())
    assert set(saved["layers"]) == set(heads) and saved["num_ws"] == G.num_ws
    assert saved["settings"]["generator"] == str(g_dir)
    assert (out / "layer_map.png").is_file()


VOCAB = AVATAR_VOCABULARY


def test_layers_for_prompt():
    table = {"hair_color": [6, 7], "eyewear": [0, 1, 2], "hat": []}
    assert layers_for_prompt("a person with blond hair and glasses", vocabulary=VOCAB, layer_map=table) == [
        0,
        1,
        2,
        6,
        7,
    ]
    assert layers_for_prompt("no glasses", vocabulary=VOCAB, layer_map={"layers": table, "num_ws": 8}) == [
        0,
        1,
        2,
    ]
    lm = LayerMap(
        ["eyewear"],
        layer_groups(8),
        [[1.0, 0, 0, 0]],
        [[1.0, 0, 0, 0]],
        {"eyewear": 9},
        {"eyewear": [0, 1]},
        8,
    )
    assert layers_for_prompt("sunglasses", vocabulary=VOCAB, layer_map=lm) == [0, 1]
    # nothing recognised (or only attributes without layers): the fallback decides
    assert layers_for_prompt("a fedora", vocabulary=VOCAB, layer_map=table, fallback=[3]) == [3]
    assert layers_for_prompt("zzz", vocabulary=VOCAB, layer_map=table, fallback=lambda: (5, 4)) == [4, 5]
    w_ref = torch.zeros(16)
    w_text = torch.zeros(1, 8, 16)
    w_text[0, 3] += 2.0
    w_text[0, 5] -= 1.0
    w_text[0, 6] += 0.1
    assert top_moved_layers(w_text, w_ref, 2) == [3, 5]
    assert layers_for_prompt(
        "zzz", vocabulary=VOCAB, layer_map=table, w_text=w_text, w_ref=w_ref, top_k=2
    ) == [3, 5]
    assert layers_for_prompt("zzz", vocabulary=VOCAB, layer_map=lm) == list(
        range(8)
    )  # no fallback: every layer
    with pytest.raises(ValueError, match="fallback"):
        layers_for_prompt("zzz", vocabulary=VOCAB, layer_map=table)


# ------------------------------------------------------------------------------------------- optimisation


@pytest.fixture(scope="module")
def E(G) -> Encoder:
    torch.manual_seed(0)
    tiny = {"channel_base": 8 * RES, "channel_max": 16, "fpn_channels": 16, "head_dim": 32}
    return Encoder.from_generator(G, **tiny).eval()


@pytest.fixture(scope="module")
def codes(G):
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        w_src = G.mapping(torch.randn(2, G.z_dim, generator=gen), truncation_psi=0.7)
        w_other = G.mapping(torch.randn(2, G.z_dim, generator=gen), truncation_psi=0.7)
    return w_src, w_other, G.synthesis(w_src, noise_mode="const")


def test_learning_rate_schedule():
    lrs = [learning_rate(s, 100, 0.1) for s in range(100)]
    assert 0 < lrs[0] < lrs[3] and max(lrs) == pytest.approx(0.1) and lrs[-1] < 0.01
    assert lrs[10] == pytest.approx(0.1) and lrs[60] == pytest.approx(0.1)


def test_optimisation_reconstructs_and_steps_zero_is_identity(G, E, codes):
    w_src, w_other, target = codes
    cfg = OptimizationConfig(steps=0)
    res = optimize_latent(G, w_other, target, encoder=E, config=cfg)
    assert torch.equal(res.w, w_other) and res.losses == []
    assert torch.equal(res.image, G.synthesis(w_other, noise_mode="const"))

    grads_before = [p.grad for p in G.parameters()]
    cfg = OptimizationConfig(steps=40, lr=0.05, encoder_weight=0.1)
    res = optimize_latent(G, w_other, target, encoder=E, config=cfg)
    pix = [h["pixel"] for h in res.losses]
    assert len(res.losses) == 40 and {"pixel", "encoder", "total", "lr"} <= set(res.losses[0])
    assert pix[-1] < 0.6 * pix[0], pix[::10]
    assert res.losses[-1]["total"] < res.losses[0]["total"]
    assert ((res.image - target) ** 2).mean() < (
        (G.synthesis(w_other, noise_mode="const") - target) ** 2
    ).mean()
    assert all(p.grad is None for p in G.parameters()) and grads_before == [None] * len(grads_before)
    again = optimize_latent(G, w_other, target, encoder=E, config=cfg)
    assert torch.equal(again.w, res.w)  # deterministic
    cfg_r = OptimizationConfig(steps=5, lr=0.05, noise_mode="random", seed=3)
    r1 = optimize_latent(G, w_other, target, config=cfg_r)
    r2 = optimize_latent(G, w_other, target, config=cfg_r)
    assert torch.equal(r1.w, r2.w) and torch.equal(r1.image, r2.image)  # random noise, fixed by the seed


def test_text_term_pulls_selected_layers(G, codes):
    w_src, _, target = codes
    w_text = w_src + torch.randn(w_src.shape, generator=torch.Generator().manual_seed(2))
    sel, rest = [4, 5], [0, 1, 2, 3]

    def run(weight, layers, freeze=False):
        cfg = OptimizationConfig(steps=30, lr=0.05, text_weight=weight, freeze_unselected=freeze)
        return optimize_latent(G, w_src, target, w_text=w_text, layers=layers, config=cfg).w

    def dist(a, b, idx):
        return float((a[:, idx] - b[:, idx]).norm())

    w_none, w_sel, w_all = run(0.0, sel), run(5.0, sel), run(5.0, None)
    assert dist(w_sel, w_text, sel) < 0.7 * dist(w_src, w_text, sel)
    assert dist(w_sel, w_text, sel) < dist(w_none, w_text, sel)
    # unselected layers only answer to the image: they stay near the init, unlike a text term on all layers
    assert dist(w_sel, w_src, rest) < 0.5 * dist(w_all, w_src, rest)
    assert dist(w_sel, w_src, rest) < dist(w_sel, w_src, sel)
    frozen = run(5.0, sel, freeze=True)
    assert torch.equal(frozen[:, rest], w_src[:, rest]) and not torch.equal(frozen[:, sel], w_src[:, sel])


def test_mask_and_pluggable_losses(G, codes):
    w_src, w_other, target = codes
    calls = []

    def fake_lpips(x, y):
        calls.append(x.shape)
        return ((x - y) ** 2).mean(dim=(1, 2, 3))

    identity = IdentityLoss(net=nn.Sequential(nn.AvgPool2d(4), nn.Flatten()), input_size=RES)
    mask = torch.zeros(1, 1, RES, RES)
    mask[..., : RES // 2] = 1  # keep the left half like the source
    cfg = OptimizationConfig(steps=3, lr=0.01, identity_weight=1.0)
    res = optimize_latent(G, w_other, target, mask=mask, lpips=fake_lpips, identity=identity, config=cfg)
    assert {"pixel", "lpips", "identity"} <= set(res.losses[0]) and len(calls) == 3
    empty = optimize_latent(
        G, w_other, target, mask=torch.zeros(1, 1, 4, 4), config=OptimizationConfig(steps=2)
    )
    assert empty.losses[0]["pixel"] == 0 and torch.equal(empty.w, w_other)  # nothing to keep: no pull
    with pytest.raises(ValueError, match="resize"):
        optimize_latent(G, w_other, target[..., :8, :8], config=OptimizationConfig(steps=1))
    with pytest.raises(ValueError, match="layers"):
        optimize_latent(G, w_other[:, :3], target, config=OptimizationConfig(steps=1))


def test_clip_guidance_with_a_tiny_random_clip(G, codes):
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    text_cfg = dict(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=16,
        eos_token_id=2,
        bos_token_id=1,
    )
    vision_cfg = dict(
        image_size=32,
        patch_size=8,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
    )
    model = CLIPModel(CLIPConfig(text_config=text_cfg, vision_config=vision_cfg, projection_dim=8)).eval()
    tokens = {
        "input_ids": torch.tensor([[1, 17, 33, 9, 2]]),
        "attention_mask": torch.ones(1, 5, dtype=torch.long),
    }
    w_src, _, target = codes

    pix = clip_preprocess(target, 32)
    assert pix.shape == (2, 3, 32, 32)
    loss = CLIPLoss(model, tokens)
    w = w_src.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss(G.synthesis(w, noise_mode="const")).sum(), [w])
    assert g.abs().sum() > 0 and torch.isfinite(g).all()  # CLIP's gradient reaches the code

    cfg = OptimizationConfig(steps=4, lr=0.05, pixel_weight=0.0, clip_weight=1.0)
    res = optimize_latent(G, w_src, None, clip=model, clip_text=tokens, config=cfg)
    assert "clip" in res.losses[0] and set(res.losses[0]) == {"clip", "total", "lr"}
    assert not torch.equal(res.w, w_src)
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match="clip_text"):
        optimize_latent(G, w_src, None, clip=model, config=cfg)


def test_shift_codes_moves_only_the_selected_layers():
    from tedigan.editing.mixing import shift_codes

    w = torch.randn(2, 6, 4)
    d = torch.randn(1, 6, 4)
    out = shift_codes(w, d, [1, 2], strength=0.5)
    assert torch.equal(out[:, [0, 3, 4, 5]], w[:, [0, 3, 4, 5]])
    assert torch.allclose(out[:, [1, 2]], w[:, [1, 2]] + 0.5 * d[:, [1, 2]])
