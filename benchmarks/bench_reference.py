"""tedigan's StyleGAN2 training step side by side with rosinality's and NVlabs' at the same config and weights.

The reference code is read from checkouts that you point to (nothing of it is vendored here):

- ``--rosinality DIR``: a checkout of rosinality/stylegan2-pytorch (``model.py``, ``train.py``, ``op/``);
- ``--nvlabs DIR``: a checkout of NVlabs/stylegan2-ada-pytorch (``training/``, ``torch_utils/``, ``dnnlib/``).

    python benchmarks/bench_reference.py --config configs/generator_avatars32.yaml \\
        --rosinality ~/src/stylegan2-pytorch --nvlabs ~/src/stylegan2-ada-pytorch --batch 16 --threads 1

Each implementation runs on its own CPU code path, as its users would run it there:

- rosinality: ``model.py`` and the loss functions of ``train.py``. ``op/`` compiles CUDA kernels when it is
  imported; on CPU its functions never call them (``fused_leaky_relu`` and ``upfirdn2d`` fall back to their
  pure-torch forms), so the kernel build (``torch.utils.cpp_extension.load``) is skipped while ``op`` is
  imported. ``model.py`` hard-codes its channel tables (512 up to 32 px); to run it at the config's widths the
  two table literals (``Generator.channels`` and the discriminator's ``channels``) are replaced by the config's
  table when the file is loaded, and nothing else is changed. ``train.py``'s data set import (``lmdb``) is
  stubbed when missing: only its loss, mixing and EMA functions are used.
- NVlabs: ``training.networks`` (their reference ops on CPU) and the phases of ``training.loss.StyleGAN2Loss``,
  with the optimiser settings and EMA update of ``training.training_loop``.
- tedigan: the generator stage's own :class:`~tedigan.training.generator.GanStep` phases, exactly as
  ``bench_backbone.py`` times them (channels-last and per-sample modulation on CPU, as the stage runs).

All share one set of weights: rosinality's randomly initialised networks, converted with
``tedigan.convert.rosinality`` and renamed once more into NVlabs' names (without ``--rosinality``: NVlabs'
networks, converted with ``tedigan.convert.nvlabs``). Before anything is timed, the
generators (constant noise) and the discriminators are run on the same inputs and their largest differences are
printed; the script stops if they differ by more than ``--tolerance``.

Rows (as in ``bench_backbone.py``): ``G fwd``, ``G fwd+bwd``, ``D fwd+bwd``, ``train iter`` (D main + G main +
EMA), ``R1 step``, ``PL step`` and the derived ``amortised`` step. Every repeat times every function of every
implementation (interleaved) and re-samples the machine's matmul and conv peaks; figures are medians over all
calls. The printed ratios are images per second relative to each reference. Augmentation is off for all three
(each has a different one). Nothing asserts on time.
"""

from __future__ import annotations

import argparse
import ast
import copy
import importlib
import json
import math
import os
import platform
import random
import sys
import types
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from unittest import mock

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_backbone import (  # noqa: E402
    FUNCTIONS,
    MATMUL_N,
    ArchBench,
    Peak,
    _fmt_table,
    _loadavg,
    measure,
    summarise,
    warm_and_count,
)

from tedigan.config import STAGE_CONFIGS, load_config  # noqa: E402
from tedigan.convert.nvlabs import NVNetwork, convert_discriminator_state, convert_generator_state  # noqa: E402
from tedigan.convert.rosinality import convert_discriminator_state_dict, convert_generator_state_dict  # noqa: E402
from tedigan.models.stylegan2 import fused_modconv_for  # noqa: E402
from tedigan.training.generator import memory_format_for  # noqa: E402

# ------------------------------------------------------------------------------------------------
# loading the reference code


class _TableHook(ast.NodeTransformer):
    """Wrap the channel-table dict literals of rosinality's ``Generator.__init__`` (``self.channels = {...}``)
    and ``Discriminator.__init__`` (``channels = {...}``) in a call of ``_bench_channels`` (a module global)."""

    def __init__(self) -> None:
        self.hooked: list[str] = []
        self._cls: str | None = None

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.ClassDef:
        if node.name in ("Generator", "Discriminator"):
            self._cls = node.name
            self.generic_visit(node)
            self._cls = None
        return node

    def visit_Assign(self, node: ast.Assign) -> ast.Assign:
        target = node.targets[0]
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", None)
        if self._cls and name == "channels" and isinstance(node.value, ast.Dict):
            node.value = ast.Call(
                func=ast.Name("_bench_channels", ast.Load()), args=[node.value], keywords=[]
            )
            self.hooked.append(self._cls)
        return node


