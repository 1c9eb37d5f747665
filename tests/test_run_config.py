"""Configuration: TOML files, --set overrides, precedence, validation messages, JSON round trip."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

import posegen_core as pg
from posegen_core.cli import cli
from posegen_core.commands.run import parse_set, resolve_config


def test_precedence_defaults_file_flags_set(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('scenario = "ind"\niters = 7\nsamples = 9\n[pretrain]\nsteps = 11\n')
    cfg = resolve_config(str(f), {"iters": 8, "prior": None}, ("samples=10", "pretrain.lr=0.5"))
    assert (cfg.scenario, cfg.iters, cfg.samples) == ("ind", 8, 10)
    assert (cfg.pretrain.steps, cfg.pretrain.lr) == (11, 0.5)
    assert cfg.prior == "normal"


def test_every_run_flag_sets_its_config_field():
    import dataclasses

    from posegen_core.commands.run import run

    fields = {f.name for f in dataclasses.fields(pg.RunConfig)}
    flags = {p.name for p in run.params if isinstance(p, click.Option)}
    launcher = {"nproc", "max_restarts"}  # torchrun's, not the run's (docs/DISTRIBUTED.md)
    assert flags - {"config_file", "sets", "resume_dir", "overwrite"} - launcher <= fields
    assert resolve_config(None, {"device": "cpu", "smpl_model": None}, ()).device == "cpu"


def test_json_round_trip():
    cfg = pg.RunConfig(scenario="ind", pose_source_options={"path": "/x"}, pretrain=pg.PretrainConfig(steps=3))
    assert pg.RunConfig.from_dict(cfg.to_dict()) == cfg


def test_parse_set_types():
    assert parse_set(("a=1", "b=true", "c=text", "d.e=0.5", 'f={"x": 1}')) == {
        "a": 1, "b": True, "c": "text", "d": {"e": 0.5}, "f": {"x": 1}}
    with pytest.raises(pg.ConfigError, match="KEY=VALUE"):
        parse_set(("novalue",))


def test_unknown_key_suggests_the_closest(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("itres = 3\n")
    with pytest.raises(pg.ConfigError, match="itres .did you mean iters"):
        resolve_config(str(f), {}, ())


@pytest.mark.parametrize("bad, message", [
    ({"scenario": "max"}, "scenario = 'max': expected one of 'ood', 'ind'"),
    ({"image_size": 8}, r"image_size = 8: expected an integer in \[16, 2048\]"),
    ({"source_mix": 1.0}, r"source_mix = 1: expected a number in \[0, 1\]"),
    ({"feedback_shape": "band"}, "feedback_shape = 'band': expected one of 'linear', 'hinge', 'target'"),
    ({"device": "gpu0"}, "device must be a torch device such as cpu, cuda"),
])
def test_invalid_values_are_explained(bad, message):
    with pytest.raises(pg.ConfigError, match=message):
        pg.RunConfig(**bad).validate()


def test_unknown_or_misplaced_strategy_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(pg.PluginError, match="unknown strategy 'pixels'. Available: .*render"):
        pg.PoseGenRun(pg.RunConfig(feedback="pixels"), tmp_path / "a")
    with pytest.raises(pg.PluginError, match="strategy 'banded' is a hardness strategy, not a feedback one"):
        pg.PoseGenRun(pg.RunConfig(feedback="banded"), tmp_path / "b")
    assert not any(tmp_path.iterdir())


def test_cli_errors_are_one_line_not_tracebacks(tmp_path):
    runner = CliRunner()
    res = runner.invoke(cli, ["run", "--config", str(tmp_path / "missing.toml")])
    assert res.exit_code == 2
    assert "configuration file not found" in res.output and "Traceback" not in res.output
    res = runner.invoke(cli, ["run", "--estimator", "simpel", "--out", str(tmp_path / "r"), "--iters", "1"])
    assert res.exit_code == 2
    assert "unknown estimator 'simpel'" in res.output and "Did you mean 'simple'?" in res.output
    res = runner.invoke(cli, ["run", "--resume", str(tmp_path), "--iters", "3"])
    assert res.exit_code == 2 and "pass no other options" in res.output


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
def test_asking_for_a_gpu_without_one_is_explained():
    with pytest.raises(pg.ConfigError, match="sees no CUDA GPU; use device = 'cpu'"):
        pg.RunConfig(device="cuda").validate()
    assert pg.config.resolve_device("auto") == "cpu"


def test_feedback_starts_after_five_sixths_of_the_iterations_unless_set():
    assert pg.RunConfig().feedback_begins == 1250
    assert pg.RunConfig(iters=300).feedback_begins == 250  # `--iters 300` still gets feedback
    assert pg.RunConfig(iters=300, feedback_start=0).feedback_begins == 0
