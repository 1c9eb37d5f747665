"""``posegen pretrain``: train an estimator on the source domain (everyday poses, chest-height cameras)."""

from __future__ import annotations

import warnings
from pathlib import Path

import click
import torch

from ..body_models import create_body_model
from ..config import PretrainConfig, RunConfig, resolve_device
from ..plugins import create_estimator, create_pose_source, create_renderer
from ..pretrain import pretrain_estimator
from ..stages.build import stage_seed
from ..progress import Reporter
from ..run_folder import ensure_finite
from ..validation import check_renderer_weights
from ..scene import split_by_take


@click.command()
@click.option("--estimator", default="simple", show_default=True)
@click.option("--renderer", default="primitives", show_default=True)
@click.option("--renderer-checkpoint", type=click.Path(dir_okay=False), help="Checkpoint for the renderer (e.g. A-NeRF).")
@click.option("--random-renderer-weights", is_flag=True,
              help="Allow a renderer that needs a trained checkpoint (A-NeRF) to run with random weights.")
@click.option("--pose-source", default="default", show_default=True)
@click.option("--steps", default=PretrainConfig.steps, show_default=True, type=int)
@click.option("--batch-size", default=PretrainConfig.batch_size, show_default=True, type=int)
@click.option("--lr", default=PretrainConfig.lr, show_default=True, type=float)
@click.option("--image-size", default=64, show_default=True, type=int)
@click.option("--test-fraction", default=0.2, show_default=True, type=float,
              help="Fraction of takes held out (never trained on), as in `posegen run`.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--device", default="auto", show_default=True, help="torch device; auto picks cuda when available.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Where to write the checkpoint (.pt).")
def pretrain(estimator: str, renderer: str, renderer_checkpoint: str | None, random_renderer_weights: bool,
             pose_source: str, steps: int, batch_size: int, lr: float, image_size: int, test_fraction: float, seed: int,
             device: str, out: str) -> None:
    """Pre-train ESTIMATOR on renders of the pose source's training takes from chest-height cameras."""
    # the same checks as `posegen run` (types, ranges, device), before anything is built
    RunConfig(image_size=image_size, test_fraction=test_fraction, seed=seed, device=device).validate()
    cfg = PretrainConfig(steps=steps, batch_size=batch_size, lr=lr, eval_every=max(1, min(250, steps)))
    check_renderer_weights(renderer, renderer_checkpoint, random_renderer_weights)
    from .. import distributed

    # under torchrun: every process trains on its own batches, gradients are averaged, rank 0 writes the checkpoint
    world = distributed.init_from_env(resolve_device(device))
    dev = distributed.local_device(torch.device(resolve_device(device)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # seeded: the same --seed gives the same model, and every process of a torchrun starts from the same weights
        torch.manual_seed(stage_seed(seed, "estimator_init"))
        est = create_estimator(estimator).to(dev)
    rend = create_renderer(renderer, **({"checkpoint": renderer_checkpoint} if renderer_checkpoint else {}))
    if isinstance(rend, torch.nn.Module):
        rend.to(dev)
    poses = create_pose_source(pose_source).load()
    split = split_by_take(poses, test_fraction, seed)
    distance = 4.0
    with Reporter() as reporter:
        curve = pretrain_estimator(
            est, rend, create_body_model().to(dev), split.train, cfg, image_size, distance, seed,
            log=lambda r: reporter.log(f"step {r['step']}: loss {r['loss']:.4f}  val MPJPE {r['val_mpjpe_mm']:.1f} mm"),
            say=reporter.log,
        )
    ensure_finite(est.state_dict(), f"the pre-trained {estimator} to {out}")
    distributed.shutdown()
    if world.main:
        est.save_checkpoint(Path(out), curve=curve)
        click.echo(f"wrote {out}")
