"""Reproduce the paper's claims in miniature on real motion capture (CMU, Character Creator rig), with ablations.

Structure (the paper's, scaled to a 2-core CPU):
- source domain: the walking takes, seen from chest-height cameras (as Human3.6M is); the estimator is pre-trained
  there to convergence (its curve is reported);
- the discriminator's real poses (the paper's AMASS): the non-walking takes of the "pool" half of the other motions;
- target domains, never used for training or generation: the other half of the non-walking takes (split by take,
  stratified by motion type) seen from novel viewpoints (top, bottom, oblique), also with an unseen subject
  appearance, and from source-like viewpoints; plus held-out walking takes from source views (the source error);
- methods, all fine-tuned from the same pre-trained model with the same steps, batch and samples: A1 (G: theta only,
  no feedback), A2 (theta + K, no feedback), A3 (theta + K + feedback, ood), A3 ind, A3 with uniform and spherical
  priors, A3 with 1K to 9K samples, and an oracle fine-tuned on target-like data (pool poses from novel views);
- three seeds per configuration; mean and standard deviation of MPJPE and PA-MPJPE per domain.

Usage: python benchmarks/paper.py [--quick] [--jobs 2] [--data PATH] [--out DIR] [--seeds N] [--methods A2,A3]
Prints one JSON object as its last line (with --quick: the pre-trained, A2 and A3 target MPJPE).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

import posegen_core as pg
from posegen_core.loop import PoseGenRun, evaluate_estimator, stage_seed
from posegen_core.pretrain import pretrain_estimator
from posegen_core.scene import novel_viewpoints, render_scene, sample_poses, source_viewpoints

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TRAIN_SUBJECT = 0  # the appearance of every training render (the paper's single NeRF subject)
NEW_SUBJECT = 3  # an appearance never rendered in training
EVAL_SAMPLES = 500

#: The methods (the paper's Tables 5-7 and Fig. 6); every fine-tuned one gets the same steps, batch and samples.
METHODS: dict[str, dict[str, Any]] = {
    "A1": dict(feedback="none", generate_viewpoint=False),  # theta only, K = 0, no feedback
    "A2": dict(feedback="none"),  # theta + K (G's untrained, spread viewpoints), no feedback
    "A3": dict(feedback="render", scenario="ood"),  # theta + K + feedback: PoseGen
    "A3-ind": dict(feedback="render", scenario="ind"),
    "A3-uniform": dict(feedback="render", prior="uniform"),
    "A3-spherical": dict(feedback="render", prior="spherical"),
    "A3-1K": dict(feedback="render", samples=1000),
    "A3-9K": dict(feedback="render", samples=9000),
    "oracle": dict(feedback="none", _oracle=True),  # fine-tuned on target-like data (the paper's FT rows)
    "A3-nospread": dict(feedback="render", w_spread=0.0),  # the paper's formulation exactly: K collapses
    # not in the default grid (--methods): the official code's loop (pose-only feedback every 5th iteration)
    "A3-official": dict(feedback="pose", feedback_every=5, feedback_shape="linear", c=1.0, w_spread=0.0),
}
FULL_GRID = [m for m in METHODS if m != "A3-official"]


def motion_group(description: str) -> str:
    d = description.lower()
    for key in ("walk", "run", "dance", "basketball", "swordplay", "playground", "punch", "jump"):
        if key in d:
            return key
    return "other"


def make_splits(data: Path, seed: int = 0) -> dict[str, list[str]]:
    """Take-level splits (never frames of one take on two sides), checked disjoint."""
    from posegen_plugins.pose_sources.bvh import read_cmu_index

    index = read_cmu_index(data / "cmu_cc")
    takes = sorted(index)
    groups: dict[str, list[str]] = {}
    for t in takes:
        groups.setdefault(motion_group(str(index[t].get("description", ""))), []).append(t)
    rng = np.random.default_rng(seed)
    walk = list(rng.permutation(groups.pop("walk")))
    n_walk_test = max(2, len(walk) // 5)
    splits = {"source_train": sorted(walk[n_walk_test:]), "source_test": sorted(walk[:n_walk_test]),
              "pool": [], "target_test": []}
    for name in sorted(groups):
        members = list(rng.permutation(groups[name]))
        n_test = len(members) // 2 if len(members) > 1 else 0
        splits["target_test"] += members[:n_test]
        splits["pool"] += members[n_test:]
    splits = {k: sorted(v) for k, v in splits.items()}
    seen: dict[str, str] = {}
    for k, v in splits.items():
        for t in v:
            if t in seen:
                raise AssertionError(f"take {t} is in both {seen[t]} and {k}")
            seen[t] = k
    # The target test takes reach neither generation, the discriminator nor fine-tuning.
    assert not set(splits["target_test"]) & (set(splits["pool"]) | set(splits["source_train"]))
    return splits


def bvh_options(data: Path, takes: list[str], fps: float, cache: Path) -> dict[str, Any]:
    return {"path": str(data / "cmu_cc"), "include": takes, "fps": fps, "cache_dir": str(cache)}


class OracleRun(PoseGenRun):
    """The paper's "FT" rows: fine-tuned on target-like data (pool poses from novel views), same budget as PoseGen."""

    def make_dataset(self) -> dict[str, torch.Tensor]:
        gen = torch.Generator().manual_seed(stage_seed(self.cfg.seed, "dataset"))
        images, joints, views, poses, rotations = [], [], [], [], []
        with torch.no_grad():
            for start in range(0, self.cfg.samples, 256):
                n = min(256, self.cfg.samples - start)
                go, bp = sample_poses(self.parts.split.train, n, gen)
                k = novel_viewpoints(n, gen)
                scene = self._scene(bp, k, gen, go)
                images.append((scene.images.clamp(0, 1) * 255).round().to(torch.uint8))
                joints.append(scene.joints)
                rotations.append(scene.rotations)
                views.append(k)
                poses.append(bp)
        return {"images": torch.cat(images), "joints": torch.cat(joints), "viewpoint": torch.cat(views),
                "body_pose": torch.cat(poses), "rotations": torch.cat(rotations)}


