"""The PoseGen loop's run: the run folder, checkpoints and resume around the stages in ``posegen_core.stages``
(build -> GAN + feedback -> dataset -> fine-tune -> evaluate -> report), each a function over a ``RunContext``.

Every stage checkpoints atomically into ``checkpoints/state.pt``; ``resume`` continues from the last one and, because
every random draw comes from generators whose state is checkpointed, ends with the same results as an unbroken run.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import distributed
from .config import RunConfig
from .errors import ConfigError, TrainingError
from .io import atomic_torch_save, atomic_write_json, atomic_write_text, load_checkpoint_file
from .plugins import get_registry
from .run_folder import (
    acquire_lock,
    check_out_folder,
    check_resume_config,
    check_state,
    ensure_finite,
    last_good_checkpoint,
    release_lock,
    replace_run_folder,
    started_config,
    write_marker,
)
from .scene import SceneBatch
from .stages.build import Parts, build_parts, stage_seed  # noqa: F401  (Parts, stage_seed: public)
from .stages.context import RunContext, init_training
from .stages.dataset import make_dataset
from .stages.evaluate import evaluate_and_report, evaluate_estimator, evaluation_sets  # noqa: F401  (public)
from .stages.finetune import finetune
from .stages.gan import train_gan
from .strategies import build_strategies
from .validation import check_renderer_shape, check_renderer_weights

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


class PoseGenRun:
    """One run: ``PoseGenRun(cfg).run()`` or, to continue a stopped one, ``PoseGenRun.resume(run_dir).run()``."""

    def __init__(self, cfg: RunConfig, run_dir: str | Path | None = None, overwrite: bool = False,
                 resume: bool = False, console: Any = None) -> None:
        self.cfg = cfg.validate()
        # under torchrun: join the process group (gloo on CPU, NCCL on GPU); alone: rank 0 of 1, nothing changes
        self.world = distributed.init_from_env(cfg.torch_device)
        self.device = distributed.local_device(cfg.torch_device)
        if cfg.streams is not None:  # before anything is built or written
            distributed.check_streams(cfg.streams)
        self._check_plugin_names()
        self.run_dir = Path(run_dir or cfg.out or self._default_dir())
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.state_path = self.ckpt_dir / "state.pt"
        from .progress import Reporter

        self.reporter = Reporter(console)
        check_renderer_weights(cfg.renderer, cfg.renderer_checkpoint or cfg.renderer_options.get("checkpoint"),
                               cfg.renderer_random_weights)
        check_renderer_shape(cfg.renderer, cfg.generate_shape)
        if not resume:  # nothing is deleted here: run() replaces an earlier run only once the new parts are built
            check_out_folder(self.run_dir, overwrite)
        self.overwrite = overwrite
        self.resuming = resume

    def _check_plugin_names(self) -> None:
        """Unknown plugin and strategy names fail before anything is written (with the available names and the closest match)."""
        reg = get_registry()
        for kind, name in (("renderer", self.cfg.renderer), ("estimator", self.cfg.estimator),
                           ("prior", self.cfg.prior), ("discriminator", self.cfg.discriminator),
                           ("pose_source", self.cfg.pose_source),
                           ("pose_source", self.cfg.source_pose_source or self.cfg.pose_source)):
            if isinstance(name, str):
                reg.get(kind, name)
        self.strategies = build_strategies(self.cfg)  # names, roles and options, checked before anything is written

    def _default_dir(self) -> Path:
        if self.world.active:  # each process would stamp its own time
            raise ConfigError("a distributed run needs its run folder named (--out, or `out` in the configuration): "
                              "every process must write to the same folder.")
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
        if not self.world.main:
            return
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")

    def _truncate_metrics(self, stage: str, step: int) -> None:
        """On resume, forget metric lines logged after the checkpoint (they will be logged again)."""
        path = self.run_dir / "metrics.jsonl"
        if not self.world.main or not path.is_file():
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

        if not self.world.main:
            return

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
            "world_size": self.world.size, "backend": self.world.backend,
            "streams": self.cfg.streams or self.world.size,
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
            if self.resuming and distributed.from_main(self.state_path.is_file()):
                self._load_state()
                self.log(f"resuming at stage '{self.stage}', step {self.step}")
                self._truncate_metrics(self.stage, self.step)
            elif self.resuming:
                self._truncate_metrics("gan", 0)
            if self.stage == "gan":
                train_gan(self.ctx)
            if self.stage in ("dataset", "finetune"):
                dataset = self.make_dataset() if self.cfg.samples > 0 else None
                if self.stage == "dataset":
                    self.stage, self.step = "finetune", 0
                finetune(self.ctx, dataset)
            summary = evaluate_and_report(self.ctx, time.time() - t0)
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
        main = self.world.main  # in a distributed run rank 0 alone changes the folder, the others wait for it
        if self.resuming:
            if main:
                self._lock = acquire_lock(self.run_dir)
            return build_parts(self.cfg, self.run_dir, self.log)
        parts = build_parts(self.cfg, None, self.log)
        distributed.barrier()  # every rank built and validated its inputs
        if main:
            check_out_folder(self.run_dir, self.overwrite)
            replace_run_folder(self.run_dir)
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._lock = acquire_lock(self.run_dir)
            write_marker(self.run_dir, self.cfg.to_dict())
            atomic_write_json(self.cfg.to_dict(), self.run_dir / "config.json")
            parts.estimator.save_checkpoint(self.ckpt_dir / "estimator_pretrained.pt")
        distributed.barrier()
        return parts

    # -- training state --------------------------------------------------------------------------------
    def _init_training(self) -> None:
        self.state = init_training(self.cfg, self.parts, self.device)
        self.ctx = RunContext(
            cfg=self.cfg, parts=self.parts, state=self.state, strategies=self.strategies,
            run_dir=self.run_dir, device=self.device, log=self.log, metric=self._metric, save_state=self._save_state,
            check_finite=self._check_finite, reporter=self.reporter,
        )

    # the stage and step, and the models, live in the training state; these keep ``run.P`` etc. working
    stage = property(lambda self: self.state.stage, lambda self, v: setattr(self.state, "stage", v))
    step = property(lambda self: self.state.step, lambda self, v: setattr(self.state, "step", v))
    G = property(lambda self: self.state.G)
    D = property(lambda self: self.state.D)
    P = property(lambda self: self.state.P)
    P_pretrained = property(lambda self: self.state.P_pretrained)

    def _save_state(self) -> None:
        state = self.state.state_dict()  # every rank (it gathers the random streams); rank 0 writes it
        state["config"] = json.loads(json.dumps(self.cfg.to_dict(), default=str))  # plain types for weights_only loading
        ensure_finite({k: state[k] for k in ("G", "D", "P")}, f"the run checkpoint {self.state_path}")
        if self.world.main:
            atomic_torch_save(state, self.state_path)

    def _load_state(self) -> None:
        s = load_checkpoint_file(self.state_path, what="run checkpoint")
        check_state(s, self.state_path, STAGES)
        check_resume_config(self.run_dir, s.get("config"), self.cfg.to_dict())
        self.state.load_state_dict(s, self.device)

    def _check_finite(self, losses: dict[str, torch.Tensor]) -> None:
        bad = [k for k, v in losses.items() if not bool(torch.isfinite(v).all())]
        if bad:
            self._metric({"stage": self.stage, "step": self.step + 1, "error": f"non-finite {', '.join(bad)}"})
            raise TrainingError(
                f"{', '.join(bad)} became NaN/inf at step {self.step + 1} of stage '{self.stage}'. "
                f"{last_good_checkpoint(self.state_path, self.run_dir)} (lr_g, lr_d, lr_p)."
            )

    # -- the stages, for library users ------------------------------------------------------------------
    def make_dataset(self) -> dict[str, torch.Tensor]:
        """Draw (with the run's sampler strategy), render and export the fine-tuning set (stage 2)."""
        return make_dataset(self.ctx)

    def evaluation_sets(self) -> dict[str, SceneBatch]:
        """Held-out test takes, seen from source-like and from novel viewpoints (fixed by the seed)."""
        return evaluation_sets(self.ctx)


def run(cfg: RunConfig, run_dir: str | Path | None = None, overwrite: bool = False, console: Any = None) -> RunResult:
    """Run PoseGen end to end from Python (what ``posegen run`` does)."""
    return PoseGenRun(cfg, run_dir, overwrite=overwrite, console=console).run()


def resume(run_dir: str | Path, console: Any = None) -> RunResult:
    """Continue a stopped run from its last checkpoint."""
    return PoseGenRun.resume(run_dir, console=console).run()
