"""The multi-view subject dataset that ``posegen anerf fit`` trains on, and a teacher-subject generator.

Layout: one ``.npz`` file (written atomically) with N images of one subject:

    images      (N, H, W, 3) uint8   RGB, composited on ``background``
    masks       (N, H, W)    uint8   1 = person (used for reporting and to weight ray sampling)
    joints      (N, 24, 3)   float32 camera-frame SMPL-24 joints in metres (OpenCV camera: x right, y down, z fwd)
    rotations   (N, 24, 3, 3) float32 camera-frame global joint rotations (posegen's renderer contract)
    intrinsics  (N, 4)       float32 fx, fy, cx, cy in pixels (pixel centres at +0.5, as posegen_core.project)
    pose_index  (N,)         int64   which body pose the image shows
    camera_index (N,)        int64   which camera took it
    split       (N,)         int64   0 train, 1 held-out view (training poses, unseen cameras), 2 held-out pose
    background  (3,)         float32 RGB background in [0, 1]

Every image is stored in its own camera frame, exactly what a posegen renderer receives, so no extrinsics are needed:
a world-frame dataset is converted with ``posegen_core.to_camera_frame`` (or ``conventions.anerf_to_contract`` for
A-NeRF's own kp3d/skts/c2w arrays).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import posegen_core as pg
from posegen_core.io import atomic_savez

SPLITS = {"train": 0, "heldout_view": 1, "heldout_pose": 2}
FIELDS = {"images": 4, "masks": 3, "joints": 3, "rotations": 4, "intrinsics": 2, "pose_index": 1, "camera_index": 1,
          "split": 1, "background": 1}


@dataclass
class SubjectDataset:
    images: torch.Tensor  # (N, 3, H, W) float in [0, 1]
    masks: torch.Tensor  # (N, H, W) bool
    joints: torch.Tensor
    rotations: torch.Tensor
    intrinsics: torch.Tensor  # (N, 4)
    pose_index: torch.Tensor
    camera_index: torch.Tensor
    split: torch.Tensor
    background: tuple[float, float, float]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.images.shape[2]), int(self.images.shape[3])

    def camera(self, i: int) -> pg.Intrinsics:
        fx, fy, cx, cy = (float(v) for v in self.intrinsics[i])
        h, w = self.size
        return pg.Intrinsics(fx, fy, cx, cy, h, w)

    def indices(self, split: str) -> list[int]:
        return self.split.eq(SPLITS[split]).nonzero().squeeze(-1).tolist()


def save_dataset(path: str | Path, ds: SubjectDataset) -> None:
    atomic_savez(
        path,
        images=(ds.images.permute(0, 2, 3, 1).clamp(0, 1) * 255.0).round().to(torch.uint8).numpy(),
        masks=ds.masks.to(torch.uint8).numpy(), joints=ds.joints.float().numpy(),
        rotations=ds.rotations.float().numpy(), intrinsics=ds.intrinsics.float().numpy(),
        pose_index=ds.pose_index.long().numpy(), camera_index=ds.camera_index.long().numpy(),
        split=ds.split.long().numpy(), background=np.asarray(ds.background, dtype=np.float32),
    )


def load_dataset(path: str | Path) -> SubjectDataset:
    """Read and check a dataset file; errors name the field and the expected layout (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise pg.DataError(f"A-NeRF dataset not found: {path}. Make one with `posegen anerf make-dataset {path}`.")
    try:
        with np.load(path) as f:
            data = {k: f[k] for k in f.files}
    except Exception as e:
        raise pg.DataError(f"could not read {path} as an .npz dataset: {e}.") from None
    missing = [k for k in FIELDS if k not in data]
    if missing:
        raise pg.DataError(f"{path} lacks the fields {missing}; an A-NeRF dataset has {list(FIELDS)} "
                           "(layout in posegen_plugins.renderers.anerf.dataset).")
    n = data["images"].shape[0]
    for k, nd in FIELDS.items():
        if data[k].ndim != nd or (k != "background" and data[k].shape[0] != n):
            raise pg.DataError(f"{path}: field '{k}' has shape {data[k].shape}; expected {nd} dimensions with "
                               f"{n} rows (one per image).")
    if data["images"].dtype != np.uint8 or data["images"].shape[-1] != 3:
        raise pg.DataError(f"{path}: images must be uint8 (N, H, W, 3); got {data['images'].dtype} "
                           f"{data['images'].shape}.")
    if data["joints"].shape[1:] != (24, 3) or data["rotations"].shape[1:] != (24, 3, 3):
        raise pg.DataError(f"{path}: joints must be (N, 24, 3) and rotations (N, 24, 3, 3) (SMPL-24, camera frame).")
    if not (data["split"] == SPLITS["train"]).any():
        raise pg.DataError(f"{path} has no training images (split == 0).")
    return SubjectDataset(
        images=torch.from_numpy(data["images"]).permute(0, 3, 1, 2).float() / 255.0,
        masks=torch.from_numpy(data["masks"]) > 0, joints=torch.from_numpy(data["joints"]).float(),
        rotations=torch.from_numpy(data["rotations"]).float(), intrinsics=torch.from_numpy(data["intrinsics"]).float(),
        pose_index=torch.from_numpy(data["pose_index"]).long(),
        camera_index=torch.from_numpy(data["camera_index"]).long(),
        split=torch.from_numpy(data["split"]).long(),
        background=tuple(float(v) for v in data["background"]),  # type: ignore[arg-type]
    )


def random_poses(n: int, generator: torch.Generator, scale: float = 0.35) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` varied but plausible poses: small random joint rotations, larger at shoulders, elbows, hips and knees."""
    body = torch.randn(n, 23, 3, generator=generator) * scale * 0.4
    for joint, amount in ((16, 1.0), (17, 1.0), (18, 1.2), (19, 1.2), (1, 0.6), (2, 0.6), (4, 0.8), (5, 0.8)):
        body[:, joint - 1] = torch.randn(n, 3, generator=generator) * scale * amount
    body[:, 3, 0] = body[:, 3, 0].abs()  # knees bend forwards
    body[:, 4, 0] = body[:, 4, 0].abs()
    return torch.zeros(n, 3), body


def make_teacher_dataset(
    renderer: pg.Renderer, *, size: int = 48, train_poses: int = 12, heldout_poses: int = 3, views: int = 8,
    heldout_views: int = 2, elevation: float = 0.15, distance: float = 4.0, seed: int = 0,
    background: tuple[float, float, float] = (1.0, 1.0, 1.0), subject: int | str | None = None,
) -> SubjectDataset:
    """Render a multi-view dataset of one subject with ``renderer`` (the teacher), which must composite on the plain
    ``background`` (recorded in the dataset, and what A-NeRF composites its renders on while training).

    Training cameras ring the subject at ``views`` evenly spaced azimuths; held-out cameras sit halfway between
    training ones; held-out poses are seen from the training cameras.
    """
    gen = torch.Generator().manual_seed(seed)
    go, bp = random_poses(train_poses + heldout_poses, gen)
    joints, rots = pg.forward_kinematics(go, bp)
    az_train = [2 * math.pi * k / views for k in range(views)]
    az_held = [2 * math.pi * (k + 0.5) / views for k in range(0, views, max(1, views // max(heldout_views, 1)))]
    az_held = az_held[:heldout_views]
    items = []  # (pose, camera, split, azimuth)
    for p in range(train_poses):
        items += [(p, c, 0, a) for c, a in enumerate(az_train)]
        items += [(p, views + c, 1, a) for c, a in enumerate(az_held)]
    for p in range(train_poses, train_poses + heldout_poses):
        items += [(p, c, 2, a) for c, a in enumerate(az_train)]
    pose = torch.tensor([i[0] for i in items])
    k = pg.camera.viewpoint_from_angles(torch.full((len(items),), elevation),
                                        torch.tensor([i[3] for i in items], dtype=torch.float32))
    jc, rc = pg.to_camera_frame(joints[pose], rots[pose], k, distance)
    intr = pg.Intrinsics.framing(size, distance=distance)
    images, alphas = [], []
    with torch.no_grad():
        for s in range(0, len(items), 32):
            kwargs = {"subject": subject} if subject is not None else {}
            out = renderer(jc[s:s + 32], rc[s:s + 32], intr, generator=torch.Generator().manual_seed(seed + s),
                           **kwargs)
            images.append(out.images)
            alphas.append(out.alpha[:, 0])
    alpha = torch.cat(alphas)
    return SubjectDataset(
        images=torch.cat(images).clamp(0, 1), masks=alpha > 0.5, joints=jc, rotations=rc,
        intrinsics=torch.tensor([[intr.fx, intr.fy, intr.cx, intr.cy]]).expand(len(items), 4).clone(),
        pose_index=pose, camera_index=torch.tensor([i[1] for i in items]),
        split=torch.tensor([i[2] for i in items]), background=background,
    )
