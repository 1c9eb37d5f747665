"""Run configuration as dataclasses (one place for every knob, with the official code's defaults where the paper is
silent), TOML loading and JSON round trips."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import torch

from .errors import ConfigError
from .generator import VIEWPOINT_PARAMS
from .losses import FEEDBACK_SHAPES

FINETUNE_MODES = ("after", "loop", "both", "none")


#: Allowed ranges of numeric fields, by dotted name: (low, high, what). ``low``/``high`` are inclusive; None = open.
#: A numeric field not listed here must be finite and (for integers) >= 0, so new fields are checked without an entry.
RANGES: dict[str, tuple[float | None, float | None]] = {
    "latent_dim": (1, 4096), "batch_size": (2, 1 << 16), "feedback_every": (1, None), "pool_size": (1, None),
    "image_size": (16, 2048), "finetune_batch": (1, 1 << 16), "eval_samples": (1, None),
    "checkpoint_every": (1, None), "log_every": (1, None), "threads": (1, 4096), "seed": (0, 2**40), "setting_seed": (0, 2**40),
    "max_elevation": (0.0, math.pi / 2), "max_roll": (0.0, math.pi), "k_max": (1e-6, math.pi),
    "w1": (0.0, None), "w2": (0.0, None), "c": (0.0, None), "d": (1e-9, None), "w_spread": (0.0, None),
    "lr_g": (1e-12, None), "lr_d": (1e-12, None), "lr_p": (1e-12, None), "grad_clip": (1e-12, None),
    "camera_distance": (1e-3, 1e3), "source_mix": (0.0, 1.0 - 1e-9), "test_fraction": (1e-9, 1.0 - 1e-9),
    "pretrain.batch_size": (2, 1 << 16), "pretrain.lr": (1e-12, None), "pretrain.eval_every": (1, None),
    "pretrain.val_samples": (1, None), "streams": (1, 1 << 16),
}

#: Fields that take one of a few words.
CHOICES: dict[str, tuple[str, ...]] = {
    "scenario": ("ood", "ind"), "feedback_shape": FEEDBACK_SHAPES,
    "finetune": FINETUNE_MODES, "viewpoint_param": VIEWPOINT_PARAMS,
}


def _range_text(name: str, integer: bool) -> str:
    lo, hi = RANGES.get(name, (0 if integer else None, None))
    if lo is not None and hi is not None:
        return f"in [{lo:g}, {hi:g}]"
    if lo is not None:
        return f">= {lo:g}"
    return f"<= {hi:g}" if hi is not None else "finite"


def _expected(hint: Any, name: str) -> str:
    """A readable description of what a field accepts."""
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return " or ".join(_expected(a, name) for a in inner) + " (or unset)"
    if hint is bool:
        return "true or false"
    if hint is int:
        return f"an integer {_range_text(name, True)}"
    if hint is float:
        return f"a number {_range_text(name, False)}"
    if hint is str:
        return "one of " + ", ".join(f"'{c}'" for c in CHOICES[name]) if name in CHOICES else "a string"
    if origin is dict or hint is dict:
        return "a table of KEY = VALUE options"
    if dataclasses.is_dataclass(hint):
        return f"a table of {name} settings (e.g. {name}.{dataclasses.fields(hint)[0].name} = ...)"
    return str(hint)


def _bad(name: str, value: Any, hint: Any) -> ConfigError:
    shown = repr(value) if not isinstance(value, float) else f"{value:g}"
    return ConfigError(f"invalid configuration value {name} = {shown}: expected {_expected(hint, name)}.")


def _check_field(name: str, value: Any, hint: Any) -> Any:
    """``value`` checked against the field's type hint and ``RANGES``/``CHOICES``; returns it normalised (int -> float
    for float fields, tables -> nested dataclasses)."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            try:
                return _check_field(name, value, inner[0])
            except ConfigError:
                raise _bad(name, value, hint) from None
        return value
    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise _bad(name, value, hint)
        return value
    if hint is int or hint is float:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if hint is float:
            ok = ok or isinstance(value, float)
        if not ok or (isinstance(value, float) and not math.isfinite(value)):
            raise _bad(name, value, hint)
        lo, hi = RANGES.get(name, (0 if hint is int else None, None))
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise _bad(name, value, hint)
        return float(value) if hint is float else value
    if hint is str:
        if not isinstance(value, str) or (name in CHOICES and value not in CHOICES[name]):
            raise _bad(name, value, hint)
        return value
    if origin is dict or hint is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise _bad(name, value, hint)
        return value
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            check_fields(value, prefix=f"{name}.")
            return value
        if not isinstance(value, dict):
            raise _bad(name, value, hint)
        return _from_table(hint, value, prefix=f"{name}.")
    return value


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def check_fields(obj: Any, prefix: str = "") -> None:
    """Check (and normalise in place) every field of a config dataclass against its type hint and range."""
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):
        value = _check_field(prefix + f.name, getattr(obj, f.name), hints[f.name])
        object.__setattr__(obj, f.name, value)


