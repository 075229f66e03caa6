"""Throughput of the style-based backbone (G, D, one training step) as ratios to this machine's peak.

Measures, in one run and side by side for each selected ``arch`` at the same stage config:

- ``G fwd``       images/s of the generator forward (``torch.no_grad``, ``noise_mode="const"``);
- ``G fwd+bwd``   generator forward (training inputs: style mixing, random noise) + backward of a fixed
                  upstream gradient into the parameters;
- ``D fwd+bwd``   discriminator forward + backward of ``logits.sum()`` into the parameters;
- ``train iter``  one training step without the lazy regularisers: the stage's own phases
                  (:class:`tedigan.training.generator.GanStep`): D main step (non-saturating logistic
                  loss on augmented reals and fakes, Adam step), G main step (non-saturating loss through
                  the frozen D, Adam step) and the EMA update of ``G_ema``;
- ``R1 step``     the lazy R1 step of D (penalty on the un-augmented reals, double backward, Adam step);
- ``PL step``     the lazy path-length step of G (batch ``batch // pl_batch_shrink``, double backward);
- ``amortised``   ``train iter + R1/r1_interval + PL/pl_interval``: the cost of an average training step,
                  i.e. what the stage's logged img/s should approach (data loading aside).

Each function's FLOPs are counted once with the formulas of :mod:`torch.utils.flop_counter` (matmul /
conv / their backward; element-wise ops are not counted), which gives achieved GFLOP/s. The machine's own
peak is measured in the same run — a float32 1024x1024 matmul loop and a representative 3x3 conv, each run
for a fixed time — so every figure is also a *ratio to the peak measured now*. The machine is shared and
noisy: the timings are interleaved (every repeat times every function of every arch, and re-measures the
peaks), and all figures are medians over the repeats.

    python benchmarks/bench_backbone.py --config configs/generator_avatars64.yaml \
        --batch 8 --iters 10 --warmup 2 --archs stylegan2,stylegan1,swagan --json out.json

Reals are random images in [-1, 1] (no data set is read; D's cost does not depend on the pixels). The
timings are measurements, not checks: nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry, shape_wrapper

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tedigan.config import STAGE_CONFIGS, load_config  # noqa: E402
from tedigan.models.stylegan2 import Discriminator, Generator, fused_modconv_for  # noqa: E402
from tedigan.training.augment import DiffAugment  # noqa: E402
from tedigan.training.generator import GanStep, GeneratorForward, memory_format_for  # noqa: E402
from tedigan.training.loop import lazy_adam  # noqa: E402

ARCHS = ("stylegan2", "stylegan1", "swagan")
MATMUL_N = 1024  # peak matmul: float32 [N, N] @ [N, N]
CONV_SHAPE = (128, 32)  # peak conv: 3x3, channels -> channels, HxW = 32x32, batch = --batch
FUNCTIONS = ("G fwd", "G fwd+bwd", "D fwd+bwd", "train iter", "R1 step", "PL step")


# ------------------------------------------------------------------------------------------------
# timing helpers


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn: Callable[[], object], n: int, device: torch.device) -> list[float]:
    """Seconds of each of ``n`` calls of ``fn`` (synchronised on accelerators)."""
    out = []
    for _ in range(n):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        out.append(time.perf_counter() - t0)
    return out


def _conv_backward_flops(
    grad_out_shape,
    x_shape,
    w_shape,
    _bias,
    _stride,
    _padding,
    _dilation,
    transposed,
    _output_padding,
    _groups,
    output_mask,
    out_shape=None,
    **kwargs,
) -> int:
    """FLOPs of ``aten.convolution_backward``: each requested gradient costs as much as the forward conv.

    torch's own formula computes grad_weight's FLOPs as if the conv were not grouped (``groups`` times too
    many), which would inflate the modulated (grouped, one group per sample) convs of G by the batch size.
    The forward multiplies each weight element with every position of the non-transposed side's output:
    ``2 · N · prod(w_shape) · prod(spatial)``, spatial = grad_out's for a conv, the input's for a
    transposed conv (``w_shape`` already holds ``in/groups``, resp. ``out/groups``).
    """
    spatial = x_shape[2:] if transposed else grad_out_shape[2:]
    forward = 2 * x_shape[0] * math.prod(w_shape) * math.prod(spatial)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


class _FlopCount(TorchDispatchMode):
    """Sum of torch's FLOP formulas (``torch.utils.flop_counter``) over every op dispatched inside it.

    ``FlopCounterMode`` itself is not used: since torch 2.14 it attributes FLOPs to modules through grad hooks
    on module inputs, which ``autograd.grad`` refuses when an input is a leaf (as the reals of the R1 step are).
    """

    def __init__(self) -> None:
        super().__init__()
        self.total = 0
        self.registry = {
            **flop_registry,
            torch.ops.aten.convolution_backward: shape_wrapper(_conv_backward_flops),
        }

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = self.registry.get(func._overloadpacket)
        if formula is not None:
            self.total += int(formula(*args, **kwargs, out_val=out))
        return out


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of ``fn`` (the call runs once, with side effects).

    Matmuls, convolutions and their backward only (element-wise ops are not counted); grouped-conv backward
    uses :func:`_conv_backward_flops`.
    """
    with _FlopCount() as counter:
        fn()
    return counter.total


