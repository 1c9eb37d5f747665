"""BVH files: a hierarchy parser, a frame reader vectorised with numpy, and forward kinematics over all frames.

Kept apart from the pose-source plugin so that retargeting and tests can use the BVH skeleton's own FK as the
independent reference. Angles in BVH files are degrees; lengths are in the file's units (converted by the caller).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import posegen_core as pg

_AXES = {"X": 0, "Y": 1, "Z": 2}


@dataclass
class BVHSkeleton:
    """The HIERARCHY part: joint names, parents (root -1), rest offsets and the channel layout of every joint."""

    names: list[str]
    parents: np.ndarray  # (J,) int
    offsets: np.ndarray  # (J, 3) float64, in file units
    channels: list[tuple[str, ...]]  # per joint, e.g. ("Zrotation", "Yrotation", "Xrotation")
    channel_start: np.ndarray  # (J,) index of the joint's first channel in a frame row
    end_sites: dict[int, np.ndarray] = field(default_factory=dict)  # joint -> offset of its (first) End Site

    @property
    def num_channels(self) -> int:
        return int(sum(len(c) for c in self.channels))

    def index(self, name: str) -> int:
        return self.names.index(name)

    def ancestors(self, j: int) -> list[int]:
        """``j`` and every joint above it, root last."""
        out = []
        while j >= 0:
            out.append(j)
            j = int(self.parents[j])
        return out


@dataclass
class BVHMotion:
    """A BVH take: its skeleton, the time between the frames kept, and the channel values (F, C)."""

    skeleton: BVHSkeleton
    frame_time: float
    values: np.ndarray  # (F, C) float64, degrees for rotations, file units for positions
    path: Path
    total_frames: int  # frames in the file before subsampling
    head: np.ndarray | None = None  # the file's first frames at full rate (``head=`` in read_bvh), for calibration checks
    step: int = 1  # frames of the file per kept frame


def _tokens_error(path: Path, what: str) -> pg.DataError:
    return pg.DataError(
        f"{path} is not a valid BVH file: {what}. Expected a HIERARCHY section (ROOT/JOINT blocks with OFFSET and "
        "CHANNELS) followed by MOTION, 'Frames: N', 'Frame Time: T' and one line of numbers per frame."
    )


def parse_hierarchy(text: str, path: Path) -> BVHSkeleton:
    """Parse the HIERARCHY section (everything before MOTION) into a BVHSkeleton."""
    tokens = text.split()
    if not tokens or tokens[0] != "HIERARCHY":
        raise _tokens_error(path, "it does not start with HIERARCHY")
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[tuple[str, ...]] = []
    end_sites: dict[int, np.ndarray] = {}
    stack: list[int] = []  # open joint blocks; -2 marks an End Site block
    pending: int | None = None  # joint declared, waiting for its "{"
    i = 1
    try:
        while i < len(tokens):
            tok = tokens[i]
            if tok in ("ROOT", "JOINT"):
                if tok == "ROOT" and (stack or names):
                    raise _tokens_error(path, "more than one ROOT")
                names.append(tokens[i + 1])
                parents.append(stack[-1] if stack else -1)
                offsets.append([0.0, 0.0, 0.0])
                channels.append(())
                pending = len(names) - 1
                i += 2
            elif tok == "End":
                pending = -2
                i += 2  # "End Site"
            elif tok == "{":
                if pending is None:
                    raise _tokens_error(path, "a '{' without a joint")
                stack.append(pending)
                pending = None
                i += 1
            elif tok == "}":
                if not stack:
                    raise _tokens_error(path, "unbalanced '}'")
                stack.pop()
                i += 1
            elif tok == "OFFSET":
                xyz = [float(t) for t in tokens[i + 1 : i + 4]]
                if stack and stack[-1] == -2:
                    owner = next(s for s in reversed(stack) if s >= 0)
                    end_sites.setdefault(owner, np.asarray(xyz))
                elif stack:
                    offsets[stack[-1]] = xyz
                i += 4
            elif tok == "CHANNELS":
                n = int(tokens[i + 1])
                chans = tuple(tokens[i + 2 : i + 2 + n])
                bad = [c for c in chans if len(c) != 9 or c[0] not in _AXES or c[1:] not in ("rotation", "position")]
                if bad:
                    raise _tokens_error(path, f"unknown channel(s) {bad} in joint {names[stack[-1]]}")
                channels[stack[-1]] = chans
                i += 2 + n
            else:
                raise _tokens_error(path, f"unexpected token {tok!r}")
    except (IndexError, ValueError, StopIteration) as e:
        raise _tokens_error(path, f"truncated or malformed HIERARCHY ({type(e).__name__}: {e})") from None
    if stack:
        raise _tokens_error(path, "unbalanced '{' in HIERARCHY")
    if not names:
        raise _tokens_error(path, "no ROOT joint")
    counts = np.array([len(c) for c in channels], dtype=np.int64)
    return BVHSkeleton(
        names, np.asarray(parents, dtype=np.int64), np.asarray(offsets, dtype=np.float64), channels,
        np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64), end_sites,
    )


def read_bvh(
    path: str | Path, step: int = 1, start: int = 0, max_frames: int | None = None, head: int = 0,
    target_fps: float | None = None,
) -> BVHMotion:
    """Read a BVH file, keeping frames ``start, start + step, ...`` (at most ``max_frames``), plus the first
    ``head`` frames at full rate in ``BVHMotion.head``. ``target_fps`` chooses the step from the file's frame time.

    Only the kept lines are converted to numbers, so subsampling a large file costs little more than reading it.
    """
    path = Path(path)
    if not path.is_file():
        raise pg.DataError(f"BVH file not found: {path}. Pass the path of a .bvh file, a folder of them, or a glob.")
    if step < 1:
        raise pg.ConfigError(f"step must be a positive integer; got {step}.")
    raw = path.read_bytes()
    cut = raw.find(b"MOTION")
    if cut < 0:
        raise _tokens_error(path, "no MOTION section")
    try:
        skeleton = parse_hierarchy(raw[:cut].decode("utf-8", errors="replace"), path)
    except pg.DataError:
        raise
    lines = raw[cut:].splitlines()
    header = [ln.decode("utf-8", errors="replace").strip() for ln in lines[1:3]]
    if len(header) < 2 or not header[0].startswith("Frames:") or not header[1].startswith("Frame Time:"):
        raise _tokens_error(path, "MOTION is not followed by 'Frames:' and 'Frame Time:' lines")
    try:
        declared = int(header[0].split(":", 1)[1])
        frame_time = float(header[1].split(":", 1)[1])
    except ValueError:
        raise _tokens_error(path, f"unreadable frame header {header}") from None
    if not (math.isfinite(frame_time) and frame_time > 0):
        raise _tokens_error(path, f"'Frame Time: {header[1].split(':', 1)[1].strip()}' must be a positive number of "
                                  "seconds (e.g. 0.0083333 for 120 fps)")
    if declared < 0:
        raise _tokens_error(path, f"'Frames: {declared}' must be a frame count >= 0")
    if target_fps:
        step = max(1, int(round(1.0 / frame_time / target_fps)))
    rows = [ln for ln in lines[3:] if ln.strip()]
    total = len(rows)
    if total == 0:
        raise pg.DataError(f"{path} has no motion frames (the file declares {declared}). Use a BVH file with motion.")
    if total != declared:
        raise _tokens_error(path, f"'Frames: {declared}' but the MOTION section holds {total} frame lines "
                                  f"({'the file may be truncated' if total < declared else 'extra lines follow'}); "
                                  "copy the file again or fix its Frames line")
    if len(rows[-1].split()) != skeleton.num_channels:
        raise _tokens_error(path, f"the last frame line holds {len(rows[-1].split())} numbers, not "
                                  f"{skeleton.num_channels} (the file may be truncated)")
    kept = rows[start::step]
    if max_frames is not None:
        kept = kept[: max(int(max_frames), 0)]
    values = _rows_to_values(kept, skeleton.num_channels, path)
    head_values = _rows_to_values(rows[:head], skeleton.num_channels, path) if head else None
    return BVHMotion(skeleton, frame_time * step, values, path, total, head_values, step)


def _rows_to_values(rows: list[bytes], c: int, path: Path) -> np.ndarray:
    try:
        flat = np.array(b" ".join(rows).split(), dtype=np.float64)
    except ValueError:
        raise _tokens_error(path, "a MOTION line holds something that is not a number") from None
    if flat.size != len(rows) * c:
        raise _tokens_error(
            path, f"the kept MOTION lines hold {flat.size} numbers; expected {len(rows)} frames x {c} channels "
            "(the file may be truncated)"
        )
    values = flat.reshape(len(rows), c)
    if not np.isfinite(values).all():
        raise _tokens_error(path, "MOTION holds NaN or infinite values")
    return values


def _axis_rotation(axis: int, angle: np.ndarray) -> np.ndarray:
    """(F,) radians -> (F, 3, 3) rotation about one coordinate axis."""
    c, s = np.cos(angle), np.sin(angle)
    m = np.zeros(angle.shape + (3, 3))
    a, b = [(1, 2), (2, 0), (0, 1)][axis]
    m[:, axis, axis] = 1.0
    m[:, a, a] = c
    m[:, b, b] = c
    m[:, a, b] = -s
    m[:, b, a] = s
    return m


def local_transforms(skeleton: BVHSkeleton, values: np.ndarray, j: int) -> tuple[np.ndarray, np.ndarray]:
    """Joint ``j``'s local rotation (F, 3, 3) and translation (F, 3) in its parent's frame.

    BVH rotation channels compose in the listed order (``Zrotation Yrotation Xrotation`` is Rz @ Ry @ Rx); position
    channels are added to the joint's OFFSET.
    """
    f = values.shape[0]
    rot = np.broadcast_to(np.eye(3), (f, 3, 3)).copy()
    trans = np.broadcast_to(skeleton.offsets[j], (f, 3)).copy()
    base = int(skeleton.channel_start[j])
    for k, ch in enumerate(skeleton.channels[j]):
        col = values[:, base + k]
        axis = _AXES[ch[0]]
        if ch[1:] == "rotation":
            rot = rot @ _axis_rotation(axis, np.deg2rad(col))
        else:
            trans[:, axis] += col
    return rot, trans


def forward_kinematics(
    skeleton: BVHSkeleton, values: np.ndarray, joints: list[int] | None = None
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Global positions (F, 3) and rotations (F, 3, 3) of ``joints`` (and their ancestors), in file units and axes.

    Returns dicts keyed by joint index so that a rig with many helper bones only pays for the joints it needs.
    """
    wanted = range(len(skeleton.names)) if joints is None else joints
    needed = sorted({a for j in wanted for a in skeleton.ancestors(j)})
    pos: dict[int, np.ndarray] = {}
    rot: dict[int, np.ndarray] = {}
    for j in needed:  # parents come before children in BVH order
        r, t = local_transforms(skeleton, values, j)
        p = int(skeleton.parents[j])
        if p < 0:
            rot[j], pos[j] = r, t
        else:
            rot[j] = rot[p] @ r
            pos[j] = pos[p] + np.einsum("fij,fj->fi", rot[p], t)
    return pos, rot
