"""Subjects: how a rendered person looks (limb thickness and part colours), built in by name/id or sampled.

Left and right limbs always get clearly different colours, so an estimator can tell the sides apart; the face is
skin-coloured with dark eyes and the back of the head is hair, so the facing direction shows too.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import torch

import posegen_core as pg

#: Colour slots of a subject; every body primitive names one of these.
COLOUR_SLOTS: tuple[str, ...] = (
    "skin", "hair", "eyes", "torso", "left_arm", "right_arm", "left_leg", "right_leg", "left_foot", "right_foot",
)


@dataclass(frozen=True)
class Subject:
    """One appearance: a thickness factor on every limb radius and an RGB colour in [0, 1] per slot."""

    name: str
    thickness: float
    colours: dict[str, tuple[float, float, float]]

    def colour_tensor(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(len(COLOUR_SLOTS), 3)"""
        return torch.tensor([self.colours[s] for s in COLOUR_SLOTS], dtype=dtype)


def _subject(name: str, thickness: float, skin, hair, torso, left_arm, right_arm, left_leg, right_leg, left_foot,
             right_foot) -> Subject:
    cols = dict(skin=skin, hair=hair, eyes=(0.08, 0.06, 0.06), torso=torso, left_arm=left_arm, right_arm=right_arm,
                left_leg=left_leg, right_leg=right_leg, left_foot=left_foot, right_foot=right_foot)
    return Subject(name, thickness, cols)


#: Built-in subjects, selectable by name or by id (their index here).
SUBJECTS: tuple[Subject, ...] = (
    _subject("ada", 1.0, skin=(0.90, 0.72, 0.60), hair=(0.30, 0.18, 0.10), torso=(0.88, 0.88, 0.84),
             left_arm=(0.20, 0.45, 0.95), right_arm=(0.95, 0.30, 0.20), left_leg=(0.12, 0.25, 0.65),
             right_leg=(0.65, 0.15, 0.12), left_foot=(0.30, 0.85, 0.90), right_foot=(0.95, 0.70, 0.15)),
    _subject("ben", 1.15, skin=(0.55, 0.38, 0.26), hair=(0.06, 0.05, 0.05), torso=(0.25, 0.60, 0.30),
             left_arm=(0.95, 0.85, 0.20), right_arm=(0.60, 0.25, 0.80), left_leg=(0.75, 0.65, 0.10),
             right_leg=(0.40, 0.15, 0.55), left_foot=(0.95, 0.95, 0.95), right_foot=(0.20, 0.20, 0.20)),
    _subject("cleo", 0.9, skin=(0.96, 0.80, 0.70), hair=(0.85, 0.70, 0.35), torso=(0.95, 0.55, 0.15),
             left_arm=(0.10, 0.70, 0.65), right_arm=(0.85, 0.20, 0.55), left_leg=(0.05, 0.45, 0.40),
             right_leg=(0.55, 0.10, 0.35), left_foot=(0.15, 0.15, 0.60), right_foot=(0.60, 0.60, 0.10)),
    _subject("dev", 1.05, skin=(0.72, 0.52, 0.38), hair=(0.15, 0.10, 0.08), torso=(0.20, 0.25, 0.35),
             left_arm=(0.45, 0.85, 0.30), right_arm=(0.95, 0.50, 0.60), left_leg=(0.25, 0.50, 0.15),
             right_leg=(0.70, 0.30, 0.35), left_foot=(0.85, 0.85, 0.30), right_foot=(0.35, 0.20, 0.10)),
)


def subject_names() -> list[str]:
    return [s.name for s in SUBJECTS]


