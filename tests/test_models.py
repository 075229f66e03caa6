"""Backbone models: layers (upfirdn2d against a naive reference, modulated conv, mbstd, Haar), and tiny
StyleGAN2 / StyleGAN1 / SWAGAN generators and discriminators (shapes, determinism, truncation, mixing,
save/load, gradients)."""

from __future__ import annotations

import functools
import json

import pytest
import torch
import torch.nn.functional as F

from tedigan.models.layers import (
    Downsample,
    Upsample,
    effective_state_dict,
    load_effective_state_dict,
    minibatch_stddev,
    modulated_conv2d,
    upfirdn2d,
)
from tedigan.models.stylegan2 import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
from tedigan.models.swagan import HaarTransform, InverseHaarTransform, dwt_reference, iwt_reference
from tedigan.typed import from_dict, to_dict

ARCHS = ["stylegan2", "stylegan1", "swagan"]


def tiny_g(arch: str = "stylegan2", resolution: int = 16, seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    cfg = GeneratorConfig(
        resolution=resolution, z_dim=16, w_dim=16, n_mlp=2, arch=arch, channel_base=256, channel_max=16
    )
    return Generator(cfg).eval()


def tiny_d(arch: str = "stylegan2", resolution: int = 16, seed: int = 0) -> Discriminator:
    torch.manual_seed(seed)
    return Discriminator(
        DiscriminatorConfig(resolution=resolution, arch=arch, channel_base=256, channel_max=16)
    )


def randomise_(module: torch.nn.Module, seed: int = 1) -> None:
    """Give zero-initialised parameters (noise strengths, biases) non-trivial values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))


# ------------------------------------------------------------------------------------------------
# upfirdn2d
# ------------------------------------------------------------------------------------------------


def naive_upfirdn2d(x, k, up, down, pad):
    """Direct transcription of the definition with explicit loops over output pixels."""
    px0, px1, py0, py1 = pad
    n, c, h, w = x.shape
    xu = torch.zeros(n, c, h * up, w * up, dtype=torch.float64)
    xu[:, :, ::up, ::up] = x.double()
    hp, wp = h * up + py0 + py1, w * up + px0 + px1
    xp = torch.zeros(n, c, hp, wp, dtype=torch.float64)
    # place xu with (possibly negative) padding
    for i in range(hp):
        for j in range(wp):
            si, sj = i - py0, j - px0
            if 0 <= si < h * up and 0 <= sj < w * up:
                xp[:, :, i, j] = xu[:, :, si, sj]
    kh, kw = k.shape
    oh, ow = hp - kh + 1, wp - kw + 1
    out = torch.zeros(n, c, oh, ow, dtype=torch.float64)
    kd = k.double()
    for p in range(oh):
        for q in range(ow):
            acc = torch.zeros(n, c, dtype=torch.float64)
            for a in range(kh):
                for b in range(kw):
                    acc += xp[:, :, p + a, q + b] * kd[kh - 1 - a, kw - 1 - b]
            out[:, :, p, q] = acc
    return out[:, :, ::down, ::down].float()


@pytest.mark.parametrize(
    "up,down,pad,kshape",
    [
        (1, 1, (1, 1, 1, 1), (3, 3)),
        (2, 1, (2, 1, 2, 1), (4, 4)),
        (1, 2, (1, 1, 1, 1), (4, 4)),
        (2, 2, (1, 0, 2, 1), (3, 2)),
        (1, 1, (-1, 2, 0, -1), (2, 3)),  # negative pad = crop, asymmetric kernel
        (2, 1, (1, 0, 1, 0), (2, 2)),  # Haar IWT setting
        (1, 2, (0, 0, 0, 0), (2, 2)),  # Haar DWT setting
    ],
)
def test_upfirdn2d_matches_naive(up, down, pad, kshape):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 5, 6, generator=g)
    k = torch.randn(*kshape, generator=g)
    out = upfirdn2d(x, k, up=up, down=down, pad=pad)
    ref = naive_upfirdn2d(x, k, up, down, pad)
    assert out.shape == ref.shape
    assert (out - ref).abs().max() < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
def test_upfirdn2d_is_differentiable_twice(fmt):
    """R1 and path length differentiate through the blurs twice (the FIR has its own adjoint pair)."""
    g = torch.Generator().manual_seed(1)
    a = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=torch.double) / 8
    for up, down, pad, k in [
        (1, 1, (2, 1), a),
        (1, 2, (2, 2), a),
        (2, 1, (2, 1), torch.outer(a, a)),
        (2, 2, 1, a),
    ]:
        x = torch.randn(2, 3, 7, 6, dtype=torch.double, generator=g).contiguous(memory_format=fmt)
        x.requires_grad_(True)
        f = functools.partial(upfirdn2d, kernel=k, up=up, down=down, pad=pad)
        assert torch.autograd.gradcheck(f, (x,)) and torch.autograd.gradgradcheck(f, (x,))


def test_upfirdn2d_separable_equals_2d_and_output_size():
    x = torch.randn(2, 4, 8, 8)
    a = torch.tensor([1.0, 3.0, 3.0, 1.0]) / 8
    for up, down, pad in [(2, 1, (2, 1)), (1, 2, (1, 1)), (1, 1, (2, 2)), (2, 2, 1)]:
        sep = upfirdn2d(x, a, up=up, down=down, pad=pad)
        full = upfirdn2d(x, torch.outer(a, a), up=up, down=down, pad=pad)
        assert torch.allclose(sep, full, atol=1e-6)
        p0, p1 = (pad, pad) if isinstance(pad, int) else pad
        assert sep.shape[-1] == (8 * up + p0 + p1 - 4) // down + 1


def test_resamplers_shapes_and_dc_gain():
    x = torch.ones(1, 2, 8, 8)
    up, down = Upsample()(x), Downsample()(x)
    assert up.shape == (1, 2, 16, 16) and down.shape == (1, 2, 4, 4)
    # interior of a constant image keeps its value (up gain 4 spreads over 4 output pixels)
    assert torch.allclose(up[..., 4:-4, 4:-4], torch.ones(1, 2, 8, 8), atol=1e-6)
    assert torch.allclose(down[..., 1:-1, 1:-1], torch.ones(1, 2, 2, 2), atol=1e-6)


# ------------------------------------------------------------------------------------------------
# modulated conv, mbstd, Haar
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("up", [1, 2])
def test_modulated_conv_fused_equals_unfused(demodulate, up):
    g = torch.Generator().manual_seed(0)
    x, w, s = (
        torch.randn(3, 4, 6, 6, generator=g),
        torch.randn(5, 4, 3, 3, generator=g),
        torch.randn(3, 4, generator=g),
    )
    a = modulated_conv2d(x, w, s, demodulate=demodulate, up=up, padding=1, fused=True)
    b = modulated_conv2d(x, w, s, demodulate=demodulate, up=up, padding=1, fused=False)
    assert a.shape == b.shape == ((3, 5, 6, 6) if up == 1 else (3, 5, 13, 13))
    assert torch.allclose(a, b, atol=1e-5)


def test_modulated_up_conv_equals_zero_insertion_form():
    """README: conv_transpose(stride 2) == zero-insert, pad (2, 1), conv2d with the flipped kernel."""
    g = torch.Generator().manual_seed(1)
    x, w, s = (
        torch.randn(2, 4, 5, 5, generator=g),
        torch.randn(3, 4, 3, 3, generator=g),
        torch.randn(2, 4, generator=g),
    )
    out = modulated_conv2d(x, w, s, demodulate=False, up=2)
    for b in range(2):
        xu = torch.zeros(1, 4, 10, 10)
        xu[..., ::2, ::2] = x[b : b + 1] * s[b].reshape(1, 4, 1, 1)
        ref = F.conv2d(F.pad(xu, [2, 1, 2, 1]), w.flip([-2, -1]))
        assert torch.allclose(out[b : b + 1], ref, atol=1e-5)


def test_minibatch_stddev_matches_definition():
    x = torch.randn(8, 6, 4, 4)
    out = minibatch_stddev(x, group_size=4)
    assert out.shape == (8, 7, 4, 4)
    for n in range(8):
        m = n % 2
        group = x[[m, m + 2, m + 4, m + 6]]
        stat = (group.var(0, unbiased=False) + 1e-8).sqrt().mean()
        assert torch.allclose(out[n, -1], stat.expand(4, 4), atol=1e-6)
    assert minibatch_stddev(torch.randn(3, 6, 4, 4)).shape == (3, 7, 4, 4)  # non-divisible batch works


def test_haar_fast_equals_upfirdn_reference_and_inverts():
    x = torch.randn(2, 3, 8, 8)
    dwt, iwt = HaarTransform(), InverseHaarTransform()
    y = dwt(x)
    assert y.shape == (2, 12, 4, 4)
    assert torch.allclose(y, dwt_reference(x), atol=1e-6)
    ll = 0.5 * (x[..., ::2, ::2] + x[..., 1::2, ::2] + x[..., ::2, 1::2] + x[..., 1::2, 1::2])
    assert torch.allclose(y[:, :3], ll, atol=1e-6)
    c = torch.randn(2, 12, 4, 4)
    assert torch.allclose(iwt(c), iwt_reference(c), atol=1e-6)
    assert torch.allclose(iwt(y), x, atol=1e-5)


# ------------------------------------------------------------------------------------------------
# Generator / Discriminator
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("resolution", [8, 32])
def test_shapes(arch, resolution):
    G, D = tiny_g(arch, resolution), tiny_d(arch, resolution)
    z = torch.randn(2, 16)
    ws = G.mapping(z)
    top = resolution // 2 if arch == "swagan" else resolution
    assert G.num_ws == 2 * int(torch.log2(torch.tensor(top))) - 2
    assert ws.shape == (2, G.num_ws, 16)
    img = G.synthesis(ws)
    assert img.shape == (2, 3, resolution, resolution)
    assert D(img).shape == (2, 1)
    assert len(G.make_noise()) == len(G.noise_shapes)
    with pytest.raises(ValueError):
        G.synthesis(ws[:, :-1])
    with pytest.raises(ValueError):
        D(img[:, :, :-1])


def test_config_expresses_test_and_full_size_models():
    cfg = GeneratorConfig(resolution=32, channel_base=512, channel_max=16)
    assert set(cfg.channels_per_resolution().values()) == {16}
    full = GeneratorConfig()  # FFHQ config-f: 1024 px, 512 channels up to 64 px, 18 ws
    assert full.num_ws == 18 and GeneratorConfig(resolution=256).num_ws == 14
    assert full.channels_per_resolution() == {
        4: 512,
        8: 512,
        16: 512,
        32: 512,
        64: 512,
        128: 256,
        256: 128,
        512: 64,
        1024: 32,
    }
    assert GeneratorConfig(channel_multiplier=2).channels_per_resolution() == full.channels_per_resolution()
    with torch.device("meta"):
        G = Generator(full)
    assert G.synthesis.b1024.torgb.weight.shape == (3, 32, 1, 1)
    assert 29e6 < sum(p.numel() for p in G.parameters()) < 31e6  # config-f G has ~30.0M parameters
    # channels dict with int keys, JSON round trip through the typed machinery
    cfg = GeneratorConfig(resolution=8, channels={4: 8, 8: 4})
    again = from_dict(GeneratorConfig, json.loads(json.dumps(to_dict(cfg))))
    assert again == cfg and again.channels == {"4": 8, "8": 4}


@pytest.mark.parametrize("arch", ARCHS)
def test_determinism_and_noise_modes(arch):
    G1, G2 = tiny_g(arch, seed=3), tiny_g(arch, seed=3)
    randomise_(G1, 5)
    randomise_(G2, 5)
    z = torch.randn(2, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for mode in ("const", "none"):
            a, b = G1(z, noise_mode=mode), G2(z, noise_mode=mode)
            assert torch.equal(a, b) and torch.equal(a, G1(z, noise_mode=mode))
        torch.manual_seed(7)
        r1 = G1(z, noise_mode="random")
        torch.manual_seed(7)
        r2 = G1(z, noise_mode="random")
        assert torch.equal(r1, r2)
        assert not torch.allclose(r1, G1(z, noise_mode="random"))
        assert not torch.allclose(G1(z, noise_mode="const"), G1(z, noise_mode="none"))
        # explicit noise equal to the buffers == const mode
        buffers = [n.const[None, None] for n in G1.synthesis.noise_layers()]
        assert torch.allclose(G1(z, noise=buffers), G1(z, noise_mode="const"), atol=1e-6)


@pytest.mark.parametrize("arch", ARCHS)
def test_truncation_and_w_avg(arch):
    G = tiny_g(arch)
    z = torch.randn(4, 16)
    G.mapping.w_avg.copy_(torch.randn(16))
    ws0 = G.mapping(z, truncation_psi=0.0)
    assert torch.allclose(ws0, G.mapping.w_avg.expand_as(ws0))
    ws1, ws = G.mapping(z), G.mapping(z, truncation_psi=0.5, truncation_cutoff=2)
    assert torch.allclose(ws[:, 2:], ws1[:, 2:])
    assert torch.allclose(ws[:, :2], G.mapping.w_avg + 0.5 * (ws1[:, :2] - G.mapping.w_avg), atol=1e-6)
    # w_avg tracks the batch mean in training mode only
    before = G.mapping.w_avg.clone()
    G.mapping(z)
    assert torch.equal(before, G.mapping.w_avg)
    G.train()
    G.mapping(z)
    expected = G.mapping.embed(z).mean(0).lerp(before, 0.995)
    assert torch.allclose(G.mapping.w_avg, expected, atol=1e-6)
    m = G.mean_latent(2000, generator=torch.Generator().manual_seed(0))
    assert m.shape == (16,)


def test_mix_equals_manual_mix():
    G = tiny_g("stylegan2")
    ws1, ws2 = G.mapping(torch.randn(3, 16)), G.mapping(torch.randn(3, 16))
    mixed = G.mix(ws1, ws2, 2)
    manual = torch.cat([ws1[:, :2], ws2[:, 2:]], dim=1)
    assert torch.equal(mixed, manual)
    per_sample = G.mix(ws1[:, 0], ws2[:, 0], torch.tensor([1, 2, 3]))
    for b, c in enumerate([1, 2, 3]):
        assert torch.equal(per_sample[b, :c], ws1[b, :c]) and torch.equal(per_sample[b, c:], ws2[b, c:])
    rnd = G.mix(ws1, ws2)
    assert rnd.shape == ws1.shape
    with torch.no_grad():
        assert torch.allclose(G.synthesis(mixed, noise_mode="const"), G.synthesis(manual, noise_mode="const"))


@pytest.mark.parametrize("arch", ARCHS)
def test_save_load_round_trip(arch, tmp_path):
    G, D = tiny_g(arch), tiny_d(arch)
    randomise_(G, 2)
    randomise_(D, 3)
    G.save_pretrained(tmp_path / "g")
    D.save_pretrained(tmp_path / "d")
    G2, D2 = Generator.from_pretrained(tmp_path / "g").eval(), Discriminator.from_pretrained(tmp_path / "d")
    z, x = torch.randn(2, 16), torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(G(z, noise_mode="const"), G2(z, noise_mode="const"))
        assert torch.equal(D(x), D2(x))
    assert G2.config == G.config
    # fixed filters are not part of the state dict
    fixed = ("kernel", "dwt.", "iwt.", "upsample.", "blur.")
    assert not any(f in k for k in [*G.state_dict(), *D.state_dict()] for f in fixed)


def test_effective_state_dict_round_trip():
    G = tiny_g("stylegan2")
    eff = effective_state_dict(G)
    assert torch.allclose(eff["mapping.fc0.weight"], G.mapping.fc0.weight * 0.01 / 4)
    G2 = tiny_g("stylegan2", seed=9)
    load_effective_state_dict(G2, eff)
    for k, v in G.state_dict().items():
        assert torch.allclose(v, G2.state_dict()[k], atol=1e-6), k


@pytest.mark.parametrize("arch", ARCHS)
def test_gradients_flow(arch):
    G, D = tiny_g(arch).train(), tiny_d(arch)
    img = G(torch.randn(2, 16))
    D(img).sum().backward()
    for name, module in (("G", G), ("D", D)):
        for pname, p in module.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), f"{name}.{pname}"
            assert p.grad.abs().sum() > 0, f"{name}.{pname} got a zero gradient"
