"""Conversions between posegen's contract and A-NeRF's conventions (reference/anerf_notes.md sections 1.1-1.2).

posegen: metres, OpenCV camera frame (x right, y down, z forward), SMPL-24 joints and camera-frame global rotations
R_j that map SMPL's canonical body axes into the camera frame.

A-NeRF: "units" of ``ext_scale`` x ``dataset_ext_scale`` = 0.714 x the hard-coded SMPL rest pose
(``posegen_core.skeleton.REST_JOINTS_ANERF``), a -y-up world and OpenGL camera-to-world matrices (c2w; x right,
y up, looking along -z). Its network only sees ``skts = inv(L_j)`` with ``L_j = [G_j | J_j]`` and the rays, so the
encoding is invariant to the choice of world frame: we can work directly in the camera frame, where the ray origin is
0 and ``G_j = R_j``, after scaling metres to units. posegen's rest skeleton is the same SMPL rest pose x 0.43 m, so
one unit is 0.43 / 0.714 = 0.602 m and a posegen skeleton has exactly A-NeRF's SURREAL rest proportions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

import posegen_core as pg

#: A-NeRF's data scale: dataset_ext_scale (0.25 / 0.00035) x ext_scale (0.001).
ANERF_DATA_SCALE = 0.25 / 0.00035 * 0.001
#: A-NeRF units per metre for a posegen skeleton (its rest pose is A-NeRF's SMPL rest pose x 0.43 m).
UNITS_PER_METRE = ANERF_DATA_SCALE / pg.skeleton.ANERF_UNITS_TO_METRES
#: Official rendering expansions of the bounding cylinder's top (head side) and bottom (feet side).
TOP_EXPAND, BOTTOM_EXPAND = 1.6, 1.1


@dataclass(frozen=True)
class RayConvention:
    """How pixels become rays: the one place where posegen's own convention and the official one differ.

    ``pixel_offset``: rays go through (col + offset, row + offset); the official ``get_rays`` uses integer pixel
    coordinates (0), posegen's renderers pixel centres (0.5). ``official_bounds``: the official ray bounds (the
    bounding cylinder is infinite along the world vertical, only its ground-plane circle sets near/far; every pixel
    of the projected cylinder's box is rendered, pixels whose ray misses the circle at the image's mean near/far)
    instead of posegen's capped cylinder (bounded also for views along the vertical; only rays that meet it are
    cast). A loaded official checkpoint renders with ``official``, which reproduces the official images.
    """

    name: str
    pixel_offset: float
    official_bounds: bool


RAY_CONVENTIONS = {
    "official": RayConvention("official", 0.0, True),
    "posegen": RayConvention("posegen", 0.5, False),
}


def ray_convention(name: str | RayConvention) -> RayConvention:
    if isinstance(name, RayConvention):
        return name
    if name not in RAY_CONVENTIONS:
        raise pg.ConfigError(f"unknown A-NeRF ray convention {name!r}; use one of {sorted(RAY_CONVENTIONS)}.")
    return RAY_CONVENTIONS[name]


def rest_pose_units(dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
    """The SMPL rest pose in A-NeRF units (official fallback ``smpl_rest_pose * ext_scale``), pelvis at 0."""
    return torch.tensor(pg.skeleton.REST_JOINTS_ANERF, dtype=dtype, device=device) * ANERF_DATA_SCALE


def retarget(joints: torch.Tensor, rotations: torch.Tensor, rest_pose: torch.Tensor) -> torch.Tensor:
    """Re-pose ``rest_pose`` (24, 3) with the skeleton's rotations, keeping the root: the subject's own bone lengths.

    The local rotations are recovered from the global ones (R_local = R_parent^T R_j), as A-NeRF's ``get_smpl_l2ws``
    would use them for a novel pose.
    """
    parents = pg.skeleton.PARENTS
    local = [rotations[:, 0]] + [rotations[:, p].transpose(-1, -2) @ rotations[:, j]
                                 for j, p in enumerate(parents) if p >= 0]
    posed, _ = pg.kinematics.batch_rigid_transform(torch.stack(local, 1), rest_pose.to(joints))
    return posed + joints[:, :1]


def world_to_joint(joints_units: torch.Tensor, rotations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-joint ``(G_j^T, G_j^T J_j)`` so that the joint-local point is ``p_j = G_j^T x - G_j^T J_j`` (skts)."""
    gt = rotations.transpose(-1, -2)
    return gt, (gt @ joints_units.unsqueeze(-1)).squeeze(-1)


