"""The backbone benchmark runs the generator stage's own step (GanStep) and reports every row; the reference
side-by-side changes nothing of the reference code but its channel tables, and maps weights both ways."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _bench(name: str = "bench_backbone"):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_backbone_benchmark_times_the_stage_step(tmp_path, monkeypatch):
    bench = _bench()
    from tedigan.training.generator import GanStep

    calls = []
    for phase in ("d_main", "d_r1", "g_main", "g_pl"):
        real = getattr(GanStep, phase)
        monkeypatch.setattr(
            GanStep, phase, lambda self, *a, _real=real, _name=phase: calls.append(_name) or _real(self, *a)
        )
    argv = ["--config", str(ROOT / "configs" / "generator_tiny.yaml"), "--batch", "2", "--iters", "1"]
    argv += ["--warmup", "0", "--repeats", "1", "--archs", "stylegan2", "--peak-seconds", "0.02"]
    result = bench.main([*argv, "--json", str(tmp_path / "out.json")])
    assert set(calls) == {"d_main", "d_r1", "g_main", "g_pl"}
    rows = result["results"]["stylegan2"]
    assert set(bench.FUNCTIONS) <= set(rows) and result["weights_finite"]["stylegan2"]
    assert (tmp_path / "out.json").is_file()


REFERENCE_LIKE = """
class Generator:
    def __init__(self):
        self.channels = {4: 512, 8: 512}
        other = {4: 1}
        self.other = other


class Discriminator:
    def __init__(self):
        channels = {4: 512, 8: 256}
        self.seen = channels


class Mapping:
    def __init__(self):
        self.channels = {4: 512}
"""


def test_reference_bench_replaces_only_the_two_channel_tables():
    ref = _bench("bench_reference")
    hook = ref._TableHook()
    tree = ast.fix_missing_locations(hook.visit(ast.parse(REFERENCE_LIKE)))
    ns = {"_bench_channels": lambda native: {**native, 4: 7}}
    exec(compile(tree, "<reference>", "exec"), ns)
    assert hook.hooked == ["Generator", "Discriminator"]
    g, d = ns["Generator"](), ns["Discriminator"]()
    assert g.channels == {4: 7, 8: 512} and g.other == {4: 1}
    assert d.seen == {4: 7, 8: 256}
    assert ns["Mapping"]().channels == {4: 512}


def test_reference_bench_weight_names_round_trip_through_the_nvlabs_converter():
    ref = _bench("bench_reference")
    from tedigan.config import STAGE_CONFIGS, load_config
    from tedigan.convert.nvlabs import NVNetwork, convert_generator_state
    from tedigan.models.stylegan2 import Generator

    cfg = load_config(STAGE_CONFIGS["generator"], ROOT / "configs" / "generator_tiny.yaml")
    assert ref.channel_table(cfg.generator) == {4: 16, 8: 16, 16: 16}
    torch.manual_seed(0)
    state = Generator(cfg.generator).state_dict()
    named = ref.to_nvlabs_names(state)
    assert "synthesis.b4.const" in named and any(k.endswith(".noise_strength") for k in named)
    back = convert_generator_state(NVNetwork("G", "Generator", {}, named), cfg.generator)
    assert back.keys() == state.keys()
    assert all(torch.equal(back[k], state[k]) for k in state)


def test_reference_bench_refuses_a_folder_that_is_not_a_checkout(tmp_path):
    ref = _bench("bench_reference")
    with pytest.raises(SystemExit, match="not a checkout of rosinality"):
        ref.load_rosinality(tmp_path)
    with pytest.raises(SystemExit, match="not a checkout of NVlabs"):
        ref.load_nvlabs(tmp_path)


def test_reference_bench_needs_a_checkout(capsys):
    ref = _bench("bench_reference")
    with pytest.raises(SystemExit):
        ref.parse_args([])
    assert "--rosinality DIR and/or --nvlabs DIR" in capsys.readouterr().err
