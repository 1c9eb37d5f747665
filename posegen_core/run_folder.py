"""The run-folder contract: what posegen may delete, who may write, and whether a stopped run may be continued.

- posegen deletes or overwrites only a folder that is a posegen run: it holds the marker ``posegen-run.json`` (written
  when the run starts) or, for runs made before the marker existed, both ``config.json`` and ``manifest.json``.
- A lock file (``.posegen.lock``, holding the writer's pid and host) keeps two processes from writing one folder; a
  lock whose process is gone (kill -9, power loss) is stale and is taken over.
- ``--resume`` continues only with the configuration the checkpoint was written with (a copy lives in the marker and in
  ``state.pt``); an edited ``config.json`` is refused with the fields that differ.
- Nothing non-finite is written as a checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError, ConfigError, TrainingError
from .io import atomic_write_json

MARKER = "posegen-run.json"
LOCK = ".posegen.lock"

#: Keys every ``checkpoints/state.pt`` holds.
STATE_KEYS = ("stage", "step", "G", "D", "P", "opt_g", "opt_d", "opt_p", "pool", "rng")

_held: set[Path] = set()  # lock files this process holds


def is_run_folder(path: str | Path) -> bool:
    """Whether ``path`` is a folder posegen created for a run (and so may replace)."""
    p = Path(path)
    return (p / MARKER).is_file() or ((p / "config.json").is_file() and (p / "manifest.json").is_file())


def check_out_folder(path: str | Path, overwrite: bool) -> None:
    """Refuse, before anything is built, an output folder posegen may not write or replace (nothing is changed here)."""
    p = Path(path)
    for parent in [p, *p.parents]:
        if parent.exists() and not parent.is_dir():
            raise ConfigError(f"cannot use {p} as the run folder: {parent} is a file, not a folder. Choose another --out.")
        if parent.exists():
            break
    if not p.is_dir() or not any(p.iterdir()):
        return
    if not overwrite:
        raise ConfigError(
            f"{p} already holds files. Pass --resume {p} to continue that run, --overwrite to replace it, or --out "
            "with a new folder."
        )
    if not is_run_folder(p):
        raise ConfigError(
            f"{p} holds files but is not a posegen run folder (no {MARKER}, config.json or manifest.json), so "
            "--overwrite will not delete it. Choose another --out, or move its files away yourself."
        )
    holder = lock_holder(p)
    if holder is not None:
        raise ConfigError(f"{p} is in use by another posegen process ({holder}); wait for it to finish or stop it.")


def replace_run_folder(path: str | Path) -> None:
    """Delete an earlier run in ``path`` (called only once the new run's inputs were built and validated)."""
    p = Path(path)
    if not p.is_dir() or not any(p.iterdir()):
        return
    if not is_run_folder(p):  # checked again: the folder may have changed since check_out_folder
        raise ConfigError(f"{p} is not a posegen run folder any more; refusing to delete it.")
    shutil.rmtree(p)


def write_marker(path: str | Path, config: Mapping[str, Any]) -> None:
    """Mark ``path`` as a posegen run and keep the configuration it was started with."""
    atomic_write_json({"posegen_run": 1, "created": datetime.now(timezone.utc).isoformat(), "config": dict(config)},
                      Path(path) / MARKER)


def started_config(path: str | Path) -> dict[str, Any] | None:
    """The configuration the run in ``path`` was started with (None for runs made before the marker)."""
    marker = Path(path) / MARKER
    if not marker.is_file():
        return None
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(f"{marker} is damaged ({type(e).__name__}: {e}); cannot tell which configuration the run "
                          "used.") from None
    return data.get("config") if isinstance(data, dict) else None


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping) and k == "pretrain":
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def config_differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``field: saved -> current`` for every field that differs (JSON-normalised, so 1 and 1.0 agree)."""
    a = _flatten(json.loads(json.dumps(saved, default=str)))
    b = _flatten(json.loads(json.dumps(current, default=str)))
    # a field added after the run started, at its default (None), changes nothing (e.g. ``streams``)
    return [f"{k}: {a.get(k, '(unset)')!r} -> {b.get(k, '(unset)')!r}" for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k) and not (k not in a and b.get(k) is None)]


def check_resume_config(run_dir: str | Path, saved: Mapping[str, Any] | None, current: Mapping[str, Any]) -> None:
    """Refuse to continue a run whose config.json no longer matches the configuration its checkpoint was made with."""
    if saved is None:
        return
    diff = config_differences(saved, current)
    if diff:
        raise ConfigError(
            f"{Path(run_dir) / 'config.json'} was changed after the run started ({'; '.join(diff)}); --resume continues "
            "only with the original configuration. Restore it, or start a new run with --config and another --out."
        )


def check_state(state: Any, path: str | Path, stages: Iterable[str]) -> None:
    """A run checkpoint holds every key the loop needs and a known stage."""
    hint = f"Delete {path} to restart the run from its beginning, or start a new run."
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a posegen run checkpoint (it holds a {type(state).__name__}). {hint}")
    missing = [k for k in STATE_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}: it is damaged or not a posegen run checkpoint. {hint}")
    stages = tuple(stages)
    if state["stage"] not in stages:
        raise CheckpointError(f"{path} names an unknown stage {state['stage']!r} (expected one of {', '.join(stages)}). {hint}")
    if not isinstance(state["step"], int) or isinstance(state["step"], bool) or state["step"] < 0:
        raise CheckpointError(f"{path} holds step {state['step']!r}; expected an integer >= 0. {hint}")


def non_finite_entries(obj: Any, prefix: str = "") -> list[str]:
    """Names of the floating-point tensors in a (nested) state that hold NaN or infinity."""
    bad: list[str] = []
    if isinstance(obj, torch.Tensor):
        if obj.is_floating_point() and not bool(torch.isfinite(obj).all()):
            bad.append(prefix or "tensor")
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            bad += non_finite_entries(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            bad += non_finite_entries(v, f"{prefix}[{i}]")
    return bad


def ensure_finite(state: Any, what: str) -> None:
    """Raise TrainingError instead of writing a checkpoint with NaN/inf weights."""
    bad = non_finite_entries(state)
    if bad:
        shown = ", ".join(bad[:5]) + (f" (+{len(bad) - 5} more)" if len(bad) > 5 else "")
        raise TrainingError(f"not writing {what}: {shown} hold NaN or infinite values (training diverged); lower the "
                            "learning rate and try again.")


def last_good_checkpoint(state_path: str | Path, run_dir: str | Path) -> str:
    """The sentence for a divergence error: the checkpoint to resume from, only when it exists."""
    if Path(state_path).is_file():
        return f"The last good checkpoint is {state_path}; lower the learning rates and continue with --resume {run_dir}"
    return "No checkpoint was written before this step; lower the learning rates and start the run again"


# -------------------------------------------------------------------------------------------------- lock
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def lock_holder(path: str | Path) -> str | None:
    """``pid N on HOST`` of a live process holding ``path``'s lock, else None (no lock, or a stale one)."""
    lock = Path(path) / LOCK
    try:
        info = json.loads(lock.read_text(encoding="utf-8"))
        pid, host = int(info["pid"]), str(info["host"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return None  # unreadable: treat as stale (a writer always writes it whole)
    if host != socket.gethostname():
        return f"pid {pid} on {host}"  # cannot check another machine's processes: assume it is alive
    if pid == os.getpid():
        return f"pid {pid} (this process)" if lock.resolve() in _held else None
    return f"pid {pid} on {host}" if _alive(pid) else None


def acquire_lock(path: str | Path) -> Path:
    """Take ``path``'s writer lock (taking over a stale one); ConfigError when a live process holds it."""
    p = Path(path)
    lock = p / LOCK
    holder = lock_holder(p)
    if holder is not None:
        raise ConfigError(f"{p} is in use by another posegen process ({holder}); wait for it to finish or stop it. "
                          f"If no posegen process is running there, delete {lock}.")
    lock.unlink(missing_ok=True)  # stale
    try:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:  # another process won the race
        raise ConfigError(f"{p} is in use by another posegen process that started at the same moment.") from None
    with os.fdopen(fd, "w") as f:
        json.dump({"pid": os.getpid(), "host": socket.gethostname()}, f)
    _held.add(lock.resolve())
    return lock


def release_lock(lock: Path | None) -> None:
    if lock is None:
        return
    _held.discard(lock.resolve())
    lock.unlink(missing_ok=True)
