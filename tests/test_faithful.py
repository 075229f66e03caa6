"""Faithful inversion on the fast route (tiny, randomly initialised MobileStyleGAN; no weights needed)."""

import torch

from tedigan.editing.faithful import FaithfulConfig, faithful_invert, spread_penalty
from tedigan.models.ports.mobilestylegan import MobileStyleGAN
from tedigan.models.proxy_head import ProxyHead, ProxyHeadConfig, route_features
from tedigan.training.proxy_head import ProxyTrainConfig, haar_dwt, train_proxy_head


def _tiny_generator(seed: int = 0) -> MobileStyleGAN:
    torch.manual_seed(seed)
    G = MobileStyleGAN()
    with torch.no_grad():
        for name, p in G.synthesis.named_parameters():
            if name.endswith("mod_bias"):
                p.fill_(1.0)
            elif name.endswith("bias"):
                p.zero_()
            else:
                p.normal_(0, 0.02 if "mod_weight" in name else 1.0 / max(1, p[0].numel()) ** 0.5)
        G.synthesis.input.normal_()
    return G.eval().requires_grad_(False)


def test_haar_round_trip():
    from tedigan.models.ports.mobilestylegan import haar_idwt

    x = torch.randn(2, 3, 8, 8)
    assert torch.allclose(haar_idwt(haar_dwt(x), band_major=True), x, atol=1e-6)


def test_route_features_match_the_full_forward():
    G = _tiny_generator()
    ws = torch.randn(1, 23, 512) * 0.1
    with torch.no_grad():
        x = route_features(G.synthesis, ws, 1)
        for i in range(2, 7):
            x = G.synthesis.layers[i](x, ws[:, 1 + 3 * i : 4 + 3 * i])
        side = x.shape[1]
        wt = (
            G.synthesis.to_img_weight[:3].unsqueeze(0)
            * G.synthesis.to_img_style(ws[:, -1]).unsqueeze(1)[:, :3]
        )
        ll = torch.baddbmm(
            G.synthesis.to_img_bias[:3].view(1, -1, 1), wt, x.reshape(1, side * side, -1).transpose(1, 2)
        )
        ref = G.synthesis(ws, resolution=512)
    assert torch.allclose(ll.view(1, 3, side, side), ref, atol=1e-5)


def test_head_trains_saves_and_faithful_losses_fall(tmp_path):
    G = _tiny_generator()
    head = ProxyHead(ProxyHeadConfig(block=0, hidden=8))
    ws = torch.randn(6, 23, 512) * 0.1
    with torch.no_grad():
        targets = G.synthesis(ws, resolution=16)
    hist = train_proxy_head(
        head, G.synthesis, ws, targets, ProxyTrainConfig(steps=20, batch=2, lstsq_samples=4)
    )
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in hist)
    head.save_pretrained(tmp_path / "head", {"psnr": 1.0})
    again = ProxyHead.from_pretrained(tmp_path / "head")
    feat = route_features(G.synthesis, ws[:1], 0)
    assert torch.allclose(again(feat, ws[:1]), head(feat, ws[:1]))

    with torch.no_grad():
        photo = G.synthesis(ws[1:2] + 0.05 * torch.randn(1, 23, 512), resolution=32)
    cfg = FaithfulConfig(
        w_steps=6, wplus_steps=6, pti_steps=6, patience=6, full_resolution=32, w_lr=0.05, use_head=True
    )
    seen = []
    w_plus, tuned, report = faithful_invert(
        G, None, photo, cfg, head=head, w_init=ws[:1], progress=lambda s, i, r: seen.append((s, r["total"]))
    )
    assert w_plus.shape == (1, 23, 512) and torch.isfinite(w_plus).all()
    assert torch.isfinite(report["image"]).all() and report["image"].shape == (1, 3, 32, 32)
    for stage in ("w", "wplus", "pti"):
        totals = [t for s, t in seen if s == stage]
        assert totals and min(totals) <= totals[0]
    assert min(t for _, t in seen) < seen[0][1]  # the loss fell
    assert float(spread_penalty(w_plus)) >= 0
    # the given generator is untouched; the tuned copy differs only in the route's blocks
    assert torch.equal(G.synthesis.layers[0].conv1.weight, _tiny_generator().synthesis.layers[0].conv1.weight)
    assert torch.equal(tuned.synthesis.layers[3].conv1.weight, G.synthesis.layers[3].conv1.weight)