def rate_for(fn: Callable[[], object], flops: int, seconds: float, device: torch.device) -> float:
    """GFLOP/s of ``fn`` run back to back for about ``seconds`` (one sample of the peak)."""
    fn()  # warm
    _sync(device)
    t0 = time.perf_counter()
    calls = 0
    while True:
        fn()
        calls += 1
        if calls % 4 == 0:
            _sync(device)
            elapsed = time.perf_counter() - t0
            if elapsed >= seconds:
                return calls * flops / elapsed / 1e9


@dataclass
class Peak:
    """Machine peaks (GFLOP/s samples) for a float32 matmul and a 3x3 conv, measured during this run."""

    device: torch.device
    batch: int
    seconds: float
    matmul: list[float] = field(default_factory=list)
    conv: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        n = MATMUL_N
        self._a = torch.randn(n, n, generator=g).to(self.device)
        self._b = torch.randn(n, n, generator=g).to(self.device)
        self._mm_flops = count_flops(lambda: self._a @ self._b)
        c, hw = CONV_SHAPE
        self._x = torch.randn(self.batch, c, hw, hw, generator=g).to(self.device)
        self._w = torch.randn(c, c, 3, 3, generator=g).to(self.device)
        self._conv_flops = count_flops(self._conv)

    def _conv(self) -> torch.Tensor:
        return F.conv2d(self._x, self._w, padding=1)

    @torch.no_grad()
    def sample(self) -> None:
        self.matmul.append(rate_for(lambda: self._a @ self._b, self._mm_flops, self.seconds, self.device))
        self.conv.append(rate_for(self._conv, self._conv_flops, self.seconds, self.device))

    @property
    def matmul_gflops(self) -> float:
        return statistics.median(self.matmul)

    @property
    def conv_gflops(self) -> float:
        return statistics.median(self.conv)


def summarise(
    times: dict[str, list[float]], flops: dict[str, int], images: dict[str, int], lc, mm: float, cv: float
) -> dict[str, dict]:
    """Per-function medians, IQR, FLOP rates and peak shares for the six :data:`FUNCTIONS`, plus the derived
    ``amortised`` row (``train iter + R1/r1_interval + PL/pl_interval`` in time and FLOPs; ``lc`` is the
    loss config that holds the intervals). ``mm`` / ``cv``: the matmul and conv peaks (GFLOP/s)."""
    rows: dict[str, dict] = {}
    for name in FUNCTIONS:
        t = statistics.median(times[name])
        q = statistics.quantiles(times[name], n=4) if len(times[name]) > 1 else [t, t, t]
        rows[name] = {
            "images": images[name],
            "seconds": t,
            "iqr_pct": 100 * (q[2] - q[0]) / t,
            "flops": flops[name],
        }
    r1_w = 1 / lc.r1_interval if lc.r1_gamma > 0 else 0.0
    pl_w = 1 / lc.pl_interval if lc.pl_weight > 0 else 0.0
    rows["amortised"] = {
        "images": rows["train iter"]["images"],
        "seconds": rows["train iter"]["seconds"]
        + r1_w * rows["R1 step"]["seconds"]
        + pl_w * rows["PL step"]["seconds"],
        "iqr_pct": None,
        "flops": int(
            rows["train iter"]["flops"] + r1_w * rows["R1 step"]["flops"] + pl_w * rows["PL step"]["flops"]
        ),
    }
    for v in rows.values():
        v["img_per_s"] = v["images"] / v["seconds"]
        v["gflop"] = v["flops"] / 1e9
        v["gflop_per_s"] = v["gflop"] / v["seconds"]
        v["ratio_matmul"] = v["gflop_per_s"] / mm
        v["ratio_conv"] = v["gflop_per_s"] / cv
    return rows


