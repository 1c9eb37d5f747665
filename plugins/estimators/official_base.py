"""What the SPIN and HybrIK plugins share: crop/normalise, body model, fine-tuning options, checkpoint recognition.

Why one base: both wrap an official network whose ``state_dict`` must equal the official checkpoint's, so the
estimator module itself holds exactly the official parameters; everything else (the SMPL or skeleton body, options)
lives outside the module tree and never reaches a checkpoint.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

import posegen_core as pg
from posegen_core import io as pgio
from posegen_core import validation
from posegen_core.errors import CheckpointError, ConfigError

#: Official checkpoint layouts posegen recognises, by a key only that model has -> (estimator, variant, how to ask).
_SIGNATURES: tuple[tuple[str, str, str, str], ...] = (
    ("decpose.weight", "spin", "hmr", "--estimator spin"),
    ("preact.transition1.0.0.weight", "hybrik", "hrnet48", "--estimator hybrik (backbone hrnet48)"),
    ("preact.layer1.0.conv1.weight", "hybrik", "resnet34", "--estimator hybrik (backbone resnet34)"),
)


def identify_state_dict(state: Mapping[str, Any]) -> tuple[str, str] | None:
    """(estimator, variant) of an official SPIN/HybrIK state dict, or None when it is neither."""
    for key, est, variant, _ in _SIGNATURES:
        if key in state:
            return est, variant
    return None


def how_to_load(est: str, variant: str) -> str:
    for _, e, v, hint in _SIGNATURES:
        if (e, v) == (est, variant):
            return hint
    return f"--estimator {est}"


def unwrap_official(data: Any, path: str | Path, what: str) -> Mapping[str, torch.Tensor]:
    """The state dict inside an official file: a dict with 'model' (SPIN, some HybrIK) or the state dict itself."""
    if isinstance(data, Mapping) and "posegen_estimator" in data:
        return data["state_dict"]
    if isinstance(data, Mapping) and isinstance(data.get("model"), Mapping):
        return data["model"]
    if isinstance(data, Mapping) and data and all(isinstance(v, torch.Tensor) for v in data.values()):
        return data
    keys = list(data)[:6] if isinstance(data, Mapping) else []
    raise CheckpointError(
        f"{path} is not a {what}: expected a state dict, a dict with a 'model' state dict, or a posegen checkpoint; "
        f"got {type(data).__name__}{' with keys ' + str(keys) if keys else ''}."
    )


def warn_random_init(name: str, where: str) -> None:
    """Random weights predict nonsense: say so loudly, in the warnings system and on stderr."""
    msg = (
        f"{name} estimator built with RANDOM weights (no checkpoint given): its predictions are meaningless until it "
        f"is trained. Pass checkpoint=PATH (posegen run: --estimator-checkpoint PATH); {where}"
    )
    warnings.warn(msg, stacklevel=3)
    import sys

    print(f"WARNING: {msg}", file=sys.stderr)


def square_crop_resize(images: torch.Tensor, size: int, crop_scale: float = 1.0, antialias: bool = False) -> torch.Tensor:
    """Crop the centred square of side ``crop_scale * max(H, W)`` (zero padding outside the image) and resize it to
    ``size`` x ``size`` bilinearly: SPIN's and HybrIK's crop of a whole-image box, differentiable in the pixels."""
    b, _, h, w = images.shape
    side = max(1, int(round(max(h, w) * crop_scale)))
    if side != h or side != w:
        top, left = (side - h) // 2, (side - w) // 2
        # Zero padding around the image (negative amounts crop, for crop_scale < 1).
        images = F.pad(images, (left, side - w - left, top, side - h - top))
    if side != size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                               antialias=antialias and side > size)
    return images


def normalise(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    m = torch.tensor(mean, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images - m) / s


class OfficialEstimator(pg.Estimator):
    """Base of the official-model wrappers: body model, fine-tuning options and checkpoint handling.

    Options every subclass accepts: ``smpl_model`` (SMPL file or folder; joints through smplx instead of the
    skeleton), ``freeze_bn`` (BatchNorm stays in eval mode while training, as the official PoseGen fine-tuning does),
    ``scale_align`` (the joint loss first rescales each predicted skeleton by ||gt||_F / ||pred||_F, as the official
    PoseGen code does), ``crop_scale`` (side of the centred square crop relative to the longer image side).
    """

    official_what: str = "checkpoint"
    checkpoint_source: str = ""

    def __init__(self, smpl_model: str | Path | None = None, freeze_bn: bool = False, scale_align: bool = False,
                 crop_scale: float = 1.0) -> None:
        super().__init__()
        if crop_scale <= 0:
            raise ConfigError(f"crop_scale must be positive (1.0 = the whole image); got {crop_scale}.")
        self.smpl_model = None if smpl_model is None else str(smpl_model)
        self.freeze_bn = bool(freeze_bn)
        self.scale_align = bool(scale_align)
        self.crop_scale = float(crop_scale)
        # Kept out of the module tree (no submodule, no buffers): checkpoints hold only the official network.
        self.__dict__["_body"] = pg.create_body_model(smpl_model)

    # -- body model ---------------------------------------------------------------------------------------
    @property
    def body(self) -> nn.Module:
        return self.__dict__["_body"]

    def body_on(self, like: torch.Tensor) -> nn.Module:
        """The body model on ``like``'s device (moved lazily: it is not a submodule, so ``.to()`` skips it)."""
        body = self.body
        ref = next(iter(body.buffers()), None)
        if ref is not None and ref.device != like.device:
            body.to(like.device)
        return body

    def options(self) -> dict[str, Any]:
        return {"freeze_bn": self.freeze_bn, "scale_align": self.scale_align, "crop_scale": self.crop_scale}

    # -- fine-tuning -------------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> "OfficialEstimator":
        super().train(mode)
        if mode and self.freeze_bn:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def align_scale(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """pred * ||target||_F / ||pred||_F per sample (root-relative skeletons): the official PoseGen alignment."""
        pn = pred.flatten(1).norm(dim=1).clamp_min(1e-8)
        tn = target.flatten(1).norm(dim=1)
        return pred * (tn / pn)[:, None, None]

    def joint_loss(self, output: pg.EstimatorOutput, target: torch.Tensor, threshold: float | None = None) -> torch.Tensor:
        validation.check_tensor(target, "target", (output.joints.shape[0], pg.skeleton.NUM_JOINTS, 3),
                                   hint="Targets are root-relative camera-frame SMPL-24 joints in metres.")
        pred = self.align_scale(output.joints, target) if self.scale_align else output.joints
        return pg.thresholded_joint_loss(pred, target, threshold)

    # -- checkpoints -------------------------------------------------------------------------------------
    def expected_variant(self) -> tuple[str, str]:
        """(estimator, variant) of the official checkpoints this instance loads."""
        raise NotImplementedError

    def state_dict_from_checkpoint(self, data: Any, path: str | Path) -> dict[str, torch.Tensor]:
        if isinstance(data, Mapping) and "posegen_estimator" in data:
            return super().state_dict_from_checkpoint(data, path)
        state = dict(unwrap_official(data, path, self.official_what))
        found = identify_state_dict(state)
        want = self.expected_variant()
        if found is not None and found != want:
            raise CheckpointError(
                f"{path} is an official {found[0]} checkpoint ({found[1]}), but this is the {want[0]} estimator "
                f"({want[1]}). Load it with {how_to_load(*found)}, or pass a {want[0]} ({want[1]}) checkpoint."
            )
        return self.filter_official_state(state)

    def filter_official_state(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Drop entries of the official file that posegen keeps elsewhere (HybrIK's SMPL buffers)."""
        return state

    def load_checkpoint(self, path: str | Path, strict: bool = True) -> dict[str, list[str]]:
        data = pgio.load_checkpoint_file(path, what=self.official_what, source=self.checkpoint_source)
        return self.load_checkpoint_data(data, path, strict)

    def load_checkpoint_data(self, data: Any, path: str | Path, strict: bool = True) -> dict[str, list[str]]:
        """Load an already-read checkpoint object (the factories read the file once to pick the architecture)."""
        state = self.state_dict_from_checkpoint(data, path)
        return pgio.load_state_dict_strict(self, state, path, strict=strict)


def peek_checkpoint(checkpoint: str | Path | None, what: str, source: str) -> Any:
    """Read a checkpoint once (weights_only, clear errors) so a factory can choose the architecture from it."""
    if checkpoint is None:
        return None
    return pgio.load_checkpoint_file(checkpoint, what=what, source=source)
