"""The anny renderer: contract, gradients, the body's fit to the skeleton, subjects, anny's own shapes, bad input.

Skipped when anny is not installed (``pip install 'posegen[anny]'``). The first run on a machine builds the anny body
cache (anny parses its assets: 1-2 minutes); later runs load it in milliseconds.
"""

from __future__ import annotations

import importlib.util
import math
import sys

import pytest
import torch

import posegen_core as pg
from posegen_plugins.renderers.anny import AnnyRenderer, asset, rig
from posegen_plugins.renderers.anny.subjects import PHENOTYPE_LABELS, sample_subjects

needs_anny = pytest.mark.skipif(importlib.util.find_spec("anny") is None,
                                reason="the anny renderer needs pip install 'posegen[anny]'")


@pytest.fixture(scope="module")
def renderer() -> AnnyRenderer:
    if importlib.util.find_spec("anny") is None:
        pytest.skip("the anny renderer needs pip install 'posegen[anny]'")
    return AnnyRenderer(points=512)


def posed(n: int, seed: int, dtype=torch.float32, distance: float = 4.0, spread: float = 0.3):
    g = torch.Generator().manual_seed(seed)
    body_pose = torch.randn(n, 23, 3, generator=g, dtype=torch.float64) * spread
    joints, rots = pg.forward_kinematics(torch.zeros(n, 3, dtype=torch.float64), body_pose)
    az = (torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1) * math.pi
    el = (torch.rand(n, generator=g, dtype=torch.float64) - 0.5) * math.pi / 2
    view = pg.rotations.matrix_to_axis_angle(
        pg.rotations.rotation_about_axis("x", el) @ pg.rotations.rotation_about_axis("y", az))
    jc, rc = pg.to_camera_frame(joints, rots, view, distance)
    return jc.to(dtype), rc.to(dtype)


def test_registered_and_differentiable() -> None:
    info = pg.get_registry().plugins["renderer"]["anny"]
    assert info.factory is AnnyRenderer and AnnyRenderer.differentiable


