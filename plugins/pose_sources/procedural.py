"""The embedded ``default`` pose source: procedurally generated everyday poses, needing no download.

This is NOT motion capture. Each take is a parametric motion (walking and running gait cycles, waving, reaching,
squatting, sitting, bending, arm swings, standing and looking around) whose speed, amplitudes, phases, heading and
small per-joint offsets are drawn per take from a seeded generator; every joint angle is clamped to anatomical limits
(knees and elbows only flex, and about their hinge axes). It gives the discriminator plausible, varied poses out of
the box; real mocap (``bvh``, ``amass``) gives better ones.

Angle conventions (SMPL local frames at rest: y up, facing +z, left +x): hip flexion (thigh forward) is -x, knee
flexion +x, ankle plantar flexion +x, spine forward bend +x, left hip abduction +z (right -z), lowering the left arm
-z (right +z), shoulder forward flexion -x, left elbow flexion -y (right +y).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

import posegen_core as pg
from posegen_core import skeleton as sk

from .bvh import select_takes

J = {n: i for i, n in enumerate(sk.JOINT_NAMES)}

#: Euler (x, y, z) limits in radians per joint, applied after every motion (R = Rx @ Ry @ Rz).
LIMITS: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "left_hip": ((-2.2, 0.6), (-0.6, 0.6), (-0.3, 0.9)),
    "right_hip": ((-2.2, 0.6), (-0.6, 0.6), (-0.9, 0.3)),
    "left_knee": ((0.0, 2.4), (0.0, 0.0), (0.0, 0.0)),
    "right_knee": ((0.0, 2.4), (0.0, 0.0), (0.0, 0.0)),
    "left_ankle": ((-0.6, 0.8), (-0.3, 0.3), (-0.3, 0.3)),
    "right_ankle": ((-0.6, 0.8), (-0.3, 0.3), (-0.3, 0.3)),
    "spine1": ((-0.3, 0.7), (-0.4, 0.4), (-0.3, 0.3)),
    "spine2": ((-0.2, 0.5), (-0.3, 0.3), (-0.2, 0.2)),
    "spine3": ((-0.2, 0.4), (-0.3, 0.3), (-0.2, 0.2)),
    "neck": ((-0.4, 0.6), (-0.7, 0.7), (-0.3, 0.3)),
    "head": ((-0.3, 0.4), (-0.5, 0.5), (-0.3, 0.3)),
    "left_collar": ((-0.2, 0.2), (-0.2, 0.2), (-0.2, 0.3)),
    "right_collar": ((-0.2, 0.2), (-0.2, 0.2), (-0.3, 0.2)),
    "left_shoulder": ((-2.8, 1.0), (-0.8, 0.8), (-1.45, 1.6)),
    "right_shoulder": ((-2.8, 1.0), (-0.8, 0.8), (-1.6, 1.45)),
    "left_elbow": ((0.0, 0.0), (-2.5, 0.0), (0.0, 0.0)),
    "right_elbow": ((0.0, 0.0), (0.0, 2.5), (0.0, 0.0)),
    "left_wrist": ((-0.5, 0.5), (-0.3, 0.3), (-0.6, 0.6)),
    "right_wrist": ((-0.5, 0.5), (-0.3, 0.3), (-0.6, 0.6)),
}


class Take:
    """Euler angles (T, 24, 3) of one take being built, with helpers that keep the motions readable."""

    def __init__(self, frames: int, fps: float, rng: torch.Generator) -> None:
        self.t = np.arange(frames, dtype=np.float64) / fps
        self.euler = np.zeros((frames, sk.NUM_JOINTS, 3))
        self.rng = rng

    def u(self, lo: float, hi: float) -> float:
        """One uniform draw in [lo, hi)."""
        return lo + (hi - lo) * float(torch.rand((), generator=self.rng, dtype=torch.float64))

    def add(self, joint: str, axis: int, value: np.ndarray | float) -> None:
        self.euler[:, J[joint], axis] += value

    def sides(self, name: str, axis: int, left: np.ndarray | float, right: np.ndarray | float) -> None:
        self.add(f"left_{name}", axis, left)
        self.add(f"right_{name}", axis, right)

    def ease(self, period: float, phase: float = 0.0) -> np.ndarray:
        """0 -> 1 -> 0 smoothly over ``period`` seconds (a raised cosine), repeating."""
        return 0.5 - 0.5 * np.cos(2 * math.pi * self.t / period + phase)

    def arms_down(self, amount: float = 1.3) -> None:
        """Lower both arms from the T-pose towards the sides (``amount`` radians)."""
        self.sides("shoulder", 2, -amount, amount)


def _walk(k: Take, run: bool = False) -> None:
    f = k.u(1.3, 1.6) if run else k.u(0.8, 1.1)
    w = 2 * math.pi * f * k.t + k.u(0, 2 * math.pi)
    stride = k.u(0.55, 0.85) if run else k.u(0.3, 0.5)
    s, s2 = np.sin(w), np.sin(w + math.pi)
    k.sides("hip", 0, -stride * s + (-0.25 if run else -0.05), -stride * s2 + (-0.25 if run else -0.05))
    knee_amp = k.u(1.1, 1.7) if run else k.u(0.6, 0.9)
    k.sides("knee", 0, 0.1 + knee_amp * np.maximum(0.0, np.sin(w + 1.2)), 0.1 + knee_amp * np.maximum(0.0, np.sin(w + math.pi + 1.2)))
    k.sides("ankle", 0, 0.15 * np.sin(w + 2.0), 0.15 * np.sin(w + math.pi + 2.0))
    k.arms_down(k.u(1.15, 1.35))
    swing = k.u(0.25, 0.45) * (1.6 if run else 1.0)
    k.sides("shoulder", 0, swing * s - 0.05, swing * s2 - 0.05)  # arms swing against the legs
    elbow = k.u(1.3, 1.7) if run else k.u(0.15, 0.45)
    k.sides("elbow", 1, -(elbow + 0.15 * (1 + s2)), elbow + 0.15 * (1 + s))
    k.add("spine1", 0, k.u(0.15, 0.3) if run else k.u(0.0, 0.08))
    k.add("spine2", 1, 0.08 * np.sin(w))
    k.add("pelvis", 1, -0.06 * np.sin(w))


def _wave(k: Take) -> None:
    side, other = ("left", "right") if k.u(0, 1) < 0.5 else ("right", "left")
    sgn = 1.0 if side == "left" else -1.0
    k.sides("shoulder", 2, -1.3 if other == "left" else 0.0, 1.3 if other == "right" else 0.0)
    k.add(f"{side}_shoulder", 2, sgn * k.u(0.2, 0.8))  # arm raised above the horizontal
    k.add(f"{side}_shoulder", 0, -k.u(1.2, 1.6))  # turn the arm about itself so the bent forearm points up
    f = k.u(1.5, 2.5)
    k.add(f"{side}_elbow", 1, -sgn * (k.u(0.9, 1.4) + 0.35 * np.sin(2 * math.pi * f * k.t)))
    k.add(f"{side}_wrist", 2, 0.3 * np.sin(2 * math.pi * f * k.t + 0.5))
    k.add(f"{other}_elbow", 1, (-1 if other == "left" else 1) * k.u(0.05, 0.3))
    k.add("neck", 1, sgn * k.u(0.0, 0.3))
    k.sides("hip", 2, k.u(0.0, 0.1), -k.u(0.0, 0.1))


def _reach(k: Take) -> None:
    side = "left" if k.u(0, 1) < 0.5 else "right"
    sgn = 1.0 if side == "left" else -1.0
    g = k.ease(float(k.t[-1]) + 1e-3 if len(k.t) > 1 else 1.0)
    k.arms_down(1.3)
    k.add(f"{side}_shoulder", 2, sgn * 1.3 * g * k.u(0.3, 1.3))  # towards the horizontal or above
    k.add(f"{side}_shoulder", 0, -g * k.u(0.6, 1.6))  # forward
    k.add(f"{side}_shoulder", 1, sgn * g * k.u(-0.3, 0.3))
    k.add(f"{side}_elbow", 1, -sgn * (0.6 - 0.5 * g) * k.u(0.5, 1.5))
    k.add("spine1", 0, g * k.u(0.0, 0.4))
    k.add("spine2", 1, sgn * g * k.u(0.0, 0.3))
    k.sides("hip", 0, -g * k.u(0.0, 0.3), -g * k.u(0.0, 0.3))
    k.sides("knee", 0, g * k.u(0.0, 0.3), g * k.u(0.0, 0.3))


def _squat(k: Take) -> None:
    g = k.ease(k.u(2.0, 3.5), k.u(0, 2 * math.pi))
    depth = k.u(0.6, 1.0)
    k.sides("hip", 0, -1.7 * depth * g, -1.7 * depth * g)
    k.sides("knee", 0, 2.1 * depth * g, 2.1 * depth * g)
    k.sides("ankle", 0, -0.45 * depth * g, -0.45 * depth * g)
    k.sides("hip", 2, 0.15 * g, -0.15 * g)
    k.add("spine1", 0, 0.35 * depth * g)
    k.arms_down(1.3)
    k.sides("shoulder", 0, -1.4 * g * k.u(0.3, 1.0), -1.4 * g * k.u(0.3, 1.0))  # arms forward for balance
    k.sides("elbow", 1, -k.u(0.1, 0.6), k.u(0.1, 0.6))


def _sit(k: Take) -> None:
    lean = k.u(-0.1, 0.3)
    k.sides("hip", 0, -k.u(1.35, 1.65), -k.u(1.35, 1.65))
    k.sides("knee", 0, k.u(1.3, 1.8), k.u(1.3, 1.8))
    k.sides("hip", 2, k.u(0.0, 0.25), -k.u(0.0, 0.25))
    k.sides("ankle", 0, k.u(-0.2, 0.2), k.u(-0.2, 0.2))
    k.add("spine1", 0, lean)
    k.arms_down(k.u(1.1, 1.35))
    k.sides("shoulder", 0, -k.u(0.3, 0.9), -k.u(0.3, 0.9))  # hands towards the thighs
    k.sides("elbow", 1, -k.u(0.4, 1.2), k.u(0.4, 1.2))
    look = k.u(0.2, 0.6) * np.sin(2 * math.pi * k.u(0.1, 0.3) * k.t + k.u(0, 6.28))
    k.add("neck", 1, look)
    k.add("head", 0, k.u(-0.2, 0.3))


def _bend(k: Take) -> None:
    g = k.ease(k.u(2.5, 4.0), k.u(0, 2 * math.pi))
    amount = k.u(0.5, 1.0)
    for joint, share in (("spine1", 0.35), ("spine2", 0.25), ("spine3", 0.2)):
        k.add(joint, 0, 1.3 * share * amount * g / 0.8)
    k.sides("hip", 0, -k.u(0.4, 1.1) * amount * g, -k.u(0.4, 1.1) * amount * g)
    k.sides("knee", 0, k.u(0.0, 0.3) * g, k.u(0.0, 0.3) * g)
    k.arms_down(1.3)
    hang = 1.1 * amount * g  # arms hang towards the ground as the trunk tips forward
    k.sides("shoulder", 0, -hang, -hang)
    k.add("neck", 0, -0.3 * g)


def _arm_swing(k: Take) -> None:
    f = k.u(0.5, 1.0)
    g = k.ease(1.0 / f, k.u(0, 2 * math.pi))
    k.sides("shoulder", 2, -1.35 + 2.6 * g, 1.35 - 2.6 * g)  # arms from the sides to above the head
    k.sides("shoulder", 0, -k.u(0.0, 0.3), -k.u(0.0, 0.3))
    k.sides("hip", 2, 0.3 * g, -0.3 * g)
    k.sides("elbow", 1, -k.u(0.0, 0.3), k.u(0.0, 0.3))


def _stand(k: Take) -> None:
    shift = 0.08 * np.sin(2 * math.pi * k.u(0.1, 0.3) * k.t + k.u(0, 6.28))
    k.sides("hip", 2, shift, shift)
    k.sides("ankle", 2, -shift, -shift)
    k.arms_down(k.u(1.2, 1.4))
    k.sides("elbow", 1, -k.u(0.0, 0.5), k.u(0.0, 0.5))
    if k.u(0, 1) < 0.5:  # arms folded or hands on hips
        k.sides("shoulder", 0, -k.u(0.2, 0.6), -k.u(0.2, 0.6))
        k.sides("elbow", 1, -k.u(1.2, 1.9), k.u(1.2, 1.9))
    k.add("neck", 1, k.u(0.3, 0.7) * np.sin(2 * math.pi * k.u(0.1, 0.25) * k.t + k.u(0, 6.28)))
    k.add("neck", 0, k.u(-0.3, 0.3))


MOTIONS: dict[str, Callable[[Take], None]] = {
    "walk": _walk, "run": lambda k: _walk(k, run=True), "wave": _wave, "reach": _reach, "squat": _squat,
    "sit": _sit, "bend": _bend, "arm_swing": _arm_swing, "stand": _stand,
}


def _axis_matrices(axis: int, angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    m = np.zeros(angle.shape + (3, 3))
    a, b = [(1, 2), (2, 0), (0, 1)][axis]
    m[..., axis, axis] = 1.0
    m[..., a, a], m[..., b, b], m[..., a, b], m[..., b, a] = c, c, -s, s
    return m


def euler_to_matrix(e: np.ndarray) -> np.ndarray:
    """(..., 3) angles -> (..., 3, 3) matrices ``Rx @ Ry @ Rz`` (numpy: many small takes, no thread overhead)."""
    return _axis_matrices(0, e[..., 0]) @ _axis_matrices(1, e[..., 1]) @ _axis_matrices(2, e[..., 2])


def clamp_limits(euler: np.ndarray) -> np.ndarray:
    """Clamp (T, 24, 3) Euler angles to ``LIMITS``."""
    out = euler.copy()
    for name, limits in LIMITS.items():
        for axis, (lo, hi) in enumerate(limits):
            out[:, J[name], axis] = np.clip(out[:, J[name], axis], lo, hi)
    return out


def generate_take(motion: str, frames: int, fps: float, rng: torch.Generator) -> np.ndarray:
    """Local rotation matrices (T, 24, 3, 3) of one take of ``motion``, joint 0 the global orientation."""
    k = Take(frames, fps, rng)
    MOTIONS[motion](k)
    # Per-take posture: small constant offsets, so no two takes share a rest posture.
    k.euler[:, 1:] += 0.04 * torch.randn(1, sk.NUM_JOINTS - 1, 3, generator=rng, dtype=torch.float64).numpy()
    mats = euler_to_matrix(clamp_limits(k.euler))
    heading = _axis_matrices(1, np.array(k.u(-math.pi, math.pi)))
    mats[:, 0] = heading @ mats[:, 0]
    return mats


class ProceduralPoseSource(pg.PoseSource):
    """Procedural everyday poses (gait cycles, waving, reaching, squatting, sitting, bending ...): NOT motion capture.

    Deterministic from ``seed``; ``takes_per_motion`` takes of every motion, ``frames`` frames each at ``fps``.
    """

    name = "default"

    def __init__(
        self,
        seed: int = 0,
        takes_per_motion: int = 4,
        frames: int = 90,
        fps: float = 30.0,
        motions: Sequence[str] | str | None = None,
        include: str | Sequence[str] | None = None,
        exclude: str | Sequence[str] | None = None,
    ) -> None:
        chosen = list(MOTIONS) if motions is None else (
            [m.strip() for m in motions.split(",")] if isinstance(motions, str) else list(motions))
        unknown = [m for m in chosen if m not in MOTIONS]
        if unknown:
            raise pg.ConfigError(f"unknown procedural motion(s) {unknown}; available: {', '.join(MOTIONS)}.")
        if int(takes_per_motion) < 1 or int(frames) < 1 or not fps > 0:
            raise pg.ConfigError("takes_per_motion and frames must be positive integers and fps positive.")
        self.seed, self.takes_per_motion, self.frames, self.fps = int(seed), int(takes_per_motion), int(frames), fps
        self.motions, self.include, self.exclude = chosen, include, exclude

    def take_names(self) -> list[str]:
        names = [f"{m}_{i:02d}" for m in self.motions for i in range(self.takes_per_motion)]
        return select_takes(names, self.include, self.exclude)

    def load(self) -> pg.PoseSet:
        wanted = set(self.take_names())
        if not wanted:
            raise pg.DataError(f"include={self.include!r} exclude={self.exclude!r} leave no procedural take.")
        mats, takes, names = [], [], []
        for motion in self.motions:
            for i in range(self.takes_per_motion):
                name = f"{motion}_{i:02d}"
                if name not in wanted:
                    continue
                # One generator per take, seeded from (seed, motion, take): takes do not depend on each other.
                rng = torch.Generator().manual_seed(self.seed * 1_000_003 + list(MOTIONS).index(motion) * 1009 + i)
                mats.append(generate_take(motion, self.frames, self.fps, rng))
                takes.append(np.full(self.frames, len(names), dtype=np.int64))
                names.append(name)
        aa = pg.rotations.matrix_to_axis_angle(torch.from_numpy(np.concatenate(mats)).float())
        return pg.PoseSet(aa[:, 0].contiguous(), aa[:, 1:].contiguous(), np.concatenate(takes), names)


@pg.hookimpl
def posegen_register_pose_sources(register):
    register(
        "default", ProceduralPoseSource,
        description="embedded procedural poses (walk, run, wave, reach, squat, sit, bend, arm swing, stand; seeded, "
        "joint-limited); NOT motion capture, needs no download",
    )
