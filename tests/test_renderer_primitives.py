"""The primitives renderer: contract, correctness of pixels and gradients, alignment, subjects, bad input."""

from __future__ import annotations

import math

import pytest
import torch

import posegen_core as pg
from posegen_plugins.renderers.primitives import PrimitivesRenderer, splat as sp
from posegen_plugins.renderers.primitives.body import NUM_PRIMITIVES, build_ellipsoids
from posegen_plugins.renderers.primitives.projection import screen_parameters
from posegen_plugins.renderers.primitives.subjects import COLOUR_SLOTS, SUBJECTS, Subject

# --------------------------------------------------------------------------------------------- pose helpers
# Per-joint axis-angle ranges (radians) in SMPL's local frames: x = the subject's left, y = up, z = forward.
# Hips flex forward about -x, knees bend about +x, the left elbow about -y, the right about +y.
_RANGES = {
    "left_hip": ((-1.6, 0.5), (-0.5, 0.5), (-0.2, 0.8)), "right_hip": ((-1.6, 0.5), (-0.5, 0.5), (-0.8, 0.2)),
    "left_knee": ((0.0, 2.2), (0.0, 0.0), (0.0, 0.0)), "right_knee": ((0.0, 2.2), (0.0, 0.0), (0.0, 0.0)),
    "left_ankle": ((-0.4, 0.4), (-0.2, 0.2), (-0.2, 0.2)), "right_ankle": ((-0.4, 0.4), (-0.2, 0.2), (-0.2, 0.2)),
    "spine1": ((-0.3, 0.5),) + ((-0.3, 0.3),) * 2, "spine2": ((-0.2, 0.3),) + ((-0.2, 0.2),) * 2,
    "spine3": ((-0.2, 0.3),) + ((-0.2, 0.2),) * 2, "neck": ((-0.4, 0.4),) * 3, "head": ((-0.3, 0.3),) * 3,
    "left_collar": ((-0.2, 0.2),) * 3, "right_collar": ((-0.2, 0.2),) * 3,
    "left_shoulder": ((-0.3, 0.3), (-1.0, 1.0), (-1.4, 0.8)), "right_shoulder": ((-0.3, 0.3), (-1.0, 1.0), (-0.8, 1.4)),
    "left_elbow": ((0.0, 0.0), (-2.3, 0.0), (0.0, 0.0)), "right_elbow": ((0.0, 0.0), (0.0, 2.3), (0.0, 0.0)),
    "left_wrist": ((-0.5, 0.5),) * 3, "right_wrist": ((-0.5, 0.5),) * 3,
}


