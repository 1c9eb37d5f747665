"""Distributed runs (torchrun's environment, gloo, 2 CPU processes): equal to one process at twice the batch,
resumable after a process dies (also at another world size), one complete run folder written once."""

from __future__ import annotations

import json
import shutil
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).parent))
from distributed_worker import run_processes  # noqa: E402

import posegen_core as pg  # noqa: E402

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="torch without the gloo backend")

B = 4  # per-process batch


def _estimator_checkpoint(tmp: Path) -> str:
    """One fixed starting estimator for every run (pre-training is not what these tests compare)."""
    path = tmp / "estimator.pt"
    if not path.is_file():
        torch.manual_seed(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pg.create_estimator("simple").save_checkpoint(path)
    return str(path)


def _cfg(tmp: Path, **over) -> dict:
    cfg = dict(device="cpu", iters=1, feedback_start=0, batch_size=B, samples=8, finetune="both", finetune_steps=1,
               finetune_batch=4, eval_samples=8, image_size=32, checkpoint_every=1, log_every=1, report=False,
               pool_size=64, estimator_checkpoint=_estimator_checkpoint(tmp), threads=1)
    cfg.update(over)
    return cfg


def _state(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "state.pt", weights_only=True)


def _assert_same_models(a: dict, b: dict, atol: float = 1e-5) -> None:
    for key in ("G", "D", "P"):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            x, y = a[key][name], b[key][name]
            if x.is_floating_point():
                torch.testing.assert_close(x, y, atol=atol, rtol=1e-4, msg=f"{key}.{name}")
            else:
                assert torch.equal(x, y), f"{key}.{name}"


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_two_processes_equal_one_process_at_twice_the_batch(tmp_path):
    """One GAN iteration (G, D and the estimator's in-loop update) and one fine-tuning step at world size 2 with B
    samples per process give the models of one process drawing 2B samples from the same two random streams."""
    two, one, plain = tmp_path / "two", tmp_path / "one", tmp_path / "plain"
    run_processes(2, "run", _cfg(tmp_path), two, tmp_path / "cache")
    run_processes(1, "run", _cfg(tmp_path, streams=2), one, tmp_path / "cache")
    a, b = _state(two), _state(one)
    _assert_same_models(a, b)
    # the global batch is 2B in both: D's history pool holds every process's fakes, the same ones
    assert a["pool"]["items"].shape == (2 * B, 23, 3)
    torch.testing.assert_close(a["pool"]["items"], b["pool"]["items"])
    assert a["streams"] == b["streams"] == 2 and a["world_size"] == 2 and b["world_size"] == 1
    for ra, rb in zip(_metrics(two), _metrics(one), strict=True):
        assert ra["stage"] == rb["stage"] and ra["step"] == rb["step"]
        for k in ("loss_g", "loss_d", "loss_p"):
            if k in ra:
                assert ra[k] == pytest.approx(rb[k], rel=1e-4, abs=1e-6), k
    # and the draws matter: one process at batch B (one stream) trains other models
    run_processes(1, "run", _cfg(tmp_path), plain, tmp_path / "cache")
    c = _state(plain)
    assert not torch.allclose(next(iter(a["G"].values())), next(iter(c["G"].values())))


def test_a_process_killed_in_the_gan_stage_resumes_to_the_same_end(tmp_path):
    cfg = _cfg(tmp_path, iters=4, finetune="after")
    whole, broken, other = tmp_path / "whole", tmp_path / "broken", tmp_path / "other"
    run_processes(2, "run", cfg, whole, tmp_path / "cache")
    with pytest.raises(mp.ProcessExitedException):
        run_processes(2, "crash", cfg, broken, tmp_path / "cache", crash_step=3)
    s = _state(broken)
    assert s["stage"] == "gan" and s["step"] == 2  # killed after step 3, before its checkpoint
    shutil.copytree(broken, other)
    run_processes(2, "resume", cfg, broken, tmp_path / "cache")
    _assert_same_models(_state(whole), _state(broken), atol=0)
    assert [(r["stage"], r["step"]) for r in _metrics(broken)] == [(r["stage"], r["step"]) for r in _metrics(whole)]
    # the same checkpoint continues at another world size (one process drawing both streams) to the same end
    run_processes(1, "resume", cfg, other, tmp_path / "cache")
    _assert_same_models(_state(whole), _state(other))
