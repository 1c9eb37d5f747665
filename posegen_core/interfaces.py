"""The contracts every plugin implements (DESIGN section 3): Renderer, Estimator, Prior, Discriminator, PoseSource.

Units are metres and radians; skeletons are SMPL-24 in SMPL order; camera frames are OpenCV's; images are
(B, 3, H, W) floats in [0, 1].
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from . import skeleton
from .camera import Intrinsics
from .errors import CheckpointError, DataError
from .validation import check_images, check_tensor


# --------------------------------------------------------------------------------------------------- renderer
@dataclass
class RenderOutput:
    images: torch.Tensor  # (B, 3, H, W) in [0, 1]
    alpha: torch.Tensor  # (B, 1, H, W) in [0, 1]


class Renderer(nn.Module, abc.ABC):
    """Turns a posed camera-frame skeleton into images of a person.

    Subclasses implement ``render``; ``forward`` validates inputs first. ``differentiable`` says whether gradients
    flow from pixels to ``joints`` and ``rotations`` (the loop uses pixel feedback only then).
    """

    differentiable: ClassVar[bool] = False
    #: True when the renderer's output means nothing without trained weights (A-NeRF): runs refuse it without a
    #: checkpoint unless the user asks for random weights (``renderer_random_weights``).
    needs_checkpoint: ClassVar[bool] = False
    #: How many per-sample body-shape parameters the renderer accepts (0: none). When > 0, ``subject`` may be a
    #: (B, shape_dim) float tensor with values in [0, 1] (each renderer documents their meaning); the generator then
    #: can generate body shape (``RunConfig.generate_shape``) and the gradient reaches it through the pixels.
    shape_dim: ClassVar[int] = 0

    def forward(
        self,
        joints: torch.Tensor,
        rotations: torch.Tensor,
        intrinsics: Intrinsics,
        subject: int | str | torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> RenderOutput:
        check_tensor(joints, "joints", (None, skeleton.NUM_JOINTS, 3), hint="Camera-frame SMPL-24 joints in metres.")
        check_tensor(rotations, "rotations", (joints.shape[0], skeleton.NUM_JOINTS, 3, 3))
        if not isinstance(intrinsics, Intrinsics):
            raise TypeError(f"intrinsics must be a posegen_core.Intrinsics; got {type(intrinsics).__name__}.")
        if joints.shape[0] == 0:  # an empty batch renders to empty images, whatever the plugin would do with it
            h, w = intrinsics.height, intrinsics.width
            return RenderOutput(joints.new_zeros(0, 3, h, w), joints.new_zeros(0, 1, h, w))
        return self.render(joints, rotations, intrinsics, subject=subject, generator=generator)

    @abc.abstractmethod
    def render(
        self,
        joints: torch.Tensor,
        rotations: torch.Tensor,
        intrinsics: Intrinsics,
        subject: int | str | torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> RenderOutput:
        """Render (B, 3, H, W) images and (B, 1, H, W) alpha of size ``(intrinsics.height, intrinsics.width)``."""


# --------------------------------------------------------------------------------------------------- estimator
@dataclass
class EstimatorOutput:
    """An estimator's prediction. ``joints`` is required; the rest is filled where the model has it."""

    joints: torch.Tensor  # (B, 24, 3) root-relative, camera frame, metres
    rotations: torch.Tensor | None = None  # (B, 24, 3, 3) local SMPL rotations, joint 0 = global orientation
    betas: torch.Tensor | None = None  # (B, 10)
    camera: torch.Tensor | None = None  # model-specific camera (e.g. SPIN's weak perspective [s, tx, ty])
    native_joints: torch.Tensor | None = None  # the model's own joint set
    extras: dict[str, torch.Tensor] = field(default_factory=dict)


def thresholded_joint_loss(pred: torch.Tensor, target: torch.Tensor, threshold: float | None = None) -> torch.Tensor:
    """The paper's eq. 13: per-sample mean joint error w, kept where w < d and zeroed elsewhere (render failures).

    Both inputs are (B, J, 3) root-relative metres; returns the mean over samples (a scalar).
    """
    per_sample = (pred - target).norm(dim=-1).mean(-1)
    if threshold is not None:
        per_sample = torch.where(per_sample < threshold, per_sample, torch.zeros_like(per_sample))
    return per_sample.mean()


def _check_estimator_input(module: nn.Module, args: tuple[Any, ...]) -> None:
    """Images reaching any estimator are (B, 3, H, W), finite, in [0, 1] (NaN images would give NaN joints silently)."""
    if args and isinstance(args[0], torch.Tensor):
        check_images(args[0].detach())


