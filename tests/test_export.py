"""The exported dataset as SPIN's training code reads it: 2D keypoints are the projection of S with the exported camera,
the person box holds the person, fields and dtypes are SPIN's, the export command round-trips, shards are atomic and an
interrupted export resumes to the same dataset, and the loop exports the samples it fine-tunes on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import posegen_core as pg
from posegen_core import spin_data
from posegen_core.cli import cli
from posegen_core.dataset_export import CHUNK, ExportSettings, GeneratedSource, export_dataset, spin_fields
from posegen_core.generator import PoseGenerator
from posegen_core.io import atomic_torch_save, atomic_write_json
from posegen_core.loop import stage_seed

DIST = 4.0


def _generator(seed: int = 0) -> PoseGenerator:
    torch.manual_seed(seed)  # a freshly initialised G: poses near rest, viewpoints all around, any elevation
    return PoseGenerator(32)


def _source(seed: int = 7) -> GeneratedSource:
    return GeneratedSource(_generator(), pg.create_prior("normal"), 32, pg.create_renderer("primitives"),
                           pg.create_body_model(None), DIST, "random", seed)


def _load(folder: Path) -> dict[str, np.ndarray]:
    with np.load(folder / "annotations.npz", allow_pickle=False) as z:  # as SPIN's BaseDataset loads it
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "ds"
    export_dataset(out, _source(), ExportSettings(samples=150, size=96, seed=7, shard_size=64))
    return out


# ------------------------------------------------------------------------------------------------ geometry
def test_part_is_the_projection_of_S_with_the_exported_camera(exported):
    a = _load(exported)
    n, size = 150, 96
    s, part, k, t = a["S"].astype(np.float64), a["part"].astype(np.float64), a["cam_K"], a["cam_t"]
    # independently: camera-frame points = S (pelvis-relative) + cam_t, then the pinhole K
    x = s[..., :3] + t[:, None, :]
    uv = np.stack([k[:, None, 0, 0] * x[..., 0] / x[..., 2] + k[:, None, 0, 2],
                   k[:, None, 1, 1] * x[..., 1] / x[..., 2] + k[:, None, 1, 2]], -1)
    filled = s[..., 3] == 1
    np.testing.assert_allclose(part[..., :2][filled], uv[filled], atol=2e-3)
    inside = (uv[..., 0] >= 0) & (uv[..., 0] < size) & (uv[..., 1] >= 0) & (uv[..., 1] < size) & (x[..., 2] > 0)
    np.testing.assert_array_equal(part[..., 2], (filled & inside).astype(np.float64))
    assert part[..., 2].mean() > 0.5 and (part[..., 2].sum(1) >= 2).all()
    # the slots SMPL-24 cannot fill are empty in both: head top, thorax, jaw, face points
    empty = [i for i in range(24) if i not in spin_data.J24_FROM_SMPL24]
    assert spin_data.JAW_SLOT in empty and len(empty) == 8
    assert np.abs(s[:, empty]).max() == 0 and np.abs(part[:, empty]).max() == 0
    assert (s[:, list(spin_data.J24_FROM_SMPL24), 3] == 1).all()
    # S is pelvis-relative in the camera frame, and the SMPL-24 joints it came from are stored alongside
    j = a["joints_smpl24"]
    for slot, smpl in spin_data.J24_FROM_SMPL24.items():
        np.testing.assert_allclose(s[:, slot, :3], j[:, smpl], atol=1e-6)
    assert len(s) == n


def test_pose_is_the_camera_frame_body(exported):
    a = _load(exported)
    pose = torch.from_numpy(a["pose"]).double()
    joints, _ = pg.forward_kinematics(pose[:, :3], pose[:, 3:].reshape(-1, 23, 3))
    torch.testing.assert_close(joints - joints[:, :1], torch.from_numpy(a["joints_smpl24"]).double(), atol=1e-4,
                               rtol=0)


def test_box_holds_the_person():
    src, size = _source(seed=3), 128
    intr = pg.Intrinsics.framing(size, DIST)
    chunk = src.chunk(0, CHUNK, intr)
    f = spin_fields(chunk, intr, DIST)
    part, center, scale = f["part"], f["center"], f["scale"]
    fractions, extents = [], []
    for i in range(CHUNK):
        vis = part[i, :, 2] > 0
        xy = part[i, vis, :2].astype(np.float64)
        lo, hi = xy.min(0), xy.max(0)
        # SPIN's preprocessing: centre of the joints' box, side 1.2 x its longer side (clamped to the image)
        side = min(1.2 * (hi - lo).max(), size)
        np.testing.assert_allclose(center[i], np.clip((lo + hi) / 2, 0, size), atol=1e-4)
        np.testing.assert_allclose(scale[i] * 200, side, rtol=1e-5)
        x0, y0, x1, y1 = spin_data.crop_box(center[i], scale[i])
        assert (xy[:, 0] >= x0).all() and (xy[:, 0] <= x1).all() and (xy[:, 1] >= y0).all() and (xy[:, 1] <= y1).all()
        alpha = chunk["alpha"][i, 0].numpy()
        inside = alpha[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)].sum()
        fractions.append(inside / alpha.sum())
        extents.append((hi - lo).max() / (scale[i] * 200))
    assert min(fractions) > 0.95 and np.median(fractions) > 0.98, fractions  # the rendered body, not just its joints
    assert np.median(extents) >= 0.7  # the person fills SPIN's crop as in SPIN's own data (about 0.83)


# ------------------------------------------------------------------------------------------------ SPIN's layout
def test_fields_and_dtypes_as_spin_reads_them(exported):
    a = _load(exported)
    n = 150
    assert a["imgname"].dtype.kind == "U" and a["imgname"].shape == (n,) and a["imgname"][0] == "images/000000.png"
    for key, shape in {"center": (n, 2), "scale": (n,), "part": (n, 24, 3), "S": (n, 24, 4), "pose": (n, 72),
                       "shape": (n, 10), "has_smpl": (n,)}.items():
        assert a[key].shape == shape, key
        assert a[key].dtype.kind == "f", key
    assert (a["has_smpl"] == 1).all() and (a["shape"] == 0).all() and (a["scale"] > 0).all()
    assert "gender" not in a  # SPIN then uses -1 (neutral)
    fits = np.load(exported / "posegen_fits.npy", allow_pickle=False)  # what FitsDict loads
    assert fits.shape == (n, 82)
    np.testing.assert_array_equal(fits, np.concatenate([a["pose"], a["shape"]], 1))
    for name in a["imgname"][[0, 77, n - 1]]:
        with Image.open(exported / name) as im:
            assert im.mode == "RGB" and im.size == (96, 96)
    marker = json.loads((exported / "export.json").read_text())
    assert marker["complete"] and marker["samples"] == n and marker["size"] == 96
    assert sorted(p.name for p in exported.iterdir()) == ["annotations.npz", "export.json", "images", "posegen_fits.npy"]
    assert not exported.with_name("ds.partial").exists()
    assert len(list((exported / "images").iterdir())) == n


# ------------------------------------------------------------------------------------------------ the command
def _run_folder(path: Path, **cfg) -> Path:
    config = pg.RunConfig(**cfg)
    atomic_write_json(config.to_dict(), path / "config.json")
    atomic_torch_save({"G": _generator().state_dict(), "config": config.to_dict()}, path / "checkpoints" / "generator.pt")
    return path


def _export(*args: str):
    return CliRunner().invoke(cli, ["export", *args], catch_exceptions=False)


def test_export_command_round_trip(tmp_path):
    run = _run_folder(tmp_path / "run", seed=5)
    r = _export(str(run), "--samples", "70", "--size", "64", "--out", str(tmp_path / "a"), "--shard-size", "64")
    assert r.exit_code == 0, r.output
    assert "70 samples at 64x64" in r.output
    a = _load(tmp_path / "a")
    assert len(a["imgname"]) == 70
    # the defaults are the run's own dataset: its seed, so the same samples the loop exported and fine-tuned on
    src = GeneratedSource(_generator(), pg.create_prior("normal"), 32, pg.create_renderer("primitives"),
                          pg.create_body_model(None), 4.0, "random", stage_seed(5, "dataset"))
    mem = src.in_memory(70, pg.Intrinsics.framing(64, 4.0))
    np.testing.assert_allclose(a["pose"][:, 3:], mem["body_pose"].reshape(70, 69).numpy(), atol=1e-6)
    for i in (0, 69):
        with Image.open(tmp_path / "a" / a["imgname"][i]) as im:
            np.testing.assert_array_equal(np.asarray(im), mem["images"][i].permute(1, 2, 0).numpy())
    # another size: the same poses and viewpoints, the keypoints scale with the image
    r = _export(str(run), "--samples", "70", "--size", "128", "--out", str(tmp_path / "b"), "--name", "mine")
    assert r.exit_code == 0, r.output
    b = _load(tmp_path / "b")
    np.testing.assert_array_equal(a["pose"], b["pose"])
    np.testing.assert_array_equal(a["S"], b["S"])
    np.testing.assert_allclose(b["part"][..., :2], 2 * a["part"][..., :2], atol=1e-3)
    np.testing.assert_allclose(b["scale"], 2 * a["scale"], rtol=1e-5)
    assert (tmp_path / "b" / "mine_fits.npy").is_file()
    with Image.open(tmp_path / "b" / b["imgname"][3]) as im:
        assert im.size == (128, 128)
    # default size: what the run's estimator reads (SPIN: 224), without building the estimator
    run2 = _run_folder(tmp_path / "run2", estimator="spin")
    r = _export(str(run2), "--samples", "3", "--out", str(tmp_path / "c"))
    assert r.exit_code == 0 and "3 samples at 224x224" in r.output, r.output


def test_export_command_errors(tmp_path):
    run = _run_folder(tmp_path / "run")
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("keep me")
    cases = [
        ([str(run), "--out", str(user)], "not a posegen export"),
        ([str(tmp_path / "nothing"), "--out", str(tmp_path / "x")], "no config.json"),
        ([str(run), "--out", str(tmp_path / "x"), "--size", "8"], "must be at least 16 pixels"),
        ([str(run), "--out", str(tmp_path / "x"), "--samples", "0"], "--samples must be at least 1"),
        ([str(run), "--out", str(tmp_path / "x"), "--shard-size", "100"], "multiple of 64"),
        ([str(run), "--out", str(tmp_path / "x"), "--threads", "0"], "--threads must be at least 1"),
        ([str(run), "--out", str(tmp_path / "x"), "--encode-threads", "-1"], "--encode-threads must be 0"),
    ]
    for args, message in cases:
        r = _export(*args)
        assert r.exit_code == 2 and message in r.output, (args, r.output)
    assert (user / "notes.txt").read_text() == "keep me" and sorted(p.name for p in user.iterdir()) == ["notes.txt"]
    assert not (tmp_path / "x").exists()
    (run / "checkpoints" / "generator.pt").unlink()
    r = _export(str(run), "--out", str(tmp_path / "x"))
    assert r.exit_code == 2 and "posegen run --resume" in r.output
    # an earlier export is replaced only when asked
    run = _run_folder(tmp_path / "run3")
    assert _export(str(run), "--samples", "4", "--size", "32", "--out", str(tmp_path / "e")).exit_code == 0
    r = _export(str(run), "--samples", "5", "--size", "32", "--out", str(tmp_path / "e"))
    assert r.exit_code == 2 and "--overwrite" in r.output
    r = _export(str(run), "--samples", "5", "--size", "32", "--out", str(tmp_path / "e"), "--overwrite")
    assert r.exit_code == 0 and len(_load(tmp_path / "e")["imgname"]) == 5


def test_interrupted_export_leaves_no_dataset_and_resumes_to_the_same_one(tmp_path, monkeypatch):
    settings = ExportSettings(samples=150, size=48, seed=1, shard_size=64)
    export_dataset(tmp_path / "whole", _source(), settings)

    real_save = Image.Image.save
    calls = {"n": 0}

    def failing_save(self, *args, **kwargs):  # the disk fills up after 100 images
        calls["n"] += 1
        if calls["n"] > 100:
            raise OSError(28, "No space left on device")
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(OSError, match="No space"):
        export_dataset(tmp_path / "broken", _source(), settings)
    monkeypatch.setattr(Image.Image, "save", real_save)
    partial = tmp_path / "broken.partial"
    assert not (tmp_path / "broken").exists()  # no half-written dataset where readers look
    assert sorted(p.name for p in (partial / "shards").iterdir()) == ["00000.npz"]  # only the complete shard
    assert not (partial / "annotations.npz").exists()
    first = partial / "images" / "000010.png"
    stamp = first.stat().st_mtime_ns

    export_dataset(tmp_path / "broken", _source(), settings)  # the same command again continues
    assert (tmp_path / "broken" / "images" / "000010.png").stat().st_mtime_ns == stamp  # shard 0 was not redone
    assert not partial.exists()
    a, b = _load(tmp_path / "whole"), _load(tmp_path / "broken")
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    for name in a["imgname"][[0, 70, 149]]:
        assert (tmp_path / "whole" / name).read_bytes() == (tmp_path / "broken" / name).read_bytes()


def test_export_encoding_in_the_rendering_thread_writes_the_same_dataset(tmp_path):
    """encode_threads = 0 (one thread per process, e.g. for a CPU allotment) changes where PNGs are encoded, not what
    is written."""
    settings = ExportSettings(samples=70, size=32, seed=1, shard_size=64)
    export_dataset(tmp_path / "threads", _source(), settings)
    export_dataset(tmp_path / "inline", _source(), ExportSettings(samples=70, size=32, seed=1, shard_size=64,
                                                                  encode_threads=0))
    a, b = _load(tmp_path / "threads"), _load(tmp_path / "inline")
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    for name in a["imgname"]:
        assert (tmp_path / "threads" / name).read_bytes() == (tmp_path / "inline" / name).read_bytes()


# ------------------------------------------------------------------------------------------------ the loop
def test_run_exports_at_its_export_size_the_samples_it_fine_tunes_on(tmp_path, monkeypatch):
    monkeypatch.setenv("POSEGEN_CACHE", str(tmp_path / "cache"))
    cfg = pg.RunConfig(
        device="cpu", iters=2, feedback_start=1, batch_size=4, samples=10, finetune_steps=1, finetune_batch=4,
        eval_samples=8, image_size=32, export_size=80, report=False, out=str(tmp_path / "run"),
        pretrain=pg.PretrainConfig(steps=1, batch_size=4, eval_every=1, val_samples=4),
    )
    run = pg.loop.PoseGenRun(cfg)
    run.run()
    ds = tmp_path / "run" / "dataset"
    a = _load(ds)
    with Image.open(ds / a["imgname"][0]) as im:
        assert im.size == (80, 80)
    assert json.loads((ds / "export.json").read_text())["size"] == 80
    data = run.make_dataset()  # the in-memory fine-tuning data: the loop's size, the exported samples
    assert data["images"].shape == (10, 3, 32, 32)
    np.testing.assert_allclose(a["pose"][:, 3:], data["body_pose"].reshape(10, 69).numpy(), atol=1e-6)
    np.testing.assert_allclose(a["joints_smpl24"], data["joints"].numpy(), atol=1e-6)
