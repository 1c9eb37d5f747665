"""A corpus of hostile and careless inputs (issue #13): each case asserts the exact outcome, i.e. the error class and
message, the CLI's exit code and single line, that no code from a file ran, and that nothing was deleted or half-written.

Code execution, configuration values, run folders, CLI failures, loaders and the contract boundary; the loaders are
fuzzed in test_bad_inputs_fuzz.py.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import torch
from click.testing import CliRunner

import posegen_core as pg
from posegen_core import plugins as plugin_system
from posegen_core import run_folder
from posegen_core.cli import cli, error_line
from posegen_core.commands.run import resolve_config

from test_body_models import synthetic_smpl

SHARED_FIXTURES = Path(__file__).resolve().parents[1] / ".." / "shared" / "reference" / "official_outputs"

TINY = dict(
    device="cpu", iters=2, feedback_start=1, batch_size=4, samples=8, finetune_steps=2, finetune_batch=4, eval_samples=8,
    image_size=32, checkpoint_every=1, log_every=1, report=False,
    pretrain=pg.PretrainConfig(steps=2, batch_size=4, eval_every=2, val_samples=8),
)
TINY_FLAGS = ["--device", "cpu", "--iters", "2", "--samples", "8", "--finetune-steps", "2", "--batch-size", "4",
              "--image-size", "32", "--set", "feedback_start=1", "--set", "finetune_batch=4", "--set", "eval_samples=8",
              "--set", "report=false", "--set", "pretrain.steps=2", "--set", "pretrain.batch_size=4",
              "--set", "pretrain.eval_every=2", "--set", "pretrain.val_samples=8"]


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("POSEGEN_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.delenv("POSEGEN_DEBUG", raising=False)


def cli_fails(args: list[str], code: int = 2) -> str:
    """Run the CLI; it must fail with ``code`` and print exactly one line, no traceback. Returns that line."""
    res = CliRunner().invoke(cli, args)
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code == code, res.output
    assert "Traceback" not in res.output
    assert not isinstance(res.exception, Exception) or isinstance(res.exception, SystemExit), res.exception
    errors = [ln for ln in lines if ln.startswith("Error:")]
    assert len(errors) == 1, res.output
    return errors[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------- code execution
class _Evil:
    """Unpickling this runs a shell command that creates a file (what an attacker's SMPL file would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil_model(path: Path, marker: Path, where: str = "top") -> Path:
    model: object = _Evil(marker)
    if where == "inside":  # hidden inside an otherwise valid model dictionary
        model = dict(synthetic_smpl(), J_regressor=_Evil(marker))
    path.write_bytes(pickle.dumps(model, protocol=2))
    return path


@pytest.mark.parametrize("where", ["top", "inside"])
def test_a_malicious_smpl_pickle_runs_nothing(tmp_path, where):
    marker = tmp_path / "pwned"
    evil = _evil_model(tmp_path / "SMPL_NEUTRAL.pkl", marker, where)
    with pytest.raises(pg.ConfigError, match=r"refusing to load the SMPL model: its pickle asks for posix\.system") as e:
        pg.create_body_model(evil)
    assert str(evil) in str(e.value)
    assert not marker.exists()
    # the same file through the folder lookup and through the CLI: nothing runs, nothing is written
    with pytest.raises(pg.ConfigError, match="posix.system"):
        pg.create_body_model(tmp_path)
    line = cli_fails(["run", "--smpl-model", str(evil), "--out", str(tmp_path / "run"), *TINY_FLAGS])
    assert "posix.system" in line and not marker.exists() and not (tmp_path / "run").exists()


@pytest.mark.parametrize("payload, name", [
    (b"cbuiltins\neval\n(S'1+1'\ntR.", "builtins.eval"),
    (b"cbuiltins\ngetattr\n(cbuiltins\nobject\nS'__subclasses__'\ntR.", "builtins.getattr"),
    (b"ccopy_reg\n_reconstructor\n(cbuiltins\nlist\ncbuiltins\nobject\nNtR.", "copyreg._reconstructor with disallowed"),
    (b"c__builtin__\nexec\n(S'open(\"x\",\"w\")'\ntR.", "builtins.exec"),
    (b"csubprocess\nPopen\n((S'true'\nltR.", "subprocess.Popen"),
    (b"ccodecs\nencode\n(S'x'\nS'latin1'\ntR.", "codecs.encode"),
    (b"c_codecs\nencode\n(S'x'\nS'rot13'\ntR.", "_codecs.encode with arguments"),
])
def test_model_unpickler_refuses_every_other_global(tmp_path, payload, name):
    path = tmp_path / "m.pkl"
    path.write_bytes(payload)
    with pytest.raises(pg.CheckpointError, match=f"asks for {name}"):
        pg.io.load_model_pickle(path)


def _fake_chumpy_modules() -> type:
    """A stand-in ``chumpy.ch.Ch`` with chumpy's own pickling (its __dict__ minus the weak references), so the bytes
    written have the official files' layout without chumpy installed."""
    ch = types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x):
            self.x = np.asarray(x, dtype=np.float64)
            self._dirty_vars = {"x"}
            self._itr = None
            self._depends_on_deps = {}
            self._make_dense = False
            self._make_sparse = False
            self._parents = object()  # not picklable, like chumpy's WeakKeyDictionary
            self._cache = object()

        def __getstate__(self):
            return {k: v for k, v in self.__dict__.items() if k not in ("_parents", "_cache")}

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    ch.Ch = Ch
    return Ch


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_official_layout_with_chumpy_arrays_loads_without_chumpy(tmp_path, monkeypatch, protocol):
    Ch = _fake_chumpy_modules()
    monkeypatch.setitem(sys.modules, "chumpy", types.ModuleType("chumpy"))
    monkeypatch.setitem(sys.modules, "chumpy.ch", types.ModuleType("chumpy.ch"))
    sys.modules["chumpy.ch"].Ch = Ch
    arrays = synthetic_smpl()
    model = dict(arrays, J_regressor=scipy.sparse.csc_matrix(arrays["J_regressor"]), bs_type="lrotmin")
    for k in ("v_template", "shapedirs", "posedirs", "weights"):  # what the official files store as chumpy arrays
        model[k] = Ch(arrays[k])
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(pickle.dumps(model, protocol=protocol))
    monkeypatch.delitem(sys.modules, "chumpy.ch")
    monkeypatch.delitem(sys.modules, "chumpy")
    loaded = pg.body_models.load_smpl_arrays(path)
    assert "chumpy" not in sys.modules and "chumpy.ch" not in sys.modules
    for k in pg.body_models.SMPL_KEYS:
        np.testing.assert_array_equal(loaded[k], np.asarray(arrays[k]))


