"""What every stage works on: the run's configuration, its built parts, the training state and the strategies, plus
the few helpers they share (generate from G, render a scene, draw source-domain renders)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import RunConfig
from ..dataset_export import GeneratedSource
from ..generator import PoseGenerator, generated_shape_dim
from ..history_pool import HistoryPool
from ..interfaces import Discriminator, Estimator, PoseSet
from ..scene import SceneBatch, render_scene, sample_poses, source_viewpoints
from ..strategies import Strategies
from .. import distributed
from .build import Parts, stage_seed


@dataclass
class TrainState:
    """Everything a checkpoint holds: the models, their optimisers, D's history pool, the stage's random stream and
    where the run is (stage, step)."""

    G: PoseGenerator
    D: Discriminator
    P: Estimator
    P_pretrained: Estimator  # a frozen copy of the estimator before any fine-tuning (the "before" of the report)
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    opt_p: torch.optim.Optimizer
    pool: HistoryPool  # global (every rank's fakes), kept up to date on rank 0, drawn from stream 0
    rngs: list[torch.Generator]  # this process's random streams (one, unless ``streams`` > world size)
    streams: int  # the run's random streams, over all processes
    stage: str
    step: int
    real: PoseSet  # D's real poses

    @property
    def rng(self) -> torch.Generator:
        """The first random stream of this process (the only one of a single-process run)."""
        return self.rngs[0]

    def reseed(self, stage: str, seed: int) -> None:
        """Fresh random streams for ``stage`` (stream 0 is the single-process run's generator)."""
        self.rngs = distributed.stream_generators(stage_seed(seed, stage), self.streams)

    def state_dict(self) -> dict[str, Any]:
        """Every rank must call this (it gathers the random streams); only rank 0's copy is written."""
        states = distributed.gather_generator_states(self.rngs)
        return {
            "stage": self.stage, "step": self.step, "G": self.G.state_dict(), "D": self.D.state_dict(),
            "P": self.P.state_dict(), "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "opt_p": self.opt_p.state_dict(), "pool": self.pool.state_dict(), "rng": states[0],
            "rng_streams": states, "streams": self.streams, "world_size": distributed.world().size,
        }

    def load_state_dict(self, s: dict[str, Any], device: torch.device) -> None:
        self.stage, self.step = s["stage"], int(s["step"])
        self.G.load_state_dict(s["G"])
        self.D.load_state_dict(s["D"])
        self.P.load_state_dict(s["P"])
        self.opt_g.load_state_dict(s["opt_g"])
        self.opt_d.load_state_dict(s["opt_d"])
        self.opt_p.load_state_dict(s["opt_p"])
        self.pool.load_state_dict(s["pool"], device)
        states = s.get("rng_streams") or [s["rng"]]  # checkpoints from before streams hold one
        self.streams = len(states)
        owned = distributed.local_streams(self.streams)  # ConfigError when this world size does not divide it
        self.rngs = [torch.Generator() for _ in owned]
        for g, k in zip(self.rngs, owned):
            g.set_state(states[k].clone())


def init_training(cfg: RunConfig, parts: Parts, device: torch.device) -> TrainState:
    """A fresh training state; G's initial weights draw from torch's default generator (seeded in ``build_parts``)."""
    G = PoseGenerator(
        cfg.latent_dim, viewpoint=cfg.generate_viewpoint, viewpoint_param=cfg.viewpoint_param, k_max=cfg.k_max,
        max_elevation=cfg.max_elevation, max_roll=cfg.max_roll, shape_dim=generated_shape_dim(cfg.generate_shape, parts.renderer),
    ).to(device)
    D, P = parts.discriminator, parts.estimator
    for module in (G, D, P):  # every rank starts from rank 0's weights (as DistributedDataParallel does)
        distributed.broadcast_parameters(module)
    streams = cfg.streams or distributed.world().size
    distributed.check_streams(streams)
    return TrainState(
        G=G, D=D, P=P, P_pretrained=copy.deepcopy(P).eval(),
        opt_g=torch.optim.Adam(G.parameters(), lr=cfg.lr_g), opt_d=torch.optim.Adam(D.parameters(), lr=cfg.lr_d),
        opt_p=torch.optim.Adam(P.parameters(), lr=cfg.lr_p), pool=HistoryPool(cfg.pool_size),
        rngs=distributed.stream_generators(stage_seed(cfg.seed, "gan"), streams), streams=streams, stage=("gan" if cfg.iters > 0 else "dataset"), step=0, real=parts.split.train,
    )


@dataclass
class RunContext:
    """A stage's view of the run. ``metric``/``save_state``/``check_finite`` are the run folder's bookkeeping
    (``PoseGenRun`` provides them); stages never touch files other than through them and the dataset export."""

    cfg: RunConfig
    parts: Parts
    state: TrainState
    strategies: Strategies
    run_dir: Path
    device: torch.device
    log: Callable[[str], None]
    metric: Callable[[dict[str, Any]], None]
    save_state: Callable[[], None]
    check_finite: Callable[[dict[str, torch.Tensor]], None]
    reporter: Any
    #: G's body shapes (B, shape_dim) of the batch being trained on (``generate_shape``; the GAN stage sets and
    #: clears it), else None: renders of a batch of that size without an explicit ``subject`` use them, so the
    #: strategies keep calling ``scene(body_pose, view, rng)`` unchanged.
    batch_subject: torch.Tensor | None = None

    def generate(self, n: int, gen: torch.Generator, matrix: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(body_pose, K) from G; K as rotation matrices (for gradients) or axis-angle vectors (for export)."""
        body_pose, view, _ = self.generate_with_shape(n, gen, matrix)
        return body_pose, view

    def generate_with_shape(self, n: int, gen: torch.Generator, matrix: bool = True
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(body_pose, K, shape) from G; shape is None unless G generates body shape."""
        z = self.parts.prior.sample(n, self.cfg.latent_dim, generator=gen)
        out = self.state.G(z.to(self.device))
        return out.body_pose, (out.view_rotation if matrix else out.viewpoint), out.shape

    def generated_source(self) -> GeneratedSource:
        """G's samples for the dataset, seeded by the dataset stage's seed (what ``posegen export RUN`` re-draws)."""
        cfg, p = self.cfg, self.parts
        return GeneratedSource(self.state.G, p.prior, cfg.latent_dim, p.renderer, p.body_model, cfg.camera_distance,
                               cfg.subject, stage_seed(cfg.seed, "dataset"), self.device)

    def scene(self, body_pose: torch.Tensor, viewpoint: torch.Tensor, gen: torch.Generator,
              global_orient: torch.Tensor | None = None, subject: Any = None) -> SceneBatch:
        """Render (body_pose, K): G's bodies stand upright (identity root) unless ``global_orient`` is given. Without a
        ``subject``: G's shapes of the current batch (``batch_subject``) when the sizes match, else ``cfg.subject``."""
        if subject is None and self.batch_subject is not None and len(self.batch_subject) == len(body_pose):
            subject = self.batch_subject
        if global_orient is None:
            global_orient = torch.zeros(len(body_pose), 3, dtype=body_pose.dtype, device=body_pose.device)
        return render_scene(
            self.parts.renderer, self.parts.body_model, self.parts.intrinsics, global_orient, body_pose, viewpoint,
            self.cfg.camera_distance, self.cfg.subject if subject is None else subject, gen,
        )

    def source_batch(self, n: int, gen: torch.Generator) -> SceneBatch:
        """n source-domain renders (source poses from chest-height views)."""
        go, bp = sample_poses(self.parts.source.train, n, gen)
        with torch.no_grad():
            return self.scene(bp, source_viewpoints(n, gen), gen, go, subject=self.cfg.subject)

    def set_p_train(self) -> None:
        P = self.state.P
        P.train()
        if self.cfg.freeze_bn:  # the official code keeps BatchNorm statistics frozen while fine-tuning
            for m in P.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
