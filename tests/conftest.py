"""Shared test set-up."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _single_thread():
    """Tiny networks gain nothing from extra threads; on a shared 2-core machine they only fight other jobs."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_generator():
    """Factory for a tiny seeded generator (eval mode, frozen) with its ``w_avg`` set from ``w_avg_samples``
    mapped codes; ``noise_strength`` fills every noise layer's learned strength (0 at initialisation)."""
    from tedigan.models.stylegan2 import Generator, GeneratorConfig

    def build(resolution: int = 16, w_avg_samples: int = 512, noise_strength: float | None = None):
        torch.manual_seed(0)
        cfg = GeneratorConfig(
            resolution=resolution, z_dim=16, w_dim=16, n_mlp=2, channel_base=8 * resolution, channel_max=8
        )
        g = Generator(cfg)
        with torch.no_grad():
            g.mapping.w_avg.copy_(g.mean_latent(w_avg_samples, generator=torch.Generator().manual_seed(1)))
            if noise_strength is not None:
                for n in g.synthesis.noise_layers():
                    n.strength.fill_(noise_strength)
        return g.eval().requires_grad_(False)

    return build