def _from_table(cls: type, data: Any, prefix: str = "") -> Any:
    """Build ``cls`` from a mapping, refusing unknown keys (with the closest match) and checking every value."""
    if not isinstance(data, dict):
        where = f"[{prefix.rstrip('.')}]" if prefix else "the configuration"
        raise ConfigError(f"{where} must be a table of KEY = VALUE settings; got {type(data).__name__} {data!r:.60}.")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in set(data) - known)
    if unknown:
        import difflib

        hints = [f"{prefix}{u} (did you mean {prefix}{difflib.get_close_matches(u, known, 1)[0]}?)"
                 if difflib.get_close_matches(u, known, 1) else f"{prefix}{u}" for u in unknown]
        raise ConfigError(f"unknown configuration keys: {', '.join(hints)}.")
    return cls(**data)


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

    def __post_init__(self) -> None:
        check_fields(self, prefix="pretrain.")


@dataclass
class RunConfig:
    """Everything ``posegen run`` does. Plugin choices are names (or, from Python, ready-built objects)."""

    # plugins
    renderer: Any = "primitives"
    renderer_checkpoint: str | None = None
    renderer_options: dict[str, Any] = field(default_factory=dict)
    renderer_random_weights: bool = False  # allow a renderer that needs a trained checkpoint (A-NeRF) to run without one
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
    generate_shape: bool = False  # G also generates body shape (renderers with shape_dim > 0, e.g. anny)
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
    seed: int = 0  # G, D, the dataset and the fine-tuning: what differs between repeated runs of a method
    setting_seed: int = 0  # the fixed setting: held-out takes, evaluation renders, the pre-trained stand-in estimator;
    # kept apart from seed so that runs with different seeds start from one estimator and meet one test set
    out: str | None = None  # the run folder; None -> runs/<timestamp>_<renderer>-<estimator>
    checkpoint_every: int = 50
    log_every: int = 10
    export_images: bool = True
    export_size: int | None = None  # pixels of the exported dataset's images; None: what the estimator reads (its
    # input_size: SPIN 224, HybrIK 256, the default simple CNN 64 = the loop's size), else image_size
    report: bool = True
    threads: int | None = None
    device: str = "auto"  # torch device for G, D, the renderer and the estimator: auto (cuda if visible), cpu, cuda:1
    streams: int | None = None  # random streams the batch is drawn from, batch_size samples each (None: one per
    # process). The result is the same at every world size that divides it (docs/DISTRIBUTED.md).

    def __post_init__(self) -> None:
        check_fields(self)

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

        check_fields(self)  # attributes may have been changed since construction
        from .interfaces import Estimator, Renderer

        for name, base in (("renderer", Renderer), ("estimator", Estimator)):
            value = getattr(self, name)
            need(isinstance(value, (str, base)),
                 f"invalid configuration value {name} = {value!r:.60}: expected a plugin name (see `posegen plugins`) "
                 f"or a posegen_core.{base.__name__}.")
        need(self.samples > 0 or self.finetune in ("loop", "none"),
             f"samples = 0 writes no dataset, so finetune = '{self.finetune}' would have nothing to fine-tune on and "
             "the run would report after = before; set samples >= 1, or finetune = 'none' (GAN and evaluation only) "
             "or 'loop' (fine-tuning inside the GAN loop).")
        need(self.feedback_start is None or self.feedback_start <= self.iters,
             f"feedback_start = {self.feedback_start} is after the last of the {self.iters} iterations: no step would "
             "get feedback; lower it (or unset it for the default, five sixths of iters).")
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
        """Build from a mapping (TOML, JSON, ``--set``): unknown keys and wrong values raise ConfigError."""
        return _from_table(cls, data)

    @classmethod
    def from_file(cls, path: str | Path) -> "RunConfig":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"configuration file not found: {path}.")
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as e:
            raise ConfigError(f"{path} is not UTF-8 text (byte {e.start}); save the configuration as UTF-8.") from None
        except OSError as e:
            raise ConfigError(f"could not read {path}: {e.strerror or e}.") from None
        try:
            data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError, RecursionError) as e:
            kind = "JSON" if path.suffix == ".json" else "TOML"
            raise ConfigError(f"could not parse {path} as {kind}: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path} must hold a table of settings (a JSON object); got a {type(data).__name__}.")
        return cls.from_dict(data)
