"""A synthetic SMPL model file (smplx's .npz layout) for tests: real SMPL files are licensed and never in the repo.

It has SMPL's sizes (6890 vertices, 24 joints, 10 betas, 207 pose blend shapes) and a joint regressor that reads each
rest joint off one vertex placed on posegen's rest skeleton, so its joints are known exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import posegen_core as pg

NUM_VERTICES = 6890


def write_synthetic_smpl(path: Path, seed: int = 0, leaves: dict[int, tuple[float, float, float]] | None = None) -> Path:
    """Write ``path`` (.npz); vertex j (j < 24) sits on rest joint j, ``leaves`` places chosen vertices exactly."""
    rng = np.random.default_rng(seed)
    rest = pg.skeleton.rest_joints().numpy().astype(np.float64) + np.array([0.0, 0.2, 0.0])  # pelvis off the origin
    parents = np.array(pg.skeleton.PARENTS)
    owner = rng.integers(0, 24, NUM_VERTICES)
    v = rest[owner] + rng.normal(0.0, 0.03, (NUM_VERTICES, 3))
    v[:24] = rest
    for idx, offset in (leaves or {}).items():
        v[idx] = rest[0] + np.asarray(offset)
    jreg = np.zeros((24, NUM_VERTICES))
    jreg[np.arange(24), np.arange(24)] = 1.0
    weights = np.zeros((NUM_VERTICES, 24))
    weights[np.arange(NUM_VERTICES), owner] = 1.0
    kintree = np.stack([np.where(parents < 0, 4294967295, parents), np.arange(24)]).astype(np.int64)
    np.savez(
        path,
        v_template=v, shapedirs=rng.normal(0.0, 0.01, (NUM_VERTICES, 3, 10)), posedirs=np.zeros((NUM_VERTICES, 3, 207), dtype=np.float32),
        J_regressor=jreg, weights=weights, kintree_table=kintree, f=rng.integers(0, NUM_VERTICES, (100, 3)),
    )
    return path