def plausible_poses(n: int, generator: torch.Generator, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 3) zero global orientation and (n, 23, 3) body poses drawn uniformly within joint limits."""
    lo = torch.zeros(23, 3, dtype=torch.float64)
    hi = torch.zeros(23, 3, dtype=torch.float64)
    for name, ranges in _RANGES.items():
        j = pg.skeleton.JOINT_NAMES.index(name) - 1
        for ax, (a, b) in enumerate(ranges):
            lo[j, ax], hi[j, ax] = a, b
    u = torch.rand(n, 23, 3, generator=generator, dtype=torch.float64)
    return torch.zeros(n, 3, dtype=dtype), (lo + (hi - lo) * u).to(dtype)


def random_viewpoints(n: int, generator: torch.Generator, dtype=torch.float32) -> torch.Tensor:
    """Azimuth anywhere, elevation anywhere from straight below to straight above (every 5th exactly top/bottom)."""
    az = (torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1) * math.pi
    el = (torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1) * math.pi / 2
    el[::5] = math.pi / 2
    el[2::10] = -math.pi / 2
    rot = pg.rotations.rotation_about_axis("x", el) @ pg.rotations.rotation_about_axis("y", az)
    return pg.rotations.matrix_to_axis_angle(rot).to(dtype)


def posed(n: int, seed: int, dtype=torch.float32, distance: float = 4.0):
    g = torch.Generator().manual_seed(seed)
    go, bp = plausible_poses(n, g, dtype)
    joints, rots = pg.forward_kinematics(go, bp)
    return pg.to_camera_frame(joints, rots, random_viewpoints(n, g, dtype), distance)


def frontal(body_pose: torch.Tensor, dtype=torch.float32):
    go = torch.zeros(body_pose.shape[0], 3, dtype=dtype)
    joints, rots = pg.forward_kinematics(go, body_pose.to(dtype))
    return pg.to_camera_frame(joints, rots, torch.zeros_like(go), 4.0)


# --------------------------------------------------------------------------------------------- contract
def test_registered_as_a_differentiable_renderer() -> None:
    r = pg.create_renderer("primitives")
    assert isinstance(r, PrimitivesRenderer) and r.differentiable
    assert 30 <= NUM_PRIMITIVES <= 48


def test_output_follows_the_renderer_contract() -> None:
    jc, rc = posed(5, 0)
    intr = pg.Intrinsics.framing((48, 40))
    out = PrimitivesRenderer()(jc, rc, intr)
    assert out.images.shape == (5, 3, 48, 40) and out.alpha.shape == (5, 1, 48, 40)
    assert out.images.dtype == torch.float32
    assert float(out.images.min()) >= 0.0 and float(out.images.max()) <= 1.0
    assert float(out.alpha.min()) >= 0.0 and float(out.alpha.max()) <= 1.0
    # Some body, some background in every image; background pixels hold the plain colour.
    cover = out.alpha.mean((1, 2, 3))
    assert bool(((cover > 0.03) & (cover < 0.6)).all())
    bg = out.images.permute(0, 2, 3, 1)[out.alpha[:, 0] < 1e-6]
    assert torch.allclose(bg, torch.tensor((0.42, 0.45, 0.48)), atol=1e-6)


def test_batch_renders_each_sample_independently() -> None:
    jc, rc = posed(4, 1)
    intr = pg.Intrinsics.framing(40)
    r = PrimitivesRenderer()
    batch = r(jc, rc, intr)
    for i in range(4):
        one = r(jc[i:i + 1], rc[i:i + 1], intr)
        assert torch.allclose(one.images, batch.images[i:i + 1], atol=1e-6)
        assert torch.allclose(one.alpha, batch.alpha[i:i + 1], atol=1e-6)


def test_float32_matches_float64_and_tile_size_does_not_change_the_image() -> None:
    # Top and bottom views put ~1.7 m of depth behind the nearest part: the soft z-buffer must not underflow.
    jc, rc = posed(60, 11, torch.float64)
    intr = pg.Intrinsics.framing(48)
    with torch.no_grad():
        ref = PrimitivesRenderer()(jc, rc, intr).images
        single = PrimitivesRenderer()(jc.float(), rc.float(), intr).images
        tiled4 = PrimitivesRenderer(tile=4)(jc, rc, intr).images
    assert float((ref.float() - single).abs().max()) < 1e-3
    assert float((ref - tiled4).abs().max()) < 1e-9


# --------------------------------------------------------------------------------------------- pixels
def _dense_reference(params: torch.Tensor, batch: int, h: int, w: int, s: sp.SplatSettings):
    """The splat's model evaluated at every pixel for every primitive with plain autograd (no tiles, no culling)."""
    p = params.view(batch, -1, sp.NUM_PARAMS)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=p.dtype) + 0.5, torch.arange(w, dtype=p.dtype) + 0.5,
                            indexing="ij")
    def col(i):
        return p[..., i][..., None, None]
    dx, dy = xs - col(sp.MU_X), ys - col(sp.MU_Y)
    m = col(sp.CON_A) * dx * dx + 2 * col(sp.CON_B) * dx * dy + col(sp.CON_C) * dy * dy
    e = col(sp.EDGE)
    u = ((m - (1 - e)) / (2 * e)).clamp(0, 1)
    o = s.max_opacity * (1 - (3 * u ** 2 - 2 * u ** 3))
    t = (1 - m).clamp(0, 1)
    dome = 1 - (1 - t) ** 2
    z = col(sp.DEPTH) + col(sp.SLOPE_X) * dx + col(sp.SLOPE_Y) * dy - col(sp.BULGE) * dome
    zref = (p[..., sp.DEPTH] - p[..., sp.BULGE]).min(1).values.detach()[:, None, None, None]
    weight = o * torch.exp((zref - z) / s.tau)
    colour = p[..., sp.RED:sp.BLUE + 1].permute(0, 2, 1)[..., None, None] * (s.ambient + s.diffuse * dome)[:, None]
    fg = (weight[:, None] * colour).sum(2) / weight.sum(1)[:, None].clamp_min(1e-300)
    alpha = 1 - torch.prod(1 - o, dim=1, keepdim=True)
    return fg, alpha