def get_subject(key: int | str) -> Subject:
    """A built-in subject by id or name; unknown keys raise a ConfigError listing the choices."""
    if isinstance(key, bool) or not isinstance(key, (int, str)):
        raise pg.ConfigError(f"subject must be an id (int) or a name (str); got {type(key).__name__}.")
    if isinstance(key, int):
        if 0 <= key < len(SUBJECTS):
            return SUBJECTS[key]
        raise pg.ConfigError(
            f"unknown subject id {key}; built-in ids are 0..{len(SUBJECTS) - 1} ({', '.join(subject_names())}), "
            "or pass subject='random' to sample appearances."
        )
    for s in SUBJECTS:
        if s.name == key:
            return s
    raise pg.ConfigError(
        f"unknown subject '{key}'; built-in subjects: {', '.join(subject_names())} (or ids 0..{len(SUBJECTS) - 1}), "
        "or 'random' to sample appearances."
    )


def _hsv(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Vectorised HSV -> RGB for (n,) tensors in [0, 1]; returns (n, 3)."""
    return torch.tensor([colorsys.hsv_to_rgb(float(a), float(b), float(c)) for a, b, c in zip(h, s, v)])


def sample_subjects(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random appearances: (n, len(COLOUR_SLOTS), 3) colours and (n,) thickness factors.

    Left and right hues sit at least a quarter turn apart on the colour wheel; the torso hue is free; the skin is
    drawn between light and dark tones.
    """
    u = torch.rand(n, 12, generator=generator)
    tone = u[:, 0:1]
    skin = (1 - tone) * torch.tensor([0.97, 0.82, 0.72]) + tone * torch.tensor([0.38, 0.25, 0.17])
    hair = _hsv(0.05 + 0.08 * u[:, 1], 0.5 + 0.4 * u[:, 2], 0.05 + 0.8 * u[:, 3] ** 2)
    eyes = torch.full((n, 3), 0.07)
    torso = _hsv(u[:, 4], 0.2 + 0.7 * u[:, 5], 0.3 + 0.65 * u[:, 6])
    left_h = u[:, 7]
    right_h = (left_h + 0.25 + 0.5 * u[:, 8]) % 1.0
    sat = 0.6 + 0.4 * u[:, 9]
    left_arm = _hsv(left_h, sat, torch.full((n,), 0.95))
    right_arm = _hsv(right_h, sat, torch.full((n,), 0.95))
    left_leg = _hsv(left_h, sat, torch.full((n,), 0.6))
    right_leg = _hsv(right_h, sat, torch.full((n,), 0.6))
    left_foot = _hsv((left_h + 0.08) % 1.0, sat, torch.full((n,), 0.85))
    right_foot = _hsv((right_h + 0.08) % 1.0, sat, torch.full((n,), 0.85))
    cols = torch.stack([skin, hair, eyes, torso, left_arm, right_arm, left_leg, right_leg, left_foot, right_foot], 1)
    thickness = 0.85 + 0.35 * u[:, 10]
    return cols.clamp(0, 1), thickness


def resolve_subjects(
    subject: int | str | torch.Tensor | Subject | None, batch: int, generator: torch.Generator, default: int | str = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn the renderer's ``subject`` argument into per-sample colours (B, slots, 3) and thickness (B,).

    Accepts None (the renderer's default subject), an id or name, 'random' (sampled from ``generator``), a Subject,
    or a (B,) integer tensor of ids (one subject per sample).
    """
    if subject is None:
        subject = default
    if isinstance(subject, str) and subject == "random":
        return sample_subjects(batch, generator)
    if isinstance(subject, Subject):
        return subject.colour_tensor()[None].expand(batch, -1, -1), torch.full((batch,), subject.thickness)
    if isinstance(subject, torch.Tensor):
        if subject.dim() == 0:
            return resolve_subjects(int(subject), batch, generator)
        if subject.shape != (batch,) or subject.is_floating_point():
            raise pg.ShapeError(
                f"subject ids must be an integer tensor of shape ({batch},), one id per sample; "
                f"got {subject.dtype} {tuple(subject.shape)}."
            )
        subs = [get_subject(int(i)) for i in subject.tolist()]
        return torch.stack([s.colour_tensor() for s in subs]), torch.tensor([s.thickness for s in subs])
    s = get_subject(subject)
    return s.colour_tensor()[None].expand(batch, -1, -1), torch.full((batch,), s.thickness)
