"""Fuzzing the loaders with hypothesis: whatever the bytes or values, a loader either returns data that agrees with
what the file declares, or raises posegen's own error (DataError / ConfigError) with a message naming the file. Never
a raw exception, never silently inconsistent data. Examples are few and small so the suite stays fast.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import posegen_core as pg  # noqa: E402
from posegen_plugins.pose_sources.amass import read_amass_file  # noqa: E402
from posegen_plugins.pose_sources.bvh_format import read_bvh  # noqa: E402

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)

SMALL_BVH = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Chest
  {
    OFFSET 0 10 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 5 0
    }
  }
}
MOTION
Frames: 3
Frame Time: 0.033333
0 90 0 0 0 0 1 2 3
0 91 0 5 0 0 4 5 6
0 92 0 10 0 0 7 8 9
"""


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _tmp(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name  # one file per test, rewritten by every example
    path.write_bytes(data)
    return path


@st.composite
def mutated_bvh(draw) -> bytes:
    """The small valid file, cut short, with tokens replaced, or with lines dropped or repeated."""
    text = SMALL_BVH
    kind = draw(st.sampled_from(["cut", "token", "line", "header"]))
    if kind == "cut":
        return text.encode()[: draw(st.integers(0, len(text)))]
    lines = text.splitlines()
    if kind == "token":
        i = draw(st.integers(0, len(lines) - 1))
        words = lines[i].split() or [""]
        j = draw(st.integers(0, len(words) - 1))
        words[j] = draw(st.sampled_from(["nan", "inf", "-1", "0", "1e400", "x", "{", "}", "", "ROOT", "MOTION", "3.5"]))
        lines[i] = " ".join(words)
    elif kind == "line":
        i = draw(st.integers(0, len(lines) - 1))
        lines = lines[:i] + lines[i + 1:] if draw(st.booleans()) else lines[:i] + [lines[i]] + lines[i:]
    else:
        frames = draw(st.sampled_from(["0", "-2", "2", "4", "x", "3.0", ""]))
        ftime = draw(st.sampled_from(["0", "-0.1", "nan", "inf", "x", "0.01", ""]))
        lines[lines.index("Frames: 3")] = f"Frames: {frames}"
        lines[lines.index("Frame Time: 0.033333")] = f"Frame Time: {ftime}"
    return ("\n".join(lines) + "\n").encode()


@FUZZ
@given(mutated_bvh(), st.integers(1, 3))
def test_bvh_reader_fuzz(fuzz_dir, data, step):
    path = _tmp(fuzz_dir, "take.bvh", data)
    try:
        motion = read_bvh(path, step=step, head=3)
    except (pg.DataError, pg.ConfigError) as e:
        assert str(path) in str(e)
        return
    # accepted: the values agree with the header and the hierarchy, and are finite
    declared = int(data.decode().split("Frames:")[1].split()[0])
    assert motion.total_frames == declared
    assert motion.values.shape == (len(range(0, declared, step)), motion.skeleton.num_channels)
    assert np.isfinite(motion.values).all() and motion.frame_time > 0 and math.isfinite(motion.frame_time)


_FLOATS = st.sampled_from([0.0, -1.0, 1.5, np.nan, np.inf, -np.inf, 1e300])


@st.composite
def amass_arrays(draw) -> dict[str, np.ndarray]:
    n = draw(st.integers(0, 6))
    width = draw(st.sampled_from([72, 156, 165, 3, 69]))
    poses = np.zeros((n, width)) + draw(_FLOATS) * draw(st.sampled_from([0.0, 1.0]))
    if draw(st.booleans()):
        with np.errstate(all="ignore"):
            poses = poses.astype(draw(st.sampled_from([np.float32, np.int64, np.bool_])))
    if draw(st.booleans()) and n:
        poses = poses.reshape(n, width, 1)
    out = {"poses": poses, "betas": np.zeros(16)}
    rate = draw(st.sampled_from(["missing", "ok", "zero", "nan", "inf", "neg", "array", "text"]))
    out["mocap_framerate"] = {"ok": np.array(120.0), "zero": np.array(0.0), "nan": np.array(np.nan),
                              "inf": np.array(np.inf), "neg": np.array(-60.0), "array": np.array([120.0, 60.0]),
                              "text": np.array("120"), "missing": None}[rate]
    trans_n = draw(st.sampled_from([n, n + 1, max(n - 1, 0), "missing"]))
    out["trans"] = None if trans_n == "missing" else np.zeros((trans_n, 3))
    return {k: v for k, v in out.items() if v is not None}


@FUZZ
@given(amass_arrays(), st.sampled_from([None, 1, 3]), st.sampled_from([None, 30.0]))
def test_amass_reader_fuzz(fuzz_dir, arrays, step, fps):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path = _tmp(fuzz_dir, "take.npz", buf.getvalue())
    try:
        go, bp, rate = read_amass_file(path, step, fps, None)
    except (pg.DataError, pg.ConfigError) as e:
        assert str(path) in str(e)
        return
    poses = arrays["poses"]
    assert poses.ndim == 2 and poses.shape[0] > 0 and np.isfinite(poses).all()
    assert "trans" not in arrays or len(arrays["trans"]) == len(poses)
    assert go.shape == (len(bp), 3) and bp.shape[1:] == (23, 3) and 0 < len(bp) <= len(poses)
    assert rate == 0.0 or (math.isfinite(rate) and rate > 0)
    assert bool(np.isfinite(go.numpy()).all() and np.isfinite(bp.numpy()).all())


_SPIN_VALUES = {
    "imgname": [np.array(["a.jpg", "b.jpg"]), np.array([1.0, 2.0]), np.array(["a.jpg"]), np.array([["a.jpg"]])],
    "center": [np.zeros((2, 2)), np.zeros((2, 3)), np.full((2, 2), np.nan), np.array([["x", "y"]] * 2), np.zeros(2)],
    "scale": [np.ones(2), np.zeros(2), -np.ones(2), np.ones((2, 1)), np.full(2, np.inf), np.ones(3)],
    "pose": [np.zeros((2, 72)), np.zeros((2, 69)), np.zeros((2, 72), dtype=np.int8)],
    "S": [np.zeros((2, 24, 4)), np.zeros((2, 24, 3)), np.full((2, 24, 4), np.nan)],
}


@FUZZ
@given(st.fixed_dictionaries({}, optional={k: st.sampled_from(v) for k, v in _SPIN_VALUES.items()}))
def test_spin_npz_reader_fuzz(fuzz_dir, arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path = _tmp(fuzz_dir, "spin.npz", buf.getvalue())
    try:
        ann = pg.spin_data.read_spin_annotations(path)
    except pg.DataError as e:
        assert str(path) in str(e)
        return
    n = len(ann)
    assert ann.center.shape == (n, 2) and ann.scale.shape == (n,) and (ann.scale > 0).all()
    for k in ("center", "scale", "pose", "S"):
        v = getattr(ann, k)
        assert v is None or np.isfinite(v).all()


_FIELDS = ["iters", "samples", "seed", "lr_g", "image_size", "scenario", "renderer_options", "pretrain", "d",
           "export_images", "threads", "no_such_field"]
_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5000), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6), st.lists(st.integers(), max_size=2),
    st.dictionaries(st.sampled_from(["steps", "lr", "batch_size", "bogus"]), st.one_of(st.integers(-2, 9), st.text(max_size=3)),
                    max_size=2),
)


