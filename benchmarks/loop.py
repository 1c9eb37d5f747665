"""Samples/s of the full PoseGen loop on the CPU: G, D and P updates with feedback through the rendered pixels.

Usage: python benchmarks/loop.py [--image-size 64] [--batch-size 64] [--iters 20] [--threads N] [--device cpu|cuda]
                                 [--estimator simple|spin|hybrik] [--hardness paper|banded|split]
(runs 2 x iters GAN steps with in-loop estimator updates; the second half is timed)
Prints one JSON object as its last line.
"""

from __future__ import annotations

import argparse
import json
import platform
import os
import resource
import tempfile
import warnings

import torch
from rich.console import Console

import posegen_core as pg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--feedback", default="render", choices=["render", "pose"])
    ap.add_argument("--hardness", default="paper", help="hardness strategy (banded/split also render reference views)")
    ap.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    ap.add_argument("--estimator", default="simple", help="estimator plugin (randomly initialised; speed only)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = pg.RunConfig(
            iters=2 * args.iters, feedback_start=0, log_every=args.iters,  # the first half warms up, the second is timed
            batch_size=args.batch_size, image_size=args.image_size, feedback=args.feedback, finetune="loop",
            hardness=args.hardness,
            device=args.device, estimator=args.estimator,
            samples=0, eval_samples=8, out=f"{tmp}/run", checkpoint_every=10**6, report=False,
            pretrain=pg.PretrainConfig(steps=1, batch_size=4, eval_every=1, val_samples=8, cache=False),
        )
        pg.run(cfg, console=Console(file=open(os.devnull, "w")))
        rows = [json.loads(x) for x in open(f"{tmp}/run/metrics.jsonl")]
    gan = [r for r in rows if r["stage"] == "gan"]
    elapsed = args.iters * args.batch_size / gan[-1]["samples_per_s"]
    samples = args.iters * args.batch_size
    result = {
        "benchmark": "loop", "image_size": args.image_size, "batch_size": args.batch_size, "iters": args.iters,
        "feedback": args.feedback, "hardness": args.hardness, "updates": "G+D+P", "samples_per_s": round(samples / elapsed, 1),
        "seconds_per_iter": round(elapsed / args.iters, 4), "threads": torch.get_num_threads(),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "estimator": args.estimator, "device": args.device,
        "machine": (torch.cuda.get_device_name() if args.device.startswith("cuda")
                    else f"{platform.machine()} {platform.processor() or ''}".strip()),
        "torch": torch.__version__,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
