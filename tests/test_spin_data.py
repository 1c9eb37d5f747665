"""SPIN's npz layout (read, write, the evaluation files), its crop, and the evaluation joint sets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import posegen_core as pg
from posegen_core import skeleton, spin_data


def _base(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(n)
    return {
        "imgname": np.array([f"imageFiles/seq_{i}/image_{i:05d}.jpg" for i in range(n)]),
        "center": rng.uniform(100, 500, size=(n, 2)),
        "scale": rng.uniform(1, 4, size=n),
    }


# ------------------------------------------------------------------------------------------------ official layouts
def test_reads_3dpw_layout(tmp_path):
    n = 4
    rng = np.random.default_rng(0)
    arrays = {**_base(n), "pose": rng.normal(size=(n, 72)), "shape": rng.normal(size=(n, 10)),
              "gender": np.array(["m", "f", "f", "m"])}
    np.savez(tmp_path / "3dpw_test.npz", **arrays)  # written the way SPIN's preprocessing writes it
    ann = spin_data.load_evaluation_set("3dpw", tmp_path / "3dpw_test.npz")
    assert len(ann) == n and ann.S is None
    np.testing.assert_array_equal(ann.imgname, arrays["imgname"])
    np.testing.assert_allclose(ann.pose, arrays["pose"])
    np.testing.assert_allclose(ann.shape, arrays["shape"])
    assert list(ann.gender) == ["m", "f", "f", "m"]


@pytest.mark.parametrize("kind,file", [("h36m-p1", "h36m_valid_protocol1.npz"), ("h36m-p2", "h36m_valid_protocol2.npz"),
                                       ("mpi-inf-3dhp", "mpi_inf_3dhp_valid.npz")])
def test_reads_s_layouts(tmp_path, kind, file):
    n = 3
    s = np.random.default_rng(1).normal(size=(n, 24, 4)).astype(np.float32)
    extra = {"part": np.ones((n, 24, 3))} if kind == "mpi-inf-3dhp" else {}
    np.savez(tmp_path / file, **_base(n), S=s, **extra)
    ann = spin_data.load_evaluation_set(kind, tmp_path / file)
    np.testing.assert_allclose(ann.S, s)
    assert ann.scale.shape == (n,) and ann.center.shape == (n, 2)
    assert (ann.part is not None) == (kind == "mpi-inf-3dhp")


def test_scale_stored_as_column_is_accepted(tmp_path):
    b = _base(2)
    np.savez(tmp_path / "x.npz", imgname=b["imgname"], center=b["center"], scale=b["scale"][:, None])
    np.testing.assert_allclose(spin_data.read_spin_annotations(tmp_path / "x.npz").scale, b["scale"])


# ------------------------------------------------------------------------------------------------ writer
def test_write_read_round_trip(tmp_path):
    n = 5
    b = _base(n)
    joints = skeleton.rest_joints()[None].repeat(n, 1, 1) + 0.1
    pose = torch.randn(n, 24, 3, generator=torch.Generator().manual_seed(0))
    out = spin_data.write_spin_annotations(
        tmp_path / "ds" / "annotations.npz", imgname=list(b["imgname"]), center=torch.tensor(b["center"]),
        scale=b["scale"], pose=pose, shape=np.zeros((n, 10)), S=spin_data.spin_j24_from_smpl24(joints),
        gender=["m"] * n, viewpoint=torch.zeros(n, 3), cam_K=np.tile(np.eye(3), (n, 1, 1)),
    )
    assert sorted(p.name for p in out.parent.iterdir()) == ["annotations.npz"]  # no temporary files left behind
    ann = spin_data.read_spin_annotations(out)
    np.testing.assert_array_equal(ann.imgname, b["imgname"])
    np.testing.assert_allclose(ann.pose, pose.reshape(n, 72).numpy(), rtol=1e-6)
    np.testing.assert_allclose(ann.center, b["center"], rtol=1e-6)
    np.testing.assert_allclose(ann.scale, b["scale"])
    assert set(ann.extra) == {"viewpoint", "cam_K"} and ann.extra["cam_K"].shape == (n, 3, 3)
    # the file is a plain npz that SPIN's loader (np.load without pickle) reads
    with np.load(out, allow_pickle=False) as z:
        assert {"imgname", "center", "scale", "pose", "shape", "S", "gender"} <= set(z.files)


def test_writer_refuses_bad_input(tmp_path):
    b = _base(3)
    with pytest.raises(pg.DataError, match=r"'center' must have shape \(N, 2\) with N = 3"):
        spin_data.write_spin_annotations(tmp_path / "a.npz", imgname=b["imgname"], center=np.zeros((2, 2)),
                                         scale=b["scale"])
    with pytest.raises(pg.DataError, match="spin_j24_from_smpl24"):
        spin_data.write_spin_annotations(tmp_path / "a.npz", **b, S=np.zeros((3, 24, 3)))
    with pytest.raises(pg.DataError, match="object"):
        spin_data.write_spin_annotations(tmp_path / "a.npz", **b, meta=np.array([{}, {}, {}], dtype=object))
    with pytest.raises(pg.DataError, match="'scale' must be positive"):
        spin_data.write_spin_annotations(tmp_path / "a.npz", imgname=b["imgname"], center=b["center"],
                                         scale=np.zeros(3))
    assert not (tmp_path / "a.npz").exists()


# ------------------------------------------------------------------------------------------------ errors
def test_missing_keys_and_bad_files(tmp_path):
    np.savez(tmp_path / "h36m.npz", **_base(2))
    with pytest.raises(pg.DataError, match=r"lacks the key\(s\) S needed for the h36m-p2 evaluation file"):
        spin_data.load_evaluation_set("h36m-p2", tmp_path / "h36m.npz")
    with pytest.raises(pg.DataError, match="pose, shape, gender"):
        spin_data.load_evaluation_set("3dpw", tmp_path / "h36m.npz")
    with pytest.raises(pg.DataError, match="not found.*dataset_extras"):
        spin_data.load_evaluation_set("3dpw", tmp_path / "nope.npz")
    (tmp_path / "trunc.npz").write_bytes((tmp_path / "h36m.npz").read_bytes()[:50])
    with pytest.raises(pg.DataError, match="truncated"):
        spin_data.read_spin_annotations(tmp_path / "trunc.npz")
    np.savez(tmp_path / "obj.npz", **_base(2), S=np.array([None, None], dtype=object))
    with pytest.raises(pg.DataError, match="pickle"):
        spin_data.read_spin_annotations(tmp_path / "obj.npz")
    np.savez(tmp_path / "shape.npz", **_base(2), S=np.zeros((2, 17, 4)))
    with pytest.raises(pg.DataError, match=r"'S' must have shape \(N, 24, 4\)"):
        spin_data.read_spin_annotations(tmp_path / "shape.npz")


def test_dataset_spec_parsing():
    kind, path = spin_data.parse_dataset_spec("mpi-inf-3dhp:/data/mpi_inf_3dhp_test.npz")
    assert kind.num_joints == 17 and path.name == "mpi_inf_3dhp_test.npz"
    assert spin_data.parse_dataset_spec("3dpw:x.npz")[0].num_joints == 14
    with pytest.raises(pg.ConfigError, match="expected one of: 3dpw, h36m-p1, h36m-p2, mpi-inf-3dhp"):
        spin_data.parse_dataset_spec("lsp:x.npz")
    with pytest.raises(pg.ConfigError, match="KIND:FILE"):
        spin_data.parse_dataset_spec("3dpw_test.npz")
    with pytest.raises(pg.ConfigError, match="names no file"):
        spin_data.parse_dataset_spec("3dpw:")


# ------------------------------------------------------------------------------------------------ crop
def test_crop_box_follows_spins_one_based_truncation():
    # side 200 * 0.03 = 6 px around x = 5.7: corners 2.7 and 8.7 truncate to 2 and 8
    assert spin_data.crop_box((5.7, 4.0), 0.03) == (2, 1, 8, 7)
    # truncation is towards zero, also left of the image: -2.5 -> -2
    assert spin_data.crop_box((0.5, 10.0), 0.03) == (-2, 7, 3, 13)
    with pytest.raises(pg.DataError, match="positive"):
        spin_data.crop_box((1.0, 1.0), 0.0)


def test_crop_same_size_is_the_window_and_pads_with_zeros():
    img = torch.rand(3, 60, 50, generator=torch.Generator().manual_seed(0))
    # box side 20 around (30, 40): columns 20..39, rows 30..49
    out = spin_data.crop(img, (30.0, 40.0), 0.1, 20)
    assert torch.equal(out, img[:, 30:50, 20:40])
    # near the top-left corner: window x -5..15, y -3..17 -> zeros left of and above the image
    out = spin_data.crop(img, (5.0, 7.0), 0.1, 20)
    assert torch.equal(out[:, 3:, 5:], img[:, 0:17, 0:15])
    assert float(out[:, :3].abs().sum()) == 0 and float(out[:, :, :5].abs().sum()) == 0
    # entirely outside: all zeros
    assert float(spin_data.crop(img, (500.0, 500.0), 0.1, 8).abs().sum()) == 0


def test_crop_downsampling_is_antialiased_bilinear():
    # a horizontal ramp (value = column / 100); window columns 2..9 (side 8 around x = 6) reduced to 4 pixels.
    # PIL-style bilinear reduction by 2 weighs window columns 1, 2, 3, 4 by 1/8, 3/8, 3/8, 1/8 for output pixel 1,
    # i.e. the ramp at window column 2.5 = image column 4.5.
    img = (torch.arange(20.0) / 100).expand(3, 20, 20).clone()
    out = spin_data.crop(img, (6.0, 10.0), 0.04, 4)
    assert out.shape == (3, 4, 4)
    assert torch.allclose(out[:, :, 1], torch.full((3, 4), 0.045), atol=1e-6)
    assert torch.allclose(out[:, :, 2], torch.full((3, 4), 0.065), atol=1e-6)


def test_load_image_and_images_root_checks(tmp_path):
    arr = np.zeros((4, 5, 3), dtype=np.uint8)
    arr[1, 2] = (255, 51, 0)
    (tmp_path / "img").mkdir()
    Image.fromarray(arr).save(tmp_path / "img" / "a.png")
    t = spin_data.load_image(tmp_path / "img" / "a.png")
    assert t.shape == (3, 4, 5) and torch.allclose(t[:, 1, 2], torch.tensor([1.0, 0.2, 0.0]))
    assert spin_data.check_images_root(tmp_path / "img", ["a.png"]) == tmp_path / "img"
    with pytest.raises(pg.DataError, match=r"1 of 2 images are missing .*imgname paths are relative to"):
        spin_data.check_images_root(tmp_path / "img", ["a.png", "b.png"])
    with pytest.raises(pg.DataError, match="not found or not a folder"):
        spin_data.check_images_root(tmp_path / "nothing", ["a.png"])
    (tmp_path / "img" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(pg.DataError, match="could not read image"):
        spin_data.load_image(tmp_path / "img" / "bad.png")


# ------------------------------------------------------------------------------------------------ joint sets
def test_joint_selectors_agree_on_names():
    names17 = spin_data.EVAL_JOINT_NAMES
    h36m = [spin_data.H36M17_NAMES[i] for i in spin_data.H36M_TO_J17]
    j24 = [spin_data.SPIN_J24_NAMES[i] for i in spin_data.J24_TO_J17]
    smpl = [skeleton.JOINT_NAMES[i] for i in spin_data.SMPL24_TO_J17]
    for k in range(12):  # the limbs carry the same names in every set
        assert h36m[k] == j24[k] == smpl[k] == names17[k]
    assert h36m[12:] == ["thorax", "head", "pelvis", "spine", "jaw"]
    assert j24[12:] == ["neck_lsp", "head_h36m", "pelvis_mpii", "spine_h36m", "jaw_h36m"]
    assert spin_data.H36M_TO_J14 == spin_data.H36M_TO_J17[:14] and len(spin_data.J24_TO_J14) == 14


def test_spin_s_from_smpl24_feeds_the_evaluation_selectors():
    joints = torch.randn(3, 24, 3, generator=torch.Generator().manual_seed(2)).numpy()
    s = spin_data.spin_j24_from_smpl24(joints)
    rel = joints - joints[:, :1]
    filled = [(j24, smpl) for j24, smpl in zip(spin_data.J24_TO_J17, spin_data.SMPL24_TO_J17) if j24 != spin_data.JAW_SLOT]
    assert len(filled) == 16 and dict(filled) == spin_data.J24_FROM_SMPL24
    np.testing.assert_allclose(s[:, [a for a, _ in filled], :3], rel[:, [b for _, b in filled]])
    assert s[:, [a for a, _ in filled], 3].min() == 1.0
    np.testing.assert_allclose(s[:, list(spin_data.J24_TO_J14), :3], rel[:, list(spin_data.SMPL24_TO_J17[:14])])
    unfilled = sorted(set(range(24)) - set(spin_data.J24_FROM_SMPL24))
    assert spin_data.SPIN_J24_NAMES[spin_data.JAW_SLOT] == "jaw_h36m" and spin_data.JAW_SLOT in unfilled
    # head top, thorax, jaw (SMPL-24 has no jaw: not a copy of the head) and face points: zero, confidence 0
    assert np.abs(s[:, unfilled]).max() == 0.0


def test_spin_part_visibility_and_values():
    n = 2
    uv = np.zeros((n, 24, 2))
    uv[:, :, 0] = np.linspace(-10, 110, 24)  # x runs across the 100-px-wide image and out of it on both sides
    uv[:, :, 1] = 50.0
    depth = np.full((n, 24), 4.0)
    depth[1, 12] = -1.0  # SMPL's neck (J24 slot 12, x = 52.6, inside the image) behind the camera in sample 1
    part = spin_data.spin_part_from_smpl24(uv, depth, height=80, width=100)
    for slot, smpl in spin_data.J24_FROM_SMPL24.items():
        np.testing.assert_array_equal(part[:, slot, :2], uv[:, smpl])
        x = uv[0, smpl, 0]
        assert part[0, slot, 2] == float(0 <= x < 100), (slot, x)
        assert part[1, slot, 2] == (0.0 if smpl == 12 else part[0, slot, 2])
    assert part[0, 12, 2] == 1.0
    empty = [i for i in range(24) if i not in spin_data.J24_FROM_SMPL24]
    assert np.abs(part[:, empty]).max() == 0.0
    with pytest.raises(pg.DataError, match=r"\(N, 24, 2\)"):
        spin_data.spin_part_from_smpl24(uv[:, :17], depth, 80, 100)


def test_person_box_is_spins_preprocessing_box():
    part = np.zeros((3, 24, 3))
    part[0, :3] = [[10, 20, 1], [50, 100, 1], [30, 60, 1]]  # box 40 x 80: centre (30, 60), side 1.2 * 80
    part[0, 3] = [500, 500, 0]  # invisible joints do not count
    part[1, :2] = [[0, 0, 1], [400, 10, 1]]  # wider than the 200 x 150 image: side clamped to 200, centre inside
    part[2, 0] = [5, 5, 1]  # one visible joint: the whole frame
    center, scale = spin_data.person_box(part, height=150, width=200)
    np.testing.assert_allclose(center, [[30, 60], [200, 5], [100, 75]])
    np.testing.assert_allclose(scale * 200, [96, 200, 200])
    assert center.dtype == np.float64 and scale.shape == (3,)


def test_static_fits_file(tmp_path):
    pose, shape = np.random.default_rng(0).normal(size=(4, 72)), np.zeros((4, 10))
    path = spin_data.write_static_fits(tmp_path / "posegen_fits.npy", pose, shape)
    fits = np.load(path, allow_pickle=False)
    assert fits.shape == (4, 82) and fits.dtype == np.float32
    np.testing.assert_allclose(fits[:, :72], pose, rtol=1e-6)
    with pytest.raises(pg.DataError, match="same number of samples"):
        spin_data.write_static_fits(tmp_path / "x.npy", pose, shape[:3])
