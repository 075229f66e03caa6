"""rosinality/stylegan2-pytorch checkpoints: the shared fixtures must reproduce every reference tensor.

Fixtures live in ``stylegan_interop`` under a fixture root (``TEDIGAN_FIXTURES``, the repository's own
``tests/fixtures``, then ``<repo>/../shared/fixtures``; see ``conftest.fixture_roots``). Every call listed
under ``reference_calls`` in the fixture json is reproduced here with our API and compared to the stored
reference (max abs diff <= 1e-4).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from tedigan.commands import main
from tedigan.convert.rosinality import kernel_1d_from_2d, load_rosinality
from tedigan.models.stylegan2 import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig

NAMES = ["rosinality_sg2_32", "rosinality_swagan_32"]
TOL = 1e-4


def _fixture(fixtures_dir, name: str) -> tuple[Path, Path, dict]:
    files = (f"{name}.pt", f"{name}_ref.pt", f"{name}.json")
    folder = fixtures_dir("stylegan_interop", *files)
    ckpt, ref, meta = (folder / f for f in files)
    return ckpt, ref, json.loads(meta.read_text())


@torch.no_grad()
def reproduce(G: Generator, D: Discriminator, ref: dict) -> dict[str, torch.Tensor]:
    """Our equivalent of every upstream reference call (see the fixture json ``reference_calls``)."""
    z, z2, noise = ref["z"], ref["z2"], ref["noise"]
    ws, ws2 = G.mapping(z), G.mapping(z2)
    mix = G.mix(ws, ws2, 3)  # upstream inject_index=3
    return {
        "w": ws[:, 0],  # G.style(z)
        "w2": ws2[:, 0],
        "img_z": G(z, noise=noise),
        "img_w": G.synthesis(ws, noise=noise),  # input_is_latent=True
        "img_mix": G.synthesis(mix, noise=noise),
        "latent_mix": mix,
        "img_trunc": G(z, truncation_psi=0.7, noise=noise),  # truncation_latent = checkpoint latent_avg
        "img_buffer_noise": G(z, noise_mode="const"),  # randomize_noise=False -> noise buffers
        "d_img_z": D(ref["img_z"]),
        "d_real": D(ref["x_real"]),
    }


@pytest.fixture(scope="module", params=NAMES)
def loaded(request, fixtures_dir):
    ckpt, ref_path, meta = _fixture(fixtures_dir, request.param)
    G, D, latent_avg = load_rosinality(ckpt)
    ref = torch.load(ref_path, map_location="cpu", weights_only=True)
    return request.param, G, D, latent_avg, ref, meta


def test_architecture_derived_from_tensors(loaded):
    name, G, D, latent_avg, ref, meta = loaded
    args = meta["generator_args"]
    assert G.config.resolution == args["size"] == D.config.resolution
    assert G.config.z_dim == G.config.w_dim == args["style_dim"]
    assert G.config.n_mlp == args["n_mlp"]
    assert G.config.arch == ("swagan" if "swagan" in name else "stylegan2")
    assert G.num_ws == meta["derived"]["n_latent (W+ entries)"]
    assert [list(s) for s in G.noise_shapes] == meta["derived"]["noise_shapes"]
    table = {str(k): v for k, v in meta["generator_channels"].items()}
    assert all(table[r] == c for r, c in G.config.channels.items())
    assert torch.equal(latent_avg, ref["latent_avg"]) and torch.equal(G.mapping.w_avg, ref["latent_avg"])


def test_reference_tensors(loaded):
    name, G, D, _, ref, meta = loaded
    ours = reproduce(G, D, ref)
    missing = set(meta["reference_calls"]) - set(ours)
    assert not missing, f"reference calls not reproduced: {missing}"
    report = {}
    for key in meta["reference_calls"]:
        assert ours[key].shape == ref[key].shape, key
        report[key] = (ours[key] - ref[key]).abs().max().item()
    print(f"\n{name} max abs diff: " + ", ".join(f"{k}={v:.2e}" for k, v in report.items()))
    bad = {k: v for k, v in report.items() if not v <= TOL}
    assert not bad, f"{name}: exceeds {TOL}: {bad}"


def test_unfused_modconv_path_matches(loaded):
    _, G, _, _, ref, _ = loaded
    with torch.no_grad():
        img = G(ref["z"], noise=ref["noise"], fused_modconv=False)
    assert (img - ref["img_z"]).abs().max() <= TOL


def test_cli_writes_loadable_folders(fixtures_dir, tmp_path):
    ckpt, ref_path, _ = _fixture(fixtures_dir, "rosinality_sg2_32")
    assert main(["convert", "rosinality", str(ckpt), "--out", str(tmp_path)]) == 0
    G = Generator.from_pretrained(tmp_path / "generator").eval()
    D = Discriminator.from_pretrained(tmp_path / "discriminator").eval()
    ref = torch.load(ref_path, weights_only=True)
    with torch.no_grad():
        assert (G(ref["z"], noise=ref["noise"]) - ref["img_z"]).abs().max() <= TOL
        assert (D(ref["x_real"]) - ref["d_real"]).abs().max() <= TOL
    meta = json.loads((tmp_path / "generator" / "config.json").read_text())
    assert meta["_class_name"] == "Generator" and meta["_extra"]["source"] == "rosinality"


# ------------------------------------------------------------------------------------------------
# Other sizes go through the same path: export our own model to rosinality names and load it back.
# ------------------------------------------------------------------------------------------------


def _fir(blur, gain):
    a = torch.tensor(blur)
    k = torch.outer(a, a)
    return k / k.sum() * gain


def export_rosinality(G: Generator, D: Discriminator) -> dict:
    """Test-only inverse of the converter's name table (StyleGAN2 generator + residual discriminator)."""
    c = G.config
    sd, g = G.state_dict(), {}
    for i in range(c.n_mlp):
        g[f"style.{i + 1}.weight"], g[f"style.{i + 1}.bias"] = (
            sd[f"mapping.fc{i}.weight"],
            sd[f"mapping.fc{i}.bias"],
        )
    g["input.input"] = sd["synthesis.input.weight"][None]

    def styled(src, dst, up):
        g[f"{dst}.conv.weight"] = sd[f"{src}.weight"][None]
        g[f"{dst}.conv.modulation.weight"] = sd[f"{src}.affine.weight"]
        g[f"{dst}.conv.modulation.bias"] = sd[f"{src}.affine.bias"]
        g[f"{dst}.noise.weight"] = sd[f"{src}.noise.strength"].reshape(1)
        g[f"{dst}.activate.bias"] = sd[f"{src}.bias"]
        if up:
            g[f"{dst}.conv.blur.kernel"] = _fir(c.blur_kernel, 4)

    def rgb(src, dst, up):
        g[f"{dst}.conv.weight"] = sd[f"{src}.weight"][None]
        g[f"{dst}.conv.modulation.weight"] = sd[f"{src}.affine.weight"]
        g[f"{dst}.conv.modulation.bias"] = sd[f"{src}.affine.bias"]
        g[f"{dst}.bias"] = sd[f"{src}.bias"].reshape(1, -1, 1, 1)
        if up:
            g[f"{dst}.upsample.kernel"] = _fir(c.blur_kernel, 4)

    styled("synthesis.b4.conv1", "conv1", False)
    rgb("synthesis.b4.torgb", "to_rgb1", False)
    noises = [sd["synthesis.b4.conv1.noise.const"]]
    for k, r in enumerate(c.feature_resolutions[1:]):
        styled(f"synthesis.b{r}.conv0", f"convs.{2 * k}", True)
        styled(f"synthesis.b{r}.conv1", f"convs.{2 * k + 1}", False)
        rgb(f"synthesis.b{r}.torgb", f"to_rgbs.{k}", True)
        noises += [sd[f"synthesis.b{r}.conv0.noise.const"], sd[f"synthesis.b{r}.conv1.noise.const"]]
    for j, n in enumerate(noises):
        g[f"noises.noise_{j}"] = n[None, None]

    dsd, d = D.state_dict(), {}
    top = D.config.resolution
    d["convs.0.0.weight"], d["convs.0.1.bias"] = dsd[f"b{top}.fromrgb.weight"], dsd[f"b{top}.fromrgb.bias"]
    for k, r in enumerate([r for r in D.config.feature_resolutions if r > 4], start=1):
        d[f"convs.{k}.conv1.0.weight"], d[f"convs.{k}.conv1.1.bias"] = (
            dsd[f"b{r}.conv0.weight"],
            dsd[f"b{r}.conv0.bias"],
        )
        d[f"convs.{k}.conv2.0.kernel"] = _fir(D.config.blur_kernel, 1)
        d[f"convs.{k}.conv2.1.weight"], d[f"convs.{k}.conv2.2.bias"] = (
            dsd[f"b{r}.conv1.weight"],
            dsd[f"b{r}.conv1.bias"],
        )
        d[f"convs.{k}.skip.0.kernel"] = _fir(D.config.blur_kernel, 1)
        d[f"convs.{k}.skip.1.weight"] = dsd[f"b{r}.skip.weight"]
    d["final_conv.0.weight"], d["final_conv.1.bias"] = dsd["b4.conv.weight"], dsd["b4.conv.bias"]
    d["final_linear.0.weight"], d["final_linear.0.bias"] = dsd["b4.fc.weight"], dsd["b4.fc.bias"]
    d["final_linear.1.weight"], d["final_linear.1.bias"] = dsd["b4.out.weight"], dsd["b4.out.bias"]
    return {"g_ema": g, "g": g, "d": d, "latent_avg": sd["mapping.w_avg"].clone()}