def evaluation_sets(renderer, body, poses: dict[str, pg.PoseSet], image_size: int, distance: float) -> dict:
    gen = torch.Generator().manual_seed(20240)
    intr = pg.Intrinsics.framing(image_size, distance)
    plan = [
        ("target_novel_views", "target_test", novel_viewpoints, TRAIN_SUBJECT),
        ("target_novel_views_new_subject", "target_test", novel_viewpoints, NEW_SUBJECT),
        ("target_source_views", "target_test", source_viewpoints, TRAIN_SUBJECT),
        ("source", "source_test", source_viewpoints, TRAIN_SUBJECT),
    ]
    out = {}
    with torch.no_grad():
        for name, split, views, subject in plan:
            go, bp = sample_poses(poses[split], EVAL_SAMPLES, gen)
            out[name] = render_scene(renderer, body, intr, go, bp, views(EVAL_SAMPLES, gen), distance, subject, gen)
    return out


def evaluate(estimator, sets: dict) -> dict[str, dict[str, float]]:
    return {k: {m: v for m, v in evaluate_estimator(estimator, s).items() if not m.startswith("_")}
            for k, s in sets.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one seed; pre-trained, A2 and A3 only; smaller budgets")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder holding cmu_cc/ (CMU BVH takes)")
    ap.add_argument("--out", type=Path, default=Path("runs/paper"))
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--fps", type=float, default=10.0, help="mocap subsampling rate")
    ap.add_argument("--methods", default=None, help=f"comma-separated subset of {', '.join(METHODS)}")
    ap.add_argument("--jobs", type=int, default=2, help="runs in parallel, one thread each (2 suits a 2-core CPU)")
    args = ap.parse_args()
    if args.methods is None:
        args.methods = "A2,A3" if args.quick else ",".join(FULL_GRID)
    if not (args.data / "cmu_cc").is_dir():
        print(json.dumps({"benchmark": "paper", "skipped": f"no CMU data under {args.data / 'cmu_cc'}"}))
        return
    t_start = time.time()
    console = Console(stderr=True)
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.out / "cache"
    seeds = list(range(args.seeds or (1 if args.quick else 3)))
    budget = dict(  # identical for every fine-tuned method
        image_size=64, batch_size=64, finetune_batch=64, source_mix=0.75,
        feedback_start=600, iters=600 + (100 if args.quick else 200), samples=1500 if args.quick else 3000,
        finetune_steps=200 if args.quick else 250,
    )
    pre_cfg = pg.PretrainConfig(steps=1200 if args.quick else 2000, batch_size=64, lr=2e-3, eval_every=200)

    splits = make_splits(args.data)
    sources = {k: bvh_options(args.data, v, args.fps, cache / "bvh") for k, v in splits.items()}
    poses = {k: pg.create_pose_source("bvh", **o).load() for k, o in sources.items()}
    console.log({k: f"{len(v)} takes / {len(poses[k])} frames" for k, v in splits.items()})

    renderer = pg.create_renderer("primitives")
    body = pg.SkeletonBody()
    sets = evaluation_sets(renderer, body, poses, budget["image_size"], 4.0)

    # 1. pre-train on the source domain (to convergence: the curve is reported)
    ckpt = args.out / f"pretrained_{'quick' if args.quick else 'full'}.pt"
    if ckpt.is_file():
        est = pg.create_estimator("simple", checkpoint=ckpt)
        curve = torch.load(ckpt, weights_only=True).get("curve", [])
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = pg.create_estimator("simple")
        torch.manual_seed(0)
        curve = pretrain_estimator(est, renderer, body, poses["source_train"], pre_cfg, budget["image_size"], 4.0,
                                   seed=0, subject=TRAIN_SUBJECT, log=lambda r: console.log(r))
        est.save_checkpoint(ckpt, curve=curve)
    results: dict[str, Any] = {"pretrained": [evaluate(est, sets)], "curve": curve, "splits": splits}

    base = pg.RunConfig(
        renderer="primitives", estimator="simple", estimator_checkpoint=str(ckpt),
        pose_source="bvh", pose_source_options=sources["pool"],
        source_pose_source="bvh", source_pose_source_options=sources["source_train"],
        subject=TRAIN_SUBJECT, eval_samples=16, report=False, export_images=False, checkpoint_every=10**6,
        log_every=50, **budget,
    )
    methods = {k: v for k, v in METHODS.items() if k in args.methods.split(",")}
    unknown = set(args.methods.split(",")) - set(METHODS)
    if unknown:
        raise SystemExit(f"unknown methods {sorted(unknown)}; available: {', '.join(METHODS)}")
    jobs = []
    for name, over in methods.items():
        over = dict(over)
        oracle = over.pop("_oracle", False)
        for seed in seeds:
            cfg = replace(base, seed=seed, out=str(args.out / "runs" / f"{name}-{seed}"), **over)
            jobs.append((name, seed, replace(cfg, iters=0, feedback_start=0) if oracle else cfg, oracle, sources))
        results[name], results[name + " samples"] = [None] * len(seeds), cfg.samples
    # Runs are independent and deterministic: with --jobs N they run in N processes of one thread each (on 2 cores,
    # two one-thread runs finish sooner than two runs one after the other at two threads).
    if args.jobs > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(args.jobs) as pool:
            done = pool.imap_unordered(run_job, jobs)
            for name, seed, metrics, seconds in done:
                results[name][seed] = metrics
                console.log(f"{name} seed {seed}: {seconds:.0f} s, target novel MPJPE "
                            f"{metrics['target_novel_views']['mpjpe_mm']:.1f} mm")
    else:
        for job in jobs:
            name, seed, metrics, seconds = run_job(job, sets)
            results[name][seed] = metrics
            console.log(f"{name} seed {seed}: {seconds:.0f} s, target novel MPJPE "
                        f"{metrics['target_novel_views']['mpjpe_mm']:.1f} mm")

    summary = summarize(results)
    results["summary"] = summary
    results["elapsed_s"] = time.time() - t_start
    (args.out / ("results_quick.json" if args.quick else "results.json")).write_text(json.dumps(results, indent=1))
    write_tables(summary, results, args.out / ("tables_quick.md" if args.quick else "tables.md"), args.quick)
    if not args.quick:
        plot(summary, results, args.out / "paper.png")
    key = "target_novel_views"
    final = {
        "benchmark": "paper", "quick": args.quick, "seeds": len(seeds), "elapsed_s": round(time.time() - t_start, 1),
        "pretrained_target_mpjpe": summary["pretrained"][key]["mpjpe_mean"],
        **{f"{m}_target_mpjpe": summary[m][key]["mpjpe_mean"] for m in ("A2", "A3") if m in summary},
    }
    print(json.dumps(final))


