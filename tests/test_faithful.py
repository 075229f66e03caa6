"""Faithful inversion on the fast route (tiny, randomly initialised MobileStyleGAN; no weights needed)."""

import torch

from tedigan.editing.faithful import FaithfulConfig, faithful_invert, spread_penalty
from tedigan.models.mobilestylegan import MobileStyleGAN
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
    from tedigan.models.mobilestylegan import haar_idwt

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
        wt = G.synthesis.to_img_weight[:3].unsqueeze(0) * G.synthesis.to_img_style(ws[:, -1]).unsqueeze(1)[:, :3]
        ll = torch.baddbmm(G.synthesis.to_img_bias[:3].view(1, -1, 1), wt, x.reshape(1, side * side, -1).transpose(1, 2))
        ref = G.synthesis(ws, resolution=512)
    assert torch.allclose(ll.view(1, 3, side, side), ref, atol=1e-5)


def test_head_trains_saves_and_faithful_losses_fall(tmp_path):
    G = _tiny_generator()
    head = ProxyHead(ProxyHeadConfig(block=0, hidden=8))
    ws = torch.randn(6, 23, 512) * 0.1
    with torch.no_grad():
        targets = G.synthesis(ws, resolution=16)
    hist = train_proxy_head(head, G.synthesis, ws, targets, ProxyTrainConfig(steps=20, batch=2, lstsq_samples=4))
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in hist)
    head.save_pretrained(tmp_path / "head", {"psnr": 1.0})
    again = ProxyHead.from_pretrained(tmp_path / "head")
    feat = route_features(G.synthesis, ws[:1], 0)
    assert torch.allclose(again(feat, ws[:1]), head(feat, ws[:1]))

    with torch.no_grad():
        photo = G.synthesis(ws[1:2] + 0.05 * torch.randn(1, 23, 512), resolution=32)
    cfg = FaithfulConfig(w_steps=6, wplus_steps=6, pti_steps=6, patience=6, full_resolution=32, w_lr=0.05)
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
