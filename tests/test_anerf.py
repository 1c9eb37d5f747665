"""A-NeRF renderer plugin: official checkpoint layouts, conventions, network layout, gradients, fit and resume."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import posegen_core as pg
from posegen_plugins.renderers.anerf import conventions as conv
from posegen_plugins.renderers.anerf.config import ANeRFConfig, preset
from posegen_plugins.renderers.anerf.encoding import positional_encoding
from posegen_plugins.renderers.anerf.network import ANeRFNetwork
from posegen_plugins.renderers.anerf.raycaster import FastOptions
from posegen_plugins.renderers.anerf.renderer import ANeRFRenderer
from posegen_plugins.renderers.anerf.volume import composite

LAYOUT = Path(__file__).parent / "data" / "anerf_checkpoint_layout.txt"


@pytest.fixture(autouse=True)
def one_thread():
    """These renders are small: one thread avoids OpenMP synchronisation stalls on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def parse_layout() -> dict[str, dict[str, dict[str, tuple[int, ...]]]]:
    """config name -> sub-dict -> parameter -> shape, read from the official layout listing."""
    out: dict[str, dict[str, dict[str, tuple[int, ...]]]] = {}
    config = sub = None
    for line in LAYOUT.read_text().splitlines():
        if m := re.match(r"## config \w+/(\w+)\.txt", line):
            config = m.group(1)
            out[config] = {}
        elif m := re.match(r"\s+\[(\w+)\]", line):
            sub = m.group(1)
            out[config][sub] = {}
        elif (m := re.match(r"\s+([\w.]+)\s+\(([\d, ]*)\)", line)) and config and sub:
            out[config][sub][m.group(1)] = tuple(int(v) for v in m.group(2).replace(" ", "").split(",") if v)
    return out


def fabricate(config: str, path: Path, generator: torch.Generator, tweak: dict | None = None) -> dict:
    """An official-layout checkpoint with random values (cutoff 0.5, tau 20 as at step 0)."""
    layout = parse_layout()[config]
    data = {"global_step": 0, "optimizer_state_dict": None, "poseopt_layer_state_dict": None,
            "pose_optimizer_state_dict": None, "poseopt_anchors": None}
    for sub, params in layout.items():
        state = {}
        for name, shape in params.items():
            shape = (tweak or {}).get((sub, name), shape)
            if name == "cutoff_dist":
                state[name] = torch.full(shape, 0.5)
            elif name == "tau":
                state[name] = torch.tensor(20.0)
            else:
                state[name] = torch.randn(shape, generator=generator) * 0.05
        data[sub] = state
    if config == "surreal_single":  # one shared network, stored twice
        data["network_fine_state_dict"] = dict(data["network_fn_state_dict"])
    torch.save(data, path)
    return data


