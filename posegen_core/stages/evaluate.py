"""Stage 4: the estimator before and after, on held-out takes from source-like and novel viewpoints; summary.json and
the report (which receives plain data, never the run)."""

from __future__ import annotations

from typing import Any

import torch

from .. import distributed, metrics
from ..errors import PosegenError
from ..interfaces import Estimator
from ..io import atomic_write_json
from ..scene import SceneBatch, module_device, novel_viewpoints, sample_poses, source_viewpoints
from .build import stage_generator
from .context import RunContext


def evaluation_sets(ctx: RunContext) -> dict[str, SceneBatch]:
    """Held-out test takes, seen from source-like and from novel viewpoints (fixed by ``setting_seed``: every run
    seed meets the same test set)."""
    cfg, parts = ctx.cfg, ctx.parts
    gen = stage_generator(cfg.setting_seed, "evaluate")
    n, subject = cfg.eval_samples, cfg.eval_subject
    plan = [("source_views", parts.split.test, source_viewpoints),
            ("novel_views", parts.split.test, novel_viewpoints)]
    if cfg.source_pose_source is not None:
        plan.append(("source_domain", parts.source.test, source_viewpoints))
    out = {}
    with torch.no_grad():
        for name, poses, views in plan:
            go, bp = sample_poses(poses, n, gen)
            out[name] = ctx.scene(bp, views(n, gen), gen, go, subject=subject).to("cpu")
    return out


def orientation_error_deg(pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Per-sample root-orientation error (B,), degrees: the angle of the Procrustes rotation that takes the predicted
    skeleton onto the true one (what PA-MPJPE aligns away). It needs no predicted rotations, so every estimator gets
    the same measure."""
    rot = metrics.similarity_transform(pred, truth).rotation
    cos = ((rot.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.acos(cos))


def evaluate_estimator(estimator: Estimator, scene: SceneBatch, batch: int = 64) -> dict[str, Any]:
    """MPJPE and PA-MPJPE (mm) and the root-orientation error (degrees) of ``estimator`` on a rendered evaluation
    set, plus per-sample errors for reports. In a distributed run each rank predicts a contiguous share of the set
    and every rank receives all predictions."""
    estimator.eval()
    dev = module_device(estimator)
    world = distributed.world()
    counts = distributed.shares(len(scene.images), world.size)
    first = sum(counts[: world.rank])
    images = scene.images[first : first + counts[world.rank]]
    with torch.no_grad():
        pred = torch.cat([estimator(images[i : i + batch].to(dev)).joints.cpu() for i in range(0, len(images), batch)]
                         or [torch.zeros(0, *scene.joints.shape[1:])])
    pred = distributed.all_gather_rows(pred)
    truth = scene.joints.cpu()
    per = metrics.mpjpe(pred, truth)
    pa = metrics.pa_mpjpe(pred, truth)
    return {
        "mpjpe_mm": float(per.mean()) * 1000, "pa_mpjpe_mm": float(pa.mean()) * 1000,
        "rot_deg": float(orientation_error_deg(pred, truth).mean()),
        "mpjpe_std_mm": float(per.std()) * 1000, "n": len(per),
        "_per_sample_m": per, "_per_joint_m": metrics.per_joint_error(pred, truth).mean(0),
    }


def evaluate_and_report(ctx: RunContext, elapsed: float) -> dict[str, Any]:
    """Evaluate before/after, write summary.json and (when asked) the report; returns the summary."""
    cfg, st = ctx.cfg, ctx.state
    ckpt = ctx.run_dir / "checkpoints"
    sets = evaluation_sets(ctx)
    before = {k: evaluate_estimator(st.P_pretrained, s) for k, s in sets.items()}
    after = {k: evaluate_estimator(st.P, s) for k, s in sets.items()}
    table = {
        split: {
            "mpjpe_before": before[split]["mpjpe_mm"], "mpjpe_after": after[split]["mpjpe_mm"],
            "pa_mpjpe_before": before[split]["pa_mpjpe_mm"], "pa_mpjpe_after": after[split]["pa_mpjpe_mm"],
            "rot_deg_before": before[split]["rot_deg"], "rot_deg_after": after[split]["rot_deg"],
        }
        for split in sets
    }
    summary = {
        "before": {k: {m: v for m, v in r.items() if not m.startswith("_")} for k, r in before.items()},
        "after": {k: {m: v for m, v in r.items() if not m.startswith("_")} for k, r in after.items()},
        "table": table,
        "seed": cfg.seed,
        "elapsed_s": elapsed,
        "paths": {
            "run": str(ctx.run_dir), "dataset": str(ctx.run_dir / "dataset"),
            "estimator_pretrained": str(ckpt / "estimator_pretrained.pt"),
            "estimator_final": str(ckpt / "estimator_final.pt"),
            "generator": str(ckpt / "generator.pt"),
        },
    }
    ctx.metric({"stage": "evaluate", "step": 1, **{f"{s}_{k}": v for s, r in table.items() for k, v in r.items()}})
    if distributed.world().main:
        atomic_write_json(summary, ctx.run_dir / "summary.json")
    if cfg.report and distributed.world().main:
        from ..report import write_report

        try:
            write_report(ctx.run_dir, ctx.parts.intrinsics, cfg.seed, sets, before, after)
        except PosegenError:
            raise
        except Exception as e:  # a plotting failure must not lose the run's results
            ctx.log(f"report could not be written: {type(e).__name__}: {e}")
    st.stage, st.step = "done", 0
    ctx.save_state()
    ctx.reporter.table(table)
    return summary
