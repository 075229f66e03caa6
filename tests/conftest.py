"""Shared test set-up."""

import functools
import os
from pathlib import Path

import pytest
import torch

TESTS = Path(__file__).resolve().parent


@functools.cache
def faces_installed() -> bool:
    """The faces model's generator (random-face) and the MTCNN weights are installed."""
    from tedigan import assets

    try:
        assets.mobilestylegan_ir_dir()
        assets.mtcnn_weights_dir()
        return True
    except assets.MissingWeightsError:
        return False


def fixture_roots() -> list[Path]:
    """Where test fixture files are looked for, in order: ``$TEDIGAN_FIXTURES`` (a folder holding
    ``stylegan_interop/``, ``real_faces/``, ...), the repository's own ``tests/fixtures``, then the shared
    fixtures: ``shared/fixtures`` beside the repository or beside any folder above it (so a worktree
    nested deeper finds them too)."""
    roots = [Path(os.environ["TEDIGAN_FIXTURES"])] if os.environ.get("TEDIGAN_FIXTURES") else []
    roots.append(TESTS / "fixtures")
    roots += [parent / "shared" / "fixtures" for parent in TESTS.parents[1:]]
    return roots


def find_fixtures(folder: str, *files: str) -> Path | None:
    """``<root>/<folder>`` of the first fixture root holding every one of ``files`` in it, else None."""
    for root in fixture_roots():
        if all((root / folder / f).is_file() for f in files):
            return root / folder
    return None


@pytest.fixture(scope="session")
def fixtures_dir():
    """``fixtures_dir(folder, *files)``: the fixture folder ``folder`` (``"stylegan_interop"``,
    ``"real_faces"``) of the first root in ``fixture_roots()`` holding all of ``files``; the calling test
    skips, naming the files, where no root holds them."""

    def get(folder: str, *files: str) -> Path:
        found = find_fixtures(folder, *files)
        if found is None:
            pytest.skip(
                f"fixtures {folder}/{{{', '.join(files)}}} not found (set TEDIGAN_FIXTURES to the folder "
                f"holding {folder}/; the shared fixtures live in <repo>/../shared/fixtures)"
            )
        return found

    return get


def pytest_runtest_setup(item):
    if item.get_closest_marker("needs_faces") and not faces_installed():
        pytest.skip("random-face or MTCNN weights not installed (bash scripts/install.sh installs them)")


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


@pytest.fixture(scope="session")
def tiny_pipe(tiny_generator):
    """A tiny TediGANPipeline (16 px generator, num_ws 6; tiny image/sketch/label encoders; the real offline
    MiniLM under a small head; a two-value hair-colour classifier; a layer map sending hair to W+ 4-5; the
    avatar vocabulary)."""
    from tedigan.data import builtin_vocabulary
    from tedigan.editing.layer_analysis import LayerMap, layer_groups
    from tedigan.models.classifier import AttributeClassifier, ClassifierConfig
    from tedigan.models.encoder import Encoder
    from tedigan.models.text_encoder import TextEncoder
    from tedigan.pipeline import TediGANPipeline

    res, enc = 16, {"channel_base": 128, "channel_max": 16, "fpn_channels": 16, "head_dim": 32}
    G = tiny_generator(res)
    torch.manual_seed(0)
    E = Encoder.from_generator(G, **enc)
    S = Encoder.from_generator(G, modality="sketch", **enc)
    L = Encoder.from_generator(G, modality="label", in_channels=11, **enc)
    T = TextEncoder.from_generator(G, hidden_dim=32, depth=1, max_length=16)
    C = AttributeClassifier(
        ClassifierConfig(resolution=res, widths=[4, 8], heads={"hair_color": ["black", "blond"]})
    )
    groups = layer_groups(G.num_ws)
    zeros = [[0.0] * len(groups)]
    layer_map = LayerMap(
        attributes=["hair_color"],
        groups=groups,
        follow_rate=zeros,
        change_rate=zeros,
        support={"hair_color": 10},
        layers={"hair_color": [4, 5]},
        num_ws=G.num_ws,
    )
    vocab = builtin_vocabulary("avatars")
    return TediGANPipeline(G, E, T, S, L, C, layer_map, vocabulary=vocab)


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_pipe, tmp_path_factory):
    """``tiny_pipe`` saved as a pipeline folder (treat as read-only: copy it before damaging it)."""
    return tiny_pipe.save_pretrained(tmp_path_factory.mktemp("pipe") / "model")