def _require(root: Path, files: list[str], what: str) -> None:
    missing = [f for f in files if not (root / f).exists()]
    if missing:
        raise SystemExit(f"{root} is not a checkout of {what} (missing {', '.join(missing)})")


def load_rosinality(root: Path) -> tuple[types.ModuleType, types.ModuleType]:
    """``(model, train)`` modules of a rosinality/stylegan2-pytorch checkout, set up for CPU (see the docstring)."""
    _require(root, ["model.py", "train.py", "op/__init__.py"], "rosinality/stylegan2-pytorch")
    sys.path.insert(0, str(root))
    with mock.patch("torch.utils.cpp_extension.load", lambda *a, **k: None):
        importlib.import_module("op")
    tree = ast.parse((root / "model.py").read_text(), str(root / "model.py"))
    hook = _TableHook()
    tree = ast.fix_missing_locations(hook.visit(tree))
    if sorted(hook.hooked) != ["Discriminator", "Generator"]:
        raise SystemExit(f"{root}/model.py: could not find both channel tables (found {hook.hooked})")
    model = types.ModuleType("model")
    model.__file__ = str(root / "model.py")
    model._bench_channels = lambda native: native
    sys.modules["model"] = model
    exec(compile(tree, model.__file__, "exec"), model.__dict__)
    try:
        importlib.import_module("dataset")
    except ImportError:  # lmdb is only needed to read rosinality's data sets
        stub = types.ModuleType("dataset")
        stub.MultiResolutionDataset = None
        sys.modules["dataset"] = stub
    return model, importlib.import_module("train")


def load_nvlabs(root: Path) -> tuple[types.ModuleType, types.ModuleType, types.ModuleType]:
    """``(training.networks, training.loss, torch_utils.misc)`` of an NVlabs/stylegan2-ada-pytorch checkout."""
    _require(
        root,
        ["training/networks.py", "training/loss.py", "torch_utils/misc.py"],
        "NVlabs/stylegan2-ada-pytorch",
    )
    sys.path.insert(0, str(root))
    names = ("training.networks", "training.loss", "torch_utils.misc")
    return tuple(importlib.import_module(n) for n in names)


