"""Stage 2: the fine-tuning set, drawn by the run's dataset sampler strategy (by default: ``cfg.samples`` (theta, K)
from the trained G, rendered), and exported in SPIN's field layout under ``dataset/``."""

from __future__ import annotations

import torch

from .build import stage_generator
from .context import RunContext


def make_dataset(ctx: RunContext) -> dict[str, torch.Tensor]:
    """Draw ``cfg.samples`` samples with the sampler strategy (deterministic given the seed), export them once."""
    from ..dataset_export import export_dataset

    cfg = ctx.cfg
    gen = stage_generator(cfg.seed, "dataset")
    ctx.state.G.eval()
    data = ctx.strategies.sampler.sample(ctx, cfg.samples, gen)
    if ctx.state.stage == "dataset" or not (ctx.run_dir / "dataset" / "annotations.npz").is_file():
        export_dataset(ctx.run_dir / "dataset", data, ctx.parts.intrinsics, cfg.camera_distance,
                       write_images=cfg.export_images)
        ctx.log(f"dataset: {cfg.samples} samples written to {ctx.run_dir / 'dataset'}")
    return data