def test_without_anny_building_it_says_how_to_install(monkeypatch) -> None:
    """Runs with or without anny: a missing package (None in sys.modules makes its import fail) gives the hint."""
    for name in ("anny", "anny.models", "anny.models.phenotype"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(pg.PluginError, match=r"pip install 'posegen\[anny\]'"):
        pg.create_renderer("anny")


def test_output_follows_the_contract_and_covers_the_skeleton(renderer) -> None:
    jc, rc = posed(8, 0)
    intr = pg.Intrinsics.framing(64)
    out = renderer(jc, rc, intr, subject="random", generator=torch.Generator().manual_seed(0))
    assert out.images.shape == (8, 3, 64, 64) and out.alpha.shape == (8, 1, 64, 64)
    assert out.images.dtype == torch.float32
    assert 0.0 <= float(out.images.min()) and float(out.images.max()) <= 1.0
    # Every projected torso, hip, knee, shoulder and head joint lies on the body (alpha > 0.5 at its pixel).
    uv = pg.project(jc, intr).round().long().clamp(0, 63)
    inner = [0, 1, 2, 3, 4, 5, 6, 9, 12, 15, 16, 17]
    a = out.alpha[torch.arange(8)[:, None], 0, uv[:, inner, 1], uv[:, inner, 0]]
    assert float((a > 0.5).float().mean()) > 0.95
    # Shading shows the form: the body is not one flat colour per region (Lambert on the normals).
    assert float(out.images[:, :, out.alpha[0, 0] > 0.9].std()) > 0.05


def test_gradients_wrt_joints_and_rotations_match_central_differences(renderer) -> None:
    jc, rc = posed(1, 5, torch.float64)
    intr = pg.Intrinsics.framing(16)
    weights = torch.rand(1, 4, 16, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)

    def loss(j, rot):
        out = renderer(j, rot, intr, subject=3)
        return (torch.cat([out.images, out.alpha], 1) * weights).sum()

    j = jc.clone().requires_grad_()
    omega = torch.zeros(1, 24, 3, dtype=torch.float64, requires_grad=True)  # R exp(omega)
    loss(j, rc @ pg.rotations.axis_angle_to_matrix(omega)).backward()
    assert float(j.grad.abs().max()) > 1e-2 and float(omega.grad.abs().max()) > 1e-3
    g = torch.Generator().manual_seed(3)
    zero = torch.zeros(1, 24, 3, dtype=torch.float64)
    eps = 1e-6
    for _ in range(4):
        v = torch.randn(1, 24, 3, generator=g, dtype=torch.float64)
        numeric = float(loss(jc + eps * v, rc) - loss(jc - eps * v, rc)) / (2 * eps)
        analytic = float((j.grad * v).sum())
        assert abs(analytic - numeric) <= 1e-5 + 1e-4 * abs(numeric), ("joints", analytic, numeric)
        rp = rc @ pg.rotations.axis_angle_to_matrix(zero + eps * v)
        rm = rc @ pg.rotations.axis_angle_to_matrix(zero - eps * v)
        numeric = float(loss(jc, rp) - loss(jc, rm)) / (2 * eps)
        analytic = float((omega.grad * v).sum())
        assert abs(analytic - numeric) <= 1e-5 + 1e-4 * abs(numeric), ("rotations", analytic, numeric)


def test_body_joints_stay_near_the_labels(renderer) -> None:
    """anny's joints, carried by the rig, stay within a few centimetres of the label joints (exactly on them at the
    ends of the stretched limb segments: knees, ankles, feet, elbows, hands)."""
    jc, rc = posed(64, 7, torch.float64, spread=0.4)
    subjects = sample_subjects(64, torch.Generator().manual_seed(1))
    _, _, body_joints, _ = renderer.pose(subjects, jc, rc)
    err = (body_joints - jc).norm(dim=-1) * 1000  # mm
    assert float(err.mean()) < 20 and float(err.mean(0).max()) < 50
    limb_ends = [4, 5, 7, 8, 10, 11, 18, 19, 22, 23]
    assert float(err[:, limb_ends].max()) < 1e-6


def test_limb_segments_keep_their_cross_section_and_reach_the_child_joint(renderer) -> None:
    """At SMPL's rest pose, points skinned to the forearm only keep their distance from the bone axis (times the
    subject's overall scale) while their position along the bone is stretched to span the label elbow -> wrist."""
    subjects = sample_subjects(2, torch.Generator().manual_seed(4))
    rest = pg.skeleton.rest_joints(torch.float64)[None].expand(2, -1, -1)
    rots = torch.eye(3, dtype=torch.float64).expand(2, 24, 3, 3)
    posed_pts, normals, _, scale = renderer.pose(subjects, rest, rots)
    pts, aj = renderer.rest_bodies(subjects, torch.float64)
    only = (renderer.body.weights[:, 18] > 0.999).nonzero()[:, 0]
    assert len(only) > 5

    def axial_radial(x, a, b):
        u = (b - a) / (b - a).norm(dim=-1, keepdim=True)
        d = x - a[:, None]
        t = (d * u[:, None]).sum(-1)
        return t / (b - a).norm(dim=-1)[:, None], (d - t[..., None] * u[:, None]).norm(dim=-1)

    t_anny, r_anny = axial_radial(pts[:, only], aj[:, 18], aj[:, 20])
    t_posed, r_posed = axial_radial(posed_pts[:, only], rest[:, 18], rest[:, 20])
    torch.testing.assert_close(t_posed, t_anny)  # same fraction of the bone
    torch.testing.assert_close(r_posed, r_anny * scale[:, None])  # same cross-section, overall scale
    assert torch.allclose(normals.norm(dim=-1), torch.ones(1, dtype=torch.float64))


@needs_anny
def test_subject_shapes_match_anny_own_model(renderer) -> None:
    """The cached surfels and joints of a random phenotype equal anny's own rest mesh and bone heads."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = asset._anny_model()
    subjects = sample_subjects(3, torch.Generator().manual_seed(9))
    pts, joints = renderer.rest_bodies(subjects, torch.float64)
    kwargs = {k: subjects.phenotype[:, i].double() for i, k in enumerate(PHENOTYPE_LABELS)}
    coeffs = model.get_phenotype_blendshape_coefficients(**kwargs)
    verts = model.get_rest_vertices(coeffs) @ asset.ANNY_TO_SMPL.T
    torch.testing.assert_close(pts, verts[:, renderer.body.vertex_index])
    labels = list(model.bone_labels)
    import anny.skinning.skinning as skinning

    bone_heads = skinning.apply_linear_blendshape(model.template_bone_heads, model.bone_heads_blendshapes, coeffs)
    bone_heads = bone_heads @ asset.ANNY_TO_SMPL.T
    torch.testing.assert_close(joints[:, 4], bone_heads[:, labels.index("lowerleg01.L")])
    torch.testing.assert_close(joints[:, 15], bone_heads[:, labels.index("head")])
    # Shapes differ between subjects by centimetres (heavy vs thin, tall vs short proportions).
    assert float((pts[0] - pts[1]).norm(dim=-1).mean()) > 0.01


def test_subjects_are_seeded_and_ids_are_fixed_people(renderer) -> None:
    jc, rc = posed(2, 1)
    intr = pg.Intrinsics.framing(48)
    a = renderer(jc, rc, intr, subject="random", generator=torch.Generator().manual_seed(5)).images
    b = renderer(jc, rc, intr, subject="random", generator=torch.Generator().manual_seed(5)).images
    c = renderer(jc, rc, intr, subject="random", generator=torch.Generator().manual_seed(6)).images
    assert torch.equal(a, b) and not torch.equal(a, c)
    one = renderer(jc, rc, intr, subject=7).images
    ids = renderer(jc, rc, intr, subject=torch.tensor([7, 8])).images
    assert torch.equal(one[0], ids[0]) and not torch.equal(one[1], ids[1])
    s = sample_subjects(500, torch.Generator().manual_seed(0))
    assert float(s.phenotype[:, 0].min()) < 0.05 and float(s.phenotype[:, 0].max()) > 0.95  # both sexes
    assert float(s.phenotype[:, 1].min()) >= 0.4  # adults and teenagers only (the skeleton is an adult's)


def test_bad_inputs_get_clear_errors(renderer) -> None:
    jc, rc = posed(1, 0)
    intr = pg.Intrinsics.framing(32)
    with pytest.raises(pg.ConfigError, match="integer id"):
        renderer(jc, rc, intr, subject="ada")
    with pytest.raises(pg.ShapeError, match="one id per sample"):
        renderer(jc, rc, intr, subject=torch.tensor([1, 2]))
    with pytest.raises(pg.ShapeError, match="in front of the camera"):
        renderer(jc - torch.tensor([0.0, 0.0, 10.0]), rc, intr)
    with pytest.raises(pg.ShapeError, match="rotation matrices"):
        renderer(jc, rc * 2, intr)
    with pytest.raises(pg.ConfigError, match="points"):
        AnnyRenderer(points=10)


def test_body_shape_gradients_reach_the_phenotype(renderer) -> None:
    """Pixels are differentiable in anny's phenotype too (what a generator of body shapes would need)."""
    from dataclasses import replace

    jc, rc = posed(1, 2, torch.float64)
    intr = pg.Intrinsics.framing(16)
    base = sample_subjects(1, torch.Generator().manual_seed(11))
    phen = base.phenotype.double()
    weights = torch.rand(1, 4, 16, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)

    def loss(p):
        out = renderer(jc, rc, intr, subject=replace(base, phenotype=p))
        return (torch.cat([out.images, out.alpha], 1) * weights).sum()

    p = phen.clone().requires_grad_()
    loss(p).backward()
    assert float(p.grad.abs().max()) > 1e-3
    eps = 1e-6
    for k in range(len(PHENOTYPE_LABELS)):
        v = torch.zeros_like(phen)
        v[0, k] = 1.0
        numeric = float(loss(phen + eps * v) - loss(phen - eps * v)) / (2 * eps)
        assert abs(float(p.grad[0, k]) - numeric) <= 1e-5 + 1e-4 * abs(numeric), (PHENOTYPE_LABELS[k], numeric)


def test_posegen_render_command_draws_anny_bodies(tmp_path, renderer) -> None:
    from click.testing import CliRunner
    from PIL import Image

    from posegen_core.cli import cli

    out = tmp_path / "grid.png"
    res = CliRunner().invoke(cli, ["render", "--renderer", "anny", "-n", "2", "--views", "front,top", "--size", "48",
                                   "--scale", "1", "--subject", "3", "--out", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    img = torch.from_numpy(__import__("numpy").asarray(Image.open(out)).copy()).float() / 255
    bg = torch.tensor((0.42, 0.45, 0.48))
    assert float(((img - bg).abs().amax(-1) > 0.1).float().mean()) > 0.03  # bodies, not an empty grid