@FUZZ
@given(st.dictionaries(st.sampled_from(_FIELDS), _VALUES, max_size=4), st.sampled_from(["toml", "json"]))
def test_config_reader_fuzz(fuzz_dir, data, fmt):
    """Values of every type into every kind of field: a valid RunConfig whose values have the declared types, or one
    ConfigError line."""
    if fmt == "json":
        payload = json.dumps(data).encode()
    else:  # TOML has no null: write what it can express, as JSON values (TOML inline tables differ, so skip those)
        rows = [f"{k} = {json.dumps(v)}" for k, v in data.items()
                if v is not None and not isinstance(v, dict) and not (isinstance(v, float) and not math.isfinite(v))]
        payload = "\n".join(rows).encode()
    path = _tmp(fuzz_dir, f"c.{fmt}", payload)
    try:
        cfg = pg.RunConfig.from_file(path).validate()
    except pg.ConfigError as e:
        assert "\n" not in str(e)
        return
    assert isinstance(cfg.iters, int) and not isinstance(cfg.iters, bool) and cfg.iters >= 0
    assert isinstance(cfg.lr_g, float) and math.isfinite(cfg.lr_g) and cfg.lr_g > 0
    assert 16 <= cfg.image_size <= 2048 and cfg.scenario in ("ood", "ind")
    assert isinstance(cfg.pretrain, pg.PretrainConfig) and cfg.pretrain.batch_size >= 2
    assert isinstance(cfg.export_images, bool) and isinstance(cfg.renderer_options, dict)
