"""Scaling on torchrun: samples/s of the PoseGen loop and of the dataset export at world size 1 and 2 on this CPU (one
torch thread per process, gloo), and the scaling efficiency (samples/s at 2 processes over samples/s at 1; target
>= 1.6x, docs/DISTRIBUTED.md).

    .venv/bin/python benchmarks/scale.py [--worlds 1,2] [--batch-size 32] [--iters 40] [--export-samples 16384]
                                         [--export-size 128] [--device cpu|cuda]

Each measurement starts the real command line under torch's launcher
(``python -m torch.distributed.run --standalone --nproc-per-node N -m posegen ...``):

- loop: ``posegen run`` with ``batch_size`` samples per process (the global batch grows with the world size, as in
  any data-parallel run), feedback through the pixels and in-loop estimator updates (G + D + P), 2 x ``iters`` GAN
  steps of which the second half is timed (from the run's metrics, which count the samples of every process);
- export: ``posegen export`` of a run folder holding a freshly initialised generator (the renderer's cost does not
  depend on training), each process rendering and writing its own shards; timed from the command's start to its end.

With ``--device cuda`` each process takes the GPU of its LOCAL_RANK (NCCL): pass ``--worlds 1,N`` with N GPUs.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from export import make_run  # benchmarks/export.py: a run folder holding a freshly initialised generator


def launcher(n: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}", "-m", "posegen"]


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    e.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return e


def run(cmd: list[str], tmp: Path) -> tuple[str, float]:
    """The command's standard output and the CPU seconds of all its processes (start-up included)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(cmd, env={**env(), "POSEGEN_CACHE": str(tmp / "cache")}, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"failed: {' '.join(cmd)}\n{done.stderr[-4000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return done.stdout, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def loop(n: int, args: argparse.Namespace, tmp: Path) -> float:
    out = tmp / f"loop-{n}"
    sets = {"iters": 2 * args.iters, "feedback_start": 0, "log_every": args.iters, "batch_size": args.batch_size,
            "image_size": args.image_size, "finetune": "loop", "samples": 0, "eval_samples": 8,
            "checkpoint_every": 10**6, "report": False, "threads": 1, "device": args.device,
            "pretrain.steps": 1, "pretrain.batch_size": 4, "pretrain.eval_every": 1, "pretrain.val_samples": 8,
            "pretrain.cache": False}
    cmd = launcher(n) + ["run", "--out", str(out)] + [a for k, v in sets.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    _, cpu = run(cmd, tmp)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["stage"] == "gan"][-1]["samples_per_s"], cpu  # the timed half, all processes


def export(n: int, args: argparse.Namespace, tmp: Path, run_dir: Path) -> float:
    cmd = launcher(n) + ["export", str(run_dir), "--out", str(tmp / f"export-{n}"), "--samples",
                         str(args.export_samples), "--size", str(args.export_size), "--shard-size", "256",
                         "--threads", "1", "--encode-threads", str(args.encode_threads), "--device", args.device]
    stdout, cpu = run(cmd, tmp)
    found = re.search(r"in ([0-9.]+) s \(", stdout)  # the export's own time, without the processes' start-up
    if found is None:
        sys.exit(f"unexpected output of {' '.join(cmd)}: {stdout[-2000:]}")
    return args.export_samples / float(found.group(1)), cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worlds", default="1,2", help="world sizes to measure, the first is the baseline")
    ap.add_argument("--batch-size", type=int, default=32, help="GAN samples per process and step")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--iters", type=int, default=40, help="timed GAN iterations (as many again warm up)")
    ap.add_argument("--export-samples", type=int, default=16384)
    ap.add_argument("--export-size", type=int, default=128)
    ap.add_argument("--encode-threads", type=int, default=0,
                    help="PNG threads per export process (0: in the rendering thread, so one thread per process)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    worlds = [int(w) for w in args.worlds.split(",")]
    result: dict = {"benchmark": "scale", "worlds": worlds, "batch_size_per_process": args.batch_size,
                    "image_size": args.image_size, "iters": args.iters, "export_samples": args.export_samples,
                    "export_size": args.export_size, "encode_threads": args.encode_threads, "threads_per_process": 1, "device": args.device,
                    "backend": "nccl" if args.device.startswith("cuda") else "gloo"}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        run_dir = make_run(tmp / "generator-run", estimator="simple")
        for kind in ("loop", "export"):
            measured = {w: (loop(w, args, tmp) if kind == "loop" else export(w, args, tmp, run_dir)) for w in worlds}
            base = measured[worlds[0]][0]
            result[kind] = {
                "samples_per_s": {str(w): round(r, 1) for w, (r, _) in measured.items()},
                "speedup": {str(w): round(r / base, 2) for w, (r, _) in measured.items()},
                "cpu_s_whole_command": {str(w): round(c, 1) for w, (_, c) in measured.items()},
                # CPU time of all processes (start-up included) per sample: equal at 1 and 2 processes means the
                # distributed run adds no work, so its speed-up is bounded only by the free cores
                "cpu_ms_per_sample": {str(w): round(1000 * c / (2 * args.iters * args.batch_size * w if kind == "loop"
                                                                else args.export_samples), 2)
                                      for w, (_, c) in measured.items()},
            }
    result.update(machine=f"{platform.machine()} {platform.processor() or ''}".strip(), cpu_count=os.cpu_count(),
                  torch=torch.__version__, target_speedup_at_2=1.6)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
