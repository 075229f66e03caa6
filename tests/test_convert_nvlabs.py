"""NVlabs stylegan2-ada-pytorch ``.pkl`` reading: restricted unpickling and numerical equivalence."""

from __future__ import annotations

import builtins
import io
import json
import os
import pickle
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

from tedigan.convert import nvlabs
from tedigan.convert.nvlabs import (
    InertObject,
    PersistentObject,
    UnsafePickleError,
    read_nvlabs_pickle,
    restricted_load,
)

FILES = ("nvlabs_ada_32.pkl", "nvlabs_ada_32_ref.pt", "nvlabs_ada_32.json")


@pytest.fixture(scope="module")
def nv(fixtures_dir) -> tuple[Path, Path, Path]:
    """The NVlabs fixture (pickle, reference tensors, spec json) from ``stylegan_interop``."""
    folder = fixtures_dir("stylegan_interop", *FILES)
    return tuple(folder / f for f in FILES)


# ---------------------------------------------------------------------------------------------------------------
# Crafted pickles


def _fake_module(monkeypatch: pytest.MonkeyPatch, name: str, **attrs) -> types.ModuleType:
    """Register a throw-away module so that ``pickle.dumps`` can name objects as if they lived there."""
    mod = types.ModuleType(name)
    for key, value in attrs.items():
        if hasattr(value, "__module__"):
            value.__module__ = name
            value.__qualname__ = key
        setattr(mod, key, value)
    monkeypatch.setitem(sys.modules, name, mod)
    parent, _, child = name.rpartition(".")
    if parent:
        pkg = sys.modules.get(parent) or _fake_module(monkeypatch, parent)
        monkeypatch.setattr(pkg, child, mod, raising=False)
    return mod


class _Payload:
    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _malicious_pickles(marker: Path) -> dict[str, bytes]:
    code = f"open({str(marker)!r}, 'w').write('pwned')"
    payloads = {
        "os.system": _Payload(os.system, (f"touch {marker}",)),
        "builtins.exec": _Payload(builtins.exec, (code,)),
        "builtins.eval": _Payload(builtins.eval, (code,)),
        "builtins.open": _Payload(builtins.open, (str(marker), "w")),
        "subprocess.call": _Payload(subprocess.call, (["touch", str(marker)],)),
        "builtins.getattr": _Payload(getattr, ("x", "upper")),
        "builtins.__import__": _Payload(builtins.__import__, ("os",)),
    }
    out = {name: pickle.dumps({"G": p}, protocol=4) for name, p in payloads.items()}
    # Hidden deep inside an otherwise ordinary structure, and with an old protocol.
    out["nested"] = pickle.dumps({"G": {"x": [torch.zeros(2), (1, payloads["os.system"])]}}, protocol=2)
    out["protocol0"] = pickle.dumps(payloads["builtins.exec"], protocol=0)
    return out


def test_malicious_reduce_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "marker"
    for name, data in _malicious_pickles(marker).items():
        with pytest.raises(UnsafePickleError, match="refusing to call"):
            restricted_load(io.BytesIO(data))
        assert not marker.exists(), f"{name}: the payload ran"
        path = tmp_path / f"{name}.pkl"
        path.write_bytes(data)
        with pytest.raises(UnsafePickleError):
            read_nvlabs_pickle(path)
        assert not marker.exists(), f"{name}: the payload ran"


