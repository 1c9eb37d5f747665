"""The PoseGen loop end to end: smoke runs of every CPU renderer x estimator pair, determinism, resume after a kill,
the exported dataset's layout, and the errors a user hits (existing run folder, NaN losses, empty pose sources)."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import torch

import posegen_core as pg
from posegen_core import plugins as plugin_system

TINY = dict(  # on the CPU even where a GPU is visible: these tests compare runs bit for bit
    device="cpu", iters=2, feedback_start=1, batch_size=4, samples=8, finetune_steps=2, finetune_batch=4, eval_samples=8, image_size=32,
    checkpoint_every=1, log_every=1, pretrain=pg.PretrainConfig(steps=2, batch_size=4, eval_every=2, val_samples=8),
)


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    # The anny renderer's body cache is built from the installed anny package, not from a run: keep the machine's.
    from posegen_plugins.renderers.anny.asset import anny_cache_dir

    monkeypatch.setenv("POSEGEN_ANNY_CACHE", str(anny_cache_dir()))
    monkeypatch.setenv("POSEGEN_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def _cpu_renderers() -> list[str]:
    # A-NeRF needs a trained checkpoint to make sense; its own tests run it in the loop with a fabricated one.
    # anny is an optional extra: smoke-tested where it is installed (make test installs it).
    names = [n for n in pg.get_registry().names("renderer") if n != "anerf"]
    return [n for n in names if n != "anny" or importlib.util.find_spec("anny") is not None]


@pytest.mark.parametrize("estimator", ["simple", "spin", "hybrik"])
@pytest.mark.parametrize("renderer", _cpu_renderers())
def test_two_step_smoke_every_pair(renderer, estimator, tmp_path):
    if estimator not in pg.get_registry().names("estimator"):
        pytest.fail(f"estimator {estimator} is not registered")
    # the official models run at a reduced input size (a multiple of 32) to keep the smoke test short on a CPU
    options = {} if estimator == "simple" else {"input_size": 64}
    cfg = pg.RunConfig(renderer=renderer, estimator=estimator, estimator_options=options, out=str(tmp_path / "run"),
                       report=False, **TINY)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = pg.run(cfg)
    for split in ("source_views", "novel_views"):
        for key in ("mpjpe_before", "mpjpe_after", "pa_mpjpe_before", "pa_mpjpe_after"):
            assert np.isfinite(result.summary["table"][split][key])
    assert (tmp_path / "run" / "checkpoints" / "estimator_final.pt").is_file()


def test_default_run_writes_the_run_folder(tmp_path):
    cfg = pg.RunConfig(out=str(tmp_path / "run"), **TINY)
    result = pg.run(cfg)
    run = tmp_path / "run"
    for name in ("config.json", "manifest.json", "metrics.jsonl", "summary.json", "checkpoints/state.pt",
                 "checkpoints/estimator_pretrained.pt", "checkpoints/estimator_final.pt", "checkpoints/generator.pt",
                 "report/viewpoints.png", "report/error_per_joint.png", "report/error_per_view.png",
                 "report/samples.png", "dataset/annotations.npz", "dataset/images/000007.png"):
        assert (run / name).is_file(), name
    # the annotations follow SPIN's layout
    ann = np.load(run / "dataset" / "annotations.npz")
    n = cfg.samples
    assert ann["imgname"].shape == (n,) and str(ann["imgname"][0]) == "images/000000.png"
    assert ann["center"].shape == (n, 2) and ann["scale"].shape == (n,)
    assert ann["pose"].shape == (n, 72) and ann["shape"].shape == (n, 10) and ann["S"].shape == (n, 24, 4)
    assert ann["joints_smpl24"].shape == (n, 24, 3) and ann["cam_K"].shape == (n, 3, 3)
    # the 72-d pose reproduces the annotated camera-frame joints through forward kinematics
    pose = torch.from_numpy(ann["pose"]).double()
    joints, _ = pg.forward_kinematics(pose[:, :3], pose[:, 3:].view(n, 23, 3))
    torch.testing.assert_close(joints - joints[:, :1], torch.from_numpy(ann["joints_smpl24"]).double(), atol=1e-4, rtol=0)
    # checkpoints load through the public factory
    for name in ("estimator_pretrained.pt", "estimator_final.pt"):
        est = pg.create_estimator("simple", checkpoint=run / "checkpoints" / name)
        assert isinstance(est, pg.Estimator)
    summary = json.loads((run / "summary.json").read_text())
    assert summary == json.loads(json.dumps(result.summary))
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["stage"] == "gan"] == [1, 2]


def test_same_seed_same_metrics(tmp_path):
    a = pg.run(pg.RunConfig(out=str(tmp_path / "a"), report=False, **TINY)).summary["table"]
    b = pg.run(pg.RunConfig(out=str(tmp_path / "b"), report=False, **TINY)).summary["table"]
    assert a == b
    c = pg.run(pg.RunConfig(out=str(tmp_path / "c"), report=False, **{**TINY, "seed": 1})).summary["table"]
    assert c != a
    # another run seed meets the same pre-trained estimator on the same test set: only "after" differs
    before = lambda t: {split: {k: v for k, v in r.items() if k.endswith("_before")} for split, r in t.items()}
    assert before(c) == before(a)
    assert {split: r["mpjpe_after"] for split, r in c.items()} != {split: r["mpjpe_after"] for split, r in a.items()}
    # the setting seed changes the held-out takes, the evaluation renders and the pre-trained stand-in
    d = pg.run(pg.RunConfig(out=str(tmp_path / "d"), report=False, **{**TINY, "setting_seed": 1})).summary["table"]
    assert all(d[split]["mpjpe_before"] != a[split]["mpjpe_before"] for split in a)


def _posegen(*args: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "posegen_core.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_killed_run_resumes_to_the_same_result(tmp_path):
    env = {**os.environ, "POSEGEN_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    common = ["--device", "cpu", "--iters", "12", "--set", "feedback_start=4", "--samples", "16", "--finetune-steps", "6", "--batch-size", "8", "--image-size", "32",
              "--set", "checkpoint_every=2", "--set", "log_every=1", "--set", "eval_samples=16", "--set", "report=false",
              "--set", "pretrain.steps=3", "--set", "pretrain.eval_every=3", "--set", "pretrain.val_samples=8", "--set", "threads=1"]
    whole = _posegen("run", "--out", str(tmp_path / "whole"), *common, env=env)
    assert whole.wait(timeout=600) == 0, whole.stdout.read()
    broken = _posegen("run", "--out", str(tmp_path / "broken"), *common, env=env)
    state = tmp_path / "broken" / "checkpoints" / "state.pt"
    deadline = time.time() + 600
    while time.time() < deadline and broken.poll() is None:
        if state.is_file():
            s = torch.load(state, weights_only=True)
            if s["stage"] == "gan" and s["step"] >= 6:
                break
        time.sleep(0.05)
    assert broken.poll() is None, "the run finished before it could be killed; make it longer"
    broken.send_signal(signal.SIGKILL)
    broken.wait()
    assert not (tmp_path / "broken" / "summary.json").exists()
    resumed = _posegen("run", "--resume", str(tmp_path / "broken"), env=env)
    out = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, out
    assert "resuming at stage 'gan'" in out
    a = json.loads((tmp_path / "whole" / "summary.json").read_text())["table"]
    b = json.loads((tmp_path / "broken" / "summary.json").read_text())["table"]
    assert a == b
    rows = [json.loads(x) for x in (tmp_path / "broken" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["stage"] == "gan"] == list(range(1, 13))


def test_existing_run_folder_is_refused(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{}")
    with pytest.raises(pg.ConfigError, match="--resume .*--overwrite"):
        pg.run(pg.RunConfig(out=str(tmp_path / "run"), **TINY))


class _NaNPrior(pg.Prior):
    """A prior that breaks after a few draws, as a buggy third-party prior would."""

    calls = 0

    def sample(self, n, dim, generator=None):
        _NaNPrior.calls += 1
        z = torch.randn(n, dim, generator=generator)
        return z * float("nan") if _NaNPrior.calls > 3 else z


class _NaNPlugin:
    @staticmethod
    @pg.hookimpl
    def posegen_register_priors(register):
        register("nan_after_3", _NaNPrior)


def test_nan_loss_stops_cleanly_with_last_good_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(plugin_system, "_registry", plugin_system.build_registry(extra_plugins=(_NaNPlugin,)))
    cfg = pg.RunConfig(out=str(tmp_path / "run"), prior="nan_after_3", **{**TINY, "iters": 10})
    with pytest.raises(pg.TrainingError, match="NaN/inf at step 4 .*last good checkpoint"):
        pg.run(cfg)
    state = torch.load(tmp_path / "run" / "checkpoints" / "state.pt", weights_only=True)
    assert state["stage"] == "gan" and state["step"] == 3
    assert all(torch.isfinite(v).all() for v in state["G"].values() if v.is_floating_point())


def test_empty_and_single_take_pose_sets_fail_clearly():
    from posegen_core.scene import split_by_take

    empty = pg.PoseSet(torch.zeros(0, 3), torch.zeros(0, 23, 3), np.zeros(0, dtype=int), [])
    with pytest.raises(pg.DataError, match="empty"):
        split_by_take(empty, 0.2, 0)
    one = pg.PoseSet(torch.zeros(5, 3), torch.zeros(5, 23, 3), np.zeros(5, dtype=int), ["walk"])
    with pytest.raises(pg.DataError, match="at least 2"):
        split_by_take(one, 0.2, 0)


def test_split_keeps_test_takes_out_of_training():
    from posegen_core.scene import split_by_take

    poses = pg.create_pose_source("default").load()
    split = split_by_take(poses, 0.25, seed=3)
    train = {split.train.take_names[i] for i in np.unique(split.train.take)}
    test = {split.test.take_names[i] for i in np.unique(split.test.take)}
    assert train and test and not (train & test)
    assert len(split.train) + len(split.test) == len(poses)


def test_checkpoint_of_another_estimator_is_refused(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"posegen_estimator": "spin", "options": {}, "state_dict": {}}, path)
    with pytest.raises(pg.CheckpointError, match="'spin' estimator, not 'simple'"):
        pg.create_estimator("simple", checkpoint=path)


class _Observer:
    """A plugin that watches a run through the lifecycle hooks."""

    events: list = []

    @staticmethod
    @pg.hookimpl
    def posegen_run_start(config, run_dir):
        _Observer.events.append(("start", config.iters, str(run_dir)))

    @staticmethod
    @pg.hookimpl
    def posegen_step_end(step, metrics):
        _Observer.events.append(("step", step, metrics["stage"]))

    @staticmethod
    @pg.hookimpl
    def posegen_run_end(result):
        _Observer.events.append(("end", sorted(result.summary["table"])))


def test_lifecycle_hooks_observe_a_run(tmp_path, monkeypatch):
    monkeypatch.setattr(plugin_system, "_registry", plugin_system.build_registry(extra_plugins=(_Observer,)))
    _Observer.events = []
    pg.run(pg.RunConfig(out=str(tmp_path / "run"), report=False, **TINY))
    assert _Observer.events[0] == ("start", 2, str(tmp_path / "run"))
    assert _Observer.events[1:3] == [("step", 1, "gan"), ("step", 2, "gan")]
    assert _Observer.events[-1] == ("end", ["novel_views", "source_views"])



def test_cli_run_prints_the_before_after_table_of_its_summary(tmp_path):
    """`posegen run` ends with MPJPE, PA-MPJPE and the root-orientation error apart, before -> after, as summary.json
    records them; a feedback strategy named on the command line (here `view`) is used."""
    from click.testing import CliRunner

    from posegen_core.cli import cli

    flags = ["--device", "cpu", "--iters", "2", "--samples", "8", "--finetune-steps", "2", "--batch-size", "4",
             "--image-size", "32", "--feedback", "view", "--set", "feedback_start=1", "--set", "finetune_batch=4",
             "--set", "eval_samples=8", "--set", "report=false", "--set", "pretrain.steps=2",
             "--set", "pretrain.batch_size=4", "--set", "pretrain.eval_every=2", "--set", "pretrain.val_samples=8"]
    res = CliRunner().invoke(cli, ["run", "--out", str(tmp_path / "run"), *flags], terminal_width=200)
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "run" / "config.json").read_text())["feedback"] == "view"
    table = json.loads((tmp_path / "run" / "summary.json").read_text())["table"]
    for split, r in table.items():
        row = next(ln for ln in res.output.splitlines() if ln.strip("│ ").startswith(split))
        for key in ("mpjpe", "pa_mpjpe", "rot_deg"):
            assert f"{r[key + '_before']:.1f} -> {r[key + '_after']:.1f}" in row, (key, row)


def test_posegen_pretrain_gives_the_same_model_for_the_same_seed(tmp_path):
    """The estimator's initial weights are drawn from the seed too: two cold `posegen pretrain` runs agree."""
    from click.testing import CliRunner

    from posegen_core.cli import cli

    paths = []
    for name in ("a.pt", "b.pt"):
        args = ["pretrain", "--steps", "2", "--batch-size", "4", "--image-size", "32", "--device", "cpu",
                "--seed", "3", "--out", str(tmp_path / name)]
        res = CliRunner().invoke(cli, args)
        assert res.exit_code == 0, res.output
        paths.append(tmp_path / name)
    a, b = (pg.create_estimator("simple", checkpoint=p).state_dict() for p in paths)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
