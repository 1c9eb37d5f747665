"""Subjects of the anny renderer: body shape (anny's phenotype) and appearance (skin, hair, clothing), sampled.

The prior over anny's phenotype parameters (each in [0, 1] as anny defines them):

- gender uniform in [0, 1] (both sexes and everything between);
- age uniform in [0.4, 1] (anny: 0.375 is about 12 years, 0.5 is 25, 1 is 90; younger bodies are left out because
  the skeleton posegen renders is an adult's, so a child's proportions would be stretched onto it);
- muscle uniform in [0.1, 0.9], weight uniform in [0.05, 0.95] (thin to heavy);
- height uniform in [0, 1] and proportions uniform in [0, 1] (they change the body's proportions; the overall size
  follows the skeleton's bone lengths, see rig.py);
- anny's 'race' blend shapes (african / asian / caucasian) stay at anny's default mix: anny's default model
  compacts its phenotype basis without them.

Appearance is independent of the phenotype: a skin tone between light and dark, hair colour and length, a top
(short or long sleeves; plain, striped or two-tone) and trousers or shorts, and shoes, each a random colour.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

import posegen_core as pg

from .asset import REGIONS

#: anny's phenotype labels in the order the renderer passes them.
PHENOTYPE_LABELS: tuple[str, ...] = ("gender", "age", "muscle", "weight", "height", "proportions")
#: (low, high) of each phenotype parameter in the prior.
PHENOTYPE_RANGES: tuple[tuple[float, float], ...] = (
    (0.0, 1.0), (0.4, 1.0), (0.1, 0.9), (0.05, 0.95), (0.0, 1.0), (0.0, 1.0),
)

_LIGHT_SKIN = torch.tensor([0.96, 0.80, 0.69])
_DARK_SKIN = torch.tensor([0.30, 0.19, 0.13])


@dataclass
class Subjects:
    """A batch of subjects: phenotype (B, 6) in PHENOTYPE_LABELS order, and appearance as per-region colours
    (B, len(REGIONS), 3) plus clothing pattern settings."""

    phenotype: torch.Tensor
    colours: torch.Tensor  # (B, R, 3) base colour of each region
    stripe_colour: torch.Tensor  # (B, 3) second colour of the top's pattern
    stripe_period: torch.Tensor  # (B,) metres between stripes; 0 = plain top
    sleeve: torch.Tensor  # (B,) 1 = long sleeves, 0 = short
    trouser: torch.Tensor  # (B,) 1 = trousers, 0 = shorts
    long_hair: torch.Tensor  # (B,) 1 = hair down to the neck


def _hsv(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Vectorised HSV -> RGB for (n,) tensors in [0, 1]; returns (n, 3)."""
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], -1)
    return v[:, None] - v[:, None] * s[:, None] * (torch.minimum(k, 4 - k).clamp(0, 1))


def sample_subjects(n: int, generator: torch.Generator) -> Subjects:
    """``n`` random subjects; every draw comes from ``generator``."""
    lo = torch.tensor([r[0] for r in PHENOTYPE_RANGES])
    hi = torch.tensor([r[1] for r in PHENOTYPE_RANGES])
    phen = lo + (hi - lo) * torch.rand(n, len(PHENOTYPE_RANGES), generator=generator)
    u = torch.rand(n, 20, generator=generator)
    tone = u[:, 0:1]
    skin = (1 - tone) * _LIGHT_SKIN + tone * _DARK_SKIN
    hair = _hsv(0.03 + 0.09 * u[:, 1], 0.35 + 0.5 * u[:, 2], 0.06 + 0.85 * u[:, 3] ** 2)
    top = _hsv(u[:, 4], 0.15 + 0.75 * u[:, 5], 0.25 + 0.7 * u[:, 6])
    stripe = _hsv((u[:, 4] + 0.3 + 0.4 * u[:, 7]) % 1.0, 0.2 + 0.7 * u[:, 8], 0.3 + 0.7 * u[:, 9])
    trousers = _hsv(u[:, 10], 0.1 + 0.6 * u[:, 11], 0.12 + 0.6 * u[:, 12])
    shoes = _hsv(u[:, 13], 0.1 + 0.5 * u[:, 14], 0.08 + 0.8 * u[:, 15])
    cols = torch.zeros(n, len(REGIONS), 3)
    for name in ("head", "neck", "hand"):
        cols[:, REGIONS.index(name)] = skin
    cols[:, REGIONS.index("hair")] = hair
    for name in ("torso", "upper_arm", "forearm"):
        cols[:, REGIONS.index(name)] = top
    for name in ("hips", "thigh", "shin"):
        cols[:, REGIONS.index(name)] = trousers
    cols[:, REGIONS.index("foot")] = shoes
    pattern = u[:, 16]
    period = torch.where(pattern < 0.5, torch.zeros(n), 0.05 + 0.1 * u[:, 17])  # half plain, half striped
    return Subjects(
        phenotype=phen, colours=cols.clamp(0, 1), stripe_colour=stripe.clamp(0, 1), stripe_period=period,
        sleeve=(u[:, 18] < 0.5).float(), trouser=(u[:, 19] < 0.7).float(),
        long_hair=(u[:, 2] < 0.4).float(),
    )


