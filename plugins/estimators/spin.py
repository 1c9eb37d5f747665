"""``spin``: SPIN's HMR regressor (ResNet-50 + iterative error feedback), loading the official checkpoint exactly.

Network (nkolot/SPIN ``models/hmr.py``): ResNet-50 trunk -> 2048-d average-pooled feature; three IEF iterations of
``fc1 -> dropout -> fc2 -> dropout`` (no ReLU between) on ``[feature, pose 6D (144), shape (10), cam (3)]`` adding
``decpose/decshape/deccam`` residuals to the current estimate, starting from the mean parameters ``init_pose``,
``init_shape``, ``init_cam`` (buffers, also stored in the checkpoint). Pose is SPIN's 6D representation per joint
(``posegen_core.rotations.rot6d_to_matrix``); the camera is weak perspective ``[s, tx, ty]`` in crop coordinates.

Input: images (B, 3, H, W) in [0, 1], RGB, any size; the centred square (``crop_scale`` x the longer side, zero
padding) is resized to 224x224 and normalised with the ImageNet mean/std, as SPIN's demo does for a whole-image box.

Output (posegen contract): root-relative camera-frame SMPL-24 joints in metres. SPIN's rotations map the SMPL body
frame into its camera frame (x right, y down, as the image), so the joints come from posing the body with the
predicted rotations: through SMPL (smplx) with the predicted betas when ``smpl_model=PATH`` is given, through
posegen's skeleton (no shape) otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import posegen_core as pg
from posegen_core import rotations, skeleton, validation
from posegen_core.errors import ConfigError, DataError

from .backbones.resnet import ResNet
from .official_base import OfficialEstimator, normalise, peek_checkpoint, square_crop_resize, warn_random_init

IMG_RES = 224
IMG_NORM_MEAN = (0.485, 0.456, 0.406)
IMG_NORM_STD = (0.229, 0.224, 0.225)
FOCAL_LENGTH = 5000.0  # SPIN's perspective camera for the 224 crop (train/trainer.py, demo.py)
NPOSE = skeleton.NUM_JOINTS * 6
SOURCE = "The official SPIN checkpoint is data/model_checkpoint.pt from SPIN's fetch_data.sh (github.com/nkolot/SPIN)."


def default_mean_params() -> dict[str, torch.Tensor]:
    """posegen's documented stand-in for smpl_mean_params.npz: identity body rotations with the root turned to face
    the camera upright (SPIN's frame is the image's, y down), zero shape, camera [0.9, 0, 0]."""
    rots = torch.eye(3).repeat(skeleton.NUM_JOINTS, 1, 1)
    rots[0] = pg.camera.frontal_rotation()
    return {
        "pose": rotations.matrix_to_rot6d(rots).reshape(1, NPOSE),
        "shape": torch.zeros(1, 10),
        "cam": torch.tensor([[0.9, 0.0, 0.0]]),
    }


def load_mean_params(path: str | Path) -> dict[str, torch.Tensor]:
    """Read SPIN's smpl_mean_params.npz: 'pose' (144 values, 6D), 'shape' (10), 'cam' (3)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"SPIN mean parameters not found: {path}. It is data/smpl_mean_params.npz from SPIN's "
                        "fetch_data.sh; omit mean_params to use posegen's documented default.")
    try:
        with np.load(path) as npz:
            arrays = {k: np.asarray(npz[k], dtype=np.float32) for k in ("pose", "shape", "cam") if k in npz.files}
    except Exception as e:
        raise DataError(f"could not read SPIN mean parameters {path}: {type(e).__name__}: {e}") from None
    sizes = {"pose": NPOSE, "shape": 10, "cam": 3}
    for key, n in sizes.items():
        if key not in arrays:
            raise DataError(f"{path} has no '{key}' array; SPIN's smpl_mean_params.npz holds pose (144), shape (10), cam (3).")
        if arrays[key].size != n:
            raise DataError(f"{path}: '{key}' has {arrays[key].size} values, expected {n} (SPIN's layout).")
    return {k: torch.from_numpy(arrays[k].reshape(1, n)) for k, n in sizes.items()}


