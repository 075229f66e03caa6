"""The projected discriminator: frozen AlexNet trunk and random projections as buffers, trained heads only,
save/load round trip, the generator stage trains against it, and it learns to separate a tiny real/fake set."""

from __future__ import annotations

import json

import pytest
import torch

from tedigan import assets
from tedigan.models.projected import ProjectedDiscriminator, ProjectedDiscriminatorConfig, load_discriminator
from tedigan.models.stylegan2 import Discriminator, DiscriminatorConfig

SMALL = dict(resolution=16, feature_resolution=64, projection_channels=[8, 16, 32], head_max_channels=16)


def _small(**kw) -> ProjectedDiscriminator:
    return ProjectedDiscriminator(ProjectedDiscriminatorConfig(**{**SMALL, **kw}))


def test_only_the_heads_are_parameters_and_the_trunk_is_alexnet():
    torch.manual_seed(0)
    D = _small()
    names = [n for n, _ in D.named_parameters()]
    assert names and all(n.startswith("heads.") for n in names)
    trunk = assets.lpips_backbone_state_dict("alex")
    assert torch.equal(D.trunk0_weight, trunk["0.weight"].float())
    maps = D.features(torch.zeros(2, 3, 16, 16))
    assert [tuple(m.shape) for m in maps] == [(2, 8, 15, 15), (2, 16, 7, 7), (2, 32, 3, 3)]
    frozen = {k: v.clone() for k, v in D.named_buffers() if k.startswith(("trunk", "ccm", "csm"))}
    opt = torch.optim.Adam(D.parameters(), lr=0.1)
    D(torch.rand(4, 3, 16, 16) * 2 - 1).sum().backward()
    opt.step()
    assert all(torch.equal(v, dict(D.named_buffers())[k]) for k, v in frozen.items())


def test_projections_come_from_the_seed():
    a, b, c = _small(seed=0), _small(seed=0), _small(seed=1)
    assert torch.equal(a.ccm1, b.ccm1) and torch.equal(a.csm2, b.csm2)
    assert not torch.equal(a.ccm1, c.ccm1)


def test_save_load_round_trip_and_load_discriminator(tmp_path):
    torch.manual_seed(0)
    D = _small().eval()
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    D.save_pretrained(tmp_path / "proj")
    assert (
        json.loads((tmp_path / "proj" / "config.json").read_text())["_class_name"] == "ProjectedDiscriminator"
    )
    loaded = load_discriminator(tmp_path / "proj").eval()
    assert isinstance(loaded, ProjectedDiscriminator)
    with torch.no_grad():
        assert torch.equal(D(x), loaded(x))
    Discriminator(DiscriminatorConfig(resolution=16, channel_base=64, channel_max=8)).save_pretrained(
        tmp_path / "res"
    )
    assert type(load_discriminator(tmp_path / "res")) is Discriminator


def test_config_and_input_checks():
    with pytest.raises(ValueError, match="projection_channels"):
        ProjectedDiscriminatorConfig(projection_channels=[8, 16])
    with pytest.raises(ValueError, match="feature_resolution"):
        ProjectedDiscriminatorConfig(feature_resolution=32)
    with pytest.raises(ValueError, match="expects"):
        _small()(torch.zeros(2, 3, 32, 32))


def test_heads_learn_to_separate_a_tiny_set():
    """Overfit: logistic loss on 4 fixed 'reals' (smooth blobs) against 4 fixed 'fakes' (noise) goes down."""
    torch.manual_seed(0)
    D = _small()
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 16), torch.linspace(-1, 1, 16), indexing="ij")
    reals = torch.stack([torch.stack([xx * s, yy * s, xx * yy]) for s in (0.4, 0.6, 0.8, 1.0)])
    fakes = torch.rand(4, 3, 16, 16) * 2 - 1
    opt = torch.optim.Adam(D.parameters(), lr=2e-3, betas=(0.0, 0.99))
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.softplus(-D(reals)).mean() + torch.nn.functional.softplus(D(fakes)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