def channel_table(net) -> dict[int, int]:
    """A generator or discriminator config's widths per feature resolution (4 .. resolution)."""
    res = [2**i for i in range(2, int(math.log2(net.resolution)) + 1)]
    if net.channels:
        return {r: int(net.channels[str(r)]) for r in res}
    return {r: min(net.channel_base // r, net.channel_max) for r in res}


def to_nvlabs_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """tedigan generator names -> NVlabs names (the inverse of ``tedigan.convert.nvlabs``' renaming)."""
    out = {}
    for k, v in state.items():
        if k == "synthesis.input.weight":
            k = "synthesis.b4.const"
        elif k.endswith(".noise.strength"):
            k = k[: -len("noise.strength")] + "noise_strength"
        elif k.endswith(".noise.const"):
            k = k[: -len("noise.const")] + "noise_const"
        out[k] = v
    return out


def load_into(module: torch.nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """Copy ``state`` into ``module``; its own fixed filters (keys absent from ``state``) are kept."""
    own = module.state_dict()
    missing = sorted(k for k in own if k not in state and not k.endswith(("resample_filter", "kernel")))
    extra = sorted(k for k in state if k not in own)
    if missing or extra:
        raise SystemExit(f"{where}: weights do not line up (missing {missing[:5]}, unexpected {extra[:5]})")
    module.load_state_dict({**own, **state})


# ------------------------------------------------------------------------------------------------
# the reference steps


class _RefBench:
    """Shared inputs of a reference implementation (same shapes and seeds as :class:`ArchBench`)."""

    def __init__(self, cfg, batch: int, device: torch.device, seed: int, z_dim: int) -> None:
        self.cfg, self.batch, self.device, self.lc = cfg, batch, device, cfg.loss
        g = torch.Generator().manual_seed(seed + 1)
        res, ch = cfg.generator.resolution, cfg.generator.img_channels
        self.reals = (torch.rand(batch, ch, res, res, generator=g) * 2 - 1).to(device)
        self.z_const = torch.randn(batch, z_dim, generator=g).to(device)
        self.img_grad = torch.randn(batch, ch, res, res, generator=g).to(device)
        self.pl_batch = max(1, batch // self.lc.pl_batch_shrink)

    def _adam(self, params, interval: int | None) -> torch.optim.Optimizer:
        ratio = interval / (interval + 1) if interval else 1.0
        lr = self.cfg.train.lr
        return torch.optim.Adam(params, lr=lr * ratio, betas=(0.0**ratio, 0.99**ratio), eps=1e-8)

    def functions(self) -> dict[str, Callable[[], int]]:
        fns = (self.g_forward, self.g_forward_backward, self.d_forward_backward)
        fns += (self.train_iter, self.r1_step, self.pl_step)
        return dict(zip(FUNCTIONS, fns))

    def finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in [*self.G.parameters(), *self.D.parameters()])


class RosinalityBench(_RefBench):
    """rosinality's ``Generator`` / ``Discriminator`` driven as ``train.py``'s loop drives them."""

    def __init__(self, model, train, cfg, batch, device, seed) -> None:
        g = cfg.generator
        super().__init__(cfg, batch, device, seed, g.w_dim)
        self.train = train
        torch.manual_seed(seed)
        kw = dict(blur_kernel=list(g.blur_kernel))
        model._bench_channels = lambda native: {**native, **channel_table(g)}
        self.G = model.Generator(g.resolution, g.w_dim, g.n_mlp, lr_mlp=g.lr_mlp, **kw).to(device)
        model._bench_channels = lambda native: {**native, **channel_table(cfg.discriminator)}
        self.D = model.Discriminator(g.resolution, **kw).to(device)
        model._bench_channels = lambda native: native
        self.G_ema = copy.deepcopy(self.G).eval()
        lc = self.lc
        self.G_opt = self._adam(self.G.parameters(), lc.pl_interval if lc.pl_weight > 0 else None)
        self.D_opt = self._adam(self.D.parameters(), lc.r1_interval if lc.r1_gamma > 0 else None)
        self.mean_path_length = 0
        self.ema_decay = 0.5 ** (32 / (10 * 1000))  # train.py's

    def _noise(self, n: int):
        return self.train.mixing_noise(n, self.G.style_dim, self.lc.style_mixing_prob, self.device)

    @torch.no_grad()
    def g_forward(self) -> int:
        self.train.requires_grad(self.G, False)
        self.G([self.z_const], randomize_noise=False)
        return self.batch

    def g_forward_backward(self) -> int:
        self.train.requires_grad(self.G, True)
        img, _ = self.G(self._noise(self.batch))
        img.backward(self.img_grad)
        self.G.zero_grad(set_to_none=True)
        return self.batch

    def d_forward_backward(self) -> int:
        self.train.requires_grad(self.D, True)
        self.D(self.reals).sum().backward()
        self.D.zero_grad(set_to_none=True)
        return self.batch

    def train_iter(self) -> int:
        t, G, D = self.train, self.G, self.D
        t.requires_grad(G, False)
        t.requires_grad(D, True)
        fake, _ = G(self._noise(self.batch))
        d_loss = t.d_logistic_loss(D(self.reals), D(fake))
        D.zero_grad()
        d_loss.backward()
        self.D_opt.step()
        t.requires_grad(G, True)
        t.requires_grad(D, False)
        fake, _ = G(self._noise(self.batch))
        g_loss = t.g_nonsaturating_loss(D(fake))
        G.zero_grad()
        g_loss.backward()
        self.G_opt.step()
        t.accumulate(self.G_ema, G, self.ema_decay)
        return self.batch

    def r1_step(self) -> int:
        t, D, lc = self.train, self.D, self.lc
        t.requires_grad(self.G, False)
        t.requires_grad(D, True)
        real = self.reals.detach().requires_grad_(True)
        pred = D(real)
        r1 = t.d_r1_loss(pred, real)
        D.zero_grad()
        (lc.r1_gamma / 2 * r1 * lc.r1_interval + 0 * pred[0]).backward()
        self.D_opt.step()
        return self.batch

    def pl_step(self) -> int:
        t, G, lc = self.train, self.G, self.lc
        t.requires_grad(G, True)
        t.requires_grad(self.D, False)
        fake, latents = G(self._noise(self.pl_batch), return_latents=True)
        loss, self.mean_path_length, _ = t.g_path_regularize(fake, latents, self.mean_path_length)
        G.zero_grad()
        (lc.pl_weight * lc.pl_interval * loss + 0 * fake[0, 0, 0, 0]).backward()
        self.G_opt.step()
        return self.pl_batch


class NVlabsBench(_RefBench):
    """NVlabs' ``Generator`` / ``Discriminator`` driven by ``StyleGAN2Loss`` phases as ``training_loop`` runs
    them (``Dmain`` / ``Gmain``, lazy ``Dreg`` / ``Greg`` with gain = interval, grads cleaned, Adam)."""

    def __init__(self, networks, loss, misc, cfg, batch, device, seed) -> None:
        g, lc = cfg.generator, cfg.loss
        super().__init__(cfg, batch, device, seed, g.z_dim)
        self.misc = misc
        d = cfg.discriminator
        common = dict(c_dim=0, img_resolution=g.resolution, img_channels=g.img_channels)
        if g.channels or d.channels:
            raise SystemExit(
                "the NVlabs comparison needs channel_base/channel_max widths, not a channels table"
            )
        self.G = networks.Generator(
            z_dim=g.z_dim,
            w_dim=g.w_dim,
            mapping_kwargs=dict(num_layers=g.n_mlp, lr_multiplier=g.lr_mlp),
            synthesis_kwargs=dict(channel_base=g.channel_base, channel_max=g.channel_max),
            **common,
        ).to(device)
        self.G.train().requires_grad_(False)
        widths = dict(channel_base=d.channel_base, channel_max=d.channel_max)
        self.D = networks.Discriminator(**common, **widths).to(device).train().requires_grad_(False)
        self.G_ema = copy.deepcopy(self.G).eval()
        self.loss = loss.StyleGAN2Loss(
            device,
            self.G.mapping,
            self.G.synthesis,
            self.D,
            style_mixing_prob=lc.style_mixing_prob,
            r1_gamma=lc.r1_gamma,
            pl_batch_shrink=lc.pl_batch_shrink,
            pl_weight=lc.pl_weight,
        )
        self.G_opt = self._adam(self.G.parameters(), lc.pl_interval if lc.pl_weight > 0 else None)
        self.D_opt = self._adam(self.D.parameters(), lc.r1_interval if lc.r1_gamma > 0 else None)
        self.c = torch.zeros(batch, 0, device=device)
        self.ema_beta = 0.5 ** (batch / (cfg.ema_kimg * 1000))

    def _phase(self, module, opt, name: str, gain: float) -> None:
        opt.zero_grad(set_to_none=True)
        module.requires_grad_(True)
        z = torch.randn(self.batch, self.G.z_dim, device=self.device)
        self.loss.accumulate_gradients(name, self.reals, self.c, z, self.c, sync=True, gain=gain)
        module.requires_grad_(False)
        for p in module.parameters():
            if p.grad is not None:
                self.misc.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
        opt.step()

    @torch.no_grad()
    def g_forward(self) -> int:
        self.G(self.z_const, self.c, noise_mode="const")
        return self.batch

    def g_forward_backward(self) -> int:
        self.G.requires_grad_(True)
        img, _ = self.loss.run_G(torch.randn_like(self.z_const), self.c, sync=True)
        img.backward(self.img_grad)
        self.G.requires_grad_(False)
        self.G.zero_grad(set_to_none=True)
        return self.batch

    def d_forward_backward(self) -> int:
        self.D.requires_grad_(True)
        self.D(self.reals, self.c).sum().backward()
        self.D.requires_grad_(False)
        self.D.zero_grad(set_to_none=True)
        return self.batch

    @torch.no_grad()
    def _ema(self) -> None:
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
            p_ema.copy_(p.lerp(p_ema, self.ema_beta))
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            b_ema.copy_(b)

    def train_iter(self) -> int:
        self._phase(self.D, self.D_opt, "Dmain", 1.0)
        self._phase(self.G, self.G_opt, "Gmain", 1.0)
        self._ema()
        return self.batch

    def r1_step(self) -> int:
        self._phase(self.D, self.D_opt, "Dreg", self.lc.r1_interval)
        return self.batch

    def pl_step(self) -> int:
        self._phase(self.G, self.G_opt, "Greg", self.lc.pl_interval)
        return self.pl_batch


# ------------------------------------------------------------------------------------------------
# driver


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", default="configs/generator_avatars32.yaml", help="generator stage YAML")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override, repeatable (e.g. --set generator.channel_max=256)",
    )
    p.add_argument("--rosinality", type=Path, default=None, help="rosinality/stylegan2-pytorch checkout")
    p.add_argument("--nvlabs", type=Path, default=None, help="NVlabs/stylegan2-ada-pytorch checkout")
    p.add_argument(
        "--batch", type=int, default=16, help="images per call (PL step: batch // pl_batch_shrink)"
    )
    p.add_argument("--iters", type=int, default=5, help="timed calls per function per repeat")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls per function before timing")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats over all implementations")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--peak-seconds", type=float, default=0.5, help="duration of each peak sample")
    p.add_argument("--tolerance", type=float, default=1e-4, help="largest output difference accepted")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)
    if args.rosinality is None and args.nvlabs is None:
        p.error("give --rosinality DIR and/or --nvlabs DIR (the reference checkouts to compare with)")
    for name in ("batch", "iters", "repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1")
    return args