class SPIN(OfficialEstimator):
    """SPIN's HMR (ResNet-50 + 3-step IEF, 6D pose): 224x224 ImageNet-normalised crops -> SMPL pose, shape, camera."""

    name = "spin"
    input_size = IMG_RES
    official_what = "SPIN checkpoint"
    checkpoint_source = SOURCE

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        smpl_model: str | Path | None = None,
        mean_params: str | Path | None = None,
        input_size: int = IMG_RES,
        n_iter: int = 3,
        freeze_bn: bool = False,
        scale_align: bool = False,
        crop_scale: float = 1.0,
        strict: bool = True,
        seed: int = 0,
        warn: bool = True,
    ) -> None:
        super().__init__(smpl_model=smpl_model, freeze_bn=freeze_bn, scale_align=scale_align, crop_scale=crop_scale)
        if input_size < 32 or input_size % 32:
            raise ConfigError(f"SPIN input_size must be a multiple of 32 (224 is the official size); got {input_size}.")
        if n_iter < 1:
            raise ConfigError(f"n_iter (IEF iterations) must be at least 1; SPIN uses 3. Got {n_iter}.")
        self.input_size = int(input_size)
        self.n_iter = int(n_iter)
        self.mean_params = None if mean_params is None else str(mean_params)
        mean = default_mean_params() if mean_params is None else load_mean_params(mean_params)
        # Buffers first: the official state_dict lists them before the trunk.
        self.register_buffer("init_pose", mean["pose"].clone())
        self.register_buffer("init_shape", mean["shape"].clone())
        self.register_buffer("init_cam", mean["cam"].clone())
        generator = torch.Generator().manual_seed(seed)
        trunk = ResNet(50, generator)
        for child_name, child in trunk.named_children():  # SPIN's keys carry no backbone prefix
            setattr(self, child_name, child)
        feat = trunk.out_channels
        self.fc1 = nn.Linear(feat + NPOSE + 13, 1024)
        self.drop1 = nn.Dropout()
        self.fc2 = nn.Linear(1024, 1024)
        self.drop2 = nn.Dropout()
        self.decpose = nn.Linear(1024, NPOSE)
        self.decshape = nn.Linear(1024, 10)
        self.deccam = nn.Linear(1024, 3)
        self._init_head(generator)
        if checkpoint is not None:
            self.load_checkpoint(checkpoint, strict=strict)
        elif warn:
            warn_random_init("spin", SOURCE)

    @torch.no_grad()
    def _init_head(self, generator: torch.Generator) -> None:
        for fc in (self.fc1, self.fc2):  # torch's Linear default, drawn from our generator
            bound = 1.0 / fc.in_features ** 0.5
            fc.weight.uniform_(-bound, bound, generator=generator)
            fc.bias.uniform_(-bound, bound, generator=generator)
        for dec in (self.decpose, self.decshape, self.deccam):  # SPIN: xavier_uniform(gain=0.01)
            nn.init.xavier_uniform_(dec.weight, gain=0.01, generator=generator)
            bound = 1.0 / dec.in_features ** 0.5
            dec.bias.uniform_(-bound, bound, generator=generator)

    def expected_variant(self) -> tuple[str, str]:
        return ("spin", "hmr")

    def options(self) -> dict[str, Any]:
        return {**super().options(), "input_size": self.input_size, "n_iter": self.n_iter}

    # -- network ------------------------------------------------------------------------------------------
    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """[0, 1] RGB images of any size -> the normalised 224x224 network input."""
        crop = square_crop_resize(images, self.input_size, self.crop_scale, antialias=True)
        return normalise(crop, IMG_NORM_MEAN, IMG_NORM_STD)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """ResNet-50 trunk and average pool (SPIN's AvgPool2d(7) on the 7x7 map of a 224 input): (B, 2048)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3))

    def regress(self, xf: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """HMR's iterative error feedback from the mean parameters: pose 6D (B, 144), shape (B, 10), cam (B, 3)."""
        b = xf.shape[0]
        pose = self.init_pose.expand(b, -1).to(xf.dtype)
        shape = self.init_shape.expand(b, -1).to(xf.dtype)
        cam = self.init_cam.expand(b, -1).to(xf.dtype)
        for _ in range(self.n_iter):
            xc = torch.cat([xf, pose, shape, cam], 1)
            xc = self.drop2(self.fc2(self.drop1(self.fc1(xc))))
            pose = self.decpose(xc) + pose
            shape = self.decshape(xc) + shape
            cam = self.deccam(xc) + cam
        return pose, shape, cam

    def forward(self, images: torch.Tensor) -> pg.EstimatorOutput:
        validation.check_images(images.detach())  # (B, 3, H, W) in [0, 1]; detached: the check reads values
        return self.predict(self.preprocess(images))

    def predict(self, x: torch.Tensor) -> pg.EstimatorOutput:
        """The official HMR on an already cropped and normalised input (B, 3, 224, 224), as SPIN's ``model(x)``."""
        pose6d, betas, cam = self.regress(self.features(x))
        b = x.shape[0]
        rotmats = rotations.rot6d_to_matrix(pose6d.view(b, skeleton.NUM_JOINTS, 6))
        body = self.body_on(rotmats).forward_rotmats(rotmats, betas)
        joints = body.joints.to(x.dtype)
        s, tx, ty = cam.unbind(-1)
        cam_t = torch.stack([tx, ty, 2.0 * FOCAL_LENGTH / (IMG_RES * s + 1e-9)], -1)
        extras: dict[str, torch.Tensor] = {"pose_6d": pose6d, "cam_t": cam_t, "global_rotations": body.rotations}
        if body.vertices is not None:
            extras["vertices"] = body.vertices
        return pg.EstimatorOutput(
            joints=joints, rotations=rotmats, betas=betas, camera=cam, native_joints=joints, extras=extras
        )


def build_spin(checkpoint: str | Path | None = None, strict: bool = True, **options: Any) -> SPIN:
    """Build ``spin``; a posegen checkpoint's saved options win, so its architecture matches its weights."""
    data = peek_checkpoint(checkpoint, SPIN.official_what, SOURCE)
    if isinstance(data, dict) and data.get("posegen_estimator") == "spin":
        saved = data.get("options", {})
        arch = {k: saved[k] for k in ("input_size", "n_iter") if k in saved}
        options = {**saved, **options, **arch}  # the saved architecture wins; the user's other options win
    model = SPIN(checkpoint=None, warn=checkpoint is None, **options)
    if data is not None:
        model.load_checkpoint_data(data, checkpoint, strict=strict)
    return model


@pg.hookimpl
def posegen_register_estimators(register):
    register("spin", build_spin, description="SPIN (HMR, ResNet-50, 224x224); loads the official model_checkpoint.pt.")