def opengl_c2w_to_extrinsic(c2w: torch.Tensor) -> torch.Tensor:
    """A-NeRF's OpenGL camera-to-world (..., 4, 4) -> OpenCV world-to-camera extrinsic (..., 4, 4)."""
    swap = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=c2w.dtype, device=c2w.device))
    return torch.linalg.inv(c2w @ swap)


def extrinsic_to_opengl_c2w(extrinsic: torch.Tensor) -> torch.Tensor:
    """OpenCV world-to-camera (..., 4, 4) -> A-NeRF's OpenGL camera-to-world (``swap_mat(inv(E))``)."""
    swap = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=extrinsic.dtype, device=extrinsic.device))
    return torch.linalg.inv(extrinsic) @ swap


def anerf_to_contract(
    skts: torch.Tensor, c2w: torch.Tensor, units_per_metre: float = UNITS_PER_METRE
) -> tuple[torch.Tensor, torch.Tensor]:
    """An official A-NeRF frame (world ``skts`` (B, 24, 4, 4), OpenGL ``c2w`` (B, 4, 4)) -> the renderer contract:
    camera-frame joints (B, 24, 3) in metres and camera-frame global rotations (B, 24, 3, 3)."""
    l2w = torch.linalg.inv(skts)
    ext = opengl_c2w_to_extrinsic(c2w)
    rot, trans = ext[:, None, :3, :3], ext[:, None, :3, 3]
    joints = (rot @ l2w[..., :3, 3:]).squeeze(-1) + trans
    return joints / units_per_metre, rot @ l2w[..., :3, :3]


def world_up(rotations: torch.Tensor, up: torch.Tensor | None = None) -> torch.Tensor:
    """The world's up direction in the camera frame (B, 3), unit length: ``up`` ((3,) or (B, 3)) when given, else the
    root's canonical +y axis (posegen's bodies stand upright in the body frame, which the viewpoint K rotates)."""
    if up is None:
        return rotations[:, 0, :, 1]
    up = torch.as_tensor(up, dtype=rotations.dtype, device=rotations.device)
    if up.shape not in ((3,), (rotations.shape[0], 3)):
        raise pg.ShapeError(f"up must be one camera-frame direction (3,) or one per image ({rotations.shape[0]}, 3); "
                            f"got shape {tuple(up.shape)}.")
    up = up.expand(rotations.shape[0], 3)
    norm = up.norm(dim=-1, keepdim=True)
    if bool((norm < 1e-8).any()):
        raise pg.ShapeError("up must be a non-zero direction (the world's vertical in the camera frame).")
    return up / norm


def bounding_cylinder(
    joints_units: torch.Tensor, axis: torch.Tensor, extend: float,
    top_expand: float = TOP_EXPAND, bottom_expand: float = BOTTOM_EXPAND,
) -> dict[str, torch.Tensor]:
    """A-NeRF's bounding cylinder around the skeleton (``get_kp_bounding_cylinder``): centre (the pelvis), unit
    ``axis`` (B, 3) (the world vertical, ``world_up``), radius = largest joint distance from the axis + ``extend``,
    and the axial top/bottom of the joints expanded by ``extend`` x 1.6 (head side) and x 1.1 (feet side)."""
    centre = joints_units[:, 0]
    rel = joints_units - centre[:, None]
    along = (rel * axis[:, None]).sum(-1)
    radial = (rel - along[..., None] * axis[:, None]).norm(dim=-1)
    return {
        "centre": centre, "axis": axis, "radius": radial.max(1).values + extend,
        "top": along.max(1).values + extend * top_expand, "bottom": along.min(1).values - extend * bottom_expand,
    }


