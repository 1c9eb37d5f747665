"""`posegen render` and posegen_core.drawing: grids written from pose files and sources, skeleton overlays, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import posegen_core as pg
from posegen_core.cli import cli
from posegen_core.commands.render import VIEWS, load_pose_file, parse_views
from posegen_core.drawing import LEFT_COLOUR, RIGHT_COLOUR, make_grid, save_grid


def _poses(n: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return np.zeros((n, 3)), rng.normal(0.0, 0.2, (n, 23, 3))


def _invoke(args: list[str]):
    return CliRunner().invoke(cli, ["render", *args], catch_exceptions=False)


def test_render_writes_a_grid_of_poses_by_views_from_an_npz(tmp_path: Path) -> None:
    go, bp = _poses(3)
    np.savez(tmp_path / "p.npz", global_orient=go, body_pose=bp)
    out = tmp_path / "grid.png"
    res = _invoke(["--poses", str(tmp_path / "p.npz"), "-n", "2", "--views", "front,top,0.2/1.0/0",
                   "--size", "32", "--scale", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "2 poses x 3 views" in res.output
    img = np.asarray(Image.open(out))
    pad = 2
    assert img.shape == (2 * 64 + 3 * pad, 3 * 64 + 4 * pad, 3)
    # Each cell shows a body: pixels that differ from the plain background colour.
    bg = np.round(np.array((0.42, 0.45, 0.48)) * 255)
    for r in range(2):
        for c in range(3):
            cell = img[pad + r * (64 + pad):(r + 1) * (64 + pad), pad + c * (64 + pad):(c + 1) * (64 + pad)]
            body = (np.abs(cell.astype(float) - bg).sum(-1) > 30).mean()
            assert 0.03 < body < 0.6


def test_pose_files_in_every_accepted_layout_give_the_same_poses(tmp_path: Path) -> None:
    go, bp = _poses(4, seed=1)
    full = np.concatenate([go, bp.reshape(4, 69)], 1)
    np.savez(tmp_path / "a.npz", global_orient=go, body_pose=bp)
    np.savez(tmp_path / "b.npz", poses=full)
    np.savez(tmp_path / "c.npz", global_orient=go, body_pose=bp.reshape(4, 69))
    np.save(tmp_path / "d.npy", full)
    np.save(tmp_path / "e.npy", full.reshape(4, 24, 3))
    ref_go, ref_bp = load_pose_file(tmp_path / "a.npz")
    assert ref_go.shape == (4, 3) and ref_bp.shape == (4, 23, 3)
    assert torch.allclose(ref_bp, torch.as_tensor(bp, dtype=torch.float32))
    for name in ("b.npz", "c.npz", "d.npy", "e.npy"):
        g, b = load_pose_file(tmp_path / name)
        assert torch.equal(g, ref_go) and torch.equal(b, ref_bp), name


def test_identical_poses_from_different_files_render_identical_pngs(tmp_path: Path) -> None:
    go, bp = _poses(2, seed=2)
    np.savez(tmp_path / "a.npz", global_orient=go, body_pose=bp)
    np.save(tmp_path / "b.npy", np.concatenate([go, bp.reshape(2, 69)], 1))
    for name in ("a.npz", "b.npy"):
        assert _invoke(["--poses", str(tmp_path / name), "--size", "24", "--views", "front",
                        "--out", str(tmp_path / f"{name}.png")]).exit_code == 0
    a = np.asarray(Image.open(tmp_path / "a.npz.png"))
    b = np.asarray(Image.open(tmp_path / "b.npy.png"))
    assert np.array_equal(a, b)


def test_skeleton_overlay_draws_left_and_right_bones_in_their_colours(tmp_path: Path) -> None:
    go, bp = np.zeros((1, 3)), np.zeros((1, 23, 3))  # T-pose from the front
    np.savez(tmp_path / "t.npz", global_orient=go, body_pose=bp)
    size, scale = 64, 3
    _invoke(["--poses", str(tmp_path / "t.npz"), "--size", str(size), "--scale", str(scale), "--views", "front",
             "--skeleton", "--out", str(tmp_path / "s.png")])
    img = np.asarray(Image.open(tmp_path / "s.png")).astype(int)
    joints, rots = pg.forward_kinematics(torch.zeros(1, 3), torch.zeros(1, 23, 3))
    jc, _ = pg.to_camera_frame(joints, rots, torch.zeros(1, 3), 4.0)
    uv = pg.project(jc, pg.Intrinsics.framing(size))[0] * scale + 2  # + grid padding
    for (a, b), colour in (((18, 20), LEFT_COLOUR), ((19, 21), RIGHT_COLOUR)):  # the forearms
        x, y = ((uv[a] + uv[b]) / 2).floor().long().tolist()
        near = img[y - 1:y + 2, x - 1:x + 2].reshape(-1, 3)
        assert (np.abs(near - np.array(colour)).sum(-1) == 0).any(), (near, colour)


def test_render_command_errors_are_clear(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["render", "--poses", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "x.png")])
    assert res.exit_code == 2 and "pose file not found" in res.output
    np.savez(tmp_path / "bad.npz", something=np.zeros((2, 5)))
    res = runner.invoke(cli, ["render", "--poses", str(tmp_path / "bad.npz"), "--out", str(tmp_path / "x.png")])
    assert res.exit_code == 2 and "global_orient + body_pose" in res.output
    np.save(tmp_path / "short.npy", np.zeros((2, 66)))
    res = runner.invoke(cli, ["render", "--poses", str(tmp_path / "short.npy"), "--out", str(tmp_path / "x.png")])
    assert res.exit_code == 2 and "(N, 72)" in res.output
    go, bp = _poses(1)
    np.savez(tmp_path / "p.npz", global_orient=go, body_pose=bp)
    res = runner.invoke(cli, ["render", "--poses", str(tmp_path / "p.npz"), "--views", "front,sideways"])
    assert res.exit_code == 2 and "unknown view 'sideways'" in res.output
    res = runner.invoke(cli, ["render", "--poses", str(tmp_path / "p.npz"), "--renderer", "primitivs"])
    assert res.exit_code == 2 and "Did you mean 'primitives'" in res.output
    res = runner.invoke(cli, ["render", "--poses", str(tmp_path / "p.npz"), "--subject", "zoe",
                              "--out", str(tmp_path / "x.png")])
    assert res.exit_code == 2 and "unknown subject 'zoe'" in res.output
    res = runner.invoke(cli, ["render", "--poses", str(tmp_path / "p.npz"), "-o", "background"])
    assert res.exit_code == 2 and "KEY=VALUE" in res.output
    assert not (tmp_path / "x.png").exists()


def test_renderer_options_and_subjects_reach_the_renderer(tmp_path: Path) -> None:
    go, bp = _poses(1)
    np.savez(tmp_path / "p.npz", global_orient=go, body_pose=bp)
    base = ["--poses", str(tmp_path / "p.npz"), "--size", "32", "--views", "front"]
    _invoke([*base, "--out", str(tmp_path / "plain.png")])
    _invoke([*base, "-o", "background=noise", "--out", str(tmp_path / "noise.png")])
    _invoke([*base, "--subject", "ben", "--out", str(tmp_path / "ben.png")])
    _invoke([*base, "--subject", "1", "--out", str(tmp_path / "one.png")])
    plain, noise = (np.asarray(Image.open(tmp_path / f"{n}.png")).astype(float) for n in ("plain", "noise"))
    corner = (slice(2, 10), slice(2, 10))
    assert plain[corner].std((0, 1)).max() < 1e-6 < noise[corner].std((0, 1)).max()
    ben, one = (np.asarray(Image.open(tmp_path / f"{n}.png")) for n in ("ben", "one"))
    assert np.array_equal(ben, one) and not np.array_equal(ben, plain.astype(np.uint8))


def test_render_uses_the_default_pose_source_when_registered(tmp_path: Path) -> None:
    if "default" not in pg.get_registry().names("pose_source"):
        pytest.skip("the embedded 'default' pose source is not registered in this checkout")
    res = _invoke(["-n", "2", "--size", "32", "--views", "front", "--out", str(tmp_path / "d.png")])
    assert res.exit_code == 0, res.output
    assert np.asarray(Image.open(tmp_path / "d.png")).shape[:2] == (2 * (64 * 3) + 3 * 2, 64 * 3 + 2 * 2)


def test_parse_views_accepts_names_and_axis_angle_triples() -> None:
    k = parse_views("front, top,0.1/-0.2/0.3")
    assert k.shape == (3, 3)
    assert torch.allclose(k[1], torch.tensor(VIEWS["top"]))
    assert torch.allclose(k[2], torch.tensor([0.1, -0.2, 0.3]))
    with pytest.raises(pg.ConfigError, match="axis-angle triple"):
        parse_views("0.1/0.2")


def test_make_grid_layout_and_atomic_png(tmp_path: Path) -> None:
    images = torch.rand(5, 3, 10, 12, generator=torch.Generator().manual_seed(0))
    grid = make_grid(images, ncol=2, scale=2, padding=1)
    assert grid.size == (2 * 24 + 3, 3 * 20 + 4)
    arr = np.asarray(grid)
    expected = (images[3].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    cell = arr[1 + 1 * 21:1 + 1 * 21 + 20:2, 1 + 1 * 25:1 + 1 * 25 + 24:2]  # row 1, col 1, every 2nd pixel
    assert np.array_equal(cell, expected)
    path = save_grid(images, tmp_path / "sub" / "g.png", ncol=5)
    assert Image.open(path).size == (5 * 12 + 6 * 2, 10 + 2 * 2)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["g.png"]  # no temporary file left behind
    with pytest.raises(pg.ShapeError, match=r"\(B, 3, \*, \*\)|\(B, 3"):
        make_grid(torch.rand(2, 4, 8, 8))


def test_a_second_skeleton_is_drawn_in_its_own_colour(tmp_path: Path) -> None:
    from posegen_core.drawing import SECOND_COLOUR

    images = torch.zeros(1, 3, 40, 40)
    joints, rots = pg.forward_kinematics(torch.zeros(1, 3), torch.zeros(1, 23, 3))
    jc, _ = pg.to_camera_frame(joints, rots, torch.zeros(1, 3), 4.0)
    uv = pg.project(jc, pg.Intrinsics.framing(40))
    shifted = uv + torch.tensor([0.0, 6.0])  # a "prediction" 6 px lower
    img = np.asarray(make_grid(images, uv, scale=4, padding=0, second_joints_2d=shifted)).astype(int)
    x, y = (((shifted[0, 18] + shifted[0, 20]) / 2) * 4).floor().long().tolist()
    near = img[y - 1:y + 2, x - 1:x + 2].reshape(-1, 3)
    assert (np.abs(near - np.array(SECOND_COLOUR)).sum(-1) == 0).any()
    with pytest.raises(pg.ShapeError, match="second_joints_2d"):
        make_grid(images, uv, second_joints_2d=shifted[:, :20])
