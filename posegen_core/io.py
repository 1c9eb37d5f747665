"""Atomic file writes and checked checkpoint loading (weights_only, strict, with a readable mismatch report)."""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import CheckpointError


def atomic_write_bytes(data: bytes, path: str | Path) -> None:
    """Write to a temporary file in the same folder, fsync, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(text: str, path: str | Path) -> None:
    atomic_write_bytes(text.encode("utf-8"), path)


def atomic_write_json(obj: Any, path: str | Path) -> None:
    atomic_write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n", path)


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"cannot serialise {type(o).__name__} to JSON")


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(buf.getvalue(), path)


def atomic_savez(path: str | Path, **arrays: Any) -> None:
    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(buf.getvalue(), path)


def load_checkpoint_file(path: str | Path, what: str = "checkpoint", source: str = "") -> Any:
    """``torch.load(weights_only=True)`` with errors that say which file, what it should be and where to get it."""
    path = Path(path)
    where = f" {source}" if source else ""
    if not path.is_file():
        raise CheckpointError(f"{what} not found: {path}.{where}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, pickle with disallowed globals, not a torch file ...
        raise CheckpointError(
            f"could not read {what} {path}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}. "
            f"The file may be truncated or not a PyTorch checkpoint; download or copy it again.{where}"
        ) from None


def load_state_dict_strict(
    module: nn.Module, state: Mapping[str, torch.Tensor], path: str | Path = "<state dict>", strict: bool = True
) -> dict[str, list[str]]:
    """Load ``state`` into ``module``, reporting missing, unexpected and mis-shaped keys by name.

    With ``strict`` any mismatch raises CheckpointError; otherwise matching keys load and the report is returned.
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shape = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    report = {"missing": missing, "unexpected": unexpected, "mismatched": shape}
    if strict and (missing or unexpected or shape):
        def few(xs: list[str]) -> str:
            return ", ".join(xs[:8]) + (f" (+{len(xs) - 8} more)" if len(xs) > 8 else "")

        parts = []
        if shape:
            parts.append(f"{len(shape)} mis-shaped: {few(shape)}")
        if missing:
            parts.append(f"{len(missing)} missing: {few(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected: {few(unexpected)}")
        raise CheckpointError(
            f"{path} does not match {type(module).__name__}: " + "; ".join(parts)
            + ". Check that the checkpoint belongs to this model and configuration."
        )
    ok = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    module.load_state_dict(ok, strict=False)
    return report