def _screen_params(n: int, size: int, seed: int, dtype=torch.float64):
    jc, rc = posed(n, seed, dtype)
    ell = build_ellipsoids(jc, rc, torch.ones(n, dtype=dtype))
    colours = torch.rand(n, NUM_PRIMITIVES, 3, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    return screen_parameters(ell, colours, pg.Intrinsics.framing(size))


@pytest.mark.parametrize("tile", [4, 8])
def test_tiled_splat_matches_a_dense_evaluation_values_and_gradients(tile: int) -> None:
    params, valid = _screen_params(2, 28, seed=3)
    params = params.detach().requires_grad_()
    s = sp.SplatSettings(tile=tile)
    fg, alpha = sp.splat(params, valid, 2, 28, 26, s)  # width not a multiple of the tile: padding is cropped
    ref_fg, ref_alpha = _dense_reference(params, 2, 28, 26, s)
    covered = ref_alpha[:, 0] > 1e-3
    assert torch.allclose(alpha, ref_alpha, atol=1e-10)
    assert torch.allclose(fg.permute(0, 2, 3, 1)[covered], ref_fg.permute(0, 2, 3, 1)[covered], atol=1e-8)
    weights = torch.rand(2, 4, 28, 26, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    weights[:, :3] *= ref_alpha.detach()  # foreground colour only matters where there is coverage
    (g_tiled,) = torch.autograd.grad((torch.cat([fg, alpha], 1) * weights).sum(), params)
    (g_dense,) = torch.autograd.grad((torch.cat([ref_fg, ref_alpha], 1) * weights).sum(), params)
    assert torch.allclose(g_tiled, g_dense, rtol=1e-6, atol=1e-8)


def _directional_difference(f, x: torch.Tensor, v: torch.Tensor, eps: float = 1e-6) -> float:
    return float((f(x + eps * v) - f(x - eps * v)) / (2 * eps))


def test_splat_backward_matches_finite_differences_for_every_parameter() -> None:
    params, valid = _screen_params(1, 20, seed=4)
    params = params.detach()
    weights = torch.rand(1, 4, 20, 20, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def f(p):
        fg, alpha = sp.splat(p, valid, 1, 20, 20)
        return (torch.cat([fg, alpha], 1) * weights).sum()

    x = params.clone().requires_grad_()
    f(x).backward()
    g = torch.Generator().manual_seed(2)
    for column in range(sp.NUM_PARAMS):  # each parameter kind on its own, over all primitives at once
        v = torch.zeros_like(params)
        v[:, column] = torch.randn(params.shape[0], generator=g, dtype=torch.float64) * params[:, column].abs().mean()
        analytic = float((x.grad * v).sum())
        numeric = _directional_difference(f, params, v)
        assert abs(analytic - numeric) <= 1e-5 + 1e-4 * abs(numeric), (column, analytic, numeric)


def test_gradients_wrt_joints_and_rotations_match_central_differences() -> None:
    jc, rc = posed(1, 5, torch.float64)
    intr = pg.Intrinsics.framing(16)
    r = PrimitivesRenderer()
    weights = torch.rand(1, 4, 16, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)

    def loss(j, rot):
        out = r(j, rot, intr)
        return (torch.cat([out.images, out.alpha], 1) * weights).sum()

    j = jc.clone().requires_grad_()
    omega = torch.zeros(1, 24, 3, dtype=torch.float64, requires_grad=True)  # rotation perturbation R exp(omega)
    loss(j, rc @ pg.rotations.axis_angle_to_matrix(omega)).backward()
    assert float(j.grad.abs().max()) > 1e-2 and float(omega.grad.abs().max()) > 1e-2
    g = torch.Generator().manual_seed(3)
    directions = [torch.randn(1, 24, 3, generator=g, dtype=torch.float64) for _ in range(3)]
    for k in (0, 7, 15, 18, 22):  # single coordinates of the root, an ankle, the head, an elbow, a hand
        v = torch.zeros(1, 24, 3, dtype=torch.float64)
        v[0, k, k % 3] = 1.0
        directions.append(v)
    zero = torch.zeros(1, 24, 3, dtype=torch.float64)
    for v in directions:
        numeric = _directional_difference(lambda x: loss(x, rc), jc, v)
        analytic = float((j.grad * v).sum())
        assert abs(analytic - numeric) <= 1e-5 + 1e-4 * abs(numeric), ("joints", analytic, numeric)
        numeric = _directional_difference(lambda w: loss(jc, rc @ pg.rotations.axis_angle_to_matrix(w)), zero, v)
        analytic = float((omega.grad * v).sum())
        assert abs(analytic - numeric) <= 1e-5 + 1e-4 * abs(numeric), ("rotations", analytic, numeric)


def test_projected_joints_land_on_the_body_over_500_random_poses_and_views() -> None:
    jc, rc = posed(500, 6)
    intr = pg.Intrinsics.framing(64)
    with torch.no_grad():
        alpha = PrimitivesRenderer()(jc, rc, intr).alpha[:, 0]
    uv = pg.project(jc, intr).floor().long()
    inside_image = (uv >= 0).all(-1) & (uv[..., 0] < 64) & (uv[..., 1] < 64)
    assert bool(inside_image.all()), "the default framing keeps every joint in the picture"
    b = torch.arange(500)[:, None].expand(-1, 24)
    on_body = alpha[b, uv[..., 1].clamp(0, 63), uv[..., 0].clamp(0, 63)] > 0.5
    assert float(on_body.float().mean()) >= 0.95, float(on_body.float().mean())


def _pixel(image: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    return image[:, int(uv[1]), int(uv[0])]


def test_left_and_right_limbs_get_distinct_subject_colours() -> None:
    bp = torch.zeros(1, 23, 3)  # T-pose, seen from the front: the subject's left is on the image's right
    jc, rc = frontal(bp)
    intr = pg.Intrinsics.framing(128)
    out = PrimitivesRenderer(subject="ada")(jc, rc, intr)
    uv = pg.project((jc[0, 18] + jc[0, 16]) / 2, intr)  # middle of the left upper arm
    uv_r = pg.project((jc[0, 19] + jc[0, 17]) / 2, intr)
    assert float(uv[0]) > 64 > float(uv_r[0])
    left, right = _pixel(out.images[0], uv), _pixel(out.images[0], uv_r)
    ada = SUBJECTS[0].colours
    assert float(left[2]) > float(left[0]) and float(right[0]) > float(right[2])  # blue vs red sleeves
    assert float((left - right).abs().sum()) > 0.5
    hue = torch.tensor(ada["left_arm"]) / max(ada["left_arm"])
    assert torch.allclose(left / left.max(), hue, atol=0.15)


def test_nearer_parts_occlude_farther_ones() -> None:
    # Left arm folded across the chest: from the front the forearm covers the chest, from the back it is hidden.
    bp = torch.zeros(1, 23, 3)
    bp[0, 16 - 1] = torch.tensor([0.0, -1.2, -1.3])  # left shoulder: arm down and forward
    bp[0, 18 - 1] = torch.tensor([0.0, -1.6, 0.0])  # left elbow bent towards the body's front
    go = torch.zeros(1, 3)
    joints, rots = pg.forward_kinematics(go, bp)
    assert float(joints[0, 20, 2] - joints[0, 9, 2]) > 0.1, "the wrist is in front of the chest"
    intr = pg.Intrinsics.framing(128)
    r = PrimitivesRenderer(subject="ada")
    ada = SUBJECTS[0].colours
    for view, expect in (((0.0, 0.0, 0.0), "left_arm"), ((0.0, math.pi, 0.0), "torso")):
        jc, rc = pg.to_camera_frame(joints, rots, torch.tensor([view]), 4.0)
        img = r(jc, rc, intr).images[0]
        c = _pixel(img, pg.project((jc[0, 18] + jc[0, 20]) / 2, intr))
        want = torch.tensor(ada[expect])
        other = torch.tensor(ada["torso" if expect == "left_arm" else "left_arm"])
        # Compare chromaticity (shading scales brightness): the expected part's colour is the closer one.
        assert float((c / c.sum() - want / want.sum()).norm()) < float((c / c.sum() - other / other.sum()).norm())


def test_shading_darkens_rims_and_far_parts() -> None:
    grey = {slot: (0.8, 0.8, 0.8) for slot in COLOUR_SLOTS}
    same = Subject("grey", 1.0, grey)  # every part the same colour: brightness differences are shading only
    bp = torch.zeros(1, 23, 3)
    bp[0, 16 - 1, 1] = -0.8  # left arm swung forward (towards the camera) ...
    bp[0, 17 - 1, 1] = -0.8  # ... and the right arm backwards
    jc, rc = frontal(bp)
    assert float(jc[0, 20, 2]) < float(jc[0, 21, 2]) - 0.5
    intr = pg.Intrinsics.framing(128)
    img = PrimitivesRenderer()(jc, rc, intr, subject=same).images[0].sum(0)

    def peak(a: int, b: int) -> float:  # brightest pixel around the middle of bone a-b (the dome's top)
        u, v = pg.project((jc[0, a] + jc[0, b]) / 2, intr).long().tolist()
        return float(img[v - 2:v + 3, u - 2:u + 3].max())

    assert peak(18, 20) > peak(19, 21) * 1.1  # near forearm brighter than the far one
    mid = pg.project((jc[0, 4] + jc[0, 7]) / 2, intr)  # centre of the left shin, ~5 px wide here
    assert float(img[int(mid[1]), int(mid[0])]) > float(img[int(mid[1]), int(mid[0]) - 2])  # rim darker


# --------------------------------------------------------------------------------------------- subjects, backgrounds
def test_subjects_by_name_id_random_and_per_sample() -> None:
    jc, rc = posed(3, 7)
    intr = pg.Intrinsics.framing(32)
    r = PrimitivesRenderer()
    by_name = r(jc, rc, intr, subject="ben").images
    assert torch.equal(by_name, r(jc, rc, intr, subject=1).images)
    assert not torch.allclose(by_name, r(jc, rc, intr, subject="ada").images)
    a = r(jc, rc, intr, subject="random", generator=torch.Generator().manual_seed(5)).images
    b = r(jc, rc, intr, subject="random", generator=torch.Generator().manual_seed(5)).images
    c = r(jc, rc, intr, subject="random", generator=torch.Generator().manual_seed(6)).images
    assert torch.equal(a, b) and not torch.allclose(a, c)
    mixed = r(jc, rc, intr, subject=torch.tensor([0, 1, 2])).images
    for i in range(3):
        assert torch.allclose(mixed[i], r(jc[i:i + 1], rc[i:i + 1], intr, subject=i).images[0], atol=1e-6)
    # Thickness changes the silhouette: 'ben' (1.15) covers more than 'cleo' (0.9).
    assert float(r(jc, rc, intr, subject="ben").alpha.sum()) > float(r(jc, rc, intr, subject="cleo").alpha.sum())
    assert set(COLOUR_SLOTS) == set(SUBJECTS[0].colours)


def test_random_backgrounds_are_textured_and_seeded() -> None:
    jc, rc = posed(2, 8)
    intr = pg.Intrinsics.framing(32)
    r = PrimitivesRenderer(background="noise")
    a = r(jc, rc, intr, generator=torch.Generator().manual_seed(1))
    b = r(jc, rc, intr, generator=torch.Generator().manual_seed(1))
    c = r(jc, rc, intr, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a.images, b.images) and not torch.allclose(a.images, c.images)
    bg = a.images.permute(0, 2, 3, 1)[a.alpha[:, 0] < 1e-6]
    assert float(bg.std(0).mean()) > 0.02  # textured, not plain
    assert torch.allclose(a.alpha, c.alpha)  # the body does not depend on the background
    mixed = PrimitivesRenderer(background="random")(jc, rc, intr, generator=torch.Generator().manual_seed(3))
    assert float(mixed.images.min()) >= 0 and float(mixed.images.max()) <= 1


# --------------------------------------------------------------------------------------------- bad input
def test_bad_inputs_get_clear_errors() -> None:
    jc, rc = posed(2, 9)
    intr = pg.Intrinsics.framing(32)
    r = PrimitivesRenderer()
    bad = jc.clone()
    bad[0, 3, 1] = float("nan")
    with pytest.raises(pg.ShapeError, match="NaN"):
        r(bad, rc, intr)
    with pytest.raises(pg.ShapeError, match=r"\(B, 24, 3\)"):
        r(jc[:, :23], rc, intr)
    with pytest.raises(pg.ShapeError, match=r"\(2, 24, 3, 3\)"):
        r(jc, rc[:1], intr)
    with pytest.raises(pg.ShapeError, match="rotation matrices"):
        r(jc, rc * 2.0, intr)
    with pytest.raises(pg.ShapeError, match="in front of the camera"):
        r(jc - torch.tensor([0.0, 0.0, 4.0]), rc, intr)
    for fx in (0.0, -10.0):
        with pytest.raises(pg.ShapeError, match="focal"):
            pg.Intrinsics(fx, 50.0, 16.0, 16.0, 32, 32)
    with pytest.raises(pg.ConfigError, match="ada, ben"):
        r(jc, rc, intr, subject="zoe")
    with pytest.raises(pg.ConfigError, match="ids are 0"):
        r(jc, rc, intr, subject=17)
    with pytest.raises(pg.ConfigError, match="unknown subject"):
        PrimitivesRenderer(subject="nobody")
    with pytest.raises(pg.ConfigError, match="plain, noise, random"):
        PrimitivesRenderer(background="stripes")
    with pytest.raises(pg.ShapeError, match="one id per sample"):
        r(jc, rc, intr, subject=torch.tensor([0, 1, 2]))
