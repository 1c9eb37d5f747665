"""The PoseGen loop, end to end: build the parts, (pre-)train, learn G and D with the estimator's feedback, sample and
render a dataset from G, fine-tune the estimator on it, evaluate before/after, write the run folder.

Every stage checkpoints atomically into ``checkpoints/state.pt``; ``resume`` continues from the last one and, because
every random draw comes from generators whose state is checkpointed, ends with the same results as an unbroken run.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import metrics
from .body_models import create_body_model
from .camera import Intrinsics, camera_directions, viewpoint_angles
from .config import RunConfig
from .errors import ConfigError, PosegenError, TrainingError
from .generator import PoseGenerator
from .history_pool import HistoryPool
from .interfaces import Discriminator, Estimator, EstimatorOutput, PoseSet, Prior, Renderer
from .io import atomic_torch_save, atomic_write_json, atomic_write_text, load_checkpoint_file
from .losses import (
    feedback_loss,
    generator_objective,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
    per_sample_joint_error,
    spread_loss,
)
from .plugins import (
    create_discriminator,
    create_estimator,
    create_pose_source,
    create_prior,
    create_renderer,
    get_registry,
)
from .pretrain import cache_dir, cache_key, pretrain_estimator, supervised_loss
from .run_folder import (
    acquire_lock,
    check_out_folder,
    check_resume_config,
    check_state,
    ensure_finite,
    last_good_checkpoint,
    non_finite_entries,
    release_lock,
    replace_run_folder,
    started_config,
    write_marker,
)
from .scene import (
    PoseSplit,
    SceneBatch,
    module_device,
    novel_viewpoints,
    render_scene,
    sample_poses,
    source_viewpoints,
    split_by_take,
)
from .validation import check_renderer_weights

STAGES = ("gan", "dataset", "finetune", "evaluate", "done")


@dataclass
class RunResult:
    run_dir: Path
    summary: dict[str, Any]

    @property
    def before(self) -> dict[str, Any]:
        return self.summary["before"]

    @property
    def after(self) -> dict[str, Any]:
        return self.summary["after"]


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
    return seed * 1000 + {"gan": 1, "dataset": 2, "finetune": 3, "evaluate": 4, "pretrain": 6}[stage]


def _generator(seed: int, stage: str) -> torch.Generator:
    return torch.Generator().manual_seed(stage_seed(seed, stage))


def _plugin_version(kind: str, name: str) -> str:
    info = get_registry().plugins[kind].get(name)
    return f"{name}=={info.version}" if info is not None and info.version else name


# ---------------------------------------------------------------------------------------------------------- build
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
    device = cfg.torch_device
    body.to(device)
    disc.to(device)
    if isinstance(renderer, nn.Module):
        renderer.to(device)
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
    split = split_by_take(poses, cfg.test_fraction, cfg.seed)
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
    if pretrained_path is not None and pretrained_path.is_file() and isinstance(cfg.estimator, str):
        return create_estimator(cfg.estimator, checkpoint=pretrained_path, **cfg.estimator_options).to(device)  # resume
    if not isinstance(cfg.estimator, str):
        est = cfg.estimator.to(device)
    elif cfg.estimator_checkpoint:
        est = create_estimator(cfg.estimator, checkpoint=cfg.estimator_checkpoint, **cfg.estimator_options).to(device)
    else:
        est = _pretrained_from_scratch(cfg, renderer, body, train, log, device)
    if pretrained_path is not None:
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
        "pretrain": vars(cfg.pretrain) | {"cache": None}, "seed": cfg.seed, "smpl": cfg.smpl_model, "v": 1,
    })
    cached = cache_dir() / "pretrained" / f"{cfg.estimator}-{key}.pt"
    if cfg.pretrain.cache and cached.is_file():
        est = create_estimator(cfg.estimator, checkpoint=cached, **cfg.estimator_options).to(device)
        if not non_finite_entries(est.state_dict()):
            log(f"pre-trained {cfg.estimator} from the cache: {cached}")
            return est
        log(f"ignoring the cached model {cached}: it holds NaN/inf weights; pre-training again")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "random weights" is expected: we are about to pre-train
        est = create_estimator(cfg.estimator, **cfg.estimator_options).to(device)
    log(f"pre-training {cfg.estimator} on the source domain for {cfg.pretrain.steps} steps (cached afterwards)")
    curve = pretrain_estimator(
        est, renderer, body, train, cfg.pretrain, cfg.image_size, cfg.camera_distance, stage_seed(cfg.seed, "pretrain"),
        subject=cfg.subject,
        log=lambda row: log(f"  pretrain step {row['step']}: loss {row['loss']:.4f}, val MPJPE {row['val_mpjpe_mm']:.1f} mm"),
        say=log,
    )
    if cfg.pretrain.cache:
        ensure_finite(est.state_dict(), f"the pre-trained {cfg.estimator} to the cache")
        est.save_checkpoint(cached, curve=curve)
    return est


# ---------------------------------------------------------------------------------------------------------- run
class PoseGenRun:
    """One run: ``PoseGenRun(cfg).run()`` or, to continue a stopped one, ``PoseGenRun.resume(run_dir).run()``."""

    def __init__(self, cfg: RunConfig, run_dir: str | Path | None = None, overwrite: bool = False,
                 resume: bool = False, console: Any = None) -> None:
        self.cfg = cfg.validate()
        self.device = cfg.torch_device
        self._check_plugin_names()
        self.run_dir = Path(run_dir or cfg.out or self._default_dir())
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.state_path = self.ckpt_dir / "state.pt"
        from .progress import Reporter

        self.reporter = Reporter(console)
        check_renderer_weights(cfg.renderer, cfg.renderer_checkpoint or cfg.renderer_options.get("checkpoint"),
                               cfg.renderer_random_weights)
        if not resume:  # nothing is deleted here: run() replaces an earlier run only once the new parts are built
            check_out_folder(self.run_dir, overwrite)
        self.overwrite = overwrite
        self.resuming = resume

    def _check_plugin_names(self) -> None:
        """Unknown plugin names fail before anything is written (with the available names and the closest match)."""
        reg = get_registry()
        for kind, name in (("renderer", self.cfg.renderer), ("estimator", self.cfg.estimator),
                           ("prior", self.cfg.prior), ("discriminator", self.cfg.discriminator),
                           ("pose_source", self.cfg.pose_source),
                           ("pose_source", self.cfg.source_pose_source or self.cfg.pose_source)):
            if isinstance(name, str):
                reg.get(kind, name)

    def _default_dir(self) -> Path:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        r = self.cfg.renderer if isinstance(self.cfg.renderer, str) else type(self.cfg.renderer).__name__
        e = self.cfg.estimator if isinstance(self.cfg.estimator, str) else type(self.cfg.estimator).__name__
        return Path("runs") / f"{stamp}_{r}-{e}"

    @classmethod
    def resume(cls, run_dir: str | Path, console: Any = None) -> "PoseGenRun":
        run_dir = Path(run_dir)
        cfg_path = run_dir / "config.json"
        if not cfg_path.is_file():
            raise ConfigError(f"{run_dir} is not a posegen run folder (no config.json); nothing to resume.")
        cfg = RunConfig.from_file(cfg_path)
        check_resume_config(run_dir, started_config(run_dir), cfg.to_dict())
        return cls(cfg, run_dir, resume=True, console=console)

    # -- bookkeeping -----------------------------------------------------------------------------------
    def log(self, msg: str) -> None:
        self.reporter.log(msg)

    def _metric(self, row: dict[str, Any]) -> None:
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")

    def _truncate_metrics(self, stage: str, step: int) -> None:
        """On resume, forget metric lines logged after the checkpoint (they will be logged again)."""
        path = self.run_dir / "metrics.jsonl"
        if not path.is_file():
            return
        order = {s: i for i, s in enumerate(("pretrain",) + STAGES)}
        keep = []
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line half-written when the process was killed
                continue
            s, k = order.get(row.get("stage", ""), 0), row.get("step", 0)
            if s < order[stage] or (s == order[stage] and k <= step):
                keep.append(line)
        atomic_write_text("".join(x + "\n" for x in keep), path)

    def _write_manifest(self) -> None:
        import importlib.metadata as md

        def version(dist: str) -> str:
            try:
                return md.version(dist)
            except md.PackageNotFoundError:
                return "not installed"

        atomic_write_json({
            "posegen": version("posegen"), "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "machine": platform.machine(), "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(), "seed": self.cfg.seed,
            "plugins": self.parts.plugin_versions, "created": datetime.now(timezone.utc).isoformat(),
        }, self.run_dir / "manifest.json")

    # -- main ------------------------------------------------------------------------------------------
    def run(self) -> RunResult:
        cfg = self.cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        t0 = time.time()
        with self.reporter, self._holding_lock():
            self.parts = self._build_then_open_folder()
            self._write_manifest()
            hook = get_registry().manager.hook
            hook.posegen_run_start(config=cfg, run_dir=self.run_dir)
            self._init_training()
            if self.resuming and self.state_path.is_file():
                self._load_state()
                self.log(f"resuming at stage '{self.stage}', step {self.step}")
                self._truncate_metrics(self.stage, self.step)
            elif self.resuming:
                self._truncate_metrics("gan", 0)
            if self.stage == "gan":
                self._train_gan()
            if self.stage in ("dataset", "finetune"):
                dataset = self.make_dataset() if self.cfg.samples > 0 else None
                if self.stage == "dataset":
                    self.stage, self.step = "finetune", 0
                self._finetune(dataset)
            summary = self._evaluate_and_report(time.time() - t0)
        result = RunResult(self.run_dir, summary)
        hook.posegen_run_end(result=result)
        return result

    @contextlib.contextmanager
    def _holding_lock(self) -> Iterator[None]:
        """Releases the run folder's writer lock (taken in ``_build_then_open_folder``) however the run ends."""
        self._lock = None
        try:
            yield
        finally:
            release_lock(self._lock)

    def _build_then_open_folder(self) -> Parts:
        """Resuming: lock the folder, then build. A new run: build (and so validate) every input first, and only then
        replace an earlier run (run_folder's contract) and write config.json, so that a typo never costs that run."""
        if self.resuming:
            self._lock = acquire_lock(self.run_dir)
            return build_parts(self.cfg, self.run_dir, self.log)
        parts = build_parts(self.cfg, None, self.log)
        check_out_folder(self.run_dir, self.overwrite)
        replace_run_folder(self.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._lock = acquire_lock(self.run_dir)
        write_marker(self.run_dir, self.cfg.to_dict())
        atomic_write_json(self.cfg.to_dict(), self.run_dir / "config.json")
        parts.estimator.save_checkpoint(self.ckpt_dir / "estimator_pretrained.pt")
        return parts

    # -- training state --------------------------------------------------------------------------------
    def _init_training(self) -> None:
        cfg, p = self.cfg, self.parts
        self.G = PoseGenerator(
            cfg.latent_dim, viewpoint=cfg.generate_viewpoint, viewpoint_param=cfg.viewpoint_param, k_max=cfg.k_max,
            max_elevation=cfg.max_elevation, max_roll=cfg.max_roll,
        ).to(self.device)
        self.D = p.discriminator
        self.P = p.estimator
        self.P_pretrained = copy.deepcopy(p.estimator).eval()
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr_g)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d)
        self.opt_p = torch.optim.Adam(self.P.parameters(), lr=cfg.lr_p)
        self.pool = HistoryPool(cfg.pool_size)
        self.rng = _generator(cfg.seed, "gan")
        self.stage, self.step = ("gan" if cfg.iters > 0 else "dataset"), 0
        self.real = p.split.train

    def _save_state(self) -> None:
        state = {
            "stage": self.stage, "step": self.step, "G": self.G.state_dict(), "D": self.D.state_dict(),
            "P": self.P.state_dict(), "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "opt_p": self.opt_p.state_dict(), "pool": self.pool.state_dict(), "rng": self.rng.get_state(),
            "config": json.loads(json.dumps(self.cfg.to_dict(), default=str)),  # plain types for weights_only loading
        }
        ensure_finite({k: state[k] for k in ("G", "D", "P")}, f"the run checkpoint {self.state_path}")
        atomic_torch_save(state, self.state_path)

    def _load_state(self) -> None:
        s = load_checkpoint_file(self.state_path, what="run checkpoint")
        check_state(s, self.state_path, STAGES)
        check_resume_config(self.run_dir, s.get("config"), self.cfg.to_dict())
        self.stage, self.step = s["stage"], int(s["step"])
        self.G.load_state_dict(s["G"])
        self.D.load_state_dict(s["D"])
        self.P.load_state_dict(s["P"])
        self.opt_g.load_state_dict(s["opt_g"])
        self.opt_d.load_state_dict(s["opt_d"])
        self.opt_p.load_state_dict(s["opt_p"])
        self.pool.load_state_dict(s["pool"], self.device)
        self.rng.set_state(s["rng"])

    def _check_finite(self, losses: dict[str, torch.Tensor]) -> None:
        bad = [k for k, v in losses.items() if not bool(torch.isfinite(v).all())]
        if bad:
            self._metric({"stage": self.stage, "step": self.step + 1, "error": f"non-finite {', '.join(bad)}"})
            raise TrainingError(
                f"{', '.join(bad)} became NaN/inf at step {self.step + 1} of stage '{self.stage}'. "
                f"{last_good_checkpoint(self.state_path, self.run_dir)} (lr_g, lr_d, lr_p)."
            )

    # -- stage 1: G and D with feedback ------------------------------------------------------------------
    def _generate(self, n: int, gen: torch.Generator, matrix: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(body_pose, K) from G; K as rotation matrices (for gradients) or axis-angle vectors (for export)."""
        z = self.parts.prior.sample(n, self.cfg.latent_dim, generator=gen)
        out = self.G(z.to(self.device))
        return out.body_pose, (out.view_rotation if matrix else out.viewpoint)

    def _scene(self, body_pose: torch.Tensor, viewpoint: torch.Tensor, gen: torch.Generator,
               global_orient: torch.Tensor | None = None, subject: Any = None) -> SceneBatch:
        if global_orient is None:  # G's bodies stand upright; K carries the viewpoint
            global_orient = torch.zeros(len(body_pose), 3, dtype=body_pose.dtype, device=body_pose.device)
        return render_scene(
            self.parts.renderer, self.parts.body_model, self.parts.intrinsics, global_orient, body_pose, viewpoint,
            self.cfg.camera_distance, self.cfg.subject if subject is None else subject, gen,
        )

    def _source_batch(self, n: int, gen: torch.Generator) -> SceneBatch:
        go, bp = sample_poses(self.parts.source.train, n, gen)
        with torch.no_grad():
            return self._scene(bp, source_viewpoints(n, gen), gen, go)

    def _train_gan(self) -> None:
        cfg, p = self.cfg, self.parts
        use_pixels = cfg.feedback == "render" and p.renderer.differentiable
        if cfg.feedback == "render" and not p.renderer.differentiable:
            self.log("the renderer is not differentiable: feedback falls back to 'pose' (no gradients through pixels)")
        task = self.reporter.task("GAN + feedback", cfg.iters, self.step)
        t_last, n_last = time.time(), 0
        while self.step < cfg.iters:
            self.G.train()
            self.D.train()
            # generator step (eq. 8)
            self.D.requires_grad_(False)
            body_pose, view = self._generate(cfg.batch_size, self.rng)
            self._check_finite({"generator output": body_pose.detach()})
            adv = lsgan_generator_loss(self.D(body_pose))
            if cfg.w_spread > 0 and self.G.viewpoint:
                adv = adv + cfg.w_spread * spread_loss(camera_directions(view))
            fb = err = None
            scene = None
            start = cfg.feedback_begins
            feedback_now = self.step >= start and (self.step - start) % cfg.feedback_every == 0
            if cfg.feedback != "none" and feedback_now:
                self.P.eval()
                self.P.requires_grad_(False)
                if use_pixels:
                    scene = self._scene(body_pose, view, self.rng)
                    pred = self.P(scene.images).joints
                else:  # the official code's variant: the prediction is detached; gradients only through FK of theta
                    with torch.no_grad():
                        scene_ng = self._scene(body_pose.detach(), view.detach(), self.rng)
                        pred = self.P(scene_ng.images).joints
                    scene = self._scene_labels_only(body_pose, view, scene_ng)
                per_sample = per_sample_joint_error(pred, scene.joints)
                err = per_sample.mean()
                fb = feedback_loss(per_sample, cfg.scenario, cfg.c, shape=cfg.feedback_shape)
                self.P.requires_grad_(True)
            loss_g = generator_objective(adv, fb, cfg.w1, cfg.w2)
            # discriminator step (eq. 10) on real poses vs. a history pool of fakes
            self.D.requires_grad_(True)
            _, real = sample_poses(self.real, cfg.batch_size, self.rng, upright=False)
            real = real.to(self.device)
            fake = self.pool(body_pose, self.rng)
            loss_d = lsgan_discriminator_loss(self.D(real), self.D(fake))
            self._check_finite({"loss_g": loss_g, "loss_d": loss_d})
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            nn.utils.clip_grad_norm_(self.G.parameters(), cfg.grad_clip)
            self.opt_g.step()
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            nn.utils.clip_grad_norm_(self.D.parameters(), cfg.grad_clip)
            self.opt_d.step()
            # in-loop fine-tuning of the estimator on this batch (after G's backward, which went through P)
            loss_p = None
            if cfg.finetune in ("loop", "both") and self.step >= cfg.feedback_begins:
                with torch.no_grad():
                    if scene is None:
                        scene = self._scene(body_pose.detach(), view.detach(), self.rng)
                n_gen, n_src = self._finetune_split()
                n_gen = min(n_gen, len(body_pose))
                loss_p = self._finetune_loss(scene.images[:n_gen].detach(), scene.joints[:n_gen].detach(),
                                             scene.rotations[:n_gen].detach(), n_src, self.rng)
                self._check_finite({"loss_p": loss_p})
                self.opt_p.zero_grad(set_to_none=True)
                loss_p.backward()
                self.opt_p.step()
            self.step += 1
            n_last += cfg.batch_size
            if self.step % cfg.log_every == 0 or self.step == cfg.iters:
                elev, _ = viewpoint_angles(view.detach())
                row = {
                    "stage": "gan", "step": self.step, "loss_g": loss_g.item(), "loss_d": loss_d.item(),
                    "adv": adv.item(), "error_mm": None if err is None else err.item() * 1000,
                    "mean_abs_elevation_deg": float(elev.abs().mean()) * 180 / math.pi,
                    "samples_per_s": n_last / max(time.time() - t_last, 1e-9),
                }
                if loss_p is not None:
                    row["loss_p"] = loss_p.item()
                t_last, n_last = time.time(), 0
                self._metric(row)
                get_registry().manager.hook.posegen_step_end(step=self.step, metrics=row)
                self.reporter.update(task, self.step, row)
            else:
                self.reporter.update(task, self.step, None)
            if self.step == cfg.iters:
                self.stage, self.step = "dataset", 0
                self._save_state()
                break
            if self.step % cfg.checkpoint_every == 0:
                self._save_state()
        self.reporter.done(task)

    def _scene_labels_only(self, body_pose: torch.Tensor, view: torch.Tensor, rendered: SceneBatch) -> SceneBatch:
        """Ground-truth joints with gradients to G (for 'pose' feedback); the images come from the no-grad render."""
        from .camera import root_relative, to_camera_frame

        go = torch.zeros(len(body_pose), 3, dtype=body_pose.dtype, device=body_pose.device)
        body = self.parts.body_model(go, body_pose)
        cam, _ = to_camera_frame(body.joints, body.rotations, view, self.cfg.camera_distance)
        return SceneBatch(rendered.images, rendered.alpha, root_relative(cam), cam, view, rendered.rotations)

    def _set_p_train(self) -> None:
        self.P.train()
        if self.cfg.freeze_bn:  # the official code keeps BatchNorm statistics frozen while fine-tuning
            for m in self.P.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()

    def _finetune_split(self) -> tuple[int, int]:
        """(generated, source-domain) images in each fine-tuning batch of ``finetune_batch``: at least one generated."""
        n_src = min(self.cfg.finetune_batch - 1, round(self.cfg.finetune_batch * self.cfg.source_mix))
        return self.cfg.finetune_batch - n_src, n_src

    def _finetune_loss(self, images: torch.Tensor, joints: torch.Tensor, rotations: torch.Tensor, n_src: int,
                       gen: torch.Generator) -> torch.Tensor:
        """The pre-training objective (joints, eq. 13's threshold d, rotations) on generated samples, mixed with
        ``n_src`` freshly rendered source-domain ones, weighted by ``source_mix``."""
        cfg = self.cfg
        self._set_p_train()
        if not n_src:
            return supervised_loss(self.P, self.P(images), joints, rotations, threshold=cfg.d)
        src = self._source_batch(n_src, gen)
        out = self.P(torch.cat([images, src.images]))
        n = len(images)

        def part(sl: slice) -> EstimatorOutput:
            return EstimatorOutput(joints=out.joints[sl], rotations=None if out.rotations is None else out.rotations[sl])

        loss_gen = supervised_loss(self.P, part(slice(None, n)), joints, rotations, threshold=cfg.d)
        loss_src = supervised_loss(self.P, part(slice(n, None)), src.joints, src.rotations)
        return (1 - cfg.source_mix) * loss_gen + cfg.source_mix * loss_src

    # -- stage 2: sample, render and export the dataset ----------------------------------------------------
    def make_dataset(self) -> dict[str, torch.Tensor]:
        """Sample ``cfg.samples`` (theta, K) from the trained G: rendered at the loop's size in memory (for fine-tuning)
        and exported at ``cfg.export_size`` to ``dataset/`` (posegen_core.dataset_export; the same samples). Subclasses
        may return other data in the same layout, with the same keys (e.g. an oracle's target-like renders); it must
        be deterministic given the seed."""
        from .dataset_export import export_run_dataset

        return export_run_dataset(self)

    # -- stage 3: fine-tune the estimator on the generated dataset -------------------------------------------
    def _finetune(self, data: dict[str, torch.Tensor] | None) -> None:
        cfg = self.cfg
        steps = cfg.finetune_steps if cfg.finetune in ("after", "both") and data is not None else 0
        if self.step == 0:  # a fresh stage (on resume past step 0, rng and optimiser come from the checkpoint)
            self.rng = _generator(cfg.seed, "finetune")
            self.opt_p = torch.optim.Adam(self.P.parameters(), lr=cfg.lr_p)
        n_gen, n_src = self._finetune_split()
        task = self.reporter.task("fine-tune estimator", steps, self.step)
        while self.step < steps:
            for group in self.opt_p.param_groups:  # cosine decay: a deterministic function of the step (resumable)
                group["lr"] = cfg.lr_p * 0.5 * (1.0 + math.cos(math.pi * self.step / steps))
            idx = torch.randint(len(data["images"]), (n_gen,), generator=self.rng)
            images = data["images"][idx].to(self.device).float() / 255.0
            loss = self._finetune_loss(images, data["joints"][idx].to(self.device), data["rotations"][idx].to(self.device),
                                       n_src, self.rng)
            self._check_finite({"loss_p": loss})
            self.opt_p.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_p.step()
            self.step += 1
            if self.step % cfg.log_every == 0 or self.step == steps:
                row = {"stage": "finetune", "step": self.step, "loss_p": loss.item()}
                self._metric(row)
                self.reporter.update(task, self.step, row)
            if self.step % cfg.checkpoint_every == 0 or self.step == steps:
                self._save_state()
        self.reporter.done(task)
        self.P.eval()
        self.stage, self.step = "evaluate", 0
        self.P.save_checkpoint(self.ckpt_dir / "estimator_final.pt")
        atomic_torch_save({"G": self.G.state_dict(), "D": self.D.state_dict(), "config": self.cfg.to_dict()},
                          self.ckpt_dir / "generator.pt")
        self._save_state()

    # -- stage 4: evaluate and report ------------------------------------------------------------------------
    def evaluation_sets(self) -> dict[str, SceneBatch]:
        """Held-out test takes, seen from source-like and from novel viewpoints (fixed by the seed)."""
        gen = _generator(self.cfg.seed, "evaluate")
        n, subject = self.cfg.eval_samples, self.cfg.eval_subject
        plan = [("source_views", self.parts.split.test, source_viewpoints),
                ("novel_views", self.parts.split.test, novel_viewpoints)]
        if self.cfg.source_pose_source is not None:
            plan.append(("source_domain", self.parts.source.test, source_viewpoints))
        out = {}
        with torch.no_grad():
            for name, poses, views in plan:
                go, bp = sample_poses(poses, n, gen)
                out[name] = self._scene(bp, views(n, gen), gen, go, subject=subject).to("cpu")
        return out

    def _evaluate_and_report(self, elapsed: float) -> dict[str, Any]:
        sets = self.evaluation_sets()
        before = {k: evaluate_estimator(self.P_pretrained, s) for k, s in sets.items()}
        after = {k: evaluate_estimator(self.P, s) for k, s in sets.items()}
        table = {
            split: {
                "mpjpe_before": before[split]["mpjpe_mm"], "mpjpe_after": after[split]["mpjpe_mm"],
                "pa_mpjpe_before": before[split]["pa_mpjpe_mm"], "pa_mpjpe_after": after[split]["pa_mpjpe_mm"],
            }
            for split in sets
        }
        summary = {
            "before": {k: {m: v for m, v in r.items() if not m.startswith("_")} for k, r in before.items()},
            "after": {k: {m: v for m, v in r.items() if not m.startswith("_")} for k, r in after.items()},
            "table": table,
            "seed": self.cfg.seed,
            "elapsed_s": elapsed,
            "paths": {
                "run": str(self.run_dir), "dataset": str(self.run_dir / "dataset"),
                "estimator_pretrained": str(self.ckpt_dir / "estimator_pretrained.pt"),
                "estimator_final": str(self.ckpt_dir / "estimator_final.pt"),
                "generator": str(self.ckpt_dir / "generator.pt"),
            },
        }
        self._metric({"stage": "evaluate", "step": 1, **{f"{s}_{k}": v for s, r in table.items() for k, v in r.items()}})
        atomic_write_json(summary, self.run_dir / "summary.json")
        if self.cfg.report:
            from .report import write_report

            try:
                write_report(self, sets, before, after)
            except PosegenError:
                raise
            except Exception as e:  # a plotting failure must not lose the run's results
                self.log(f"report could not be written: {type(e).__name__}: {e}")
        self.stage, self.step = "done", 0
        self._save_state()
        self.reporter.table(table)
        return summary


def evaluate_estimator(estimator: Estimator, scene: SceneBatch, batch: int = 64) -> dict[str, Any]:
    """MPJPE and PA-MPJPE (mm) of ``estimator`` on a rendered evaluation set, plus per-sample errors for reports."""
    estimator.eval()
    dev = module_device(estimator)
    with torch.no_grad():
        pred = torch.cat([estimator(scene.images[i : i + batch].to(dev)).joints.cpu()
                          for i in range(0, len(scene.images), batch)])
    truth = scene.joints.cpu()
    per = metrics.mpjpe(pred, truth)
    pa = metrics.pa_mpjpe(pred, truth)
    return {
        "mpjpe_mm": float(per.mean()) * 1000, "pa_mpjpe_mm": float(pa.mean()) * 1000,
        "mpjpe_std_mm": float(per.std()) * 1000, "n": len(per),
        "_per_sample_m": per, "_per_joint_m": metrics.per_joint_error(pred, truth).mean(0),
    }


def run(cfg: RunConfig, run_dir: str | Path | None = None, overwrite: bool = False, console: Any = None) -> RunResult:
    """Run PoseGen end to end from Python (what ``posegen run`` does)."""
    return PoseGenRun(cfg, run_dir, overwrite=overwrite, console=console).run()


def resume(run_dir: str | Path, console: Any = None) -> RunResult:
    """Continue a stopped run from its last checkpoint."""
    return PoseGenRun.resume(run_dir, console=console).run()