def _randomised_pair():
    torch.manual_seed(0)
    blur = [1.0, 2.0, 1.0]  # non-default FIR kernel: must be recovered from the buffers
    G = Generator(
        GeneratorConfig(
            resolution=16, z_dim=12, w_dim=12, n_mlp=3, channels={4: 24, 8: 16, 16: 8}, blur_kernel=blur
        )
    ).eval()
    D = Discriminator(
        DiscriminatorConfig(resolution=16, channels={16: 8, 8: 12, 4: 20}, blur_kernel=blur)
    ).eval()
    with torch.no_grad():
        for p in [*G.parameters(), *D.parameters()]:
            p.add_(0.2 * torch.randn_like(p))
        G.mapping.w_avg.normal_()
    return G, D


def test_other_sizes_and_widths_round_trip(tmp_path):
    G, D = _randomised_pair()
    ckpt = export_rosinality(G, D)
    # a training checkpoint also carries optimiser states and an argparse Namespace
    ckpt.update(args=argparse.Namespace(size=16, channel_multiplier=2), g_optim={"state": {}}, ada_aug_p=0.0)
    torch.save(ckpt, tmp_path / "train.pt")
    G2, D2, latent_avg = load_rosinality(tmp_path / "train.pt")
    assert G2.config.channels == {"4": 24, "8": 16, "16": 8} and G2.config.blur_kernel == [1.0, 2.0, 1.0]
    assert D2.config.channels == {"16": 8, "8": 12, "4": 20} and G2.config.n_mlp == 3
    assert torch.equal(latent_avg, G.mapping.w_avg)
    z, x = torch.randn(3, 12), torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(
            G(z, truncation_psi=0.6, noise_mode="const"), G2(z, truncation_psi=0.6, noise_mode="const")
        )
        assert torch.equal(D(x), D2(x))


