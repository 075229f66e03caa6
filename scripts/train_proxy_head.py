"""Distil the faces model's proxy head (the fast route of faithful inversion; tedigan.training.proxy_head).

    python scripts/train_proxy_head.py --num 448 --val 64 --steps 400 --out ~/tedigan-runs/r25/head

Renders ``--num`` generated faces with the full generator (W and W+ codes near their shared w), fits the head's
linear skip by least squares, trains it, and writes ``model.safetensors`` + ``config.json`` (held-out PSNR / LPIPS
against the full generator's pooled output in ``metrics``). Research / non-commercial: the targets come from
MobileStyleGAN's weights.
"""

from __future__ import annotations

import argparse

import torch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--num", type=int, default=448)
    ap.add_argument("--val", type=int, default=64)
    ap.add_argument("--block", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--data", help="a cached {'ws', 'images'} .pt file (rendered when missing)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from tedigan.losses.perceptual import LPIPS
    from tedigan.models.named import load_generator
    from tedigan.models.proxy_head import ProxyHead, ProxyHeadConfig
    from tedigan.training.proxy_head import (
        ProxyTrainConfig,
        evaluate_head,
        render_targets,
        sample_codes,
        train_proxy_head,
    )

    G = load_generator("mobilestylegan")
    head = ProxyHead(ProxyHeadConfig(block=args.block, hidden=args.hidden))
    if args.data and __import__("os").path.exists(args.data):
        d = torch.load(args.data)
        ws, images = d["ws"], d["images"].float()
    else:
        ws = sample_codes(G, args.num)
        images = render_targets(G, ws, 2 * head.config.resolution)
        if args.data:
            torch.save({"ws": ws, "images": images.half()}, args.data)
    n = len(ws) - args.val
    train_proxy_head(
        head,
        G.synthesis,
        ws[:n],
        images[:n],
        ProxyTrainConfig(steps=args.steps),
        log=lambda r: r["step"] % 50 == 0 and print(r, flush=True),
    )
    metrics = evaluate_head(head, G.synthesis, ws[n:], images[n:], LPIPS("vgg"))
    print("held out", metrics)
    head.save_pretrained(args.out, {"held_out": metrics, "train_faces": n, "steps": args.steps})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