def test_never_worse_than_the_encoder_start_and_polish_keeps_its_best():
    """Degenerate steps (huge lrs) must not leak out: each stage keeps its best step, and a result scoring worse at
    full resolution than the encoder's start falls back to the start on an untouched generator."""
    G = _tiny_generator()
    head = ProxyHead(ProxyHeadConfig(block=0, hidden=8))
    ws0 = torch.randn(1, 23, 512) * 0.3  # a W+ code: the W stage cannot start on it
    with torch.no_grad():
        G.synthesis.to_img_weight /= G.synthesis(ws0, resolution=32).std()  # images of unit scale
        photo = G.synthesis(ws0, resolution=32)  # the start reproduces the photo exactly: loss 0
    assert photo.std() > 0.5
    cfg = FaithfulConfig(
        w_steps=3,
        wplus_steps=3,
        pti_steps=3,
        polish_steps=4,
        w_lr=5.0,
        wplus_lr=5.0,
        pti_lr=10.0,
        polish_lr=10.0,
        full_resolution=32,
        identity_weight=0.0,
        use_head=True,
    )
    w_plus, tuned, report = faithful_invert(G, None, photo, cfg, head=head, w_init=ws0)
    assert report["fell_back"] and report["final_full"] > report["start_full"]
    assert torch.equal(w_plus, ws0)
    assert torch.allclose(report["image"], photo.clamp(-1, 1), atol=1e-6)
    assert torch.equal(tuned.synthesis.layers[0].conv1.weight, G.synthesis.layers[0].conv1.weight)
    polish = next(s for s in report["stages"] if s["stage"] == "polish")
    assert polish["best"] <= polish["history"][0]["total"]


def test_time_budget_stops_stages_early():
    G = _tiny_generator()
    head = ProxyHead(ProxyHeadConfig(block=0, hidden=8))
    ws0 = torch.randn(1, 23, 512) * 0.1
    with torch.no_grad():
        photo = G.synthesis(ws0 + 0.05, resolution=32)
    cfg = FaithfulConfig(
        w_steps=50,
        wplus_steps=50,
        pti_steps=50,
        polish_steps=50,
        full_resolution=32,
        time_budget_s=1e-3,
        use_head=True,
    )
    _, _, report = faithful_invert(G, None, photo, cfg, head=head, w_init=ws0)
    assert all(s["steps"] == 1 and s["out_of_time"] for s in report["stages"])
    assert report["final_full"] <= report["start_full"]


def test_encoder_image_losses_through_the_fast_route():
    """Stage inversion's ``image_route``: the image terms compare the route's small image with the target pooled
    to its size; gradients reach the encoder only (the full route's fall on an overfit: test_inversion)."""
    from tedigan.config import InversionLossConfig
    from tedigan.models.encoder import Encoder, EncoderConfig
    from tedigan.training.inversion import InversionLoss

    G = _tiny_generator()
    torch.manual_seed(0)
    head = ProxyHead(ProxyHeadConfig(block=0, hidden=8)).requires_grad_(False)  # 8 px features -> 16 px
    E = Encoder(
        EncoderConfig(
            resolution=32,
            num_ws=23,
            w_dim=512,
            channel_base=64,
            channel_max=32,
            fpn_channels=16,
            head_dim=32,
            blocks_per_level=0,
        )
    )
    E.set_w_avg(torch.zeros(512))
    ws = torch.randn(4, 23, 512) * 0.1
    with torch.no_grad():
        target = G.synthesis(ws, resolution=32)
    weights = InversionLossConfig(pixel=1.0, lpips=0.0, latent=0.0, adversarial=0.0)
    loss_fn = InversionLoss(G, None, weights, route=head)
    total, parts, rec = loss_fn(E, target, target)
    assert rec.shape == (4, 3, 16, 16)
    expected = torch.nn.functional.mse_loss(
        head(route_features(G.synthesis, E(target), 0), E(target)), torch.nn.functional.avg_pool2d(target, 2)
    )
    assert torch.allclose(parts["pixel"], expected, atol=1e-6)
    total.backward()
    assert all(p.grad is None for p in head.parameters()) and all(p.grad is None for p in G.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in E.parameters())


def test_faces_finetune_config_names_the_shipped_encoder_and_route():
    from pathlib import Path

    from tedigan.config import InversionStageConfig, load_config

    root = Path(__file__).resolve().parents[1]
    cfg = load_config(InversionStageConfig, root / "configs" / "inversion_faces256_finetune.yaml")
    assert cfg.loss.adversarial == 0 and cfg.loss.pixel > 0 and cfg.loss.latent > 0
    for folder in (cfg.init_encoder, cfg.image_route):
        assert (root / folder / "config.json").is_file() and (root / folder / "model.safetensors").is_file()
