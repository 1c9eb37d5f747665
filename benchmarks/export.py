"""Benchmark ``posegen export``: images/s and peak memory of exporting a run's generator at 224 x 224 (SPIN's size)
with the default renderer, streamed to disk.

    .venv/bin/python benchmarks/export.py [--samples 20000] [--size 224] [--threads 2] [--keep DIR]

Makes a run folder with a freshly initialised generator (poses near rest, viewpoints all around: the renderer's
cost does not depend on training), runs the real command ``python -m posegen_core.cli export`` in a child process,
and reports its wall time, peak resident memory (ru_maxrss of the child) and CPU time per image (all threads; less
sensitive than wall time to other jobs on a shared machine). The exported dataset goes to a temporary
folder that is removed afterwards unless ``--keep`` names one. Targets (issue 12): peak RSS under 2 GB and at least
200 images/s on the 2-core CPU. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import posegen_core as pg
from posegen_core.generator import PoseGenerator
from posegen_core.io import atomic_torch_save, atomic_write_json


def make_run(folder: Path, **config) -> Path:
    """A run folder holding a freshly initialised generator (the renderer's cost does not depend on training); by
    default for SPIN, whose input size (224) is the export's default size."""
    cfg = pg.RunConfig(**{"estimator": "spin", **config})
    torch.manual_seed(0)
    G = PoseGenerator(cfg.latent_dim, viewpoint=cfg.generate_viewpoint, viewpoint_param=cfg.viewpoint_param,
                      k_max=cfg.k_max, max_elevation=cfg.max_elevation, max_roll=cfg.max_roll)
    atomic_write_json(cfg.to_dict(), folder / "config.json")
    atomic_torch_save({"G": G.state_dict(), "config": cfg.to_dict()}, folder / "checkpoints" / "generator.pt")
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=20000)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=2, help="torch threads in the exporting process")
    ap.add_argument("--keep", type=Path, default=None, help="keep the exported dataset in this (new) folder")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="posegen-export-bench-") as tmp:
        run = make_run(Path(tmp) / "run")
        out = args.keep or Path(tmp) / "dataset"
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
        cmd = [sys.executable, "-m", "posegen_core.cli", "export", str(run), "--samples", str(args.samples),
               "--size", str(args.size), "--out", str(out), "--threads", str(args.threads)]
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            sys.exit(f"export failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak_mb = usage.ru_maxrss / 1024  # Linux: kilobytes
        cpu_s = usage.ru_utime + usage.ru_stime  # all threads: rendering and PNG encoding
        files = list((out / "images").iterdir())
        disk_mb = sum(f.stat().st_size for f in files) / 2**20
        print(proc.stdout.strip().splitlines()[-1])
        result = {
            "benchmark": "export", "samples": args.samples, "size": args.size, "threads": args.threads,
            "wall_s": round(wall, 2), "images_per_s": round(args.samples / wall, 1),
            "peak_rss_mb": round(peak_mb, 1), "cpu_s": round(cpu_s, 1),
            "cpu_ms_per_image": round(1000 * cpu_s / args.samples, 2), "images_written": len(files), "png_mb": round(disk_mb, 1),
            "load_avg_start": round(load0, 2), "load_avg_end": round(os.getloadavg()[0], 2),
            "targets": {"images_per_s": 200, "peak_rss_mb": 2048},
            "command": " ".join(cmd[1:3] + ["export", "RUN"] + cmd[5:9] + cmd[11:13]),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