def posed_skeleton(n: int = 1, seed: int = 0, distance: float = 4.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    body = torch.randn(n, 23, 3, generator=g) * 0.2
    joints, rots = pg.forward_kinematics(torch.zeros(n, 3), body)
    view = torch.randn(n, 3, generator=g) * 0.3
    return pg.to_camera_frame(joints, rots, view, distance)


@pytest.mark.parametrize("config", ["surreal", "mixamo", "surreal_single"])
def test_fabricated_official_checkpoint_loads_and_renders(config, tmp_path):
    path = tmp_path / f"{config}.tar"
    data = fabricate(config, path, torch.Generator().manual_seed(1))
    renderer = pg.create_renderer("anerf", checkpoint=path)
    c = renderer.config
    expected = {"surreal": (64, 16, False, 0, 4), "mixamo": (64, 16, False, 1000, 4),
                "surreal_single": (96, 48, True, 0, 0)}[config]
    assert (c.n_samples, c.n_importance, c.single_net, c.n_framecodes, c.multires_views) == expected
    for name, value in data["network_fn_state_dict"].items():
        assert torch.equal(renderer.caster.network_fn.state_dict()[name], value), name
    # render at a reduced sample count to keep the test fast; image size as requested (non-square)
    fast = pg.create_renderer("anerf", checkpoint=path, n_samples=8, n_importance=4)
    joints, rots = posed_skeleton(1, distance=6.0)
    intr = pg.Intrinsics(30.0, 30.0, 10.0, 7.0, 14, 20)
    with torch.no_grad():
        out = fast(joints, rots, intr, subject=3 if config == "mixamo" else None)
    assert out.images.shape == (1, 3, 14, 20) and out.alpha.shape == (1, 1, 14, 20)
    assert torch.isfinite(out.images).all() and torch.isfinite(out.alpha).all()
    assert out.images.min() >= 0 and out.images.max() <= 1


def test_checkpoint_with_a_wrong_shape_names_the_key(tmp_path):
    path = tmp_path / "bad.tar"
    fabricate("surreal", path, torch.Generator().manual_seed(2),
              tweak={("network_fine_state_dict", "pts_linears.3.weight"): (256, 255)})
    with pytest.raises(pg.CheckpointError, match=r"network_fine_state_dict.*pts_linears\.3\.weight.*\(256, 255\)"):
        pg.create_renderer("anerf", checkpoint=path)
    fabricate("surreal", path, torch.Generator().manual_seed(2),
              tweak={("network_fn_state_dict", "pts_linears.0.weight"): (256, 431)})
    with pytest.raises(pg.CheckpointError, match=r"pts_linears\.0\.weight"):
        pg.create_renderer("anerf", checkpoint=path)
    # an explicit config the file does not match is reported key by key too
    fabricate("surreal", path, torch.Generator().manual_seed(2))
    with pytest.raises(pg.CheckpointError, match=r"framecodes\.codes\.weight"):
        pg.create_renderer("anerf", checkpoint=path, config="mixamo")
    torch.save({"model": {}}, path)
    with pytest.raises(pg.CheckpointError, match="not an A-NeRF checkpoint"):
        pg.create_renderer("anerf", checkpoint=path)


def test_network_equals_the_official_concatenation_order():
    """The factored forward (no concatenations) equals the official cat([input, h]) / cat([feature, dirs, code])."""
    torch.manual_seed(0)
    c = ANeRFConfig(depth=4, width=32, skip=2, view_width=16, multires=3, multires_views=2, n_framecodes=5)
    net = ANeRFNetwork(c)
    x, v = torch.randn(7, c.pts_dim), torch.randn(7, c.view_dim)
    frame = torch.tensor([0, 1, 2, 3, 4, -1, 2])
    h = x
    for i, layer in enumerate(net.pts_linears):
        h = torch.relu(layer(h))
        if i == c.skip:
            h = torch.cat([x, h], -1)
    codes = net.framecodes.codes.weight
    code = torch.stack([codes[i] if i >= 0 else codes.mean(0) for i in frame.tolist()])
    feat = net.feature_linear(h)
    rgb = net.rgb_linear(torch.relu(net.views_linears[0](torch.cat([feat, v, code], -1))))
    expected = torch.cat([rgb, net.alpha_linear(h)], -1)
    torch.testing.assert_close(net(x, v, frame), expected, rtol=1e-5, atol=1e-5)


def test_positional_encoding_layout_is_block_major():
    x = torch.tensor([[0.3, -1.2]])
    enc = positional_encoding(x, 3).flatten(-2)  # [x, sin(x), cos(x), sin(2x), cos(2x), sin(4x), cos(4x)] blocks
    expected = torch.cat([x, torch.sin(x), torch.cos(x), torch.sin(2 * x), torch.cos(2 * x), torch.sin(4 * x),
                          torch.cos(4 * x)], -1)
    torch.testing.assert_close(enc, expected)


def test_volume_rendering_matches_eq12():
    g = torch.Generator().manual_seed(0)
    rgb, alpha = torch.rand(3, 5, 3, generator=g), torch.rand(3, 5, generator=g)
    colour, acc, w = composite(rgb, alpha)
    for r in range(3):
        t, c = 1.0, torch.zeros(3)
        for i in range(5):
            c += t * alpha[r, i] * rgb[r, i]
            t *= 1.0 - alpha[r, i] + 1e-10
        torch.testing.assert_close(colour[r], c)
        torch.testing.assert_close(acc[r], 1.0 - t, atol=1e-6, rtol=1e-5)


def test_camera_frame_encoding_matches_the_official_world_and_opengl_rays():
    """Joint-local sample coordinates from posegen's camera frame equal A-NeRF's from its world frame + OpenGL c2w."""
    g = torch.Generator().manual_seed(3)
    rest = conv.rest_pose_units(torch.float64)
    body = torch.randn(1, 23, 3, generator=g, dtype=torch.float64) * 0.3
    flip = pg.rotations.rotation_about_axis("x", torch.tensor([torch.pi], dtype=torch.float64))  # -y up world
    rots = pg.kinematics.pose_to_rotations(torch.zeros(1, 3, dtype=torch.float64), body)
    rots[:, 0] = flip @ rots[:, 0]
    kp, glob = pg.kinematics.batch_rigid_transform(rots, rest)
    kp = kp + torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64)
    l2w = torch.eye(4, dtype=torch.float64).repeat(1, 24, 1, 1)
    l2w[..., :3, :3], l2w[..., :3, 3] = glob, kp
    skts = torch.linalg.inv(l2w)
    # an OpenGL camera 5 units away looking at the subject from the side, slightly above
    ext = torch.eye(4, dtype=torch.float64)
    ext[:3, :3] = pg.rotations.rotation_about_axis("y", torch.tensor([1.1], dtype=torch.float64))[0] @ \
        pg.rotations.rotation_about_axis("x", torch.tensor([0.2], dtype=torch.float64))[0]
    ext[:3, 3] = torch.tensor([0.1, 0.2, 5.0], dtype=torch.float64) - ext[:3, :3] @ kp[0, 0]
    c2w = conv.extrinsic_to_opengl_c2w(ext)[None]
    torch.testing.assert_close(conv.opengl_c2w_to_extrinsic(c2w)[0], ext)
    fx, fy, cx, cy, u, v, z = 50.0, 55.0, 32.0, 30.0, 40.0, 21.0, 4.3
    d_world = c2w[0, :3, :3] @ torch.tensor([(u - cx) / fx, -(v - cy) / fy, -1.0], dtype=torch.float64)
    pts = c2w[0, :3, 3] + z * d_world
    official = (skts[0] @ torch.cat([pts, torch.ones(1, dtype=torch.float64)]))[:, :3]
    joints_m, rot_cam = conv.anerf_to_contract(skts, c2w)
    rot_t, offset = conv.world_to_joint(joints_m * conv.UNITS_PER_METRE, rot_cam)
    d_cam = torch.tensor([(u - cx) / fx, (v - cy) / fy, 1.0], dtype=torch.float64)
    ours = z * (rot_t[0] @ d_cam) - offset[0]
    torch.testing.assert_close(ours, official)
    # posegen's rest skeleton in metres is A-NeRF's SURREAL rest pose (smpl_rest_pose x 0.714) in units
    torch.testing.assert_close(pg.skeleton.rest_joints(torch.float64) * conv.UNITS_PER_METRE, rest)


