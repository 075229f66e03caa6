"""The backbone benchmark runs the generator stage's own step (GanStep) and reports every row."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_backbone", ROOT / "benchmarks" / "bench_backbone.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_backbone"] = module  # its dataclasses look their module up
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
