"""``posegen render``: render poses (from a pose source or a file) at chosen viewpoints into one PNG grid.

This is how a user looks at what a renderer makes: rows are poses, columns are viewpoints, optionally with the
projected skeleton drawn on top (left bones blue, right bones red). Works with any registered renderer.
"""

from __future__ import annotations

import math
from pathlib import Path

import click
import numpy as np
import torch

from .. import skeleton
from ..camera import Intrinsics, project, to_camera_frame
from ..errors import ConfigError, DataError
from .run import parse_set
from ..kinematics import forward_kinematics

#: Named viewpoints K (axis-angle in the camera frame, see posegen_core.camera).
VIEWS: dict[str, tuple[float, float, float]] = {
    "front": (0.0, 0.0, 0.0),
    "side": (0.0, math.pi / 2, 0.0),  # the subject's left side faces the camera
    "back": (0.0, math.pi, 0.0),
    "other-side": (0.0, -math.pi / 2, 0.0),
    "top": (math.pi / 2, 0.0, 0.0),
    "bottom": (-math.pi / 2, 0.0, 0.0),
    "high": (math.pi / 5, 0.0, 0.0),
}


def parse_views(text: str) -> torch.Tensor:
    """'front,side,0.3/0.5/0' -> (V, 3) viewpoints: names from VIEWS or x/y/z axis-angle triples in radians."""
    out = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        if item in VIEWS:
            out.append(VIEWS[item])
            continue
        parts = item.split("/")
        try:
            if len(parts) != 3:
                raise ValueError
            out.append(tuple(float(p) for p in parts))
        except ValueError:
            raise ConfigError(
                f"unknown view '{item}'; use a name ({', '.join(VIEWS)}) or an axis-angle triple such as 0.3/0.5/0 "
                "(radians), separated by commas."
            ) from None
    if not out:
        raise ConfigError("--views is empty; give at least one view, e.g. --views front,side,top.")
    return torch.tensor(out, dtype=torch.float32)


