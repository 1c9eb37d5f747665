"""Stage 2: the fine-tuning set, drawn by the run's dataset sampler strategy (by default: ``cfg.samples`` (theta, K)
from the trained G) and rendered at the loop's size in memory; the same samples are exported at the export size
(``export_size``, by default what the estimator reads) under ``dataset/`` in SPIN's layout (posegen_core.dataset_export)."""

from __future__ import annotations

import torch

from ..dataset_export import ExportSettings, FixedSamples, export_dataset, export_size_for
from .build import stage_generator, stage_seed
from .context import RunContext


def make_dataset(ctx: RunContext) -> dict[str, torch.Tensor]:
    """Draw ``cfg.samples`` samples with the sampler strategy (deterministic given the seed), export them once."""
    cfg = ctx.cfg
    gen = stage_generator(cfg.seed, "dataset")
    ctx.state.G.eval()
    data = ctx.strategies.sampler.sample(ctx, cfg.samples, gen)
    folder = ctx.run_dir / "dataset"
    if ctx.state.stage == "dataset" or not (folder / "annotations.npz").is_file():
        size = export_size_for(cfg, ctx.state.P)
        seed = stage_seed(cfg.seed, "dataset")
        source = FixedSamples(data["global_orient"], data["body_pose"], data["viewpoint"], ctx.parts.renderer,
                              ctx.parts.body_model, cfg.camera_distance, cfg.subject, seed, data["images"], ctx.device,
                              phenotype=data.get("phenotype"))
        settings = ExportSettings(cfg.samples, size, seed, write_images=cfg.export_images)
        export_dataset(folder, source, settings, reporter=ctx.reporter, replace=True,
                       extra_info={"run": str(ctx.run_dir), "sampler": cfg.sampler}, log=ctx.log)
        ctx.log(f"dataset: {cfg.samples} samples at {size}x{size} written to {folder}")
    return data
