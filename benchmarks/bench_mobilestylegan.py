"""MobileStyleGAN on the CPU: our port vs OpenVINO's own runtime vs a naive PyTorch transcription of the IR.

Usage::

    python benchmarks/bench_mobilestylegan.py [--repeats 3] [--threads 1 2]

Each thread count runs in its own subprocess that loads all implementations and interleaves their repeats
(ours, naive, OpenVINO, ours, ...), so machine noise hits all alike; medians are reported. Forward runs under
``torch.no_grad``; forward+backward differentiates ``mean(img**2)`` w.r.t. ws ``[1, 23, 512]``. At 256 px ours
uses ``synthesis(ws, resolution=256)``, the others pool the 1024 px image. Peak memory is ``ru_maxrss`` of a
fresh subprocess per configuration (one warm-up call, then one measured), also shown minus the resident size
after loading. OpenVINO is optional (``pip install openvino``); without it its columns say n/a.

Our model is loaded as :meth:`MobileStyleGAN.from_package` does by default, which calls
:func:`keep_freed_memory` (glibc malloc keeps freed blocks). That is process-wide, so in the timing subprocess
the naive baseline benefits too; ``ours (default malloc)`` is a second timing subprocess without it.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time

IMPLS = ("ours", "naive", "openvino")
CASES = [(1024, "fwd"), (256, "fwd"), (1024, "fwd+bwd"), (256, "fwd+bwd")]


# ----------------------------------------------------------------------------- naive baseline (IR order)


class NaiveMobileStyleGAN:
    """Op-by-op NCHW transcription of the IR graph: modulate, grouped transposed-conv IDWT, depthwise and
    pointwise convs, out-of-place noise / bias / LeakyReLU, plain autograd. The starting point of the port."""

    def __init__(self, state: dict) -> None:
        import torch

        self.s = state
        r = 1 / math.sqrt(2)
        self.low, self.high = torch.tensor([r, r]), torch.tensor([r, -r])

    def _style(self, ws, i: int, site: str):
        import torch.nn.functional as F

        s = F.linear(ws[:, i], self.s[f"synthesis.{site}.mod_weight"], self.s[f"synthesis.{site}.mod_bias"])
        k = self.s.get(f"synthesis.{site}.k")
        return (s * k if k is not None else s)[:, :, None, None]

    def _idwt(self, x):
        import torch.nn.functional as F

        c = x.shape[1] // 4
        ll, h = x[:, :c], x[:, c:].reshape(x.shape[0], c, 3, *x.shape[2:])
        h0, h1, h2 = h.unbind(2)

        def up(t, f, vertical):
            w = f.repeat(c, 1).view(c, 1, 2, 1) if vertical else f.repeat(c, 1).view(c, 1, 1, 2)
            return F.conv_transpose2d(t, w, stride=(2, 1) if vertical else (1, 2), groups=c)

        a = up(up(ll, self.low, True) + up(h0, self.high, True), self.low, False)
        b = up(up(h1, self.low, True) + up(h2, self.high, True), self.high, False)
        return a + b

    def _tail(self, x, layer: str):
        import torch.nn.functional as F

        x = x + self.s[f"synthesis.{layer}.noise"] + self.s[f"synthesis.{layer}.bias"].view(1, -1, 1, 1)
        return F.leaky_relu(x, float(self.s[f"synthesis.{layer}.slope"]))

    def synthesis(self, ws, resolution: int = 1024):
        import torch.nn.functional as F

        s = self.s
        x = s["synthesis.input"].repeat(ws.shape[0], 1, 1, 1) * self._style(ws, 0, "conv1")
        x = self._tail(F.conv2d(x, s["synthesis.conv1.weight"], padding=1), "conv1")
        for i in range(7):
            x = self._idwt(x * self._style(ws, 1 + 3 * i, f"layers.{i}.up"))
            for j in (1, 2):
                name = f"layers.{i}.conv{j}"
                x = x * self._style(ws, 1 + 3 * i + j, name)
                x = F.conv2d(x, s[f"synthesis.{name}.weight_dw"], padding=1, groups=x.shape[1])
                x = self._tail(F.conv2d(x, s[f"synthesis.{name}.weight"][:, :, None, None]), name)
        x = x * self._style(ws, 22, "layers.6.to_img")
        x = F.conv2d(x, s["synthesis.to_img.weight"][:, :, None, None], s["synthesis.to_img.bias"])
        img = self._idwt(x)
        return img if resolution == 1024 else F.avg_pool2d(img, 1024 // resolution)


# ----------------------------------------------------------------------------- workers


def _load(impl: str, threads: int, tune_malloc: bool):
    """A callable ``run(resolution, mode)`` for one implementation, or None when it is unavailable."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from tedigan.models.ports.mobilestylegan import MobileStyleGAN, load_ir

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    G = MobileStyleGAN.from_package(tune_malloc=tune_malloc)
    ws = G.mapping(torch.randn(1, 512))
    if impl == "openvino":
        try:
            import openvino as ov
        except ImportError:
            return None
        from tedigan.assets import mobilestylegan_ir_dir

        core = ov.Core()
        cfg = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32", "NUM_STREAMS": 1}
        model = core.compile_model(
            core.read_model(mobilestylegan_ir_dir() / "SynthesisNetwork.xml"), "CPU", cfg
        )
        request = model.create_infer_request()
        w_np = ws[:, 0].numpy().astype(np.float32)

        def run_ov(resolution: int, mode: str):
            if mode != "fwd":
                return None
            img = torch.from_numpy(request.infer({"style": w_np})["img"])
            return img if resolution == 1024 else F.avg_pool2d(img, 1024 // resolution)

        return run_ov
    synth = G.synthesis if impl == "ours" else NaiveMobileStyleGAN(load_ir()).synthesis

    def run(resolution: int, mode: str):
        if mode == "fwd":
            with torch.no_grad():
                return synth(ws, resolution=resolution)
        x = ws.clone().requires_grad_(True)
        img = synth(x, resolution=resolution)
        img.square().mean().backward()
        return img.detach()

    return run


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def worker_time(threads: int, repeats: int, tune_malloc: bool, impls: list[str]) -> dict:
    runs = {impl: _load(impl, threads, tune_malloc) for impl in impls}
    runs = {k: v for k, v in runs.items() if v is not None}
    out: dict = {"times": {}, "check": {}}
    for impl, run in runs.items():  # warm-up, and agreement with ours
        for res, mode in CASES:
            img = run(res, mode)
            if img is not None and impl != "ours" and "ours" in runs and mode == "fwd":
                out["check"][f"{impl}@{res}"] = float((img - runs["ours"](res, mode)).abs().max())
    for _ in range(repeats):
        for res, mode in CASES:
            for impl, run in runs.items():
                t = time.perf_counter()
                if run(res, mode) is None:
                    continue
                out["times"].setdefault(f"{impl}|{res}|{mode}", []).append(time.perf_counter() - t)
    out["times"] = {k: statistics.median(v) for k, v in out["times"].items()}
    return out


def worker_mem(impl: str, res: int, mode: str) -> dict:
    run = _load(impl, 1, tune_malloc=True)
    if run is None:
        return {}
    loaded = _rss_mb()
    if run(res, mode) is None:
        return {}
    run(res, mode)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"peak_mb": peak, "over_load_mb": peak - loaded}


