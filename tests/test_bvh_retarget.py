"""Retargeting accuracy on the real CMU takes in ../shared/data (skipped when the folder is absent).

Bone directions of posegen's FK of the retargeted pose are compared with the BVH's own FK (bvh_format), per rig;
knees and elbows must bend about their hinge axes. Run with ``-s`` to see the measured errors.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

import posegen_core as pg
from posegen_core import skeleton as sk
from posegen_plugins.pose_sources.bvh import BVHPoseSource, read_cmu_index
from posegen_plugins.pose_sources.bvh_format import forward_kinematics, read_bvh
from posegen_plugins.pose_sources.bvh_rigs import BUILTIN_RIGS

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CMU, CMU_CC = DATA / "cmu", DATA / "cmu_cc"
needs_data = pytest.mark.skipif(not (CMU / "01_01.bvh").is_file() or not (CMU_CC / "index.csv").is_file(),
                                reason="CMU BVH data (../shared/data) not available")

#: SMPL limb bones (parent joint, child joint): thighs, shins, feet, collars, upper arms, forearms, hands.
LIMB_BONES = [(1, 4), (2, 5), (4, 7), (5, 8), (7, 10), (8, 11), (13, 16), (14, 17), (16, 18), (17, 19), (18, 20),
              (19, 21), (20, 22), (21, 23)]
SPINE_BONES = [(3, 6), (6, 9), (12, 15)]

CASES = {
    "cmu_motionbuilder": [CMU / "01_01.bvh"],
    "cmu_3dsmax": [CMU / "131_01.bvh", CMU / "131_02.bvh"],
    "character_creator": [CMU_CC / f"{n}.bvh" for n in ("002_01", "002_03", "005_05", "006_02", "007_03", "001_08")],
}


def bvh_reference(path: Path, rig_name: str, skip: int, step: int, max_frames: int) -> np.ndarray:
    """SMPL-named joint positions (F, 24, 3) from the BVH's own FK, in SMPL's axes (NaN where the rig maps none)."""
    rig = BUILTIN_RIGS[rig_name]
    motion = read_bvh(path, step=step)
    values = motion.values[skip:][:max_frames]
    names = motion.skeleton.names
    idx = {sk.JOINT_NAMES.index(s): names.index(b) for s, b in rig.joints.items()}
    pos, _ = forward_kinematics(motion.skeleton, values, list(idx.values()))
    out = np.full((values.shape[0], 24, 3), np.nan)
    for j, b in idx.items():
        out[:, j] = pos[b] @ rig.world_to_smpl().T
    return out


def direction_errors(poses: pg.PoseSet, reference: np.ndarray, bones: list[tuple[int, int]]) -> dict[str, np.ndarray]:
    joints, _ = pg.forward_kinematics(poses.global_orient.double(), poses.body_pose.double())
    joints = joints.numpy()
    out = {}
    for p, c in bones:
        a, b = joints[:, c] - joints[:, p], reference[:, c] - reference[:, p]
        ok = np.linalg.norm(b, axis=-1) > 1e-6
        if not ok.any():
            continue  # the rig maps both joints to one BVH joint (no bone to compare)
        cos = (a[ok] * b[ok]).sum(-1) / np.linalg.norm(a[ok], axis=-1) / np.linalg.norm(b[ok], axis=-1)
        out[f"{sk.JOINT_NAMES[p]}->{sk.JOINT_NAMES[c]}"] = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    return out


def load_case(rig_name: str, max_frames: int = 240) -> list[tuple[BVHPoseSource, pg.PoseSet, np.ndarray]]:
    out = []
    for path in CASES[rig_name]:
        src = BVHPoseSource(path, rig="auto", fps=30, max_frames=max_frames)
        poses = src.load()
        info = src.takes[0]
        assert info.rig == rig_name, f"{path.name} detected as {info.rig}"
        ref = bvh_reference(path, rig_name, info.skipped_calibration, int(round(info.source_fps / info.fps)), max_frames)
        assert len(ref) == len(poses)
        out.append((src, poses, ref))
    return out


@needs_data
@pytest.mark.parametrize("rig_name", list(CASES))
def test_limb_bone_directions_follow_the_bvh(rig_name):
    errors: dict[str, list[np.ndarray]] = {}
    spine: list[np.ndarray] = []
    for _, poses, ref in load_case(rig_name):
        for k, v in direction_errors(poses, ref, LIMB_BONES).items():
            errors.setdefault(k, []).append(v)
        spine.extend(direction_errors(poses, ref, SPINE_BONES).values())
    every = np.concatenate([np.concatenate(v) for v in errors.values()])
    mean, p95 = float(every.mean()), float(np.percentile(every, 95))
    print(f"\n{rig_name}: limb bone direction error mean {mean:.3f} deg, p95 {p95:.3f} deg over {len(every)} bones; "
          f"spine/neck mean {np.concatenate(spine).mean():.3f} deg")
    assert len(errors) == len(LIMB_BONES), f"limb bones missing from the rig: {sorted(errors)}"
    assert mean < 3.0 and p95 < 6.0
    for name, v in errors.items():
        assert float(np.concatenate(v).mean()) < 5.0, f"{name} drifts from the BVH"
    assert float(np.concatenate(spine).mean()) < 5.0


def hinge_axis_errors(poses: pg.PoseSet, joint: str, axis: np.ndarray, min_angle: float = 0.35) -> np.ndarray:
    """Angle (degrees) between the joint's local rotation axis and the expected hinge ``axis``, for frames where the
    joint bends more than ``min_angle`` radians."""
    rv = Rotation.from_rotvec(poses.body_pose[:, sk.JOINT_NAMES.index(joint) - 1].double().numpy()).as_rotvec()
    angle = np.linalg.norm(rv, axis=-1)
    bent = angle > min_angle
    cos = rv[bent] @ axis / angle[bent]
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


@needs_data
@pytest.mark.parametrize("rig_name", list(CASES))
def test_knees_and_elbows_bend_about_their_hinges(rig_name):
    x, y = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    expected = {"left_knee": x, "right_knee": x, "left_elbow": -y, "right_elbow": y}  # SMPL's flexion axes
    found = {k: [] for k in expected}
    for _, poses, _ in load_case(rig_name):
        for joint, axis in expected.items():
            found[joint].append(hinge_axis_errors(poses, joint, axis))
    for joint, parts in found.items():
        err = np.concatenate(parts)
        print(f"\n{rig_name} {joint}: hinge axis error mean {err.mean():.1f} deg, p95 "
              f"{np.percentile(err, 95):.1f} deg over {len(err)} bent frames")
        assert len(err) >= 20, f"{joint} hardly bends in these takes"
        assert err.mean() < 20.0, f"{joint} does not bend about its hinge (a sideways knee or a twisted arm)"
        assert np.percentile(err, 95) < 40.0


@needs_data
def test_calibration_t_pose_frames_are_skipped():
    skipped = {}
    for path in [CMU / "01_01.bvh", CMU / "131_01.bvh", CMU_CC / "002_01.bvh", CMU_CC / "007_03.bvh",
                 CMU_CC / "007_12.bvh"]:
        src = BVHPoseSource(path, max_frames=5)
        src.load()
        skipped[path.stem] = src.takes[0].skipped_calibration
    assert skipped == {"01_01": 1, "131_01": 0, "002_01": 0, "007_03": 1, "007_12": 1}


@needs_data
def test_whole_cc_folder_loads_fast_with_metadata():
    index = read_cmu_index(CMU_CC)
    assert len(index) == 61 and index["002_01"]["description"] == "walk" and index["002_03"]["subject"] == 2
    start = time.process_time()
    src = BVHPoseSource(CMU_CC, fps=10)
    poses = src.load()
    cpu = time.process_time() - start
    print(f"\ncmu_cc at 10 fps: {len(poses)} frames from {len(poses.take_names)} takes in {cpu:.1f} s CPU")
    assert poses.take_names == sorted(index)  # take names are the file stems
    assert 4000 < len(poses) < 5000  # 26,468 frames at 60 Hz, every 6th, calibration frames dropped
    assert {t.rig for t in src.takes} == {"character_creator"}
    assert all(t.metadata.get("description") for t in src.takes)
    walks = [t.name for t in src.takes if t.metadata["description"] == "walk"]
    assert len(poses.select_takes(walks)) > 100
    assert torch.isfinite(poses.body_pose).all() and cpu < 60.0
    assert math.isclose(src.takes[0].fps, 10.0, rel_tol=1e-3)