def subjects_from_ids(ids: list[int]) -> Subjects:
    """Subject ``i`` is the first draw of a generator seeded with ``i``: the same id always gives the same person."""
    parts = [sample_subjects(1, torch.Generator().manual_seed(int(i))) for i in ids]
    return Subjects(**{k: torch.cat([getattr(p, k) for p in parts]) for k in vars(parts[0])})


def shape_to_phenotype(shape: torch.Tensor) -> torch.Tensor:
    """Generated body shape (B, 6) in [0, 1] -> anny phenotype (B, 6): each value placed linearly in the prior's
    range (PHENOTYPE_RANGES), so generated bodies stay within the bodies the prior samples (adults). Differentiable."""
    lo = shape.new_tensor([r[0] for r in PHENOTYPE_RANGES])
    hi = shape.new_tensor([r[1] for r in PHENOTYPE_RANGES])
    return lo + (hi - lo) * shape


def resolve_subjects(subject: int | str | torch.Tensor | Subjects | None, batch: int, generator: torch.Generator,
                     default: int | str) -> Subjects:
    """The renderer's ``subject`` argument -> a batch of subjects (None: the renderer's default). A (B, 6) float
    tensor is generated body shape (``shape_to_phenotype``) worn by the default subject's appearance."""
    if subject is None:
        subject = default
    if isinstance(subject, torch.Tensor) and subject.is_floating_point() and subject.dim() == 2:
        if subject.shape != (batch, len(PHENOTYPE_LABELS)):
            raise pg.ShapeError(f"body shapes must be a ({batch}, {len(PHENOTYPE_LABELS)}) float tensor in [0, 1], one "
                                f"row per sample ({', '.join(PHENOTYPE_LABELS)}); got {tuple(subject.shape)}.")
        looks = resolve_subjects(default, batch, generator, "random")
        looks.phenotype = shape_to_phenotype(subject)
        return looks
    if isinstance(subject, Subjects):
        if subject.phenotype.shape[0] != batch:
            raise pg.ShapeError(
                f"got {subject.phenotype.shape[0]} subjects for a batch of {batch}; pass one per sample.")
        return subject
    if isinstance(subject, str):
        if subject == "random":
            return sample_subjects(batch, generator)
        if subject.isdigit():
            return subjects_from_ids([int(subject)] * batch)
        raise pg.ConfigError(
            f"unknown anny subject '{subject}'; pass an integer id (each id is one fixed sampled person), "
            "'random' (a new person per sample), or a (B,) tensor of ids."
        )
    if isinstance(subject, torch.Tensor):
        if subject.dim() == 0:
            return subjects_from_ids([int(subject)] * batch)
        if subject.shape != (batch,) or subject.is_floating_point():
            raise pg.ShapeError(f"subject ids must be an integer tensor of shape ({batch},), one id per sample; "
                                f"got {subject.dtype} {tuple(subject.shape)}.")
        return subjects_from_ids(subject.tolist())
    if isinstance(subject, bool) or not isinstance(subject, int) or subject < 0:
        raise pg.ConfigError(f"an anny subject id must be a non-negative integer; got {subject!r}.")
    return subjects_from_ids([subject] * batch)