@torch.no_grad()
def compare_outputs(impls: dict, batch: int, seed: int) -> dict[str, dict[str, float]]:
    """Largest |difference| of each reference's G (constant noise) and D outputs to tedigan's."""
    g = torch.Generator().manual_seed(seed + 2)
    ours = impls["tedigan"]
    z = torch.randn(batch, ours.G.z_dim, generator=g)
    x = torch.rand(batch, ours.cfg.generator.img_channels, *ours.reals.shape[2:], generator=g) * 2 - 1
    ref_img = ours.G(z, noise_mode="const")
    ref_logit = ours.D(x)
    out = {}
    for name, b in impls.items():
        if name == "rosinality":
            img, logit = b.G([z], randomize_noise=False)[0], b.D(x)
        elif name == "nvlabs":
            img, logit = b.G(z, b.c, noise_mode="const"), b.D(x, b.c)
        else:
            continue
        out[name] = {
            "G_max_abs_diff": float((img - ref_img).abs().max()),
            "G_output_max_abs": float(ref_img.abs().max()),
            "D_max_abs_diff": float((logit - ref_logit).abs().max()),
            "D_output_max_abs": float(ref_logit.abs().max()),
        }
    return out


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    random.seed(args.seed)
    overrides = ["arch=stylegan2", "augment.enabled=false", *args.set]
    cfg = load_config(STAGE_CONFIGS["generator"], args.config, overrides)
    if cfg.generator.z_dim != cfg.generator.w_dim:
        raise SystemExit("rosinality's generator needs z_dim == w_dim")
    cfg = replace(cfg, train=replace(cfg.train, batch_size=args.batch, grad_accum=1))
    load_start = _loadavg()
    print(
        f"torch {torch.__version__} | threads {torch.get_num_threads()} | cpus {os.cpu_count()} | "
        f"{platform.processor() or platform.machine()}\nload average (1/5/15 min) at start: {load_start}"
    )
    print(
        f"config {args.config} {' '.join(args.set)} | resolution {cfg.generator.resolution} | widths "
        f"G {channel_table(cfg.generator)}, D {channel_table(cfg.discriminator)} | batch {args.batch} | iters {args.iters} x repeats {args.repeats} "
        f"(warm-up {args.warmup}) | tedigan: fused_modconv {fused_modconv_for('cpu', cfg.fused_modconv)}, "
        f"memory format {memory_format_for(cfg, device)}"
    )

    ours = ArchBench(cfg, args.batch, device, False, args.seed)
    impls: dict[str, object] = {"tedigan": ours}
    if args.rosinality is not None:  # the weights come from rosinality's initialisation
        model, train = load_rosinality(args.rosinality.expanduser().resolve())
        ros = RosinalityBench(model, train, cfg, args.batch, device, args.seed)
        g_state = convert_generator_state_dict(ros.G.state_dict(), ours.G.config)
        d_state = convert_discriminator_state_dict(ros.D.state_dict(), ours.D.config)
        impls["rosinality"] = ros
    if args.nvlabs is not None:
        nv = NVlabsBench(*load_nvlabs(args.nvlabs.expanduser().resolve()), cfg, args.batch, device, args.seed)
        if args.rosinality is None:  # ... or from NVlabs' own
            g_state = convert_generator_state(
                NVNetwork("G", "Generator", {}, nv.G.state_dict()), ours.G.config
            )
            d_state = convert_discriminator_state(
                NVNetwork("D", "Discriminator", {}, nv.D.state_dict()), ours.D.config
            )
        load_into(nv.G, to_nvlabs_names(g_state), "NVlabs G")
        load_into(nv.D, d_state, "NVlabs D")
        nv.G_ema.load_state_dict(nv.G.state_dict())
        impls["nvlabs"] = nv
    load_into(ours.G, g_state, "tedigan G")
    load_into(ours.D, d_state, "tedigan D")
    ours.gan.G_ema.load_state_dict(ours.G.state_dict())

    diffs = compare_outputs(impls, min(args.batch, 8), args.seed)
    for name, d in diffs.items():
        print(
            f"  outputs vs {name}: G max |diff| {d['G_max_abs_diff']:.2e} (|img| <= {d['G_output_max_abs']:.2f}), "
            f"D max |diff| {d['D_max_abs_diff']:.2e} (|logit| <= {d['D_output_max_abs']:.2f})"
        )
        if max(d["G_max_abs_diff"], d["D_max_abs_diff"]) > args.tolerance:
            raise SystemExit(f"{name} does not compute the same networks (tolerance {args.tolerance})")

    peak = Peak(device, args.batch, args.peak_seconds)
    fns, flops, images = {}, {}, {}
    for name, b in impls.items():
        fns[name] = b.functions()
        flops[name], images[name] = warm_and_count(fns[name], args.warmup)
    times = measure(fns, peak, args.repeats, args.iters, device)
    load_end = _loadavg()
    mm, cv = peak.matmul_gflops, peak.conv_gflops
    results = {n: summarise(times[n], flops[n], images[n], cfg.loss, mm, cv) for n in impls}
    refs = [n for n in impls if n != "tedigan"]
    for n in refs:
        for fname, v in results["tedigan"].items():
            v["vs_" + n] = v["img_per_s"] / results[n][fname]["img_per_s"]

    print(
        f"\npeak (median of {len(peak.matmul)} samples): matmul {MATMUL_N}^2 fp32 {mm:.1f} GFLOP/s, "
        f"conv3x3 {cv:.1f} GFLOP/s"
    )
    header = ["measure", "img"]
    for n in impls:
        header += [f"{n} ms", f"{n} %mm"]
    header += [f"tedigan / {n}" for n in refs]
    rows = []
    for fname in results["tedigan"]:
        row = [fname, str(results["tedigan"][fname]["images"])]
        for n in impls:
            v = results[n][fname]
            row += [f"{1000 * v['seconds']:.1f}", f"{100 * v['ratio_matmul']:.1f}"]
        row += [f"{results['tedigan'][fname]['vs_' + n]:.2f}" for n in refs]
        rows.append(row)
    print(_fmt_table(rows, header))
    print("(ms: median per call; %mm: achieved GFLOP/s as a share of the matmul peak; ratios: images/s)")
    print(f"load average (1/5/15 min) at end: {load_end}")
    for n, b in impls.items():
        if not b.finite():
            print(f"warning: {n} has non-finite weights after the measured steps (timings may be off)")

    report = {
        "config": args.config,
        "overrides": args.set,
        "widths": {"G": channel_table(cfg.generator), "D": channel_table(cfg.discriminator)},
        "batch": args.batch,
        "iters": args.iters,
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "loadavg_start": load_start,
        "loadavg_end": load_end,
        "peak": {"matmul_gflop_per_s": mm, "conv_gflop_per_s": cv, "matmul": peak.matmul, "conv": peak.conv},
        "output_diffs": diffs,
        "results": results,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return report


if __name__ == "__main__":
    main()
