"""Export the networks of a generator-stage checkpoint as component folders, mid-run.

    tedigan export outputs/avatars64/generator --out outputs/avatars64/at_latest
    tedigan export outputs/avatars64/generator --checkpoint checkpoint-5000 --out g5000

writes ``OUT/generator`` (the checkpoint's ``G_ema``) and ``OUT/discriminator``, as the stage writes them at its
end, so that a long run can be measured and sampled while it trains (``tedigan metrics --model OUT
--metrics fid ...``, ``tedigan generate --model OUT``, ``--generator_path=OUT/generator``). The run is not
touched: the checkpoint is only read (safetensors + JSON; a folder holding a pickle is refused).
"""

from __future__ import annotations

from pathlib import Path

from tedigan.config import GeneratorStageConfig, load_config
from tedigan.models.stylegan2 import Generator
from tedigan.training.checkpoint import CheckpointError, CheckpointManager
from tedigan.training.generator import new_discriminator

__all__ = ["export_generator"]


def export_generator(run_dir: str | Path, out: str | Path, checkpoint: str = "latest") -> Path:
    """Write ``out/generator`` and ``out/discriminator`` from ``checkpoint`` (``latest`` or a
    ``checkpoint-N`` folder name or path) of the generator-stage run in ``run_dir``; returns ``out``."""
    run, out = Path(run_dir), Path(out)
    if not (run / "config.yaml").is_file():
        raise FileNotFoundError(f"{run} holds no config.yaml: not a generator-stage output folder")
    cfg = load_config(GeneratorStageConfig, run / "config.yaml")
    manager = CheckpointManager(run)
    if checkpoint != "latest" and not Path(checkpoint).is_dir():
        checkpoint = str(run / "checkpoints" / checkpoint)  # a name inside the run
        if not Path(checkpoint).is_dir():
            have = ", ".join(p.name for _, p in manager.all()) or "none"
            raise CheckpointError(f"{checkpoint}: no such checkpoint (the run has: {have})")
    path = manager.resolve(checkpoint, report=False)
    if path is None:
        raise CheckpointError(f"{run} holds no complete checkpoint yet")
    states = manager.read_objects(path, ["G_ema", "D"])
    saved = manager.read_state(path)
    extra = {
        "stage": "generator",
        "step": saved.get("step"),
        "kimg": saved.get("kimg"),
        "checkpoint": str(path),
    }
    for name, net, state in (
        ("generator", Generator(cfg.generator), states["G_ema"]),
        ("discriminator", new_discriminator(cfg), states["D"]),
    ):
        try:
            net.load_state_dict(state)
        except (RuntimeError, KeyError) as err:
            raise CheckpointError(f"{path}: its {name} does not fit {run / 'config.yaml'} ({err})") from None
        net.save_pretrained(out / name, extra=extra)
    return out
