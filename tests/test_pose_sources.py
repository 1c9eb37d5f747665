"""Pose sources without downloaded data: the embedded procedural default, AMASS npz files written here, BVH parsing
and retargeting of BVH files written here from posegen's own skeleton (exact round trips), and their error messages.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

import posegen_core as pg
from posegen_core import skeleton as sk
from posegen_plugins.pose_sources.amass import AMASSPoseSource
from posegen_plugins.pose_sources.bvh import BVHPoseSource, read_cmu_index, select_takes
from posegen_plugins.pose_sources.bvh_format import read_bvh
from posegen_plugins.pose_sources.bvh_rigs import load_rig
from posegen_plugins.pose_sources.procedural import MOTIONS, ProceduralPoseSource


def local_rotvecs(body_pose: torch.Tensor) -> np.ndarray:
    """(N, 23, 3) axis-angle -> scipy rotation vectors (an independent conversion)."""
    flat = body_pose.reshape(-1, 3).double().numpy()
    return Rotation.from_rotvec(flat).as_rotvec().reshape(body_pose.shape)


# ----------------------------------------------------------------------------------------------- registration
def test_hook_posegen_register_pose_sources_registers_the_three_sources():
    names = {p.name: p for p in pg.list_plugins()["pose_source"]}
    assert {"default", "bvh", "amass"} <= set(names)
    desc = names["default"].description.lower()
    assert "procedural" in desc and "not motion capture" in desc
    src = pg.create_pose_source("default", takes_per_motion=1, frames=8)
    assert isinstance(src, ProceduralPoseSource) and len(src.load()) == 8 * len(MOTIONS)


# ----------------------------------------------------------------------------------------------- procedural
def test_procedural_is_deterministic_grouped_and_fast():
    start = time.process_time()
    a = ProceduralPoseSource(seed=3).load()
    cpu = time.process_time() - start
    b = ProceduralPoseSource(seed=3).load()
    c = ProceduralPoseSource(seed=4).load()
    assert torch.equal(a.body_pose, b.body_pose) and torch.equal(a.global_orient, b.global_orient)
    assert not torch.allclose(a.body_pose, c.body_pose)
    assert 2000 <= len(a) <= 6000  # "a few thousand frames by default"
    assert len(a.take_names) == len(MOTIONS) * 4 and len(set(a.take_names)) == len(a.take_names)
    counts = np.bincount(a.take, minlength=len(a.take_names))
    assert (counts == 90).all()
    for motion in MOTIONS:
        assert any(n.startswith(motion + "_") for n in a.take_names)
    assert cpu < 3.0, f"building the default poses took {cpu:.2f} s of CPU"


def test_procedural_takes_are_independent_and_filterable():
    full = ProceduralPoseSource(seed=1).load()
    walks = ProceduralPoseSource(seed=1, include="walk_*").load()
    assert walks.take_names == [n for n in full.take_names if n.startswith("walk_")]
    assert torch.equal(walks.body_pose, full.select_takes(walks.take_names).body_pose)
    no_run = ProceduralPoseSource(seed=1, exclude=["run_*", "sit_*"]).load()
    assert not any(n.startswith(("run_", "sit_")) for n in no_run.take_names)
    with pytest.raises(pg.DataError, match="leave no procedural take"):
        ProceduralPoseSource(include="nothing*").load()
    with pytest.raises(pg.ConfigError, match="unknown procedural motion"):
        ProceduralPoseSource(motions=["moonwalk"])


def test_procedural_knees_and_elbows_only_flex_about_their_hinges():
    poses = ProceduralPoseSource(seed=0).load()
    rv = local_rotvecs(poses.body_pose)
    for knee in ("left_knee", "right_knee"):
        v = rv[:, sk.JOINT_NAMES.index(knee) - 1]
        assert np.abs(v[:, 1:]).max() < 1e-4, f"{knee} bends sideways or twists"
        assert v[:, 0].min() > -1e-4, f"{knee} bends backwards (hyperextension)"
        assert v[:, 0].max() > 1.0, f"{knee} never bends much: the gaits and squats are missing"
    for elbow, sign in (("left_elbow", -1.0), ("right_elbow", 1.0)):
        v = rv[:, sk.JOINT_NAMES.index(elbow) - 1]
        assert np.abs(v[:, [0, 2]]).max() < 1e-4, f"{elbow} rotates off its hinge"
        assert (sign * v[:, 1]).min() > -1e-4, f"{elbow} hyperextends"
        assert (sign * v[:, 1]).max() > 1.2


def test_procedural_bodies_are_upright_and_plausible():
    poses = ProceduralPoseSource(seed=0).load()
    joints, _ = pg.forward_kinematics(torch.zeros(len(poses), 3), poses.body_pose)
    head, pelvis = joints[:, sk.JOINT_NAMES.index("head")], joints[:, 0]
    ankles = joints[:, [sk.JOINT_NAMES.index("left_ankle"), sk.JOINT_NAMES.index("right_ankle")]]
    assert (head[:, 1] > pelvis[:, 1] + 0.2).all(), "the head stays above the pelvis"
    assert (ankles[..., 1] < pelvis[:, None, 1]).all(), "the ankles stay below the pelvis"
    # Global orientation: upright (only a heading about y), different headings across takes.
    up = pg.rotations.axis_angle_to_matrix(poses.global_orient)[:, :, 1]
    assert (up[:, 1] > 0.99).all()
    assert len({round(float(g[1]), 3) for g in poses.global_orient[:: 90]}) > 10


# ----------------------------------------------------------------------------------------------- AMASS
def write_amass(path: Path, poses: np.ndarray, rate: float = 120.0, **extra) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, poses=poses, mocap_framerate=np.array(rate), trans=np.zeros((len(poses), 3)),
             betas=np.zeros(16), **extra)
    return path


def test_amass_smplh_layout_subsampling_and_z_up(tmp_path):
    rng = np.random.default_rng(0)
    poses = rng.normal(scale=0.3, size=(40, 156))
    poses[:, :3] = [math.pi / 2, 0.0, 0.0]  # AMASS: upright in a Z-up world is +90 degrees about x
    write_amass(tmp_path / "CMU" / "01" / "01_01_poses.npz", poses, rate=120.0)
    ps = AMASSPoseSource(tmp_path, fps=30).load()
    assert ps.take_names == ["CMU/01/01_01_poses"] and len(ps) == 10  # every 4th of 40 frames
    expected = poses[::4, 3:66].reshape(-1, 21, 3)
    np.testing.assert_allclose(ps.body_pose[:, :21].numpy(), expected, atol=1e-6)
    assert torch.count_nonzero(ps.body_pose[:, 21:]) == 0  # SMPL's hand joints are not in SMPL-H's body
    np.testing.assert_allclose(ps.global_orient.numpy(), 0.0, atol=1e-6)  # upright in y-up = identity
    joints, _ = pg.forward_kinematics(ps.global_orient, torch.zeros(len(ps), 23, 3))
    assert (joints[:, sk.JOINT_NAMES.index("head"), 1] > 0.5).all()


def test_amass_root_heading_is_kept(tmp_path):
    # AMASS subject upright and turned 90 degrees about the world's z (up) axis.
    root = Rotation.from_euler("z", 90, degrees=True) * Rotation.from_euler("x", 90, degrees=True)
    poses = np.zeros((3, 72))
    poses[:, :3] = root.as_rotvec()
    write_amass(tmp_path / "turned.npz", poses, rate=30.0)
    ps = AMASSPoseSource(tmp_path / "turned.npz", fps=30).load()
    got = Rotation.from_rotvec(ps.global_orient.double().numpy())
    expected = Rotation.from_euler("y", 90, degrees=True)  # a turn about world up, now y
    assert (got.inv() * expected).magnitude().max() < 1e-5


def test_amass_smpl_layout_keeps_all_joints_and_filters(tmp_path):
    rng = np.random.default_rng(1)
    a = rng.normal(scale=0.2, size=(6, 72))
    write_amass(tmp_path / "a.npz", a, rate=60.0)
    write_amass(tmp_path / "b.npz", rng.normal(size=(5, 165)), rate=60.0)
    np.savez(tmp_path / "shape.npz", betas=np.zeros(16))  # AMASS's per-subject shape file is not a take
    ps = AMASSPoseSource(tmp_path, fps=None, up="y").load()
    assert ps.take_names == ["a", "b"] and len(ps) == 11
    np.testing.assert_allclose(ps.body_pose[:6].numpy(), a[:, 3:].reshape(6, 23, 3), atol=1e-6)
    np.testing.assert_allclose(ps.global_orient[:6].numpy(), a[:, :3], atol=1e-6)
    only_b = AMASSPoseSource(tmp_path, fps=None, include="b", max_frames=2).load()
    assert only_b.take_names == ["b"] and len(only_b) == 2


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: p.write_bytes(b"PK\x03\x04 this is not a real zip"), "could not read AMASS file"),
        (lambda p: np.savez(p, trans=np.zeros((3, 3))), "no 'poses' array"),
        (lambda p: np.savez(p, poses=np.zeros((0, 156)), mocap_framerate=120.0), "holds no frames"),
        (lambda p: np.savez(p, poses=np.zeros((4, 10)), mocap_framerate=120.0), r"expected \(N, 72\) SMPL"),
        (lambda p: np.savez(p, poses=np.full((4, 72), np.nan), mocap_framerate=120.0), "finite"),
    ],
)
def test_amass_bad_files_name_the_file_and_the_expectation(tmp_path, make, match):
    path = tmp_path / "bad.npz"
    make(path)
    with pytest.raises(pg.DataError, match=match) as info:
        AMASSPoseSource(path).load()
    assert str(path) in str(info.value)


def test_amass_missing_path_and_empty_folder(tmp_path):
    with pytest.raises(pg.DataError, match="amass.is.tue.mpg.de"):
        AMASSPoseSource(tmp_path / "nope").load()
    with pytest.raises(pg.DataError, match="no .npz files"):
        AMASSPoseSource(tmp_path).load()
    with pytest.raises(pg.ConfigError, match="needs path"):
        AMASSPoseSource()


# ----------------------------------------------------------------------------------------------- BVH written here
def smpl_bvh_text(rotations: np.ndarray, world: np.ndarray = np.eye(3), units: float = 100.0,
                  root_channels: str = "Zrotation Yrotation Xrotation") -> str:
    """A BVH file of posegen's own SMPL-24 skeleton (joint names = SMPL names) holding ``rotations`` (F, 24, 3, 3)
    local matrices, in a world rotated by ``world`` and lengths in 1/``units`` metres. Written with scipy's Euler
    decomposition, independently of posegen's reader."""
    rest = sk.rest_joints(torch.float64).numpy() @ world.T * units
    kids = sk.children()
    lines = ["HIERARCHY"]
    order: list[int] = []

    def emit(j: int, depth: int) -> None:
        pad = "  " * depth
        p = sk.PARENTS[j]
        off = rest[j] - (rest[p] if p >= 0 else 0.0)
        lines.append(f"{pad}{'ROOT' if p < 0 else 'JOINT'} {sk.JOINT_NAMES[j]}")
        lines.append(pad + "{")
        lines.append(f"{pad}  OFFSET {off[0]:.6f} {off[1]:.6f} {off[2]:.6f}")
        chans = f"6 Xposition Yposition Zposition {root_channels}" if p < 0 else "3 Zrotation Xrotation Yrotation"
        lines.append(f"{pad}  CHANNELS {chans}")
        order.append(j)
        for c in kids[j]:
            emit(c, depth + 1)
        if not kids[j]:
            lines.extend([f"{pad}  End Site", pad + "  {", f"{pad}    OFFSET 0.0 {0.05 * units:.3f} 0.0", pad + "  }"])
        lines.append(pad + "}")

    emit(0, 0)
    f = rotations.shape[0]
    local = np.einsum("ab,fjbc,dc->fjad", world, rotations, world)  # the same rotations in the file's axes
    cols = []
    for j in order:
        r = Rotation.from_matrix(local[:, j])
        if j == 0:
            seq = "".join(c[0] for c in root_channels.split())
            cols.append(np.zeros((f, 3)) + [1.0, 90.0, -3.0])
            cols.append(r.as_euler(seq, degrees=True))
        else:
            cols.append(r.as_euler("ZXY", degrees=True))
    values = np.concatenate(cols, axis=1)
    lines += ["MOTION", f"Frames: {f}", "Frame Time: 0.008333"]
    lines += [" ".join(f"{v:.6f}" for v in row) for row in values]
    return "\n".join(lines) + "\n"