def _positive_density_renderer(config: ANeRFConfig, dtype=torch.float32) -> ANeRFRenderer:
    r = ANeRFRenderer(config=config, seed=4).to(dtype)
    with torch.no_grad():
        for net in {id(n): n for n in (r.caster.network_fn, r.caster.fine)}.values():
            net.alpha_linear.bias.fill_(2.0)
    return r


def test_gradients_reach_joints_and_rotations_and_match_finite_differences():
    r = _positive_density_renderer(preset("tiny"), torch.float64)
    joints, rots = posed_skeleton(1, seed=5, distance=5.0)
    joints, rots = joints.double().requires_grad_(), rots.double().requires_grad_()
    intr = pg.Intrinsics(10.0, 10.0, 4.0, 5.0, 10, 8)
    weight = torch.rand(1, 3, 10, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def loss(j, rt):
        return (r(j, rt, intr).images * weight).sum()

    value = loss(joints, rots)
    gj, gr = torch.autograd.grad(value, (joints, rots))
    assert gj.abs().sum() > 0 and gr.abs().sum() > 0
    eps = 1e-6
    for tensor, grad, index in ((joints, gj, (0, 18, 0)), (joints, gj, (0, 0, 2)), (joints, gj, (0, 4, 1)),
                                (rots, gr, (0, 16, 1, 2)), (rots, gr, (0, 0, 0, 1)), (rots, gr, (0, 5, 2, 0))):
        plus, minus = tensor.detach().clone(), tensor.detach().clone()
        plus[index] += eps
        minus[index] -= eps
        args_p = (plus, rots.detach()) if tensor is joints else (joints.detach(), plus)
        args_m = (minus, rots.detach()) if tensor is joints else (joints.detach(), minus)
        with torch.no_grad():
            fd = (loss(*args_p) - loss(*args_m)) / (2 * eps)
        assert float(grad[index]) == pytest.approx(float(fd), rel=1e-4, abs=1e-7), index


def test_early_stop_changes_pixels_by_at_most_its_threshold():
    r = _positive_density_renderer(preset("tiny", n_samples=24, n_importance=8))
    joints, rots = posed_skeleton(2, seed=6)
    intr = pg.Intrinsics.framing(16)
    with torch.no_grad():
        exact = r(joints, rots, intr)
        r.fast = FastOptions(early_stop=1e-3, segment=4)
        quick = r(joints, rots, intr)
    assert float(exact.alpha.max()) > 0.5
    assert float((exact.images - quick.images).abs().max()) <= 1e-3 + 1e-6
    assert float((exact.alpha - quick.alpha).abs().max()) <= 1e-3 + 1e-6


def test_plain_contract_call_and_low_resolution_mode():
    r = pg.create_renderer("anerf", config="tiny", resolution_scale=0.5)
    joints, rots = posed_skeleton(2, seed=7)
    out = r(joints, rots, pg.Intrinsics.framing(32))
    assert out.images.shape == (2, 3, 32, 32) and out.alpha.shape == (2, 1, 32, 32)
    assert torch.isfinite(out.images).all()
    assert ANeRFRenderer.differentiable


def test_bad_options_fail_clearly():
    with pytest.raises(pg.ConfigError, match="unknown A-NeRF preset"):
        pg.create_renderer("anerf", config="nope")
    with pytest.raises(pg.ConfigError, match="background"):
        pg.create_renderer("anerf", config="tiny", background="purple")
    with pytest.raises(pg.CheckpointError, match="not found"):
        pg.create_renderer("anerf", checkpoint="/nonexistent/surreal.tar")


def _tiny_dataset(tmp_path: Path) -> Path:
    from posegen_plugins.renderers.anerf.dataset import make_teacher_dataset, save_dataset

    teacher = pg.create_renderer("primitives", background="plain", background_color=(1.0, 1.0, 1.0))
    ds = make_teacher_dataset(teacher, size=12, train_poses=2, heldout_poses=1, views=2, heldout_views=1, seed=0)
    path = tmp_path / "subject.npz"
    save_dataset(path, ds)
    return path


def test_fit_writes_checkpoints_and_resumes(tmp_path):
    from posegen_plugins.renderers.anerf.dataset import load_dataset
    from posegen_plugins.renderers.anerf.fit import FitSettings, fit

    data = load_dataset(_tiny_dataset(tmp_path))
    assert data.images.shape == (8, 3, 12, 12)
    assert [len(data.indices(s)) for s in ("train", "heldout_view", "heldout_pose")] == [4, 2, 2]
    settings = FitSettings(config="tiny", iters=4, minutes=None, rays=32, eval_every=2, checkpoint_every=2,
                           eval_images=1)
    first = fit(data, tmp_path / "run", settings)
    assert first["steps"] == 4 and (tmp_path / "run" / "checkpoints" / "latest.tar").is_file()
    assert (tmp_path / "run" / "heldout_view.png").is_file() and (tmp_path / "run" / "summary.json").is_file()
    assert [row["step"] for row in first["curve"]] == [2, 4]
    assert {"heldout_view_psnr", "heldout_pose_psnr", "heldout_view_psnr_person"} <= set(first["final"])
    # the checkpoint renders exactly like the model that wrote it
    loaded = pg.create_renderer("anerf", checkpoint=tmp_path / "run" / "checkpoints" / "latest.tar")
    assert loaded.config == preset("tiny") and loaded.background == (1.0, 1.0, 1.0)
    state = torch.load(tmp_path / "run" / "checkpoints" / "latest.tar", weights_only=True)
    assert state["global_step"] == 4 and state["optimizer_state_dict"]["state"]
    # resume continues from step 4 with the saved optimizer state, and matches an uninterrupted run
    settings.iters = 6
    resumed = fit(data, tmp_path / "run", settings, resume=True)
    fit(data, tmp_path / "straight", settings)
    assert resumed["steps"] == 6 and [row["step"] for row in resumed["curve"]] == [2, 4, 6]
    a = torch.load(tmp_path / "run" / "checkpoints" / "latest.tar", weights_only=True)["network_fn_state_dict"]
    b = torch.load(tmp_path / "straight" / "checkpoints" / "latest.tar", weights_only=True)["network_fn_state_dict"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6)


def test_dataset_errors_name_the_field(tmp_path):
    import numpy as np

    from posegen_plugins.renderers.anerf.dataset import load_dataset

    with pytest.raises(pg.DataError, match="make-dataset"):
        load_dataset(tmp_path / "missing.npz")
    np.savez(tmp_path / "bad.npz", images=np.zeros((2, 4, 4, 3), np.uint8))
    with pytest.raises(pg.DataError, match="masks"):
        load_dataset(tmp_path / "bad.npz")


def test_cli_group_is_registered():
    from click.testing import CliRunner

    from posegen_core.cli import cli

    result = CliRunner().invoke(cli, ["anerf", "--help"])
    assert result.exit_code == 0, result.output
    assert "fit" in result.output and "make-dataset" in result.output


def test_retarget_reproduces_a_posegen_skeleton_and_rescales_another():
    joints, rots = posed_skeleton(2, seed=8)
    units = joints.double() * conv.UNITS_PER_METRE
    rest = conv.rest_pose_units(torch.float64)
    torch.testing.assert_close(conv.retarget(units, rots.double(), rest), units, atol=1e-5, rtol=1e-5)
    # a subject 10% taller: every joint's offset from the root grows by 10%
    tall = conv.retarget(units, rots.double(), rest * 1.1)
    torch.testing.assert_close(tall - tall[:, :1], (units - units[:, :1]) * 1.1, atol=1e-5, rtol=1e-5)


def test_posegen_run_uses_an_anerf_checkpoint_in_the_loop(tmp_path, monkeypatch):
    """`posegen run --renderer anerf --renderer-checkpoint PATH`: a fitted subject renders G's samples end to end."""
    from click.testing import CliRunner

    from posegen_core.cli import cli
    from posegen_plugins.renderers.anerf.dataset import load_dataset
    from posegen_plugins.renderers.anerf.fit import FitSettings, fit

    monkeypatch.setenv("POSEGEN_CACHE", str(tmp_path / "cache"))
    fit(load_dataset(_tiny_dataset(tmp_path)), tmp_path / "fit",
        FitSettings(config="tiny", iters=2, minutes=None, rays=32, eval_every=2, checkpoint_every=2, eval_images=1))
    ckpt = tmp_path / "fit" / "checkpoints" / "latest.tar"
    args = ["run", "--renderer", "anerf", "--renderer-checkpoint", str(ckpt), "--out", str(tmp_path / "run"),
            "--iters", "2", "--samples", "4", "--finetune-steps", "1", "--batch-size", "2", "--image-size", "16",
            "--set", "feedback_start=1", "--set", "finetune_batch=2", "--set", "eval_samples=2",
            "--set", "pretrain.steps=1", "--set", "pretrain.batch_size=2", "--set", "pretrain.eval_every=1",
            "--set", "pretrain.val_samples=2",
            "--set", "report=false"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    summary = (tmp_path / "run" / "summary.json").read_text()
    assert "novel_views" in summary
    assert '"renderer_checkpoint": "' + str(ckpt) in (tmp_path / "run" / "config.json").read_text().replace("\n", "")