def ray_cylinder_bounds(
    dirs: torch.Tensor, centre: torch.Tensor, axis: torch.Tensor, radius: torch.Tensor, top: torch.Tensor,
    bottom: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Near/far depths (R,) of rays from the camera centre (origin) with directions ``dirs`` (R, 3) through a capped
    cylinder (per-ray parameters), near clamped at 0 as in ``get_near_far_in_cylinder``; and which rays hit it."""
    oc = -centre
    d_ax, o_ax = (dirs * axis).sum(-1), (oc * axis).sum(-1)
    dp, op = dirs - d_ax[:, None] * axis, oc - o_ax[:, None] * axis
    a = (dp * dp).sum(-1).clamp_min(1e-12)
    b = 2.0 * (op * dp).sum(-1)
    c = (op * op).sum(-1) - radius ** 2
    disc = b * b - 4.0 * a * c
    root = disc.clamp_min(0.0).sqrt()
    t0, t1 = (-b - root) / (2.0 * a), (-b + root) / (2.0 * a)
    safe = torch.where(d_ax.abs() < 1e-9, torch.full_like(d_ax, 1e-9), d_ax)
    s0, s1 = (bottom - o_ax) / safe, (top - o_ax) / safe
    parallel = d_ax.abs() < 1e-9
    inside_slab = (o_ax >= bottom) & (o_ax <= top)
    big = torch.full_like(s0, 1e10)
    a0 = torch.where(parallel, torch.where(inside_slab, -big, big), torch.minimum(s0, s1))
    a1 = torch.where(parallel, torch.where(inside_slab, big, -big), torch.maximum(s0, s1))
    near = torch.maximum(torch.maximum(t0, a0), torch.zeros_like(t0))
    far = torch.minimum(t1, a1)
    hit = (disc > 0) & (far > near + 1e-6)
    return near, far, hit


def cylinder_pixel_box(cyl: dict[str, torch.Tensor], index: int, intrinsics: pg.Intrinsics,
                       units_per_metre: float) -> tuple[int, int, int, int]:
    """Pixel box (row0, row1, col0, col1), end-exclusive, holding the projection of image ``index``'s cylinder;
    the whole image when part of the cylinder is behind the camera."""
    with torch.no_grad():
        angles = torch.linspace(0.0, 2.0 * torch.pi, 17, dtype=cyl["centre"].dtype, device=cyl["centre"].device)[:-1]
        axis = cyl["axis"][index]
        helper = torch.tensor([1.0, 0.0, 0.0], dtype=axis.dtype, device=axis.device)
        if float(axis[0].abs()) > 0.9:
            helper = torch.tensor([0.0, 0.0, 1.0], dtype=axis.dtype, device=axis.device)
        u = torch.linalg.cross(axis, helper)
        u = u / u.norm()
        v = torch.linalg.cross(axis, u)
        # a polygon of 16 sides circumscribing the circle has circumradius r / cos(pi / 16)
        ring = (torch.cos(angles)[:, None] * u + torch.sin(angles)[:, None] * v) * (cyl["radius"][index] / 0.98)
        caps = [cyl["centre"][index] + axis * cyl[k][index] + ring for k in ("top", "bottom")]
        pts = torch.cat(caps) / units_per_metre
        h, w = intrinsics.height, intrinsics.width
        if bool((pts[:, 2] <= 1e-3).any()):
            return 0, h, 0, w
        uv = pg.project(pts, intrinsics)
        c0, r0 = (int(torch.floor(uv[:, k].min()).clamp(0, n)) for k, n in ((0, w), (1, h)))
        c1, r1 = (int(torch.ceil(uv[:, k].max()).clamp(0, n)) for k, n in ((0, w), (1, h)))
        return r0, r1, c0, c1


def pixel_directions(rows: torch.Tensor, cols: torch.Tensor, intrinsics: pg.Intrinsics,
                     pixel_offset: float = 0.5) -> torch.Tensor:
    """Camera-frame ray directions (R, 3) through pixel (row, col) + ``pixel_offset`` (0.5: pixel centres, posegen's
    convention; 0: integer coordinates, the official one). z component 1; A-NeRF does not normalise them."""
    x = (cols.to(torch.get_default_dtype()) + pixel_offset - intrinsics.cx) / intrinsics.fx
    y = (rows.to(torch.get_default_dtype()) + pixel_offset - intrinsics.cy) / intrinsics.fy
    return torch.stack([x, y, torch.ones_like(x)], -1)


def official_pixel_box(cyl: dict[str, torch.Tensor], index: int, intrinsics: pg.Intrinsics,
                       units_per_metre: float) -> tuple[int, int, int, int]:
    """The official ``cylinder_to_box_2d`` box (row0, row1, col0, col1), end-exclusive: 50 points on each cap circle
    (``linspace(0, 2 pi, 50)`` in the plane perpendicular to the axis, first direction = the camera's x axis made
    horizontal), projected as ``floor/ceil(f x / z) + int(c)``, clipped to [0, W - 1] x [0, H - 1] (so the last row
    and column are never rendered, as in the official code)."""
    with torch.no_grad():
        dt = torch.float64
        angles = torch.linspace(0.0, 2.0 * torch.pi, 50, dtype=dt, device=cyl["centre"].device)
        axis = cyl["axis"][index].to(dt)
        ex = torch.tensor([1.0, 0.0, 0.0], dtype=dt, device=axis.device)
        u = ex - (ex @ axis) * axis
        if float(u.norm()) < 1e-6:  # looking along the vertical: any horizontal direction
            ey = torch.tensor([0.0, 1.0, 0.0], dtype=dt, device=axis.device)
            u = ey - (ey @ axis) * axis
        u = u / u.norm()
        v = torch.linalg.cross(axis, u)
        ring = (torch.cos(angles)[:, None] * u + torch.sin(angles)[:, None] * v) * cyl["radius"][index].to(dt)
        centre = cyl["centre"][index].to(dt)
        caps = [centre + axis * cyl[k][index].to(dt) + ring for k in ("top", "bottom")]
        pts = torch.cat(caps) / units_per_metre
        h, w = intrinsics.height, intrinsics.width
        if bool((pts[:, 2] <= 1e-6).any()):
            return 0, h - 1, 0, w - 1
        x, y = intrinsics.fx * pts[:, 0] / pts[:, 2], intrinsics.fy * pts[:, 1] / pts[:, 2]
        c0 = min(max(int(torch.floor(x.min())) + int(intrinsics.cx), 0), w - 1)
        c1 = min(max(int(torch.ceil(x.max())) + int(intrinsics.cx), 0), w - 1)
        r0 = min(max(int(torch.floor(y.min())) + int(intrinsics.cy), 0), h - 1)
        r1 = min(max(int(torch.ceil(y.max())) + int(intrinsics.cy), 0), h - 1)
        return r0, r1, c0, c1


def infinite_cylinder_bounds(
    dirs: torch.Tensor, centre: torch.Tensor, axis: torch.Tensor, radius: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The official ``get_near_far_in_cylinder`` for rays from the camera centre: only the cylinder's ground-plane
    circle (the plane perpendicular to the vertical ``axis``) bounds the ray, so its height is unlimited. Returns
    near (clamped at 0 when the camera is inside the circle), far, and which rays meet the circle (the others get
    NaN; ``fill_missed_bounds`` gives them the official mean). Views along the vertical (top views) get very long
    bounds, as in the official code; ``RayConvention("posegen")`` caps the cylinder for them."""
    g = dirs - (dirs * axis).sum(-1, keepdim=True) * axis  # ray direction in the ground plane
    c = centre - (centre * axis).sum(-1, keepdim=True) * axis  # circle centre in the ground plane
    scale = g.norm(dim=-1).clamp_min(1e-12)  # a ray along the vertical: finite (huge) bounds, as good as official
    ray_dir = g / scale[:, None]
    k = (c * ray_dir).sum(-1)  # distance along the ray to the point closest to the centre
    dist2 = ((c * c).sum(-1) - k * k).clamp_min(0.0)
    q = (radius ** 2 - dist2).sqrt()  # NaN where the ray misses the circle
    near = torch.where(q < k, (k - q) / scale, torch.zeros_like(k))
    far = (k + q) / scale
    hit = ~torch.isnan(q)
    return near, far, hit


def fill_missed_bounds(near: torch.Tensor, far: torch.Tensor, hit: torch.Tensor,
                       image: torch.Tensor, n_images: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The official rule for rays inside the projected box that miss the cylinder: the mean near/far of the image's
    rays that hit it (``np.nanmean`` over the chunk; the official renderer's chunk holds one image). Returns the
    bounds and which rays can be rendered (images where no ray hits are left empty)."""
    w = hit.to(near.dtype)
    count = torch.zeros(n_images, dtype=near.dtype, device=near.device).index_add(0, image, w)
    sums = [torch.zeros(n_images, dtype=near.dtype, device=near.device).index_add(
        0, image, torch.where(hit, b, torch.zeros_like(b))) for b in (near, far)]
    mean_near, mean_far = (s / count.clamp_min(1.0) for s in sums)
    near = torch.where(hit, near, mean_near[image])
    far = torch.where(hit, far, mean_far[image])
    return near, far, count[image] > 0