# ------------------------------------------------------------------------------------------------
# the measured functions of one arch


class ArchBench:
    """G, D, optimisers and the measured closures for one arch: the generator stage's own step
    (:class:`tedigan.training.generator.GanStep`), phase by phase, at ``batch`` images and one micro-batch."""

    def __init__(self, cfg, batch: int, device: torch.device, augment: bool, seed: int) -> None:
        torch.manual_seed(seed)
        cfg = replace(cfg, train=replace(cfg.train, batch_size=batch, grad_accum=1))
        self.cfg, self.batch, self.device = cfg, batch, device
        self.lc = lc = cfg.loss
        fmt = memory_format_for(cfg, device)  # as the stage runs them
        self.G = Generator(cfg.generator).to(device, memory_format=fmt)
        self.D = Discriminator(cfg.discriminator).to(device, memory_format=fmt)
        G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        G_opt = lazy_adam(self.G.parameters(), cfg.train.lr, lc.pl_interval if lc.pl_weight > 0 else None)
        D_opt = lazy_adam(
            self.D.parameters(), cfg.d_lr or cfg.train.lr, lc.r1_interval if lc.r1_gamma > 0 else None
        )
        a = cfg.augment
        aug = DiffAugment(a.policy, a.translation_ratio, a.cutout_ratio, a.p) if augment else None
        rng = torch.Generator().manual_seed(seed * 7919 + 1)
        self.G_fwd = GeneratorForward(self.G, fused_modconv=cfg.fused_modconv)
        self.gan = GanStep(cfg, self.G_fwd, self.D, G_opt, D_opt, G_ema, rng, aug)
        g = torch.Generator().manual_seed(seed + 1)
        res, ch = cfg.generator.resolution, cfg.generator.img_channels
        self.reals = (torch.rand(batch, ch, res, res, generator=g) * 2 - 1).to(device, memory_format=fmt)
        self.z_const = torch.randn(batch, self.G.z_dim, generator=g).to(device)
        self.img_grad = torch.randn(batch, ch, res, res, generator=g).to(device)
        self.params = {
            "G": sum(p.numel() for p in self.G.parameters()),
            "D": sum(p.numel() for p in self.D.parameters()),
        }

    def finite(self) -> bool:
        """Whether G and D still hold finite weights after the optimiser steps taken while measuring."""
        params = [*self.G.parameters(), *self.D.parameters()]
        return all(bool(torch.isfinite(p).all()) for p in params)

    # -- the six measured functions; each returns the number of images it processed

    @torch.no_grad()
    def g_forward(self) -> int:
        # frozen parameters, like the stage's G_ema
        self.G.requires_grad_(False)
        self.G(self.z_const, noise_mode="const")
        return self.batch

    def g_forward_backward(self) -> int:
        self.G.requires_grad_(True)
        img, _ = self.G_fwd(**self.gan._inputs(self.batch))
        img.backward(self.img_grad)
        self.G.zero_grad(set_to_none=True)
        return self.batch

    def d_forward_backward(self) -> int:
        self.D.requires_grad_(True)
        self.D(self.reals).sum().backward()
        self.D.zero_grad(set_to_none=True)
        return self.batch

    def train_iter(self) -> int:
        self.gan.d_main([self.reals])
        self.gan.g_main()
        self.gan.ema(100_000 // self.batch)
        return self.batch

    def r1_step(self) -> int:
        self.gan.d_r1([self.reals])
        return self.batch

    def pl_step(self) -> int:
        self.gan.g_pl()
        return self.gan.pl_batch

    def functions(self) -> dict[str, Callable[[], int]]:
        return dict(
            zip(
                FUNCTIONS,
                (
                    self.g_forward,
                    self.g_forward_backward,
                    self.d_forward_backward,
                    self.train_iter,
                    self.r1_step,
                    self.pl_step,
                ),
            )
        )


# ------------------------------------------------------------------------------------------------
# driver


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="configs/generator_avatars64.yaml", help="generator stage YAML")
    p.add_argument("--batch", type=int, default=8, help="images per call (PL step: batch // pl_batch_shrink)")
    p.add_argument("--iters", type=int, default=10, help="timed calls per function per repeat")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls per function before timing")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats over all archs/functions")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--archs", default=",".join(ARCHS), help="comma-separated subset of " + ",".join(ARCHS))
    p.add_argument(
        "--augment",
        choices=("auto", "on", "off"),
        default="auto",
        help="DiffAugment in the training steps; auto: the config's augment.enabled, on when it is null "
        "(the stage's automatic rule turns it on for the small data sets these presets train on)",
    )
    p.add_argument("--peak-seconds", type=float, default=0.5, help="duration of each peak sample")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    args.archs = [a.strip() for a in args.archs.split(",") if a.strip()]
    bad = [a for a in args.archs if a not in ARCHS]
    if bad or not args.archs:
        p.error(f"--archs must be a subset of {ARCHS}, got {args.archs}")
    for name in ("batch", "iters", "repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1")
    return args


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _fmt_table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(h.ljust(w) if i < 2 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths)))
    out = [line, "-" * len(line)]
    for r in rows:
        out.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    return "\n".join(out)