def _pose_arrays(data: dict[str, np.ndarray], path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Pick (N, 3) global_orient and (N, 23, 3) body_pose out of a file's arrays."""
    if "global_orient" in data and "body_pose" in data:
        go = np.asarray(data["global_orient"], dtype=np.float64).reshape(-1, 3)
        bp = np.asarray(data["body_pose"], dtype=np.float64)
        if bp.ndim == 2 and bp.shape[1] == 69:
            bp = bp.reshape(-1, 23, 3)
        if bp.shape[1:] != (23, 3) or len(bp) != len(go):
            raise DataError(
                f"{path}: body_pose must be (N, 23, 3) or (N, 69) with N = len(global_orient) = {len(go)}; "
                f"got {bp.shape}."
            )
        return go, bp
    for key in ("poses", "pose", "thetas", "arr_0"):
        if key in data:
            full = np.asarray(data[key], dtype=np.float64)
            if full.ndim == 3 and full.shape[1:] == (24, 3):
                full = full.reshape(len(full), 72)
            if full.ndim == 1 and full.shape[0] == 72:
                full = full[None]
            if full.ndim != 2 or full.shape[1] != 72:
                raise DataError(
                    f"{path}: '{key}' must hold SMPL 72-vectors (N, 72) or (N, 24, 3); got {full.shape}. "
                    "For AMASS SMPL-H files (156 numbers per frame) use the amass pose source instead."
                )
            return full[:, :3], full[:, 3:].reshape(-1, 23, 3)
    raise DataError(
        f"{path} holds arrays {sorted(data)}; expected global_orient + body_pose, or SMPL 72-vectors under "
        "'poses' or 'pose' (N, 72)."
    )


def load_pose_file(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Read poses from .npz (global_orient/body_pose or poses (N, 72)) or .npy ((N, 72) or (N, 24, 3))."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"pose file not found: {path}.")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as f:
                data = {k: f[k] for k in f.files}
        elif path.suffix == ".npy":
            data = {"poses": np.load(path, allow_pickle=False)}
        else:
            raise DataError(f"{path}: pose files must be .npz or .npy; got '{path.suffix}'.")
    except (ValueError, OSError) as e:
        raise DataError(f"could not read pose file {path}: {e}. Is it a numpy .npz/.npy file?") from None
    go, bp = _pose_arrays(data, path)
    if len(go) == 0:
        raise DataError(f"{path} holds no poses.")
    if not (np.isfinite(go).all() and np.isfinite(bp).all()):
        raise DataError(f"{path} contains NaN or infinite pose values.")
    return torch.as_tensor(go, dtype=torch.float32), torch.as_tensor(bp, dtype=torch.float32)


def load_poses(source: str, **options) -> tuple[torch.Tensor, torch.Tensor]:
    """A pose file path, or the name of a registered pose source."""
    if source.endswith((".npz", ".npy")) or Path(source).is_file():
        return load_pose_file(source)
    from ..plugins import create_pose_source

    poses = create_pose_source(source, **options).load()
    if len(poses) == 0:
        raise DataError(f"pose source '{source}' returned no poses.")
    return poses.global_orient.float(), poses.body_pose.float()


def render_grid(
    renderer_name: str = "primitives",
    poses: str = "default",
    count: int = 8,
    views: str = "front,side,top",
    size: int = 128,
    distance: float = 4.0,
    subject: str | None = None,
    skeleton_overlay: bool = False,
    scale: int | None = None,
    seed: int = 0,
    shuffle: bool = False,
    zero_orient: bool = False,
    renderer_options: dict[str, object] | None = None,
    out: str | Path = "render.png",
) -> dict[str, object]:
    """Library form of ``posegen render``: returns a summary dict (path, grid shape, timing)."""
    import time

    from ..drawing import save_grid
    from ..plugins import create_renderer

    if count < 1:
        raise ConfigError(f"--count must be at least 1; got {count}.")
    if not 8 <= size <= 4096:
        raise ConfigError(f"--size must be between 8 and 4096 pixels; got {size}.")
    if not distance > 0:
        raise ConfigError(f"--distance must be positive metres; got {distance}.")
    view_k = parse_views(views)
    go, bp = load_poses(poses)
    gen = torch.Generator().manual_seed(seed)
    n = len(go)
    idx = torch.randperm(n, generator=gen)[:count] if shuffle else torch.arange(min(count, n))
    go, bp = go[idx], bp[idx]
    if zero_orient:
        go = torch.zeros_like(go)
    renderer = create_renderer(renderer_name, **(renderer_options or {}))
    p, v = len(go), len(view_k)
    joints, rots = forward_kinematics(go, bp)
    joints = joints.repeat_interleave(v, 0)
    rots = rots.repeat_interleave(v, 0)
    k = view_k.repeat(p, 1)
    jc, rc = to_camera_frame(joints, rots, k, distance)
    intr = Intrinsics.framing(size, distance=distance)
    sub: object = None
    if subject is not None:
        sub = int(subject) if subject.isdigit() else subject
    images = []
    t0 = time.perf_counter()
    with torch.no_grad():
        for s in range(0, len(jc), 64):
            res = renderer(jc[s:s + 64], rc[s:s + 64], intr, subject=sub, generator=gen)
            images.append(res.images)
    seconds = time.perf_counter() - t0
    images_t = torch.cat(images)
    joints_2d = project(jc, intr) if skeleton_overlay else None
    scale = scale or max(1, round(192 / size))
    path = save_grid(images_t, out, joints_2d, ncol=v, scale=scale)
    return {"path": str(path), "poses": p, "views": v, "size": size, "render_seconds": round(seconds, 3),
            "renderer": renderer_name, "joints": skeleton.NUM_JOINTS}


@click.command()
@click.option("--renderer", "renderer_name", default="primitives", show_default=True, help="Registered renderer.")
@click.option("--poses", default="default", show_default=True,
              help="Pose source name, or a .npz (global_orient + body_pose, or poses (N,72)) / .npy (N,72) file.")
@click.option("--count", "-n", default=8, show_default=True, help="Number of poses (grid rows).")
@click.option("--views", default="front,side,top", show_default=True,
              help=f"Comma-separated views (grid columns): {', '.join(VIEWS)}, or x/y/z axis-angle radians.")
@click.option("--size", default=128, show_default=True, help="Image size in pixels (square).")
@click.option("--distance", default=4.0, show_default=True, help="Camera distance to the root, metres.")
@click.option("--subject", default=None, help="Subject appearance id or name (renderer-specific), or 'random'.")
@click.option("--skeleton/--no-skeleton", "skeleton_overlay", default=False, show_default=True,
              help="Draw the projected skeleton on top (left blue, right red).")
@click.option("--scale", default=None, type=int, help="Upscale factor of each image in the PNG (default: to ~192 px).")
@click.option("--seed", default=0, show_default=True, help="Seed for pose shuffling and random appearance/backgrounds.")
@click.option("--shuffle", is_flag=True, help="Pick random poses instead of the first --count.")
@click.option("--zero-orient", is_flag=True, help="Ignore the poses' global orientation (upright subject).")
@click.option("--option", "-o", "options", multiple=True, help="Renderer option key=value (repeatable).")
@click.option("--out", default="render.png", show_default=True, type=click.Path(dir_okay=False), help="Output PNG.")
def render(renderer_name, poses, count, views, size, distance, subject, skeleton_overlay, scale, seed, shuffle,
           zero_orient, options, out) -> None:
    """Render a grid of poses x viewpoints into a PNG (rows: poses, columns: views)."""
    summary = render_grid(
        renderer_name=renderer_name, poses=poses, count=count, views=views, size=size, distance=distance,
        subject=subject, skeleton_overlay=skeleton_overlay, scale=scale, seed=seed, shuffle=shuffle,
        zero_orient=zero_orient, renderer_options=parse_set(options, flag="-o"), out=out,
    )
    click.echo(
        f"wrote {summary['path']}: {summary['poses']} poses x {summary['views']} views at "
        f"{size}x{size} with '{renderer_name}' ({summary['render_seconds']} s)"
    )