def test_missing_latent_avg_and_bad_tensors():
    G, D = _randomised_pair()
    ckpt = export_rosinality(G, D)
    del ckpt["latent_avg"], ckpt["d"]
    G2, D2, latent_avg = load_rosinality(ckpt, mean_latent_samples=500)
    assert latent_avg is None and D2 is None
    G3, D3, _ = load_rosinality(dict(ckpt["g_ema"]), mean_latent_samples=500)  # bare generator state dict
    assert D3 is None and torch.equal(G3.synthesis.input.weight, G.synthesis.input.weight)
    assert torch.allclose(G2.mapping.w_avg, G2.mean_latent(500, generator=torch.Generator().manual_seed(0)))
    bad = export_rosinality(G, D)
    bad["g_ema"] = {**bad["g_ema"], "mystery.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match="unrecognised"):
        load_rosinality(bad)
    bad = export_rosinality(G, D)
    bad["d"] = {**bad["d"], "convs.1.skip.0.kernel": torch.ones(3, 3)}
    with pytest.raises(ValueError, match="fixed buffer"):
        load_rosinality(bad)


def test_kernel_recovery():
    for taps in ([1.0, 3.0, 3.0, 1.0], [1.0, 2.0, 1.0], [1.0, 1.0]):
        assert kernel_1d_from_2d(_fir(taps, 4)) == taps
    with pytest.raises(ValueError):
        kernel_1d_from_2d(torch.eye(3))