def test_a_chumpy_expression_without_stored_values_is_explained(tmp_path):
    # NEWOBJ of chumpy.ch.Ch with a state that holds no 'x' (a derived expression): refused, with the way out
    payload = (b"\x80\x02}q\x00X\x0a\x00\x00\x00v_templateq\x01cchumpy.ch\nCh\nq\x02)\x81q\x03}q\x04X\x01\x00\x00\x00aq"
               b"\x05K\x01sbs.")
    path = tmp_path / "m.pkl"
    path.write_bytes(payload)
    with pytest.raises(pg.CheckpointError, match="'v_template' is a chumpy expression, not a stored array; convert"):
        pg.io.load_model_pickle(path)


@pytest.mark.skipif(not (SHARED_FIXTURES / "fixtures.py").is_file(), reason="shared official_outputs not present")
def test_the_shared_official_format_fixture_loads_through_the_restricted_unpickler(tmp_path):
    sys.path.insert(0, str(SHARED_FIXTURES))
    try:
        import fixtures  # the shared reference's own writer of official-format SMPL pickles
    finally:
        sys.path.remove(str(SHARED_FIXTURES))
    fixtures.make_fake_smpl(str(tmp_path))
    path = tmp_path / "model_files" / "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl"
    with open(path, "rb") as f:  # the test's own file: the plain unpickler is the independent reference here
        expected = pickle.load(f, encoding="latin1")
    arrays = pg.body_models.load_smpl_arrays(path)
    np.testing.assert_array_equal(arrays["J_regressor"], expected["J_regressor"].toarray())
    for k in ("v_template", "shapedirs", "posedirs", "weights", "f"):
        np.testing.assert_array_equal(arrays[k], expected[k])
    body = pg.create_body_model(path)
    out = body(torch.zeros(1, 3), torch.zeros(1, 23, 3))
    assert torch.isfinite(out.vertices).all()


