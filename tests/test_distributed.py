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


def test_stream_zero_is_the_single_process_generator_and_the_others_differ():
    from posegen_core.distributed import stream_generator
    from posegen_core.stages.build import stage_generator, stage_seed

    seed = stage_seed(3, "gan")
    ref = torch.rand(5, generator=stage_generator(3, "gan"))
    assert torch.equal(torch.rand(5, generator=stream_generator(seed, 0)), ref)
    others = [torch.rand(5, generator=stream_generator(seed, s)) for s in (1, 2)]
    assert not torch.equal(others[0], ref) and not torch.equal(others[0], others[1])
    assert torch.equal(torch.rand(5, generator=stream_generator(seed, 1)), others[0])  # reproducible


def test_a_world_size_that_does_not_divide_the_streams_is_refused_before_anything_is_written(tmp_path):
    from posegen_core.distributed import check_streams

    check_streams(4, 2)
    with pytest.raises(pg.ConfigError, match=r"3 random stream\(s\) but 2 processes.*start 1, 3 processes"):
        check_streams(3, 2)
    with pytest.raises(pg.ConfigError, match="streams"):
        pg.PoseGenRun(pg.RunConfig(device="cpu", streams=0, out=str(tmp_path / "run")))
    assert not (tmp_path / "run").exists()


def test_the_shortcut_passes_everything_but_its_own_options_to_the_processes():
    from posegen_core.commands.run import _without_launcher_options

    argv = ["run", "--nproc-per-node", "2", "--set", "iters=3", "--max-restarts=1", "--out", "x"]
    assert _without_launcher_options(argv) == ["run", "--set", "iters=3", "--out", "x"]


def test_two_processes_equal_one_process_at_twice_the_batch(tmp_path):
    """One GAN iteration (G, D and the estimator's in-loop update) and one fine-tuning step at world size 2 with B
    samples per process give the models of one process drawing 2B samples from the same two random streams."""
    import numpy as np

    two, one, plain = tmp_path / "two", tmp_path / "one", tmp_path / "plain"
    # 130 generated samples: 3 chunks of the dataset, rendered 2 + 1 by the two processes and gathered
    run_processes(2, "run", _cfg(tmp_path, samples=130), two, tmp_path / "cache")
    run_processes(1, "run", _cfg(tmp_path, samples=130, streams=2), one, tmp_path / "cache")
    a, b = _state(two), _state(one)
    _assert_same_models(a, b)
    with np.load(two / "dataset" / "annotations.npz") as x, np.load(one / "dataset" / "annotations.npz") as y:
        assert len(x["imgname"]) == 130
        for key in x.files:
            assert np.allclose(x[key], y[key], atol=1e-5) if x[key].dtype.kind == "f" else np.array_equal(x[key], y[key])
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
    run_processes(1, "run", _cfg(tmp_path, samples=130), plain, tmp_path / "cache")
    c = _state(plain)
    assert not torch.allclose(next(iter(a["G"].values())), next(iter(c["G"].values())))


@pytest.mark.slow
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


def test_an_export_on_two_processes_equals_the_one_process_export(tmp_path):
    """Each process renders and writes its own shards; rank 0 merges them into the same dataset, byte for byte."""
    import numpy as np

    from posegen_core.generator import PoseGenerator
    from posegen_core.io import atomic_torch_save, atomic_write_json

    cfg = pg.RunConfig()
    torch.manual_seed(0)
    G = PoseGenerator(cfg.latent_dim, viewpoint=cfg.generate_viewpoint, viewpoint_param=cfg.viewpoint_param,
                      k_max=cfg.k_max, max_elevation=cfg.max_elevation, max_roll=cfg.max_roll)
    run = tmp_path / "run"
    atomic_write_json(cfg.to_dict(), run / "config.json")
    atomic_torch_save({"G": G.state_dict(), "config": cfg.to_dict()}, run / "checkpoints" / "generator.pt")
    options = dict(samples=200, size=32, shard_size=64, threads=1)  # 4 shards: 2 per process, the last one short
    run_processes(1, "export", {**options, "out": str(tmp_path / "one")}, run, tmp_path / "cache")
    run_processes(2, "export", {**options, "out": str(tmp_path / "two")}, run, tmp_path / "cache")
    one, two = np.load(tmp_path / "one" / "annotations.npz"), np.load(tmp_path / "two" / "annotations.npz")
    assert one.files == two.files and len(two["imgname"]) == 200
    for key in one.files:
        assert np.array_equal(one[key], two[key]), key
    names = sorted(p.name for p in (tmp_path / "two" / "images").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "one" / "images").iterdir()) and len(names) == 200
    for name in names[::37]:
        assert (tmp_path / "one" / "images" / name).read_bytes() == (tmp_path / "two" / "images" / name).read_bytes()
    assert json.loads((tmp_path / "two" / "export.json").read_text())["complete"] is True
    assert not (tmp_path / "two.partial").exists()


