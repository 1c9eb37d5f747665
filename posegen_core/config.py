"""Run configuration as dataclasses (one place for every knob, with the official code's defaults where the paper is
silent), TOML loading and JSON round trips."""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .errors import ConfigError
from .losses import FEEDBACK_SHAPES

FEEDBACK_MODES = ("render", "pose", "none")
FINETUNE_MODES = ("after", "loop", "both", "none")


def resolve_device(device: str) -> str:
    """``auto`` -> cuda when a GPU is visible, else cpu; anything else unchanged."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


@dataclass
class PretrainConfig:
    """Pre-training of the estimator on the source domain (everyday poses, chest-height cameras)."""

    steps: int = 1200
    batch_size: int = 64
    lr: float = 2e-3
    eval_every: int = 250
    val_samples: int = 256  # source-domain renders for the validation curve
    cache: bool = True  # reuse a pre-trained model of the same configuration from the cache folder


@dataclass
class RunConfig:
    """Everything ``posegen run`` does. Plugin choices are names (or, from Python, ready-built objects)."""

    # plugins
    renderer: Any = "primitives"
    renderer_checkpoint: str | None = None
    renderer_options: dict[str, Any] = field(default_factory=dict)
    estimator: Any = "simple"
    estimator_checkpoint: str | None = None
    estimator_options: dict[str, Any] = field(default_factory=dict)
    prior: str = "normal"
    discriminator: str = "parts"
    discriminator_options: dict[str, Any] = field(default_factory=dict)
    pose_source: str = "default"  # real poses for D (the paper: AMASS); its held-out takes are the test poses
    pose_source_options: dict[str, Any] = field(default_factory=dict)
    source_pose_source: str | None = None  # the estimator's source domain (the paper: Human3.6M); None = pose_source
    source_pose_source_options: dict[str, Any] = field(default_factory=dict)
    subject: Any = "random"  # renderer appearance for training data (a name, an id, or "random")
    eval_subject: Any = None  # appearance of the evaluation renders; None = subject
    smpl_model: str | None = None  # SMPL model file; the skeleton body is used when None
    # the method
    scenario: str = "ood"  # ood: L_fb = c - e (the paper's best); ind: L_fb = e
    feedback: str = "render"  # render: through pixels (differentiable renderers); pose: official-code variant; none
    generate_viewpoint: bool = True  # False: theta only (the paper's A1 ablation), K = 0
    w_spread: float = 0.01  # viewpoint spread term (nearest-neighbour entropy of camera directions); 0 = the paper
    viewpoint_param: str = "angles"  # angles: elevation/azimuth/roll -> K; axis_angle: the paper's literal K
    max_elevation: float = math.pi / 2  # "angles": bound on the camera elevation (radians)
    max_roll: float = 0.25  # "angles": bound on the camera roll about its optical axis (radians)
    k_max: float = math.pi  # "axis_angle": bound on each component of K (radians)
    latent_dim: int = 32
    iters: int = 1500  # GAN iterations in all
    feedback_start: int | None = None  # adversarial-only iterations first (the official code starts feedback at
    # epoch 3); None: the first five sixths of iters (1250 of the default 1500)
    batch_size: int = 64
    feedback_every: int = 1
    w1: float = 1.0
    w2: float = 0.1
    c: float = 1.0  # metres (official); with the linear shape it only shifts L_fb, with hinge/target it bounds e
    hardness: str = "paper"  # hardness strategy turning errors into L_fb: paper (scenario/c/feedback_shape, eq. 8),
    # banded (relative to a source-like view, PoseAug's band), split (articulation and viewpoint bands apart)
    hardness_options: dict[str, Any] = field(default_factory=dict)  # keyword arguments of the hardness strategy
    sampler: str = "generator"  # dataset sampler strategy: generator, error_weighted, filtered, target_like (oracle)
    sampler_options: dict[str, Any] = field(default_factory=dict)  # keyword arguments of the sampler strategy
    feedback_shape: str = "linear"  # ood: linear c - e (paper, official) | hinge max(0, c - e_i) | target |c - e_i|
    d: float | None = None  # metres; eq. 13 threshold dropping render failures (official: 0.2 with A-NeRF renders;
    # off by default because the primitives renderer does not fail, and hard ood samples exceed 0.2 m by design)
    lr_g: float = 5e-4  # official 1e-4 at batch 1024; the CPU default's batch is 64
    lr_d: float = 5e-4
    grad_clip: float = 1.0
    pool_size: int = 4096
    # dataset and fine-tuning
    samples: int = 2000
    image_size: int = 64
    camera_distance: float = 4.0
    finetune: str = "after"  # after (official), loop (P updated in the GAN loop), both, none
    finetune_steps: int = 350
    finetune_batch: int = 64  # images per fine-tuning step: generated ones and source_mix of source-domain ones
    lr_p: float = 3e-4  # peak of a cosine decay over the fine-tuning steps
    source_mix: float = 0.9  # fraction of each fine-tuning batch drawn from the source domain (against forgetting)
    freeze_bn: bool = False
    # evaluation
    eval_samples: int = 512
    test_fraction: float = 0.2  # of the pose source's takes, held out for evaluation only
    # bookkeeping
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    seed: int = 0
    out: str | None = None  # the run folder; None -> runs/<timestamp>_<renderer>-<estimator>
    checkpoint_every: int = 50
    log_every: int = 10
    export_images: bool = True
    report: bool = True
    threads: int | None = None
    device: str = "auto"  # torch device for G, D, the renderer and the estimator: auto (cuda if visible), cpu, cuda:1

    @property
    def torch_device(self) -> torch.device:
        """The run's device, with ``auto`` resolved."""
        return torch.device(resolve_device(self.device))

    @property
    def feedback_begins(self) -> int:
        """The first GAN iteration with feedback."""
        return self.iters - self.iters // 6 if self.feedback_start is None else self.feedback_start

    def validate(self) -> "RunConfig":
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ConfigError(msg)

        need(self.scenario in ("ood", "ind"), f"scenario must be 'ood' or 'ind'; got '{self.scenario}'.")
        need(self.feedback in FEEDBACK_MODES, f"feedback must be one of {', '.join(FEEDBACK_MODES)}; got '{self.feedback}'.")
        need(self.feedback_shape in FEEDBACK_SHAPES,
             f"feedback_shape must be one of {', '.join(FEEDBACK_SHAPES)}; got '{self.feedback_shape}'.")
        need(self.finetune in FINETUNE_MODES, f"finetune must be one of {', '.join(FINETUNE_MODES)}; got '{self.finetune}'.")
        for name in ("iters", "samples", "eval_samples", "latent_dim"):
            need(getattr(self, name) >= 0, f"{name} must be >= 0; got {getattr(self, name)}.")
        need(self.feedback_start is None or self.feedback_start >= 0,
             f"feedback_start must be >= 0 (or unset); got {self.feedback_start}.")
        need(self.finetune_batch >= 1, f"finetune_batch must be >= 1; got {self.finetune_batch}.")
        need(self.batch_size >= 2, f"batch_size must be >= 2 (BatchNorm in G); got {self.batch_size}.")
        need(self.image_size >= 16, f"image_size must be >= 16 pixels; got {self.image_size}.")
        need(0.0 <= self.source_mix < 1.0, f"source_mix must be in [0, 1); got {self.source_mix}.")
        need(0.0 < self.test_fraction < 1.0, f"test_fraction must be in (0, 1); got {self.test_fraction}.")
        need(self.camera_distance > 0, f"camera_distance must be positive metres; got {self.camera_distance}.")
        need(self.feedback_every >= 1 and self.checkpoint_every >= 1 and self.log_every >= 1,
             "feedback_every, checkpoint_every and log_every must be >= 1.")
        try:
            device = self.torch_device
        except RuntimeError:
            raise ConfigError(f"device must be a torch device such as cpu, cuda or cuda:0 (or auto); got '{self.device}'.") from None
        need(device.type != "cuda" or torch.cuda.is_available(),
             f"device '{self.device}' asked for, but this torch sees no CUDA GPU; use device = 'cpu' (or 'auto').")
        return self

    # -- serialisation ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key in ("renderer", "estimator"):
            value = getattr(self, key)
            if not isinstance(value, str):
                out[key] = getattr(value, "name", type(value).__name__)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        data = dict(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            import difflib

            hints = [f"{u} (did you mean {difflib.get_close_matches(u, known, 1)[0]}?)"
                     if difflib.get_close_matches(u, known, 1) else u for u in unknown]
            raise ConfigError(f"unknown configuration keys: {', '.join(hints)}.")
        pre = data.pop("pretrain", {}) or {}
        pknown = {f.name for f in dataclasses.fields(PretrainConfig)}
        if set(pre) - pknown:
            raise ConfigError(f"unknown [pretrain] keys: {', '.join(sorted(set(pre) - pknown))}.")
        return cls(**data, pretrain=PretrainConfig(**pre))

    @classmethod
    def from_file(cls, path: str | Path) -> "RunConfig":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"configuration file not found: {path}.")
        text = path.read_text()
        try:
            data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
            raise ConfigError(f"could not parse {path}: {e}") from None
        return cls.from_dict(data)