def smpl_rig(path: Path, fmt: str = "json", **extra) -> Path:
    joints = {n: n for n in sk.JOINT_NAMES}
    if fmt == "json":
        path.write_text(json.dumps({"name": "smpl_named", "scale": 0.01, "joints": joints, **extra}))
    else:
        body = "\n".join(f'{k} = "{v}"' for k, v in joints.items())
        head = "\n".join(f'{k} = "{v}"' for k, v in extra.items())
        path.write_text(f'name = "smpl_named"\nscale = 0.01\n{head}\n[joints]\n{body}\n')
    return path


def random_local_rotations(n: int, seed: int, scale: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rv = rng.normal(scale=scale, size=(n, 24, 3))
    return Rotation.from_rotvec(rv.reshape(-1, 3)).as_matrix().reshape(n, 24, 3, 3)


@pytest.mark.parametrize("fmt", ["json", "toml"])
def test_bvh_of_the_smpl_skeleton_retargets_exactly(tmp_path, fmt):
    """Same skeleton on both sides: retargeting must give back every joint rotation, twist included."""
    rots = random_local_rotations(12, seed=2)
    (tmp_path / "take.bvh").write_text(smpl_bvh_text(rots))
    rig = smpl_rig(tmp_path / f"rig.{fmt}", fmt)
    src = BVHPoseSource(tmp_path / "take.bvh", rig=str(rig), fps=None, skip_calibration=False)
    ps = src.load()
    assert ps.take_names == ["take"] and len(ps) == 12 and src.takes[0].rig == "smpl_named"
    got = pg.rotations.axis_angle_to_matrix(torch.cat([ps.global_orient[:, None], ps.body_pose], 1)).double()
    err = pg.rotations.geodesic_angle(got, torch.from_numpy(rots))
    assert float(err.max()) < 1e-3, f"largest rotation error {math.degrees(float(err.max())):.3f} degrees"


def test_bvh_z_up_file_with_rig_axes(tmp_path):
    """A Z-up file (forward -y), other root channel order: the rig's up/forward bring it back to SMPL's frame."""
    world = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # y -> z, z -> -y
    rots = random_local_rotations(6, seed=3, scale=0.4)
    (tmp_path / "zup.bvh").write_text(smpl_bvh_text(rots, world, root_channels="Xrotation Yrotation Zrotation"))
    rig = smpl_rig(tmp_path / "rig.json", up="z", forward="-y")
    ps = BVHPoseSource(tmp_path / "zup.bvh", rig=str(rig), fps=None, skip_calibration=False).load()
    got = pg.rotations.axis_angle_to_matrix(torch.cat([ps.global_orient[:, None], ps.body_pose], 1)).double()
    assert float(pg.rotations.geodesic_angle(got, torch.from_numpy(rots)).max()) < 1e-3


def test_bvh_subsampling_max_frames_and_calibration_frame(tmp_path):
    rots = random_local_rotations(40, seed=4, scale=0.01)
    rots[0] = np.eye(3)  # a T-pose first frame ...
    rots[0, sk.JOINT_NAMES.index("left_shoulder")] = Rotation.from_euler("z", -80, degrees=True).as_matrix()
    rots[1:, sk.JOINT_NAMES.index("left_shoulder")] = Rotation.from_euler("z", 60, degrees=True).as_matrix()
    (tmp_path / "cal.bvh").write_text(smpl_bvh_text(rots))  # ... far from the motion that follows (120 Hz)
    rig = str(smpl_rig(tmp_path / "rig.json"))
    src = BVHPoseSource(tmp_path / "cal.bvh", rig=rig, fps=None)
    assert len(src.load()) == 39 and src.takes[0].skipped_calibration == 1
    assert len(BVHPoseSource(tmp_path / "cal.bvh", rig=rig, fps=None, skip_calibration=False).load()) == 40
    sub = BVHPoseSource(tmp_path / "cal.bvh", rig=rig, fps=30)  # 120 Hz -> every 4th frame, frame 0 dropped
    assert len(sub.load()) == 9 and sub.takes[0].fps == pytest.approx(30.0, rel=1e-3)
    assert len(BVHPoseSource(tmp_path / "cal.bvh", rig=rig, step=2, max_frames=5).load()) == 5


def test_bvh_folder_glob_include_exclude(tmp_path):
    rig = str(smpl_rig(tmp_path / "rig.json"))
    for name in ("002_01", "002_02", "005_01"):
        (tmp_path / f"{name}.bvh").write_text(smpl_bvh_text(random_local_rotations(4, seed=5, scale=0.1)))
    (tmp_path / "index.csv").write_text(
        'file,subject,trial,description,source_fps\n002_01.bvh,2,1,walk,120\n005_01.bvh,5,1,"dance - turn",120\n')
    src = BVHPoseSource(tmp_path, rig=rig, fps=None, exclude="002_02")
    assert src.load().take_names == ["002_01", "005_01"]
    assert src.takes[1].metadata["description"] == "dance - turn" and src.takes[1].metadata["subject"] == 5
    assert BVHPoseSource(str(tmp_path / "002_*.bvh"), rig=rig, fps=None).load().take_names == ["002_01", "002_02"]
    assert read_cmu_index(tmp_path)["002_01"]["description"] == "walk"
    assert read_cmu_index(tmp_path / "nowhere") == {}
    assert select_takes(["a1", "a2", "b1"], "a*", ["a2"]) == ["a1"]
    with pytest.raises(pg.DataError, match="matches include"):
        BVHPoseSource(tmp_path, rig=rig, include="999_*").load()


def test_bvh_errors_are_clear(tmp_path):
    rig = smpl_rig(tmp_path / "rig.json")
    good = smpl_bvh_text(random_local_rotations(3, seed=6))
    (tmp_path / "trunc.bvh").write_text(good[: len(good) - 40])
    with pytest.raises(pg.DataError, match="may be truncated") as info:
        BVHPoseSource(tmp_path / "trunc.bvh", rig=str(rig)).load()
    assert "trunc.bvh" in str(info.value)
    (tmp_path / "junk.bvh").write_text("HIERARCHY\nROOT Hips\n{\n OFFSET 0 0\n")
    with pytest.raises(pg.DataError, match="not a valid BVH file"):
        read_bvh(tmp_path / "junk.bvh")
    with pytest.raises(pg.DataError, match="not found"):
        BVHPoseSource(tmp_path / "missing.bvh").load()
    (tmp_path / "good.bvh").write_text(good)
    with pytest.raises(pg.DataError, match="no built-in rig matches"):
        BVHPoseSource(tmp_path / "good.bvh", rig="auto").load()
    with pytest.raises(pg.DataError, match="does not have"):
        BVHPoseSource(tmp_path / "good.bvh", rig="cmu_motionbuilder").load()
    with pytest.raises(pg.ConfigError, match="unknown rig"):
        BVHPoseSource(tmp_path / "good.bvh", rig="no_such_rig").load()
    with pytest.raises(pg.ConfigError, match="needs path"):
        BVHPoseSource()
    bad = tmp_path / "bad_rig.json"
    bad.write_text(json.dumps({"joints": {"pelvis": "Hips", "left_tail": "Tail"}}))
    with pytest.raises(pg.ConfigError, match="unknown SMPL joint"):
        load_rig(bad)
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"joints": {"pelvis": "Hips"}}))
    with pytest.raises(pg.ConfigError, match="does not map the SMPL joint"):
        load_rig(partial)