def test_truncated_and_non_dict_model_pickles(tmp_path):
    good = pickle.dumps(synthetic_smpl(), protocol=2)
    (tmp_path / "cut.pkl").write_bytes(good[: len(good) // 2])
    with pytest.raises(pg.ConfigError, match="could not read SMPL model .*cut.pkl.*truncated"):
        pg.create_body_model(tmp_path / "cut.pkl")
    (tmp_path / "list.pkl").write_bytes(pickle.dumps([1, 2], protocol=2))
    with pytest.raises(pg.ConfigError, match="holds a list, not a SMPL model dictionary"):
        pg.create_body_model(tmp_path / "list.pkl")
    nan = dict(synthetic_smpl())
    nan["v_template"] = nan["v_template"].copy()
    nan["v_template"][3, 1] = np.nan
    np.savez(tmp_path / "nan.npz", **nan)
    with pytest.raises(pg.ConfigError, match="v_template must hold finite numbers"):
        pg.create_body_model(tmp_path / "nan.npz")


# ------------------------------------------------------------------------------------------- configuration
@pytest.mark.parametrize("setting, message", [
    ("iters=20.5", "iters = 20.5: expected an integer >= 0"),
    ("samples=16.5", "samples = 16.5: expected an integer >= 0"),
    ("iters=abc", "iters = 'abc': expected an integer >= 0"),
    ("lr_g=abc", r"lr_g = 'abc': expected a number >= 1e-12"),
    ("lr_g=NaN", r"lr_g = nan: expected a number"),
    ("lr_g=-1", r"lr_g = -1: expected a number >= 1e-12"),
    ("pretrain.steps=abc", "pretrain.steps = 'abc': expected an integer >= 0"),
    ("pretrain=5", r"pretrain = 5: expected a table of pretrain settings \(e.g. pretrain.steps = ...\)"),
    ("pretrain.batch_size=0", r"pretrain.batch_size = 0: expected an integer in \[2, 65536\]"),
    ("eval_samples=0", "eval_samples = 0: expected an integer >= 1"),
    ("image_size=1000000", r"image_size = 1000000: expected an integer in \[16, 2048\]"),
    ("seed=-1", r"seed = -1: expected an integer in \[0, 1.09951e\+12\]"),
    ("w1=true", "w1 = True: expected a number >= 0"),
    ("scenario=5", "scenario = 5: expected one of 'ood', 'ind'"),
    ("renderer_options=3", "renderer_options = 3: expected a table of KEY = VALUE options"),
    ("renderer=5", r"renderer = 5: expected a plugin name \(see `posegen plugins`\) or a posegen_core.Renderer"),
    ("report=maybe", "report = 'maybe': expected true or false"),
    ("d=0", r"d = 0: expected a number >= 1e-09 \(or unset\)"),
    ("threads=0", r"threads = 0: expected an integer in \[1, 4096\] \(or unset\)"),
    ("pretrain.nope=1", r"unknown configuration keys: pretrain.nope"),
    ("iters.x=1", r"iters = \{'x': 1\}: expected an integer"),
    ("samples=0", "samples = 0 writes no dataset, so finetune = 'after' would have nothing to fine-tune on"),
    ("feedback_start=99", "feedback_start = 99 is after the last of the 2 iterations"),
])
def test_wrong_values_are_one_line_naming_field_value_and_form(tmp_path, setting, message):
    line = cli_fails(["run", "--out", str(tmp_path / "run"), *TINY_FLAGS, "--set", setting])
    assert __import__("re").search(message, line), line
    assert not (tmp_path / "run").exists()


def test_samples_zero_is_an_explicit_mode_without_finetuning_after():
    cfg = pg.RunConfig(samples=0, finetune="none").validate()  # GAN + evaluation only: allowed, and documented
    assert cfg.samples == 0
    with pytest.raises(pg.ConfigError, match="samples = 0 writes no dataset"):
        pg.RunConfig(samples=0).validate()


@pytest.mark.parametrize("name, content, message", [
    ("list.json", b"[1, 2]", "must hold a table of settings .a JSON object.; got a list"),
    ("latin1.toml", "seed = 1 # caf\xe9\n".encode("latin-1"), r"is not UTF-8 text \(byte \d+\)"),
    ("bad.toml", b"iters = \n", "could not parse .* as TOML"),
    ("nested.toml", b"[pretrain]\nsteps = 'many'\n", "pretrain.steps = 'many': expected an integer >= 0"),
    ("nested_unknown.toml", b"[pretrain]\nstep = 3\n", r"pretrain.step \(did you mean pretrain.steps\?\)"),
    ("pretrain_number.json", b'{"pretrain": 5}', "pretrain = 5: expected a table"),
    ("deep.json", b"[" * 100000 + b"]" * 100000, "could not parse|must hold a table"),
    ("zero_batch.toml", b"batch_size = 0\n", r"batch_size = 0: expected an integer in \[2, 65536\]"),
])
def test_bad_configuration_files(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(pg.ConfigError, match=message):
        resolve_config(str(path), {}, ())
    line = cli_fails(["run", "--config", str(path), "--out", str(tmp_path / "run")])
    assert __import__("re").search(message, line)


def test_python_construction_is_checked_and_new_fields_need_no_extra_code():
    with pytest.raises(pg.ConfigError, match="iters = 'abc'"):
        pg.RunConfig(iters="abc")
    with pytest.raises(pg.ConfigError, match="pretrain.batch_size = 0"):
        pg.PretrainConfig(batch_size=0)
    cfg = pg.RunConfig()
    cfg.samples = -3  # changed after construction: validate() checks again
    with pytest.raises(pg.ConfigError, match="samples = -3"):
        cfg.validate()
    assert isinstance(pg.RunConfig(c=1).c, float)  # an int where a float is expected is normalised

    import dataclasses

    @dataclasses.dataclass
    class WithExport(pg.RunConfig):  # what another engineer adding a field gets for free
        export_size: int = 128
        hardness: str = "max"
        margin: float | None = None

    assert WithExport(export_size=64).export_size == 64
    for bad, msg in ((dict(export_size=-1), "export_size = -1: expected an integer >= 0"),
                     (dict(export_size=1.5), "export_size = 1.5"), (dict(hardness=3), "hardness = 3: expected a string"),
                     (dict(margin=float("inf")), "margin = inf: expected a number finite")):
        with pytest.raises(pg.ConfigError, match=msg):
            WithExport(**bad)


# ------------------------------------------------------------------------------------------- run folders
def _fake_earlier_run(folder: Path) -> dict[str, bytes]:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(pg.RunConfig().to_dict()))
    (folder / "manifest.json").write_text("{}")
    (folder / "summary.json").write_text('{"before": 1}')
    return snapshot(folder)


def test_overwrite_never_deletes_a_folder_that_is_not_a_run(tmp_path):
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "chapter1.tex").write_text("years of work")
    before = snapshot(thesis)
    line = cli_fails(["run", "--out", str(thesis), "--overwrite", *TINY_FLAGS])
    assert "is not a posegen run folder" in line and "will not delete it" in line
    assert snapshot(thesis) == before
    with pytest.raises(pg.ConfigError, match="not a posegen run folder"):
        pg.run(pg.RunConfig(out=str(thesis), **TINY), overwrite=True)
    assert snapshot(thesis) == before


def test_overwrite_deletes_the_earlier_run_only_after_the_new_inputs_are_built(tmp_path):
    run = tmp_path / "run"
    before = _fake_earlier_run(run)
    line = cli_fails(["run", "--out", str(run), "--overwrite", "--estimator-checkpoint", str(tmp_path / "typo.pt"),
                      *TINY_FLAGS])
    assert "not found" in line and "typo.pt" in line
    assert snapshot(run) == before  # the typo cost nothing
    line = cli_fails(["run", "--out", str(run), "--overwrite", "--set", "pose_source_options.path=/nope", *TINY_FLAGS])
    assert snapshot(run) == before


def test_overwrite_replaces_a_posegen_run(finished_run):
    assert not (finished_run / "old_extra.txt").exists()  # the fixture ran over an earlier run with overwrite=True
    assert (finished_run / run_folder.MARKER).is_file() and (finished_run / "summary.json").is_file()
    assert not (finished_run / run_folder.LOCK).exists()  # released at the end


def test_out_under_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    line = cli_fails(["run", "--out", str(tmp_path / "file" / "run"), *TINY_FLAGS])
    assert "is a file, not a folder" in line


def test_a_live_writer_lock_is_respected_and_a_stale_one_taken_over(tmp_path):
    folder = tmp_path / "run"
    _fake_earlier_run(folder)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import socket

        (folder / run_folder.LOCK).write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname()}))
        with pytest.raises(pg.ConfigError, match=f"in use by another posegen process \\(pid {sleeper.pid}"):
            run_folder.acquire_lock(folder)
        line = cli_fails(["run", "--out", str(folder), "--overwrite", *TINY_FLAGS])
        assert "in use by another posegen process" in line and (folder / "summary.json").is_file()
    finally:
        sleeper.kill()
        sleeper.wait()
    lock = run_folder.acquire_lock(folder)  # the holder is gone: the lock is stale
    assert json.loads(lock.read_text())["pid"] == os.getpid()
    with pytest.raises(pg.ConfigError, match="this process"):
        run_folder.acquire_lock(folder)
    run_folder.release_lock(lock)
    assert not lock.exists()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One finished tiny run (its own pre-training cache beside it, in ``cache``), copied by the tests that damage it."""
    folder = tmp_path_factory.mktemp("finished") / "run"
    _fake_earlier_run(folder)
    (folder / "old_extra.txt").write_text("from the earlier run")
    old = os.environ.get("POSEGEN_CACHE")
    os.environ["POSEGEN_CACHE"] = str(folder.parent / "cache")
    try:
        pg.run(pg.RunConfig(out=str(folder), **TINY), overwrite=True)
    finally:
        os.environ.pop("POSEGEN_CACHE") if old is None else os.environ.__setitem__("POSEGEN_CACHE", old)
    return folder


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_resume_refuses_an_edited_config(finished_run, tmp_path):
    run = _copy(finished_run, tmp_path / "run")
    cfg = json.loads((run / "config.json").read_text())
    cfg["seed"] = 1
    cfg["pretrain"]["lr"] = 0.01
    (run / "config.json").write_text(json.dumps(cfg))
    summary = (run / "summary.json").read_bytes()
    line = cli_fails(["run", "--resume", str(run)])
    assert "was changed after the run started (pretrain.lr: 0.002 -> 0.01; seed: 0 -> 1)" in line
    assert (run / "summary.json").read_bytes() == summary
    # without the marker, the copy inside state.pt still catches it
    (run / run_folder.MARKER).unlink()
    with pytest.raises(pg.ConfigError, match="seed: 0 -> 1"):
        pg.resume(run)
    assert (run / "summary.json").read_bytes() == summary


@pytest.mark.parametrize("damage, message", [
    (lambda s: s.pop("G"), "lacks G: it is damaged or not a posegen run checkpoint"),
    (lambda s: s.update(stage="polish"), "names an unknown stage 'polish'"),
    (lambda s: s.update(step=-4), "holds step -4"),
])
def test_resume_with_a_damaged_state_is_one_line(finished_run, tmp_path, damage, message):
    run = _copy(finished_run, tmp_path / "run")
    state = torch.load(run / "checkpoints" / "state.pt", weights_only=True)
    damage(state)
    torch.save(state, run / "checkpoints" / "state.pt")
    line = cli_fails(["run", "--resume", str(run)])
    assert message in line and "Delete" in line


def test_resume_tolerates_a_half_written_metrics_line(finished_run, tmp_path):
    run = _copy(finished_run, tmp_path / "run")
    state = torch.load(run / "checkpoints" / "state.pt", weights_only=True)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"stage": "gan", "st')  # killed mid-write
    assert state["stage"] == "done"
    pg.resume(run)
    rows = (run / "metrics.jsonl").read_text().splitlines()
    assert all(json.loads(r) for r in rows)


class _NaNPrior(pg.Prior):
    def sample(self, n, dim, generator=None):
        return torch.full((n, dim), float("nan"))


class _NaNPlugin:
    @staticmethod
    @pg.hookimpl
    def posegen_register_priors(register):
        register("always_nan", _NaNPrior)


def test_divergence_before_any_checkpoint_names_no_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(plugin_system, "_registry", plugin_system.build_registry(extra_plugins=(_NaNPlugin,)))
    with pytest.raises(pg.TrainingError, match="at step 1 .*No checkpoint was written before this step") as e:
        pg.run(pg.RunConfig(out=str(tmp_path / "run"), prior="always_nan", **TINY))
    assert "state.pt" not in str(e.value) and not (tmp_path / "run" / "checkpoints" / "state.pt").exists()


def test_diverged_pretraining_is_never_cached(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("POSEGEN_CACHE", str(cache))
    line = cli_fails(["run", "--out", str(tmp_path / "run"), *TINY_FLAGS, "--set", "pretrain.steps=8",
                      "--set", "pretrain.lr=1e30"])
    assert "pre-training diverged: the loss became NaN/inf" in line and "nothing was cached" in line
    assert not list(cache.rglob("*.pt")) and not (tmp_path / "run").exists()


def test_a_nan_model_is_never_written_as_a_checkpoint():
    state = {"G": {"w": torch.tensor([1.0, float("nan")])}, "D": {"w": torch.ones(2)}, "P": {}}
    with pytest.raises(pg.TrainingError, match=r"not writing the ckpt: G\.w hold NaN"):
        run_folder.ensure_finite(state, "the ckpt")


def test_a_nan_model_planted_in_the_cache_is_not_used(finished_run, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    import shutil

    shutil.copytree(finished_run.parent / "cache", cache)
    (cached,) = cache.rglob("*.pt")
    est = pg.create_estimator("simple", checkpoint=cached)
    with torch.no_grad():
        next(iter(est.parameters())).fill_(float("nan"))
    est.save_checkpoint(cached)
    monkeypatch.setenv("POSEGEN_CACHE", str(cache))
    from posegen_core.loop import build_parts

    said: list[str] = []
    parts = build_parts(pg.RunConfig(**TINY), None, said.append)
    assert any(m.startswith(f"ignoring the cached model {cached}: it holds NaN/inf weights") for m in said)
    assert not run_folder.non_finite_entries(parts.estimator.state_dict())
    assert not run_folder.non_finite_entries(pg.create_estimator("simple", checkpoint=cached).state_dict())


# ------------------------------------------------------------------------------------------- CLI failures
@pytest.mark.parametrize("err, text, code", [
    (OSError(errno.ENOSPC, "No space left on device", "/runs/x/state.pt"), "No space left on device (/runs/x/state.pt): "
     "the disk is full", 1),
    (PermissionError(errno.EACCES, "Permission denied", "/runs"), "Permission denied (/runs): permission denied", 1),
    (OSError(errno.EROFS, "Read-only file system", "/mnt"), "the file system is read-only", 1),
    (pg.ConfigError("bad"), "Error: bad", 2),
    (RuntimeError("boom\nmore"), "unexpected RuntimeError: boom. This is a bug", 1),
    (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 138750000000 bytes"),
     "Error: out of memory; lower batch_size", 1),
    (MemoryError(), "Error: out of memory", 1),
])
def test_error_lines(err, text, code):
    line, got = error_line(err)
    assert text in line and got == code and "\n" not in line


def test_os_errors_during_a_run_are_one_line(tmp_path, monkeypatch):
    from posegen_core import loop

    def full_disk(self):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run" / "checkpoints" / "state.pt"))

    monkeypatch.setattr(loop.PoseGenRun, "run", full_disk)
    line = cli_fails(["run", "--out", str(tmp_path / "run"), *TINY_FLAGS], code=1)
    assert "No space left on device" in line and "the disk is full" in line
    monkeypatch.setenv("POSEGEN_DEBUG", "1")  # the traceback, for bug reports
    res = CliRunner().invoke(cli, ["run", "--out", str(tmp_path / "run"), *TINY_FLAGS])
    assert isinstance(res.exception, OSError) and res.exit_code != 0


class _RaisingPrior(pg.Prior):
    def __init__(self):
        raise RuntimeError("out of disk")

    def sample(self, n, dim, generator=None):
        raise AssertionError


class _RaisingPlugin:
    @staticmethod
    @pg.hookimpl
    def posegen_register_priors(register):
        register("raising", _RaisingPrior)


def test_a_plugin_factory_that_raises_is_one_line_naming_the_plugin(tmp_path, monkeypatch):
    monkeypatch.setattr(plugin_system, "_registry", plugin_system.build_registry(extra_plugins=(_RaisingPlugin,)))
    line = cli_fails(["run", "--prior", "raising", "--out", str(tmp_path / "run"), *TINY_FLAGS], code=1)
    assert "unexpected RuntimeError: out of disk (raised while building prior 'raising'" in line
    assert not (tmp_path / "run").exists()


def test_a_plugin_calling_sys_exit_on_import_is_reported(tmp_path, monkeypatch):
    (tmp_path / "exiting_plugin.py").write_text("import sys\nsys.exit(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    holder = types.ModuleType("holder")
    holder.PLUGIN_MODULES = ("exiting_plugin",)
    monkeypatch.setattr(plugin_system, "_registry", plugin_system.build_registry(extra_plugins=(holder,)))
    res = CliRunner().invoke(cli, ["plugins", "--json"])
    assert res.exit_code == 0, res.output
    failures = json.loads(res.output)["failures"]
    assert failures == [{"source": "exiting_plugin", "distribution": "", "error": "SystemExit: 3"}]
    assert "simple" in [p["name"] for p in json.loads(res.output)["estimator"]]


def test_the_flagship_command_without_an_anerf_checkpoint_is_refused(tmp_path):
    line = cli_fails(["run", "--renderer", "anerf", "--estimator", "hybrik", "--out", str(tmp_path / "run")])
    assert "the anerf renderer needs a trained checkpoint (--renderer-checkpoint PATH)" in line
    assert "--random-renderer-weights" in line and not (tmp_path / "run").exists()
    cfg = resolve_config(None, {"renderer": "anerf", "renderer_random_weights": True}, ())
    assert cfg.renderer_random_weights
    with pytest.raises(pg.ConfigError, match="needs a trained checkpoint"):
        pg.run(pg.RunConfig(renderer="anerf", out=str(tmp_path / "lib"), **TINY))
    line = cli_fails(["pretrain", "--renderer", "anerf", "--out", str(tmp_path / "p.pt")])
    assert "needs a trained checkpoint" in line


def test_pretraining_announces_its_time_from_the_first_steps():
    from posegen_core.pretrain import time_estimate

    assert time_estimate(2.0, 3600, "cpu").startswith("pre-training: about 2 h 00 min left (2.00 s/step")
    assert "That is long: pass --estimator-checkpoint" in time_estimate(2.0, 3600, "cpu")
    assert "That is long" not in time_estimate(0.05, 1000, "cpu")


def test_pretraining_announces_the_estimate_after_its_first_steps_and_shows_a_bar():
    from rich.console import Console

    from posegen_core.pretrain import pretrain_estimator
    from posegen_core.progress import Reporter
    from posegen_core.scene import split_by_take

    said: list[str] = []
    poses = split_by_take(pg.create_pose_source("default").load(), 0.2, 0).train
    with pytest.warns(UserWarning, match="random weights"):  # expected: it is about to be pre-trained
        est = pg.create_estimator("simple")
    reporter = Reporter(Console(file=open(os.devnull, "w")))
    with reporter:
        pretrain_estimator(est, pg.create_renderer("primitives"), pg.create_body_model(), poses,
                           pg.PretrainConfig(steps=8, batch_size=4, eval_every=8, val_samples=4), 32, 4.0, 0,
                           say=said.append)
        (task,) = reporter.progress.tasks
    assert len(said) == 1 and said[0].startswith("pre-training: about") and "2 steps to go on cpu" in said[0]
    assert task.description == "pre-train estimator" and task.completed == task.total == 8


# ------------------------------------------------------------------------------------------- loaders
def _bvh(tmp_path: Path, frames: int = 4, declared: int | None = None, frame_time: str = "0.008333",
         cut_last: bool = False) -> Path:
    from test_pose_sources import random_local_rotations, smpl_bvh_text

    text = smpl_bvh_text(random_local_rotations(frames, seed=1))
    lines = text.splitlines()
    i = lines.index("MOTION")
    lines[i + 1] = f"Frames: {frames if declared is None else declared}"
    lines[i + 2] = f"Frame Time: {frame_time}"
    if cut_last:
        lines[-1] = " ".join(lines[-1].split()[:-5])
    path = tmp_path / "take.bvh"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("kwargs, message", [
    (dict(declared=10), "'Frames: 10' but the MOTION section holds 4 frame lines (the file may be truncated)"),
    (dict(declared=2), "'Frames: 2' but the MOTION section holds 4 frame lines (extra lines follow)"),
    (dict(declared=-1), "'Frames: -1' must be a frame count >= 0"),
    (dict(frame_time="0"), "'Frame Time: 0' must be a positive number of seconds"),
    (dict(frame_time="-0.01"), "'Frame Time: -0.01' must be a positive number"),
    (dict(frame_time="nan"), "'Frame Time: nan' must be a positive number"),
    (dict(frame_time="inf"), "'Frame Time: inf' must be a positive number"),
    (dict(cut_last=True), "the last frame line holds 70 numbers, not 75 (the file may be truncated)"),
])
def test_bvh_header_must_agree_with_the_rows(tmp_path, kwargs, message):
    from posegen_plugins.pose_sources.bvh_format import read_bvh

    path = _bvh(tmp_path, **kwargs)
    with pytest.raises(pg.DataError) as e:
        read_bvh(path, step=2)
    assert message in str(e.value) and str(path) in str(e.value)


def test_a_consistent_bvh_still_loads(tmp_path):
    from posegen_plugins.pose_sources.bvh_format import read_bvh

    motion = read_bvh(_bvh(tmp_path, frames=6), step=2)
    assert motion.values.shape == (3, 75) and motion.total_frames == 6


def _amass(tmp_path: Path, n: int = 10, **arrays) -> Path:
    data = dict(poses=np.zeros((n, 156)), mocap_framerate=np.array(120.0), trans=np.zeros((n, 3)), betas=np.zeros(16))
    data.update(arrays)
    data = {k: v for k, v in data.items() if v is not None}
    np.savez(tmp_path / "take.npz", **data)
    return tmp_path / "take.npz"


@pytest.mark.parametrize("arrays, message", [
    (dict(mocap_framerate=np.array(np.inf)), "'mocap_framerate' is inf; expected the capture rate"),
    (dict(mocap_framerate=np.array(np.nan)), "'mocap_framerate' is nan; expected"),
    (dict(mocap_framerate=np.array(0.0)), "'mocap_framerate' is 0.0; expected"),
    (dict(mocap_framerate=np.array([120.0, 60.0])), "'mocap_framerate' is [120.0, 60.0]; expected"),
    (dict(mocap_framerate=None), "has no mocap_framerate, so fps=30 cannot choose which frames to keep"),
    (dict(trans=np.zeros((7, 3))), "'trans' has shape (7, 3) but 'poses' has 10 frames"),
])
def test_amass_declarations_are_checked(tmp_path, arrays, message):
    from posegen_plugins.pose_sources.amass import read_amass_file

    path = _amass(tmp_path, **arrays)
    with pytest.raises(pg.DataError) as e:
        read_amass_file(path, None, 30.0, None)
    assert message in str(e.value) and str(path) in str(e.value)


def test_amass_without_a_rate_loads_with_an_explicit_step(tmp_path):
    from posegen_plugins.pose_sources.amass import read_amass_file

    go, bp, rate = read_amass_file(_amass(tmp_path, mocap_framerate=None), 2, None, None)
    assert go.shape == (5, 3) and bp.shape == (5, 23, 3) and rate == 0.0


@pytest.mark.parametrize("arrays, message", [
    (dict(imgname=np.array(["a.jpg"]), center=np.zeros((1, 2))), "lacks the key(s) scale"),
    (dict(imgname=np.array(["a.jpg", "b.jpg"]), center=np.zeros((2, 3)), scale=np.ones(2)),
     "'center' must have shape (N, 2) with N = 2 samples; got (2, 3)"),
    (dict(imgname=np.array(["a.jpg"]), center=np.array([["x", "y"]]), scale=np.ones(1)), "'center' must be numeric"),
    (dict(imgname=np.array(["a.jpg"]), center=np.zeros((1, 2)), scale=np.array([np.nan])), "'scale' contains NaN"),
    (dict(imgname=np.array(["a.jpg"]), center=np.zeros((1, 2)), scale=np.zeros(1)), "'scale' must be positive"),
    (dict(imgname=np.array([1.0]), center=np.zeros((1, 2)), scale=np.ones(1)), "'imgname' must hold strings"),
])
def test_spin_npz_keys_shapes_and_dtypes(tmp_path, arrays, message):
    np.savez(tmp_path / "a.npz", **arrays)
    with pytest.raises(pg.DataError) as e:
        pg.spin_data.read_spin_annotations(tmp_path / "a.npz")
    assert message in str(e.value)


def test_spin_npz_with_pickled_objects_is_refused_without_unpickling(tmp_path):
    marker = tmp_path / "pwned"
    np.savez(tmp_path / "a.npz", imgname=np.array([_Evil(marker)], dtype=object), center=np.zeros((1, 2)),
             scale=np.ones(1))
    with pytest.raises(pg.DataError, match="object arrays that need pickle"):
        pg.spin_data.read_spin_annotations(tmp_path / "a.npz")
    assert not marker.exists()


# ------------------------------------------------------------------------------------------- contract boundary
@pytest.mark.parametrize("estimator", ["simple", "spin", "hybrik"])
def test_non_finite_images_into_any_estimator_are_refused(estimator):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = pg.create_estimator(estimator, **({} if estimator == "simple" else {"input_size": 64})).eval()
    images = torch.rand(2, 3, 32, 32)
    images[1, 0, 3, 3] = float("nan")
    with pytest.raises(pg.ShapeError, match="images contains NaN or infinite values"):
        est(images)
    with pytest.raises(pg.ShapeError, match=r"images must hold values in \[0, 1\]"):
        est(torch.full((1, 3, 32, 32), 255.0))


@pytest.mark.parametrize("renderer", ["primitives", "anerf"])
def test_a_render_of_batch_size_zero_is_empty(renderer):
    r = pg.create_renderer(renderer, **({"config": "tiny"} if renderer == "anerf" else {}))
    out = r(torch.zeros(0, 24, 3), torch.zeros(0, 24, 3, 3), pg.Intrinsics.framing(32, 4.0))
    assert out.images.shape == (0, 3, 32, 32) and out.alpha.shape == (0, 1, 32, 32)