class Estimator(nn.Module, abc.ABC):
    """A 3D pose estimator: images (B, 3, H, W) in [0, 1] -> EstimatorOutput.

    Each estimator resizes and normalises its own input. ``name`` identifies the model in checkpoints, so that a
    checkpoint of one estimator is refused by another.
    """

    name: ClassVar[str] = "estimator"
    input_size: ClassVar[int] = 224

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.register_forward_pre_hook(_check_estimator_input)  # the contract boundary, for every estimator plugin

    @abc.abstractmethod
    def forward(self, images: torch.Tensor) -> EstimatorOutput: ...

    def joint_loss(self, output: EstimatorOutput, target: torch.Tensor, threshold: float | None = None) -> torch.Tensor:
        """Loss for fine-tuning on root-relative camera-frame joints (B, 24, 3); eq. 13 when ``threshold`` is set."""
        return thresholded_joint_loss(output.joints, target, threshold)

    def options(self) -> dict[str, Any]:
        """Constructor options needed to rebuild this model from a posegen checkpoint (JSON-serialisable)."""
        return {}

    # -- checkpoints ---------------------------------------------------------------------------------------
    def save_checkpoint(self, path: str | Path, **extra: Any) -> None:
        from .io import atomic_torch_save

        atomic_torch_save(
            {"posegen_estimator": self.name, "options": self.options(), "state_dict": self.state_dict(), **extra}, path
        )

    def load_checkpoint(self, path: str | Path, strict: bool = True) -> None:
        """Load a posegen checkpoint of this estimator; subclasses also accept their official formats."""
        from .io import load_checkpoint_file

        data = load_checkpoint_file(path, what=f"{self.name} estimator checkpoint")
        state = self.state_dict_from_checkpoint(data, path)
        from .io import load_state_dict_strict

        load_state_dict_strict(self, state, path, strict=strict)

    def state_dict_from_checkpoint(self, data: Any, path: str | Path) -> dict[str, torch.Tensor]:
        """Pick this model's state dict out of a loaded checkpoint file; refuse other estimators' files."""
        if isinstance(data, dict) and "posegen_estimator" in data:
            if data["posegen_estimator"] != self.name:
                raise CheckpointError(
                    f"{path} is a checkpoint of the '{data['posegen_estimator']}' estimator, not '{self.name}'. "
                    f"Pass --estimator {data['posegen_estimator']} or a '{self.name}' checkpoint."
                )
            return data["state_dict"]
        raise CheckpointError(f"{path} is not a posegen checkpoint of the '{self.name}' estimator.")


# --------------------------------------------------------------------------------------------------- prior
class Prior(abc.ABC):
    """A latent prior P_z."""

    @abc.abstractmethod
    def sample(self, n: int, dim: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw (n, dim) latent codes using ``generator`` for every random number."""


# --------------------------------------------------------------------------------------------------- discriminator
class Discriminator(nn.Module, abc.ABC):
    """Scores body poses: (B, 23, 3) axis-angle -> (B, H) scores, one per head (a part, or the whole body)."""

    head_names: tuple[str, ...] = ("body",)

    @abc.abstractmethod
    def forward(self, body_pose: torch.Tensor) -> torch.Tensor: ...


# --------------------------------------------------------------------------------------------------- pose source
@dataclass
class PoseSet:
    """Real poses in SMPL order: global_orient (N, 3), body_pose (N, 23, 3), and the take each frame comes from."""

    global_orient: torch.Tensor
    body_pose: torch.Tensor
    take: np.ndarray  # (N,) int index into take_names
    take_names: list[str]

    def __post_init__(self) -> None:
        check_tensor(self.global_orient, "global_orient", (None, 3))
        check_tensor(self.body_pose, "body_pose", (self.global_orient.shape[0], skeleton.NUM_BODY_JOINTS, 3))
        if len(self.take) != len(self.global_orient):
            raise DataError(f"take has {len(self.take)} entries for {len(self.global_orient)} poses.")

    def __len__(self) -> int:
        return int(self.global_orient.shape[0])

    def subset(self, index: np.ndarray | torch.Tensor) -> "PoseSet":
        idx = torch.as_tensor(np.asarray(index), dtype=torch.long)
        return PoseSet(self.global_orient[idx], self.body_pose[idx], self.take[idx.numpy()], list(self.take_names))

    def select_takes(self, names: list[str]) -> "PoseSet":
        wanted = {self.take_names.index(n) for n in names if n in self.take_names}
        return self.subset(np.flatnonzero(np.isin(self.take, sorted(wanted))))

    @staticmethod
    def concatenate(sets: list["PoseSet"]) -> "PoseSet":
        names: list[str] = []
        takes = []
        for s in sets:
            takes.append(s.take + len(names))
            names.extend(s.take_names)
        return PoseSet(
            torch.cat([s.global_orient for s in sets]), torch.cat([s.body_pose for s in sets]),
            np.concatenate(takes) if takes else np.zeros(0, dtype=np.int64), names,
        )


class PoseSource(abc.ABC):
    """Yields real poses for the discriminator (and for pre-training and evaluation splits)."""

    name: str = "poses"

    @abc.abstractmethod
    def load(self) -> PoseSet:
        """Read every pose (axis-angle, SMPL order). Raise DataError with a clear message on missing/corrupt data."""

    def __len__(self) -> int:
        return len(self.load())