# ----------------------------------------------------------------------------------------------- the command line
_AUDIT = '''
import os, sys
_dir, _rank = os.environ.get("POSEGEN_TEST_AUDIT"), os.environ.get("RANK")
if _dir and _rank is not None:
    _fd = os.open(os.path.join(_dir, f"{os.getpid()}.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    _run = os.environ["POSEGEN_TEST_RUNS"]

    def _hook(event, args):
        if event == "open" and args[0] is not None and isinstance(args[0], str):
            mode = args[1] or ""
            if any(c in mode for c in "wax+") or (isinstance(args[2], int) and args[2] & (os.O_WRONLY | os.O_RDWR)):
                path = os.path.abspath(args[0])
            else:
                return
        elif event == "os.rename":
            path = os.path.abspath(os.fsdecode(args[1]))
        else:
            return
        if path.startswith(_run):
            os.write(_fd, f"{_rank}\\t{event}\\t{path}\\n".encode())

    sys.addaudithook(_hook)
'''

_CRASH_PLUGIN = '''
import os
from posegen_core import hookimpl

@hookimpl
def posegen_step_end(step, metrics):
    # rank 1 dies after GAN step 2 of the first attempt; torchrun (--max-restarts) starts the processes again
    if step == 2 and os.environ.get("RANK") == "1" and os.environ.get("TORCHELASTIC_RESTART_COUNT") == "0":
        os._exit(17)
'''

RUN_FILES = {"config.json", "manifest.json", "metrics.jsonl", "posegen-run.json", "summary.json",
             "checkpoints/state.pt", "checkpoints/estimator_pretrained.pt", "checkpoints/estimator_final.pt",
             "checkpoints/generator.pt", "dataset/annotations.npz", "dataset/export.json", "dataset/posegen_fits.npy",
             *(f"dataset/images/{i:06d}.png" for i in range(8))}


def _cli_env(tmp: Path, audit: Path, with_crash: bool) -> dict:
    import os

    site = tmp / ("site-crash" if with_crash else "site")
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(_AUDIT)
    if with_crash:  # installed as pip would: a module and a dist-info declaring it in the posegen entry-point group
        (site / "crash_plugin.py").write_text(_CRASH_PLUGIN)
        info = site / "crash_plugin-1.0.dist-info"
        info.mkdir(exist_ok=True)
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: crash-plugin\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text("[posegen]\ncrash = crash_plugin\n")
    audit.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    env.update(PYTHONPATH=str(site), POSEGEN_TEST_AUDIT=str(audit), POSEGEN_TEST_RUNS=str(tmp.resolve()),
               POSEGEN_CACHE=str(tmp / "cache"), OMP_NUM_THREADS="1")
    return env


def _writers(audit: Path) -> dict[str, set[str]]:
    """Each written file -> the ranks that wrote it (opened for writing, or renamed into place)."""
    out: dict[str, set[str]] = {}
    for log in audit.glob("*.log"):
        for line in log.read_text().splitlines():
            rank, _, path = line.split("\t")
            out.setdefault(path, set()).add(rank)
    return out


def _check_run_folder(run: Path, audit: Path) -> None:
    files = {str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()}
    assert RUN_FILES <= files, sorted(RUN_FILES - files)
    assert not [f for f in files if ".partial" in f or ".tmp" in f or f.endswith(".lock")], files  # nothing half-done
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["world_size"] == 2 and manifest["backend"] == "gloo"
    rows = [(r["stage"], r["step"]) for r in _metrics(run)]
    assert len(rows) == len(set(rows)) and ("evaluate", 1) in rows
    writers = _writers(audit)
    assert writers, "the audit hook saw no writes"
    shared = {p: r for p, r in writers.items() if len(r) > 1}
    assert not shared, f"written by several processes: {shared}"
    assert writers[str((run / "manifest.json").resolve())] == {"0"}


@pytest.mark.slow
def test_torchrun_and_the_nproc_shortcut_write_one_complete_run_folder(tmp_path):
    """``torchrun -m posegen run`` and ``posegen run --nproc-per-node 2`` (whose rank 1 dies in the GAN stage and is
    restarted by torchrun) each write one complete run folder, every file by one process, with the same models."""
    import subprocess

    config = tmp_path / "tiny.toml"
    config.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in _cfg(tmp_path, iters=3, samples=8).items()))
    py = Path(sys.executable)
    a, b = tmp_path / "a", tmp_path / "b"
    done = subprocess.run([str(py), "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m",
                           "posegen", "run", "--config", str(config), "--out", str(a)],
                          env=_cli_env(tmp_path, tmp_path / "audit-a", False), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("run folder:") == 1
    _check_run_folder(a, tmp_path / "audit-a")
    done = subprocess.run([str(py.parent / "posegen"), "run", "--nproc-per-node", "2", "--max-restarts", "1",
                           "--config", str(config), "--out", str(b)],
                          env=_cli_env(tmp_path, tmp_path / "audit-b", True), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "exitcode: 17" in done.stderr  # rank 1 did die, and the run went on from its last checkpoint
    assert "resuming at stage 'gan', step 1" in done.stdout + done.stderr  # its last checkpoint (step 2's was not)
    _check_run_folder(b, tmp_path / "audit-b")
    _assert_same_models(_state(a), _state(b), atol=0)
