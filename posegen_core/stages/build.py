"""Stage 0: build a run's parts from its configuration (plugins by name, pose splits, the pre-trained estimator)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import distributed
from ..body_models import create_body_model
from ..camera import Intrinsics
from ..config import RunConfig
from ..interfaces import Discriminator, Estimator, PoseSet, Prior, Renderer
from ..plugins import (
    create_discriminator,
    create_estimator,
    create_pose_source,
    create_prior,
    create_renderer,
    get_registry,
)
from ..pretrain import cache_dir, cache_key, pretrain_estimator
from ..run_folder import ensure_finite, non_finite_entries
from ..scene import PoseSplit, split_by_take


@dataclass
class Parts:
    """The built components of a run."""

    renderer: Renderer
    estimator: Estimator
    prior: Prior
    discriminator: Discriminator
    body_model: nn.Module
    split: PoseSplit  # poses for D (train) and the held-out test poses
    source: PoseSplit  # the estimator's source domain (train: pre-training and source mixing; test: evaluation)
    intrinsics: Intrinsics
    plugin_versions: dict[str, str] = field(default_factory=dict)


def stage_seed(seed: int, stage: str) -> int:
    """The seed of one stage, derived from the run seed, so stages are reproducible independently."""
    return seed * 1000 + {"gan": 1, "dataset": 2, "finetune": 3, "evaluate": 4, "pretrain": 6, "estimator_init": 7}[stage]


def stage_generator(seed: int, stage: str) -> torch.Generator:
    return torch.Generator().manual_seed(stage_seed(seed, stage))


def _plugin_version(kind: str, name: str) -> str:
    info = get_registry().plugins[kind].get(name)
    return f"{name}=={info.version}" if info is not None and info.version else name


def build_parts(cfg: RunConfig, run_dir: Path | None, log: Callable[[str], None]) -> Parts:
    torch.manual_seed(cfg.seed)  # module initialisation (G, D, P) draws from torch's default generator
    renderer = cfg.renderer
    if isinstance(renderer, str):
        opts = dict(cfg.renderer_options)
        if cfg.renderer_checkpoint:
            opts["checkpoint"] = cfg.renderer_checkpoint
        renderer = create_renderer(renderer, **opts)
    prior = create_prior(cfg.prior)
    disc = create_discriminator(cfg.discriminator, **cfg.discriminator_options)
    split = _load_split(cfg.pose_source, cfg.pose_source_options, cfg, log)
    source = split
    if cfg.source_pose_source is not None:
        source = _load_split(cfg.source_pose_source, cfg.source_pose_source_options, cfg, log)
    body = create_body_model(cfg.smpl_model)
    intr = Intrinsics.framing(cfg.image_size, cfg.camera_distance)
    device = distributed.local_device(cfg.torch_device)
    body.to(device)
    disc.to(device)
    if isinstance(renderer, nn.Module):
        renderer.to(device)
    with torch.random.fork_rng(devices=[]):  # G's and D's initialisation never depends on how P was obtained
        estimator = _build_estimator(cfg, renderer, body, source.train, intr, run_dir, log, device)
    versions = {
        "renderer": _plugin_version("renderer", cfg.renderer) if isinstance(cfg.renderer, str) else type(renderer).__name__,
        "estimator": _plugin_version("estimator", cfg.estimator) if isinstance(cfg.estimator, str) else type(estimator).__name__,
        "prior": _plugin_version("prior", cfg.prior),
        "discriminator": _plugin_version("discriminator", cfg.discriminator),
        "pose_source": _plugin_version("pose_source", cfg.pose_source),
    }
    if cfg.source_pose_source is not None:
        versions["source_pose_source"] = _plugin_version("pose_source", cfg.source_pose_source)
    return Parts(renderer, estimator, prior, disc, body, split, source, intr, versions)


def _load_split(name: str, options: dict[str, Any], cfg: RunConfig, log: Callable[[str], None]) -> PoseSplit:
    poses = create_pose_source(name, **options).load()
    split = split_by_take(poses, cfg.test_fraction, cfg.setting_seed)
    log(
        f"pose source '{name}': {len(poses)} frames in {len(np.unique(poses.take))} takes; "
        f"{len(split.train)} train / {len(split.test)} held-out test frames"
    )
    return split


def _build_estimator(
    cfg: RunConfig, renderer: Renderer, body: nn.Module, train: PoseSet, intr: Intrinsics,
    run_dir: Path | None, log: Callable[[str], None], device: torch.device,
) -> Estimator:
    pretrained_path = run_dir / "checkpoints" / "estimator_pretrained.pt" if run_dir else None
    # every rank takes the same path (rank 0's view of the files): pre-training is a collective operation
    if pretrained_path is not None and distributed.from_main(pretrained_path.is_file()) and isinstance(cfg.estimator, str):
        return create_estimator(cfg.estimator, checkpoint=pretrained_path, **cfg.estimator_options).to(device)  # resume
    if not isinstance(cfg.estimator, str):
        est = cfg.estimator.to(device)
    elif cfg.estimator_checkpoint:
        est = create_estimator(cfg.estimator, checkpoint=cfg.estimator_checkpoint, **cfg.estimator_options).to(device)
    else:
        est = _pretrained_from_scratch(cfg, renderer, body, train, log, device)
    if pretrained_path is not None and distributed.world().main:
        est.save_checkpoint(pretrained_path)
    return est


def _pretrained_from_scratch(
    cfg: RunConfig, renderer: Renderer, body: nn.Module, train: PoseSet, log: Callable[[str], None],
    device: torch.device,
) -> Estimator:
    import warnings

    key = cache_key({
        "estimator": cfg.estimator, "options": cfg.estimator_options, "renderer": cfg.renderer,
        "renderer_options": cfg.renderer_options, "renderer_checkpoint": cfg.renderer_checkpoint,
        "pose_source": cfg.source_pose_source or cfg.pose_source,
        "pose_source_options": cfg.source_pose_source_options if cfg.source_pose_source else cfg.pose_source_options,
        "test_fraction": cfg.test_fraction, "image_size": cfg.image_size, "distance": cfg.camera_distance,
        "pretrain": vars(cfg.pretrain) | {"cache": None}, "seed": cfg.setting_seed, "smpl": cfg.smpl_model, "v": 2,
        # pre-training on N processes trains on N times the batch: another model (the key at one process is unchanged)
        **({"world_size": distributed.world().size} if distributed.world().active else {}),
    })
    cached = cache_dir() / "pretrained" / f"{cfg.estimator}-{key}.pt"
    if distributed.from_main(cfg.pretrain.cache and cached.is_file()):
        est = create_estimator(cfg.estimator, checkpoint=cached, **cfg.estimator_options).to(device)
        if not non_finite_entries(est.state_dict()):
            log(f"pre-trained {cfg.estimator} from the cache: {cached}")
            return est
        log(f"ignoring the cached model {cached}: it holds NaN/inf weights; pre-training again")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "random weights" is expected: we are about to pre-train
        torch.manual_seed(stage_seed(cfg.setting_seed, "estimator_init"))  # the same stand-in for every run seed
        est = create_estimator(cfg.estimator, **cfg.estimator_options).to(device)
    log(f"pre-training {cfg.estimator} on the source domain for {cfg.pretrain.steps} steps (cached afterwards)")
    curve = pretrain_estimator(
        est, renderer, body, train, cfg.pretrain, cfg.image_size, cfg.camera_distance,
        stage_seed(cfg.setting_seed, "pretrain"),
        subject=cfg.subject,
        log=lambda row: log(f"  pretrain step {row['step']}: loss {row['loss']:.4f}, val MPJPE {row['val_mpjpe_mm']:.1f} mm"),
        say=log,
    )
    if cfg.pretrain.cache and distributed.world().main:
        ensure_finite(est.state_dict(), f"the pre-trained {cfg.estimator} to the cache")
        est.save_checkpoint(cached, curve=curve)
    return est