def test_persistent_object_with_unknown_classes_is_inert(tmp_path, monkeypatch):
    """A persistence-style pickle naming unknown modules/classes and carrying hostile source loads inertly."""
    marker = tmp_path / "marker"

    def _reconstruct_persistent_obj(meta):  # stands in for torch_utils.persistence's; never called on load
        raise AssertionError("called")

    class Layer:  # a non-persistent module class from a package we do not have
        def __init__(self):
            raise AssertionError("called")

    _fake_module(
        monkeypatch, "torch_utils.persistence", _reconstruct_persistent_obj=_reconstruct_persistent_obj
    )
    _fake_module(monkeypatch, "evilpkg.layers", Layer=Layer)

    layer = object.__new__(Layer)
    weight = torch.randn(3, 2)
    layer.__dict__.update(_parameters={"weight": weight, "bias": None}, _buffers={}, _modules={})
    src = f"import os\nopen({str(marker)!r}, 'w').write('pwned')\nos.system('touch {marker}')\n"
    meta = {
        "type": "class",
        "version": 6,
        "module_src": src,
        "class_name": "Generator",
        "state": {
            "training": False,
            "_parameters": {"const": torch.arange(4.0)},
            "_buffers": {"w_avg": torch.ones(2), "tmp": torch.zeros(1)},
            "_non_persistent_buffers_set": {"tmp"},
            "_modules": {"fc": layer, "empty": None},
            "_init_args": (),
            "_init_kwargs": {"z_dim": 2, "mapping_kwargs": {"num_layers": 1}},
        },
    }
    data = pickle.dumps({"G": _Payload(_reconstruct_persistent_obj, (meta,)), "D": None}, protocol=4)
    for name in ("torch_utils.persistence", "torch_utils", "evilpkg.layers", "evilpkg"):
        monkeypatch.delitem(sys.modules, name, raising=False)

    obj = restricted_load(io.BytesIO(data))
    g = obj["G"]
    assert isinstance(g, PersistentObject) and g.class_name == "Generator" and g.module_src == src
    fc = g.state["_modules"]["fc"]
    assert isinstance(fc, InertObject) and fc.qualname == "evilpkg.layers.Layer"

    path = tmp_path / "inert.pkl"
    path.write_bytes(data)
    nets = read_nvlabs_pickle(path)
    assert set(nets) == {"G"}
    net = nets["G"]
    assert net.class_name == "Generator"
    assert net.init_kwargs == {"z_dim": 2, "mapping_kwargs": {"num_layers": 1}}
    assert sorted(net.state_dict) == ["const", "fc.weight", "w_avg"]
    assert torch.equal(net.state_dict["fc.weight"], weight)
    assert not marker.exists()
    assert "evilpkg.layers" not in sys.modules and "torch_utils.persistence" not in sys.modules


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_plain_torch_modules_round_trip(protocol):
    """Ordinary pickled nn.Modules (protocols 0-5) are read inertly with exact tensors."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2), torch.nn.Conv2d(2, 4, 3))
    net[0].weight.data = net[0].weight.data.t().contiguous().t()  # non-contiguous strides
    obj = restricted_load(io.BytesIO(pickle.dumps(net, protocol=protocol)))
    assert isinstance(obj, InertObject)
    got = nvlabs.network_from_object("net", obj).state_dict
    ref = net.state_dict()
    assert list(got) == list(ref)
    for k, v in ref.items():
        assert got[k].dtype == v.dtype and torch.equal(got[k], v), k


def test_numpy_values_and_inner_storage_globals():
    import numpy as np

    data = pickle.dumps(
        {"a": np.float64(0.125), "b": np.arange(6, dtype=np.float32).reshape(2, 3)}, protocol=4
    )
    out = restricted_load(io.BytesIO(data))
    assert float(out["a"]) == 0.125
    assert np.array_equal(out["b"], np.arange(6, dtype=np.float32).reshape(2, 3))
    with pytest.raises(UnsafePickleError):
        restricted_load(io.BytesIO(pickle.dumps(np.array([object()], dtype=object), protocol=4)))
    # A storage payload that names anything but a storage type is refused.
    bad = pickle.dumps(
        _Payload(nvlabs._load_storage_from_bytes, (b"\x80\x02cos\nsystem\nq\x00.",)), protocol=2
    )
    bad = bad.replace(b"tedigan.convert.nvlabs", b"torch.storage").replace(
        b"_load_storage_from_bytes", b"_load_from_bytes"
    )
    with pytest.raises(UnsafePickleError):
        restricted_load(io.BytesIO(bad))


# ---------------------------------------------------------------------------------------------------------------
# The NVlabs fixture


def _reference_outputs(G, D, ref: dict) -> dict[str, torch.Tensor]:
    """The json's reference calls, in tedigan's API (G = converted G_ema, D = converted D, eval mode)."""
    out = {}
    with torch.no_grad():
        out["ws"] = ws = G.mapping(ref["z"], truncation_psi=1)
        out["img"] = G.synthesis(ws, noise_mode="const")
        out["ws_psi07"] = G.mapping(ref["z"], truncation_psi=0.7)
        out["img_psi07"] = G.synthesis(out["ws_psi07"], noise_mode="const")
        out["d_img"] = D(out["img"])
        out["img_full_call"] = G(ref["z"], truncation_psi=1, noise_mode="const")
        out["img_noise_none"] = G.synthesis(ws, noise_mode="none")
        out["img_unfused"] = G.synthesis(ws, noise_mode="const", fused_modconv=False)
        out["ws2"] = G.mapping(ref["z2"], truncation_psi=1)
        out["ws_mix"] = ws_mix = ws.clone()
        ws_mix[:, 3:] = out["ws2"][:, 3:]
        out["img_mix"] = G.synthesis(ws_mix, noise_mode="const")
        out["d_real"] = D(ref["x_real"])
    return out


def _assert_matches(out: dict[str, torch.Tensor], ref: dict[str, torch.Tensor]) -> None:
    for key, value in out.items():
        assert value.shape == ref[key].shape, key
        err = (value - ref[key]).abs().max().item()
        assert err <= 1e-4 * max(1.0, ref[key].abs().max().item()), f"{key}: max abs diff {err:.3g}"


def test_fixture_networks_are_read_exactly(nv):
    pkl, _, spec_file = nv
    spec = json.loads(spec_file.read_text())
    nets = read_nvlabs_pickle(pkl)
    assert set(nets) == {"G", "D", "G_ema"}
    for name in ("G", "G_ema"):
        net = nets[name]
        assert net.class_name == "Generator"
        assert net.init_kwargs == spec["generator_kwargs"]
        assert {k: list(v.shape) for k, v in net.state_dict.items()} == spec["generator_state_dict"]
    assert nets["D"].class_name == "Discriminator"
    assert nets["D"].init_kwargs == spec["discriminator_kwargs"]
    assert {k: list(v.shape) for k, v in nets["D"].state_dict.items()} == spec["discriminator_state_dict"]
    for key, value in nets["G"].state_dict.items():
        assert torch.equal(value, nets["G_ema"].state_dict[key]), key


def test_fixture_reproduces_references(nv, tmp_path):
    from tedigan.commands import main as tedigan_main
    from tedigan.models.stylegan2 import Discriminator, Generator

    pkl, ref_file, _ = nv
    ref = torch.load(ref_file, map_location="cpu", weights_only=True)
    G, D = nvlabs.load_nvlabs(pkl)
    assert not G.training and not D.training
    assert G.num_ws == ref["ws"].shape[1]
    _assert_matches(_reference_outputs(G, D, ref), ref)

    # the command -> safetensors folders -> from_pretrained gives the same networks.
    assert tedigan_main(["convert", "nvlabs", str(pkl), "--out", str(tmp_path)]) == 0
    G2 = Generator.from_pretrained(tmp_path / "generator").eval()
    D2 = Discriminator.from_pretrained(tmp_path / "discriminator").eval()
    for a, b in ((G, G2), (D, D2)):
        assert a.config == b.config
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    with torch.no_grad():
        img = G2.synthesis(ref["ws"], noise_mode="const")
        _assert_matches({"img": img, "d_real": D2(ref["x_real"])}, ref)


def test_unsupported_nvlabs_options_are_named(nv):
    pkl = nv[0]
    nets = read_nvlabs_pickle(pkl)
    g, d = nets["G_ema"], nets["D"]
    cases = [
        (g, {"c_dim": 10}, "conditional"),
        (g, {"synthesis_kwargs": {"architecture": "resnet"}}, "architecture"),
        (g, {"mapping_kwargs": {"num_layers": 2, "layer_features": 32}}, "layer_features"),
        (d, {"architecture": "skip"}, "architecture"),
        (d, {"c_dim": 3}, "conditional"),
    ]
    for net, change, match in cases:
        bad = nvlabs.NVNetwork(net.name, net.class_name, {**net.init_kwargs, **change}, net.state_dict)
        convert = (
            nvlabs.nvlabs_generator_config
            if net.class_name == "Generator"
            else nvlabs.nvlabs_discriminator_config
        )
        with pytest.raises(NotImplementedError, match=match):
            convert(bad)
    with pytest.warns(UserWarning, match="conv_clamp"):
        nvlabs.nvlabs_generator_config(
            nvlabs.NVNetwork(
                g.name, g.class_name, {**g.init_kwargs, "synthesis_kwargs": {"conv_clamp": 256}}, g.state_dict
            )
        )


def test_generator_without_noise_or_discriminator(nv):
    """use_noise=False (no noise tensors) loads as zero noise strength; a pickle without D gives D=None."""
    pkl, ref_file, _ = nv
    nets = read_nvlabs_pickle(pkl)
    g = nets["G_ema"]
    kwargs = {**g.init_kwargs, "synthesis_kwargs": {**g.init_kwargs["synthesis_kwargs"], "use_noise": False}}
    sd = {k: v for k, v in g.state_dict.items() if "noise_" not in k}
    G, D = nvlabs.build_models({"G": nvlabs.NVNetwork("G", "Generator", kwargs, sd)}, generator="G")
    assert D is None
    ref = torch.load(ref_file, map_location="cpu", weights_only=True)
    with torch.no_grad():
        img = G.synthesis(ref["ws"], noise_mode="const")
    _assert_matches({"img_noise_none": img}, ref)
