"""Shared check: a stage killed after a checkpoint and resumed ends exactly where an uninterrupted run ends."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tedigan.training.loop import Stage


def assert_resumes_exactly(
    train, cfg, stage_cls: type[Stage], kill_at: int, components: list[str], monkeypatch
):
    """Run ``cfg`` once whole (into ``<output_dir>/full``) and once killed inside step ``kill_at + 1`` (0-based
    ``kill_at``; needs a checkpoint before it), then resumed with ``"latest"``; every checkpointed tensor and every saved component
    must be equal, the global RNGs included (only training steps draw from them)."""
    root = Path(cfg.train.output_dir)
    full, broken = root / "full", root / "broken"
    train(replace(cfg, train=replace(cfg.train, output_dir=str(full))))

    real = stage_cls.train_step

    def dying(self, t, step):
        if step == kill_at:
            raise KeyboardInterrupt("killed")
        return real(self, t, step)

    cfg_b = replace(cfg, train=replace(cfg.train, output_dir=str(broken)))
    monkeypatch.setattr(stage_cls, "train_step", dying)
    with pytest.raises(KeyboardInterrupt):
        train(cfg_b)
    monkeypatch.setattr(stage_cls, "train_step", real)
    train(cfg_b, resume="latest")

    last = f"checkpoint-{cfg.train.max_steps}"
    a = load_file(full / "checkpoints" / last / "state.safetensors")
    b = load_file(broken / "checkpoints" / last / "state.safetensors")
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"differ after resume: {differ[:5]}"
    for name in components:
        a, b = (load_file(d / name / "model.safetensors") for d in (full, broken))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
