"""Test helpers: state dicts fabricated from the reference key lists (official names and shapes), small images."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"  # ../shared beside the checkout


def reference_layout(name: str) -> list[tuple[str, tuple[int, ...]]]:
    path = REFERENCE / name
    if not path.is_file():
        pytest.skip(f"reference key list {path} not available")
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            key, shape = line.split(" ", 1)
            out.append((key, tuple(int(s) for s in shape.strip("()").split(",") if s.strip())))
    return out


def fabricate(layout: list[tuple[str, tuple[int, ...]]], seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with the listed names and shapes and random values (BN variances positive, counters int64)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in layout:
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7, dtype=torch.long)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        else:
            state[key] = torch.randn(shape, generator=g) * 0.01
    return state


def small_images(b: int = 2, h: int = 48, w: int = 40, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed))