_WORKER_SETS: dict[str, Any] = {}


def run_job(job: tuple, sets: dict | None = None) -> tuple[str, int, dict, float]:
    """One fine-tuning method with one seed, evaluated on the benchmark's fixed evaluation renders."""
    name, seed, cfg, oracle, sources = job
    t0 = time.time()
    if sets is None:  # in a worker process: one thread, evaluation renders made once per process
        torch.set_num_threads(1)
        if not _WORKER_SETS:
            poses = {k: pg.create_pose_source("bvh", **o).load() for k, o in sources.items()}
            _WORKER_SETS.update(evaluation_sets(pg.create_renderer("primitives"), pg.SkeletonBody(), poses,
                                                cfg.image_size, 4.0))
        sets = _WORKER_SETS
    run = (OracleRun if oracle else PoseGenRun)(cfg, overwrite=True, console=Console(file=open(os.devnull, "w")))
    run.run()
    return name, seed, evaluate(run.P, sets), time.time() - t0


def summarize(results: dict[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    out = {}
    for name, runs in results.items():
        if not isinstance(runs, list) or not runs or not isinstance(runs[0], dict) or "source" not in runs[0]:
            continue
        out[name] = {}
        for domain in runs[0]:
            m = np.array([r[domain]["mpjpe_mm"] for r in runs])
            p = np.array([r[domain]["pa_mpjpe_mm"] for r in runs])
            out[name][domain] = {"mpjpe_mean": float(m.mean()), "mpjpe_std": float(m.std(ddof=1)) if len(m) > 1 else 0.0,
                                 "pa_mean": float(p.mean()), "pa_std": float(p.std(ddof=1)) if len(p) > 1 else 0.0}
    return out


def write_tables(summary: dict, results: dict, path: Path, quick: bool) -> None:
    domains = ["target_novel_views", "target_novel_views_new_subject", "target_source_views", "source"]
    head = "| method | " + " | ".join(f"{d} MPJPE / PA-MPJPE" for d in domains) + " |"
    lines = [head, "|" + "---|" * (len(domains) + 1)]
    for name, r in summary.items():
        cells = [f"{r[d]['mpjpe_mean']:.1f} ± {r[d]['mpjpe_std']:.1f} / {r[d]['pa_mean']:.1f} ± {r[d]['pa_std']:.1f}"
                 for d in domains]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    path.write_text("\n".join(lines) + "\n")


def plot(summary: dict, results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    names = [n for n in summary if not n.endswith("K")]
    d = "target_novel_views"
    axes[0].barh(names, [summary[n][d]["mpjpe_mean"] for n in names], xerr=[summary[n][d]["mpjpe_std"] for n in names],
                 color="tab:red")
    axes[0].set(xlabel="MPJPE (mm), held-out takes from novel views", title="methods (3 seeds)")
    sizes = sorted((results[n + " samples"], n) for n in summary if n == "A3" or (n.startswith("A3-") and n.endswith("K")))
    axes[1].errorbar([s for s, _ in sizes], [summary[n][d]["mpjpe_mean"] for _, n in sizes],
                     yerr=[summary[n][d]["mpjpe_std"] for _, n in sizes], marker="o")
    axes[1].set(xlabel="generated samples", ylabel="MPJPE (mm)", title="dataset size (the paper's Fig. 6)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