def _sub(args: list[str], threads: int) -> dict:
    env = {**__import__("os").environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    p = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, env=env, check=False
    )
    if p.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    ap.add_argument("--_worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._worker:
        kind, *rest = args._worker
        if kind == "time":
            threads, tuned, impls = int(rest[0]), rest[1] == "1", rest[2].split(",")
            print(json.dumps(worker_time(threads, args.repeats, tuned, impls)))
        else:
            print(json.dumps(worker_mem(rest[0], int(rest[1]), rest[2])))
        return 0
    try:
        import openvino  # noqa: F401
    except ImportError:
        print("openvino is not installed (pip install openvino): its columns will be n/a")

    rows = []
    for threads in args.threads:
        r = args.repeats
        tuned = _sub(["--repeats", str(r), "--_worker", "time", str(threads), "1", ",".join(IMPLS)], threads)
        default = _sub(["--repeats", str(r), "--_worker", "time", str(threads), "0", "ours"], threads)
        for key, v in tuned["check"].items():
            print(f"[{threads} thr] max |{key.split('@')[0]} - ours| at {key.split('@')[1]} px: {v:.2e}")
        for res, mode in CASES:
            t = {impl: tuned["times"].get(f"{impl}|{res}|{mode}") for impl in IMPLS}
            t["ours (default malloc)"] = default["times"].get(f"ours|{res}|{mode}")
            rows.append((threads, res, mode, t))

    def fmt(x: float | None, spec: str = "7.3f") -> str:
        return "n/a".rjust(7) if x is None else format(x, spec)

    print(
        "\nseconds per image (median); ratios are time / OpenVINO forward time at the same size and threads"
    )
    head = f"{'thr':>3} {'px':>5} {'mode':>8} | {'ours':>7} {'ours*':>7} {'naive':>7} {'OpenVINO':>8} |"
    print(head + f" {'ours/OV':>7} {'ours*/OV':>8} {'naive/OV':>8} {'naive/ours':>10}")
    for threads, res, mode, t in rows:
        ov_fwd = next(x[3]["openvino"] for x in rows if x[:3] == (threads, res, "fwd"))

        def ratio(a: float | None, b: float | None) -> str:
            return "n/a".rjust(7) if a is None or b is None else f"{a / b:7.2f}"

        print(
            f"{threads:>3} {res:>5} {mode:>8} | {fmt(t['ours'])} {fmt(t['ours (default malloc)'])} "
            f"{fmt(t['naive'])} {fmt(t['openvino'], '8.3f')} | {ratio(t['ours'], ov_fwd)} "
            f"{ratio(t['ours (default malloc)'], ov_fwd):>8} {ratio(t['naive'], ov_fwd):>8} "
            f"{ratio(t['naive'], t['ours']):>10}"
        )
    print("ours* = ours in a process without keep_freed_memory() (glibc default malloc)")
    if args.no_memory:
        return 0
    print("\npeak resident memory, 1 thread (MB): total / above the loaded model")
    for res, mode in CASES:
        cells = []
        for impl in IMPLS:
            m = _sub(["--_worker", "mem", impl, str(res), mode], 1)
            cells.append(f"{impl} {m['peak_mb']:6.0f} / {m['over_load_mb']:5.0f}" if m else f"{impl} n/a")
        print(f"{res:>5} {mode:>8} | " + " | ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
