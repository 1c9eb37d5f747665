"""Write a generated dataset in SPIN's field layout (imgname, center, scale, pose, shape, S) plus camera arrays, so
SPIN/HybrIK training code can read it without conversion. The folder appears atomically when complete."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import torch

from .camera import Intrinsics, viewpoint_rotation
from .rotations import matrix_to_axis_angle


def export_dataset(
    folder: str | Path,
    data: dict[str, torch.Tensor],
    intrinsics: Intrinsics,
    distance: float,
    write_images: bool = True,
) -> Path:
    """``data``: body_pose (N, 23, 3), viewpoint (N, 3), images uint8 (N, 3, H, W), joints (N, 24, 3)."""
    from PIL import Image

    from .spin_data import spin_j24_from_smpl24, write_spin_annotations

    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "images").mkdir(parents=True)
    n = len(data["body_pose"])
    names = np.array([f"images/{i:06d}.png" for i in range(n)])
    if write_images:
        arr = data["images"].permute(0, 2, 3, 1).numpy()
        for i in range(n):
            Image.fromarray(arr[i]).save(tmp / names[i])
    # SPIN's pose: the global orientation in the camera frame, then the 23 body joints (72 numbers).
    root = matrix_to_axis_angle(viewpoint_rotation(data["viewpoint"]))  # G's bodies stand upright (identity root)
    pose = torch.cat([root, data["body_pose"].reshape(n, -1)], 1).numpy().astype(np.float32)
    side = max(intrinsics.height, intrinsics.width)
    write_spin_annotations(
        tmp / "annotations.npz",
        imgname=names,
        center=np.tile(np.array([[intrinsics.cx, intrinsics.cy]], dtype=np.float32), (n, 1)),
        scale=np.full(n, side / 200.0, dtype=np.float32),
        pose=pose,
        shape=np.zeros((n, 10), dtype=np.float32),
        S=spin_j24_from_smpl24(data["joints"]).astype(np.float32),
        joints_smpl24=data["joints"].numpy().astype(np.float32),
        viewpoint=data["viewpoint"].numpy().astype(np.float32),
        cam_K=np.tile(intrinsics.matrix().numpy()[None], (n, 1, 1)),
        cam_t=np.tile(np.array([[0.0, 0.0, distance]], dtype=np.float32), (n, 1)),
    )
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder
