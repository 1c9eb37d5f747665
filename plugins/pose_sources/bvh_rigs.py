"""Rig descriptions: which BVH joint plays each SMPL-24 joint, the file's axes and units. Data, not code.

Three rigs ship built in (the ones in CMU mocap distributions); a user describes a new rig in a JSON or TOML file::

    # my_rig.toml
    name = "my_rig"
    scale = 0.01            # file units -> metres (centimetres here)
    up = "y"                # the file's up axis: x, y, z, -x, -y or -z
    forward = "z"           # the way the subject faces in the rig's rest pose
    [joints]                # SMPL-24 joint name -> BVH joint name (pelvis, hips, knees, ankles, spine, neck,
    pelvis = "Hips"         #  collars, shoulders, elbows, wrists are required; feet, head, hands are optional)
    left_hip = "LeftUpLeg"
    ...

Retargeting needs only this map: the rest-pose alignment between the two skeletons is computed from the BVH offsets
(see ``retarget.py``).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import posegen_core as pg
from posegen_core import skeleton as sk

#: SMPL joints a rig must map; the others (feet, head, hands) are leaves and may be left out.
REQUIRED_JOINTS: tuple[str, ...] = tuple(
    n for n in sk.JOINT_NAMES if n not in ("left_foot", "right_foot", "head", "left_hand", "right_hand")
)

_AXIS_NAMES = {"x": 0, "y": 1, "z": 2}


@dataclass(frozen=True)
class Rig:
    """How one BVH skeleton maps onto SMPL-24.

    ``joints`` maps SMPL joint names to BVH joint names. ``scale`` converts file units to metres. ``up`` and
    ``forward`` name the file's world axes (e.g. "y" and "z", or "z" and "-y"); the subject faces ``forward`` when
    every rotation channel is zero.
    """

    name: str
    joints: Mapping[str, str]
    scale: float = 0.01
    up: str = "y"
    forward: str = "z"
    description: str = ""
    roll: Mapping[str, float] = field(default_factory=dict)  # SMPL joint -> degrees about its bone, down the limb
    ignore_prefixes: tuple[str, ...] = field(default=())  # informational: helper bones the rig does not use

    def __post_init__(self) -> None:
        unknown = sorted(set(self.joints) - set(sk.JOINT_NAMES))
        if unknown:
            raise pg.ConfigError(
                f"rig '{self.name}' maps unknown SMPL joint(s) {unknown}. SMPL-24 joint names are: "
                f"{', '.join(sk.JOINT_NAMES)}."
            )
        missing = [n for n in REQUIRED_JOINTS if n not in self.joints]
        if missing:
            raise pg.ConfigError(
                f"rig '{self.name}' does not map the SMPL joint(s) {missing}. Add them to its [joints] table "
                "(SMPL joint name = BVH joint name)."
            )
        if not (isinstance(self.scale, (int, float)) and self.scale > 0):
            raise pg.ConfigError(f"rig '{self.name}': scale must be a positive number (file units -> metres).")
        up, fwd = axis_vector(self.up, "up"), axis_vector(self.forward, "forward")
        bad_roll = sorted(set(self.roll) - set(sk.JOINT_NAMES))
        if bad_roll:
            raise pg.ConfigError(f"rig '{self.name}': roll names unknown SMPL joint(s) {bad_roll}.")
        if abs(float(up @ fwd)) > 1e-6:
            raise pg.ConfigError(f"rig '{self.name}': up ({self.up}) and forward ({self.forward}) must be different axes.")

    def world_to_smpl(self) -> np.ndarray:
        """Rotation taking the file's world axes to SMPL's (y up, subject facing +z, subject's left +x)."""
        up, fwd = axis_vector(self.up, "up"), axis_vector(self.forward, "forward")
        left = np.cross(up, fwd)  # SMPL: x = y cross z
        return np.stack([left, up, fwd])  # rows: where each SMPL axis lies in file coordinates

    def missing_in(self, bvh_names: Iterable[str]) -> list[str]:
        present = set(bvh_names)
        return [b for b in self.joints.values() if b not in present]


def axis_vector(spec: str, what: str) -> np.ndarray:
    s = str(spec).strip().lower()
    sign = -1.0 if s.startswith("-") else 1.0
    s = s.lstrip("+-")
    if s not in _AXIS_NAMES:
        raise pg.ConfigError(f"rig axis {what}={spec!r} is not one of x, y, z, -x, -y, -z.")
    v = np.zeros(3)
    v[_AXIS_NAMES[s]] = sign
    return v


#: CMU's arm rest axes (kept by all three conversions) hold the elbow's hinge 30 degrees off the T-pose's vertical;
#: rolling the arms by 30 degrees makes the elbow bend about SMPL's elbow axis (measured on cmu/ and cmu_cc/ takes).
_CMU_ARM_ROLL = {"left_shoulder": 30.0, "right_shoulder": -30.0}


#: CMU's 31-joint skeleton, "MotionBuilder-friendly" BVH conversion (e.g. cmu/01_01.bvh). Units: 0.0254/0.45 m.
CMU_MOTIONBUILDER = Rig(
    name="cmu_motionbuilder",
    roll=_CMU_ARM_ROLL,
    description="CMU mocap, MotionBuilder-friendly naming (Hips, LeftUpLeg, LeftLeg, Spine1, LeftArm, ...)",
    scale=0.0254 / 0.45,
    joints={
        "pelvis": "Hips", "spine1": "LowerBack", "spine2": "Spine", "spine3": "Spine1", "neck": "Neck1",
        "head": "Head",
        "left_hip": "LeftUpLeg", "left_knee": "LeftLeg", "left_ankle": "LeftFoot", "left_foot": "LeftToeBase",
        "right_hip": "RightUpLeg", "right_knee": "RightLeg", "right_ankle": "RightFoot", "right_foot": "RightToeBase",
        "left_collar": "LeftShoulder", "left_shoulder": "LeftArm", "left_elbow": "LeftForeArm",
        "left_wrist": "LeftHand", "left_hand": "LFingers",
        "right_collar": "RightShoulder", "right_shoulder": "RightArm", "right_elbow": "RightForeArm",
        "right_wrist": "RightHand", "right_hand": "RFingers",
    },
)

#: CMU's 31-joint skeleton, "3dsMax-friendly" BVH conversion (e.g. cmu/131_01.bvh); arms hang down at rest.
CMU_3DSMAX = Rig(
    name="cmu_3dsmax",
    roll=_CMU_ARM_ROLL,
    description="CMU mocap, 3dsMax-friendly naming (Hips, LeftHip, LeftKnee, Chest, LeftCollar, LeftShoulder, ...)",
    scale=0.0254 / 0.45,
    joints={
        "pelvis": "Hips", "spine1": "lowerback", "spine2": "Chest", "spine3": "Chest2", "neck": "Neck",
        "head": "Head",
        "left_hip": "LeftHip", "left_knee": "LeftKnee", "left_ankle": "LeftAnkle", "left_foot": "LeftToe",
        "right_hip": "RightHip", "right_knee": "RightKnee", "right_ankle": "RightAnkle", "right_foot": "RightToe",
        "left_collar": "LeftCollar", "left_shoulder": "LeftShoulder", "left_elbow": "LeftElbow",
        "left_wrist": "LeftWrist", "left_hand": "LFingers",
        "right_collar": "RightCollar", "right_shoulder": "RightShoulder", "right_elbow": "RightElbow",
        "right_wrist": "RightWrist", "right_hand": "RFingers",
    },
)

#: Reallusion Character Creator rig (e.g. cmu_cc/*.bvh): twist, ShareBone, toe, finger and facial bones are ignored.
CHARACTER_CREATOR = Rig(
    name="character_creator",
    roll=_CMU_ARM_ROLL,
    description="Reallusion Character Creator rig (RL_BoneRoot, CC_Base_Hip, CC_Base_L_Thigh, ...), centimetres",
    scale=0.01,
    joints={
        # SMPL spine2 and spine3 share Spine02: CC's short, bent Waist->Spine01 bone has no SMPL counterpart.
        "pelvis": "CC_Base_Pelvis", "spine1": "CC_Base_Waist", "spine2": "CC_Base_Spine02",
        "spine3": "CC_Base_Spine02", "neck": "CC_Base_NeckTwist01", "head": "CC_Base_Head",
        **{
            f"{side}_{smpl}": f"CC_Base_{s}_{cc}"
            for side, s in (("left", "L"), ("right", "R"))
            for smpl, cc in (
                ("hip", "Thigh"), ("knee", "Calf"), ("ankle", "Foot"), ("foot", "ToeBase"), ("collar", "Clavicle"),
                ("shoulder", "Upperarm"), ("elbow", "Forearm"), ("wrist", "Hand"), ("hand", "Mid1"),
            )
        },
    },
    ignore_prefixes=("Twist", "ShareBone", "Toe", "Mid", "Index", "Ring", "Pinky", "Thumb", "Facial", "Jaw", "Eye"),
)

BUILTIN_RIGS: dict[str, Rig] = {r.name: r for r in (CMU_MOTIONBUILDER, CMU_3DSMAX, CHARACTER_CREATOR)}


def detect_rig(bvh_names: Iterable[str], path: Path | str = "<bvh>") -> Rig:
    """The built-in rig whose joint names all appear in the file; a clear error naming the closest one otherwise."""
    names = list(bvh_names)
    best: tuple[int, Rig] | None = None
    for rig in BUILTIN_RIGS.values():
        missing = rig.missing_in(names)
        if not missing:
            return rig
        if best is None or len(missing) < best[0]:
            best = (len(missing), rig)
    assert best is not None
    raise pg.DataError(
        f"{path}: no built-in rig matches its joint names (closest: '{best[1].name}', missing "
        f"{best[1].missing_in(names)[:6]}). Describe the rig in a JSON/TOML file mapping SMPL-24 joint names to "
        "this file's BVH joint names and pass it as rig=PATH (see posegen_plugins.pose_sources.bvh_rigs)."
    )


def load_rig(path: str | Path) -> Rig:
    """Read a user rig description (JSON or TOML: name, scale, up, forward and a ``joints`` table)."""
    path = Path(path)
    if not path.is_file():
        raise pg.ConfigError(f"rig description not found: {path}. Pass a .json or .toml file, or one of "
                             f"{', '.join(['auto', *BUILTIN_RIGS])}.")
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        else:
            data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise pg.ConfigError(f"could not read rig description {path}: {e}. Expected JSON or TOML.") from None
    if not isinstance(data, dict) or not isinstance(data.get("joints"), dict):
        raise pg.ConfigError(
            f"rig description {path} needs a 'joints' table mapping SMPL-24 joint names to BVH joint names, "
            'e.g. {"joints": {"pelvis": "Hips", "left_hip": "LeftUpLeg", ...}}.'
        )
    allowed = {"name", "joints", "scale", "up", "forward", "description", "roll"}
    extra = sorted(set(data) - allowed)
    if extra:
        raise pg.ConfigError(f"rig description {path} has unknown key(s) {extra}; allowed: {sorted(allowed)}.")
    return Rig(
        name=str(data.get("name", path.stem)), joints={str(k): str(v) for k, v in data["joints"].items()},
        scale=float(data.get("scale", 0.01)), up=str(data.get("up", "y")), forward=str(data.get("forward", "z")),
        description=str(data.get("description", f"user rig from {path.name}")),
        roll={str(k): float(v) for k, v in dict(data.get("roll", {})).items()},
    )


def resolve_rig(spec: str | Path | Rig, bvh_names: Iterable[str], path: Path | str = "<bvh>") -> Rig:
    """``"auto"`` (detect), a built-in rig name, a Rig, or the path of a JSON/TOML description."""
    if isinstance(spec, Rig):
        rig = spec
    elif str(spec) == "auto":
        return detect_rig(bvh_names, path)
    elif str(spec) in BUILTIN_RIGS:
        rig = BUILTIN_RIGS[str(spec)]
    elif str(spec).lower().endswith((".json", ".toml")):
        rig = load_rig(spec)
    else:
        raise pg.ConfigError(
            f"unknown rig {spec!r}. Use 'auto', one of {', '.join(BUILTIN_RIGS)}, or the path of a JSON/TOML file "
            "mapping SMPL-24 joint names to BVH joint names."
        )
    missing = rig.missing_in(bvh_names)
    if missing:
        raise pg.DataError(
            f"{path}: rig '{rig.name}' names BVH joint(s) {missing[:8]} that the file does not have. Check the "
            "rig's joint names against the file's HIERARCHY, or use rig='auto'."
        )
    return rig