def warm_and_count(fns: dict[str, Callable[[], int]], warmup: int) -> tuple[dict[str, int], dict[str, int]]:
    """Call every function ``warmup`` times, then once more under the FLOP counter: ``(flops, images)``
    per function (each function returns the number of images it processed)."""
    flops, images = {}, {}
    for name, fn in fns.items():
        for _ in range(warmup):
            fn()
        seen: list[int] = []
        flops[name] = count_flops(lambda fn=fn, seen=seen: seen.append(fn()))
        images[name] = seen[0]
    return flops, images


def measure(
    fns: dict[str, dict[str, Callable[[], int]]], peak: Peak, repeats: int, iters: int, device: torch.device
) -> dict[str, dict[str, list[float]]]:
    """Seconds per call of every function of every implementation, interleaved: each of ``repeats`` rounds
    samples the peaks, then times ``iters`` calls of each function in turn; one last peak sample at the end."""
    times = {impl: {name: [] for name in f} for impl, f in fns.items()}
    for rep in range(repeats):
        peak.sample()
        for impl, f in fns.items():
            for name, fn in f.items():
                times[impl][name].extend(time_calls(fn, iters, device))
        print(
            f"  repeat {rep + 1}/{repeats}: matmul {peak.matmul[-1]:.1f} GFLOP/s, "
            f"conv3x3 {peak.conv[-1]:.1f} GFLOP/s, load {_loadavg()}"
        )
    peak.sample()
    return times


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    load_start = _loadavg()
    base = load_config(STAGE_CONFIGS["generator"], args.config)
    augment = base.augment.enabled is not False if args.augment == "auto" else args.augment == "on"

    print(
        f"torch {torch.__version__} | device {device} | threads {torch.get_num_threads()} "
        f"(interop {torch.get_num_interop_threads()}) | cpus {os.cpu_count()} | "
        f"{platform.processor() or platform.machine()}"
    )
    print(f"load average (1/5/15 min) at start: {load_start}")
    print(
        f"config {args.config} | resolution {base.data.resolution} | batch {args.batch} | iters {args.iters} "
        f"x repeats {args.repeats} (warm-up {args.warmup}) | augment {augment} | "
        f"fused_modconv {fused_modconv_for(args.device, base.fused_modconv)} | "
        f"memory format {memory_format_for(base, torch.device(args.device))}"
    )

    peak = Peak(device, args.batch, args.peak_seconds)
    benches: dict[str, ArchBench] = {}
    fns: dict[str, dict[str, Callable[[], int]]] = {}
    flops: dict[str, dict[str, int]] = {}
    images: dict[str, dict[str, int]] = {}
    for arch in args.archs:
        cfg = load_config(STAGE_CONFIGS["generator"], args.config, {"arch": arch})
        bench = ArchBench(cfg, args.batch, device, augment, args.seed)
        benches[arch], fns[arch] = bench, bench.functions()
        flops[arch], images[arch] = warm_and_count(fns[arch], args.warmup)
        print(f"  {arch}: G {bench.params['G'] / 1e6:.2f} M, D {bench.params['D'] / 1e6:.2f} M parameters")

    times = measure(fns, peak, args.repeats, args.iters, device)
    load_end = _loadavg()

    mm, cv = peak.matmul_gflops, peak.conv_gflops
    results = {
        arch: summarise(times[arch], flops[arch], images[arch], benches[arch].lc, mm, cv)
        for arch in args.archs
    }
    first = args.archs[0]
    for arch in args.archs:
        for name, v in results[arch].items():
            v["img_per_s_vs_" + first] = v["img_per_s"] / results[first][name]["img_per_s"]

    print()
    print(
        f"peak (median of {len(peak.matmul)} samples): matmul {MATMUL_N}^2 fp32 {mm:.1f} GFLOP/s "
        f"[{min(peak.matmul):.1f}-{max(peak.matmul):.1f}], conv3x3 {args.batch}x{CONV_SHAPE[0]}x"
        f"{CONV_SHAPE[1]}^2 {cv:.1f} GFLOP/s [{min(peak.conv):.1f}-{max(peak.conv):.1f}]"
    )
    header = [
        "arch",
        "measure",
        "img",
        "ms",
        "iqr%",
        "img/s",
        f"vs {first}",
        "GFLOP",
        "GFLOP/s",
        "%mm",
        "%conv",
    ]
    rows = []
    for arch in args.archs:
        for name, v in results[arch].items():
            rows.append(
                [
                    arch,
                    name,
                    str(v["images"]),
                    f"{1000 * v['seconds']:.1f}",
                    "-" if v["iqr_pct"] is None else f"{v['iqr_pct']:.0f}",
                    f"{v['img_per_s']:.1f}",
                    f"{v['img_per_s_vs_' + first]:.2f}",
                    f"{v['gflop']:.2f}",
                    f"{v['gflop_per_s']:.1f}",
                    f"{100 * v['ratio_matmul']:.1f}",
                    f"{100 * v['ratio_conv']:.1f}",
                ]
            )
    print(_fmt_table(rows, header))
    print(f"load average (1/5/15 min) at end: {load_end}")
    finite = {arch: benches[arch].finite() for arch in args.archs}
    for arch, ok in finite.items():
        if not ok:
            print(f"warning: {arch} has non-finite weights after the measured steps (timings may be off)")

    report = {
        "config": args.config,
        "resolution": base.data.resolution,
        "batch": args.batch,
        "iters": args.iters,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "augment": augment,
        "fused_modconv": fused_modconv_for(device, base.fused_modconv),
        "memory_format": str(memory_format_for(base, device)),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "loadavg_start": load_start,
        "loadavg_end": load_end,
        "peak": {
            "matmul_gflop_per_s": mm,
            "matmul_samples": peak.matmul,
            "matmul_n": MATMUL_N,
            "conv_gflop_per_s": cv,
            "conv_samples": peak.conv,
            "conv_shape_nchw": [args.batch, CONV_SHAPE[0], CONV_SHAPE[1], CONV_SHAPE[1]],
        },
        "params": {arch: benches[arch].params for arch in args.archs},
        "weights_finite": finite,
        "results": results,
    }
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2))
        print(f"wrote {path}")
    return report


if __name__ == "__main__":
    main()
