"""Atomic file writes and checked checkpoint loading (weights_only, strict, with a readable mismatch report)."""

from __future__ import annotations

import _compat_pickle
import importlib
import io
import json
import os
import pickle
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


# ------------------------------------------------------------------------------------------------ model pickles
class _ArrayLike:
    """Stands in for an object an official model pickle stores (chumpy ``Ch``, a scipy sparse matrix) without importing
    or running its class: unpickling only records its state, which ``_plain`` turns into numpy arrays."""

    kind = ""

    def __setstate__(self, state: Any) -> None:  # BUILD: keep the state, run nothing
        self.state = state


class _Chumpy(_ArrayLike):
    kind = "chumpy"


class _Sparse(_ArrayLike):
    kind = "sparse"
    format = ""  # csc, csr or coo: the class the pickle named


_SPARSE = {f: type(f"_Sparse_{f}", (_Sparse,), {"format": f}) for f in ("csc", "csr", "coo")}


def _reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """``copyreg._reconstructor`` (protocol 0/1 pickles of new-style objects), limited to the stand-ins above."""
    import builtins

    if not (isinstance(cls, type) and issubclass(cls, _ArrayLike)) or base is not builtins.object or state is not None:
        raise UnsafePickleError("copyreg._reconstructor with disallowed arguments")
    return object.__new__(cls)


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles written by Python 3 use it for bytes (array data), latin-1 only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError("_codecs.encode with arguments other than (str, 'latin1')")
    return text.encode("latin1")


class UnsafePickleError(Exception):
    """A pickle asks for a class the model-file unpickler does not allow."""


def _allowed_globals() -> dict[tuple[str, str], Any]:
    import builtins

    import numpy as np

    reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy.core.multiarray._reconstruct (numpy 1 and 2)
    scalar = np.float64(0).__reduce__()[0]  # numpy.core.multiarray.scalar
    frombuffer = None  # protocol-5 pickles of arrays (numpy._core in numpy 2, numpy.core before)
    for module in ("numpy._core.numeric", "numpy.core.numeric"):
        try:
            frombuffer = getattr(importlib.import_module(module), "_frombuffer", None)
            break
        except ImportError:
            continue
    allowed: dict[tuple[str, str], Any] = {}
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = scalar
        if frombuffer is not None:
            allowed[(f"{core}.numeric", "_frombuffer")] = frombuffer
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    allowed[("copyreg", "_reconstructor")] = _reconstructor
    allowed[("_codecs", "encode")] = _latin1_bytes
    for name in ("object", "set", "frozenset", "list", "dict", "tuple"):
        allowed[("builtins", name)] = getattr(builtins, name)
    return allowed


_SPARSE_CLASSES = ("csc_matrix", "csr_matrix", "coo_matrix", "csc_array", "csr_array", "coo_array")


class _ModelUnpickler(pickle.Unpickler):
    """Resolves only numpy arrays/dtypes, plain containers, and stand-ins for chumpy and scipy.sparse objects."""

    def __init__(self, file: Any, allowed: dict[tuple[str, str], Any]) -> None:
        super().__init__(file, encoding="latin1")  # the official SMPL files are Python-2 pickles
        self.allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _compat_pickle.NAME_MAPPING:  # Python-2 names (copy_reg, __builtin__), as pickle maps them
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        if (module, name) in self.allowed:
            return self.allowed[(module, name)]
        if module == "chumpy" or module.startswith("chumpy."):
            return _Chumpy
        if (module == "scipy.sparse" or module.startswith("scipy.sparse.")) and name in _SPARSE_CLASSES:
            return _SPARSE[name[:3]]
        raise UnsafePickleError(f"{module}.{name}")


def _plain(value: Any, path: Path, key: str) -> Any:
    """Stand-ins -> numpy arrays (chumpy ``Ch``: its ``x``; sparse: densified from data/indices/indptr or row/col)."""
    import numpy as np

    if not isinstance(value, _ArrayLike):
        return value
    state = getattr(value, "state", None)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: '{key}' is a {value.kind} object without readable state.")
    if value.kind == "chumpy":
        if "x" not in state or not isinstance(state["x"], np.ndarray):
            raise CheckpointError(
                f"{path}: '{key}' is a chumpy expression, not a stored array; convert the file to .npz with chumpy "
                "installed (np.savez(out, **{k: np.asarray(v) for k, v in model.items()}))."
            )
        return np.asarray(state["x"])
    import scipy.sparse as sp

    shape = state.get("_shape", state.get("shape"))
    try:
        if value.format in ("csc", "csr"):
            cls = sp.csr_matrix if value.format == "csr" else sp.csc_matrix
            return cls((state["data"], state["indices"], state["indptr"]), shape=shape).toarray()
        return sp.coo_matrix((state["data"], (state["row"], state["col"])), shape=shape).toarray()
    except Exception as e:
        raise CheckpointError(f"{path}: '{key}' is a damaged sparse matrix ({type(e).__name__}: {e}).") from None


def load_model_pickle(path: str | Path, what: str = "model file") -> dict[str, Any]:
    """Read a model dictionary pickled like the official SMPL/SMPL-X files, without running any code from it.

    Only numpy arrays, dtypes and scalars, plain containers, chumpy ``Ch`` arrays (read as their stored values, without
    importing chumpy) and scipy sparse matrices (densified) are allowed; any other class raises CheckpointError naming
    the file and the class, before anything of the pickle has run.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = _ModelUnpickler(f, _allowed_globals()).load()
    except UnsafePickleError as e:
        raise CheckpointError(
            f"{path}: refusing to load the {what}: its pickle asks for {e}, which a model file never needs (it could "
            "run code). Use the official file, or its .npz conversion."
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            MemoryError, UnicodeDecodeError) as e:
        raise CheckpointError(
            f"could not read {what} {path}: {type(e).__name__}: {e}. The file may be truncated or not a model "
            "pickle; download it again (or use its .npz)."
        ) from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path} holds a {type(raw).__name__}, not a {what} dictionary.")
    return {str(k): _plain(v, path, str(k)) for k, v in raw.items()}