def test_bvh_cache_round_trip_and_invalidation(tmp_path):
    rig = str(smpl_rig(tmp_path / "rig.json"))
    take = tmp_path / "take.bvh"
    take.write_text(smpl_bvh_text(random_local_rotations(8, seed=7)))
    cache = tmp_path / "cache"
    first = BVHPoseSource(take, rig=rig, fps=None, cache_dir=cache).load()
    files = sorted(cache.glob("*.npz"))
    assert len(files) == 1 and files[0].name.startswith("take-")
    again = BVHPoseSource(take, rig=rig, fps=None, cache_dir=cache)
    assert torch.equal(again.load().body_pose, first.body_pose) and again.takes[0].rig == "smpl_named"
    # Another option gives another entry; a changed file is re-read, not served stale from the cache.
    BVHPoseSource(take, rig=rig, step=2, cache_dir=cache).load()
    assert len(list(cache.glob("*.npz"))) == 2
    take.write_text(smpl_bvh_text(random_local_rotations(5, seed=8)))
    assert len(BVHPoseSource(take, rig=rig, fps=None, cache_dir=cache).load()) == 5
    # A damaged entry is recomputed.
    for f in cache.glob("*.npz"):
        f.write_bytes(b"damaged")
    assert len(BVHPoseSource(take, rig=rig, fps=None, cache_dir=cache).load()) == 5
