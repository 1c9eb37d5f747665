"""The plugin system: registration rules, lookup errors, isolation of broken plugins, strict mode, hook checks, CLI.

Test plugins here are small but real implementations of the interfaces, registered exactly as a third party would.
"""

from __future__ import annotations

import json
import sys
import types

import pytest
import torch
from click.testing import CliRunner
from plugin_env import PluginEnv

import posegen_core as pg
from posegen_core import cli as cli_module
from posegen_core import plugins
from posegen_core.cli import cli
from posegen_core.hookspecs import Hookspecs


@pytest.fixture
def env(tmp_path):
    e = PluginEnv(tmp_path / "site")
    yield e
    e.close()


def module(name: str, **attrs) -> types.ModuleType:
    m = types.ModuleType(name)
    for k, v in attrs.items():
        setattr(m, k, v)
    return m


def run_cli(*args: str, **env: str):
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "250", **env}, catch_exceptions=False)


class ScaledNormal(pg.Prior):
    """A normal prior with a configurable standard deviation."""

    def __init__(self, std: float = 1.0) -> None:
        self.std = std

    def sample(self, n, dim, generator=None):
        return torch.randn(n, dim, generator=generator) * self.std


# ------------------------------------------------------------------------------------------- registration rules
def test_duplicate_names_are_refused_and_the_first_registration_kept():
    @pg.hookimpl
    def posegen_register_priors(register):
        register("normal", ScaledNormal)
        register("scaled", ScaledNormal)

    reg = plugins.build_registry(extra_plugins=(module("dupe_plugin", posegen_register_priors=posegen_register_priors),))
    assert reg.plugins["prior"]["normal"].plugin == "posegen_plugins.priors", "the built-in keeps its name"
    assert reg.plugins["prior"]["scaled"].factory is ScaledNormal, "the plugin's other registrations still count"
    (failure,) = [f for f in reg.failures if f.source == "dupe_plugin"]
    assert "prior 'normal' from dupe_plugin is already registered by posegen_plugins.priors" in failure.error
    assert "choose another name" in failure.error


class NotAPrior:
    def sample(self, n, dim, generator=None):
        return torch.zeros(n, dim)


class HalfPrior(pg.Prior):
    """Forgets to implement sample."""


def make_prior(std: float = 2.0) -> pg.Prior:
    """A plain function is a valid factory too."""
    return ScaledNormal(std)


@pytest.mark.parametrize(
    "name,factory,message",
    [
        ("plain", NotAPrior, "NotAPrior must subclass posegen_core.Prior"),
        ("half", HalfPrior, "HalfPrior does not implement sample"),
        ("number", 42, "factory must be a class or a callable; got int"),
        ("has space", ScaledNormal, "must be a non-empty identifier-like string"),
        ("", ScaledNormal, "must be a non-empty identifier-like string"),
    ],
)
def test_factories_are_validated_against_the_interface(name, factory, message):
    @pg.hookimpl
    def posegen_register_priors(register):
        register(name, factory)
        register("ok_function", make_prior)

    reg = plugins.build_registry(extra_plugins=(module("bad_factory", posegen_register_priors=posegen_register_priors),))
    assert name not in reg.plugins["prior"]
    errors = [f.error for f in reg.failures if f.source == "bad_factory"]
    assert len(errors) == 1 and message in errors[0], errors
    info = reg.plugins["prior"]["ok_function"]
    assert info.description == "A plain function is a valid factory too."
    assert isinstance(info.factory(), ScaledNormal)


def test_an_estimator_registered_as_a_prior_is_refused():
    class Est(pg.Estimator):
        def forward(self, images):
            return pg.EstimatorOutput(joints=torch.zeros(images.shape[0], 24, 3))

    @pg.hookimpl
    def posegen_register_priors(register):
        register("est", Est)

    reg = plugins.build_registry(extra_plugins=(module("wrong_kind", posegen_register_priors=posegen_register_priors),))
    assert "must subclass posegen_core.Prior" in reg.failures[-1].error


# ------------------------------------------------------------------------------------------- lookup
def test_unknown_name_lists_available_names_and_the_closest_match():
    with pytest.raises(pg.PluginNotFoundError) as info:
        pg.create_prior("normall")
    msg = str(info.value)
    assert "unknown prior 'normall'" in msg
    available = msg.split("Available: ")[1].split(".")[0].split(", ")
    assert {"normal", "spherical", "uniform"} <= set(available) and available == sorted(available)
    assert "Did you mean 'normal'?" in msg
    with pytest.raises(pg.PluginNotFoundError, match="Available: .*"):
        pg.create_pose_source("no-such-source")


def test_unknown_kind_and_wrong_options_are_clear():
    with pytest.raises(pg.PluginError, match="unknown plugin kind 'priors'; expected one of renderer, estimator"):
        plugins.create("priors", "normal")
    with pytest.raises(pg.PluginError, match=r"could not build prior 'normal' with options \['std'\].*Accepted: \(\)"):
        pg.create_prior("normal", std=2.0)


def test_errors_raised_inside_a_factory_are_not_disguised(env):
    env.install("posegen-raising", "1.0", {"raising": "raising_prior"}, {"raising_prior": RAISING_FACTORY})
    env.refresh()
    with pytest.raises(RuntimeError, match="out of disk"):
        pg.create_prior("raising")


RAISING_FACTORY = '''
import posegen_core as pg

class Raising(pg.Prior):
    def __init__(self):
        raise RuntimeError("out of disk")

    def sample(self, n, dim, generator=None):
        raise AssertionError

@pg.hookimpl
def posegen_register_priors(register):
    register("raising", Raising)
'''


# ------------------------------------------------------------------------------------------- broken plugins
BROKEN = "import posegen_core\nraise ImportError('needs the frobnicator package: pip install frobnicator')\n"


def test_plugins_json_lists_the_builtin_priors():
    result = run_cli("plugins", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) == {"renderer", "estimator", "prior", "discriminator", "pose_source", "strategy", "failures"}
    priors = {p["name"]: p for p in data["prior"]}
    assert {"normal", "uniform", "spherical"} <= set(priors)
    for p in priors.values():
        assert p["distribution"] == "posegen" and p["version"] and p["description"]
    assert data["failures"] == []


def test_a_plugin_whose_import_raises_is_shown_as_failed_while_the_cli_works(env):
    env.install("posegen-broken", "0.3", {"broken": "broken_plugin"}, {"broken_plugin": BROKEN})
    env.refresh()
    result = run_cli("plugins", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    (failure,) = [f for f in data["failures"] if f["distribution"] == "posegen-broken"]
    assert failure == {
        "source": "broken = broken_plugin", "distribution": "posegen-broken",
        "error": "ImportError: needs the frobnicator package: pip install frobnicator",
    }
    assert {"normal", "uniform", "spherical"} <= {p["name"] for p in data["prior"]}
    text = run_cli("plugins")
    assert text.exit_code == 0
    assert "load failures" in text.output and "broken = broken_plugin" in text.output
    assert "pip install frobnicator" in text.output
    assert run_cli("--help").exit_code == 0
    assert pg.create_prior("normal").sample(2, 3, torch.Generator().manual_seed(0)).shape == (2, 3)
    with pytest.raises(pg.PluginNotFoundError, match="plugin broken = broken_plugin failed to load: ImportError"):
        pg.create_prior("broken")


def test_strict_mode_fails_hard(env, monkeypatch):
    env.install("posegen-broken", "0.3", {"broken": "broken_plugin"}, {"broken_plugin": BROKEN})
    monkeypatch.setenv("POSEGEN_STRICT_PLUGINS", "1")
    with pytest.raises(pg.PluginError, match="plugin broken = broken_plugin failed to load: ImportError: needs"):
        env.refresh()
    result = run_cli("plugins", POSEGEN_STRICT_PLUGINS="1")
    assert result.exit_code == 2
    assert "Error: plugin broken = broken_plugin failed to load" in result.output
    assert "POSEGEN_STRICT_PLUGINS" in result.output
    monkeypatch.setenv("POSEGEN_STRICT_PLUGINS", "0")
    failures = env.refresh().failures
    assert [f.source for f in failures if f.distribution == "posegen-broken"] == ["broken = broken_plugin"]


def test_strict_mode_in_the_console_script_prints_one_clear_line(env, monkeypatch, capsys):
    """Outside a command (here: while listing commands for --help) a strict failure is one line, exit code 2."""
    env.install("posegen-broken", "0.3", {"broken": "broken_plugin"}, {"broken_plugin": BROKEN})
    monkeypatch.setenv("POSEGEN_STRICT_PLUGINS", "1")
    with pytest.raises(pg.PluginError):
        env.refresh()  # leaves no registry behind: the CLI builds (and fails) again
    monkeypatch.setattr(sys, "argv", ["posegen", "--help"])
    with pytest.raises(SystemExit) as info:
        cli_module.main()
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("Error: plugin broken = broken_plugin failed to load: ImportError")
    assert "Traceback" not in err


def test_a_failing_registration_hook_is_isolated(env):
    source = "import posegen_core as pg\n@pg.hookimpl\ndef posegen_register_priors(register):\n    1 / 0\n"
    env.install("posegen-zero", "1.0", {"zero": "zero_plugin"}, {"zero_plugin": source})
    reg = env.refresh()
    (failure,) = [f for f in reg.failures if f.distribution == "posegen-zero"]
    assert failure.source == "zero_plugin" and failure.error.startswith("ZeroDivisionError")
    assert "1 / 0" in failure.detail, "the traceback is kept for debugging"
    assert {"normal", "uniform", "spherical"} <= set(reg.names("prior"))


# ------------------------------------------------------------------------------------------- hook names
def test_unknown_hook_names_are_detected():
    @pg.hookimpl
    def posegen_register_prior(register):  # typo: the hook is posegen_register_priors
        register("typo", ScaledNormal)

    def posegen_register_renderers(register):  # forgot @hookimpl: pluggy would silently ignore it
        pass

    reg = plugins.build_registry(extra_plugins=(
        module("typo_plugin", posegen_register_prior=posegen_register_prior),
        module("unmarked_plugin", posegen_register_renderers=posegen_register_renderers),
    ))
    errors = {f.source: f.error for f in reg.failures}
    assert "unknown hook posegen_register_prior in typo_plugin. Did you mean posegen_register_priors?" in errors[
        "typo_plugin"]
    assert "not decorated with @posegen_core.hookimpl" in errors["unmarked_plugin"]
    assert "typo" not in reg.plugins["prior"]


def test_unknown_hook_fails_hard_in_strict_mode(monkeypatch):
    @pg.hookimpl
    def posegen_register_estimator(register):
        pass

    monkeypatch.setenv("POSEGEN_STRICT_PLUGINS", "1")
    with pytest.raises(pg.PluginError, match="Did you mean posegen_register_estimators"):
        plugins.build_registry(extra_plugins=(module("typo2", posegen_register_estimator=posegen_register_estimator),))


def test_hook_implementations_with_wrong_arguments_are_reported():
    @pg.hookimpl
    def posegen_register_priors(registry):  # the argument is called register
        pass

    reg = plugins.build_registry(extra_plugins=(module("badargs", posegen_register_priors=posegen_register_priors),))
    (failure,) = [f for f in reg.failures if f.source == "badargs"]
    assert "registry" in failure.error


# ------------------------------------------------------------------------------------------- every hook, exercised
def registry_with(**hooks) -> plugins.PluginRegistry:
    return plugins.build_registry(extra_plugins=(module("hook_test_plugin", **hooks),))


def test_hook_posegen_register_priors():
    @pg.hookimpl
    def posegen_register_priors(register):
        register("scaled", ScaledNormal, description="N(0, std^2)")

    info = registry_with(posegen_register_priors=posegen_register_priors).get("prior", "scaled")
    assert (info.kind, info.plugin, info.description) == ("prior", "hook_test_plugin", "N(0, std^2)")
    z = info.factory(std=3.0).sample(4000, 2, torch.Generator().manual_seed(0))
    assert 2.8 < float(z.std()) < 3.2


class FlatRenderer(pg.Renderer):
    """Paints every pixel nearer than the skeleton's nearest joint grey (a depth-threshold silhouette)."""

    def render(self, joints, rotations, intrinsics, subject=None, generator=None):
        b = joints.shape[0]
        alpha = torch.ones(b, 1, intrinsics.height, intrinsics.width) * (joints[:, :, 2].min(1).values > 0).view(
            b, 1, 1, 1)
        return pg.RenderOutput(images=alpha.expand(b, 3, -1, -1) * 0.5, alpha=alpha)


def test_hook_posegen_register_renderers():
    @pg.hookimpl
    def posegen_register_renderers(register):
        register("flat", FlatRenderer)

    reg = registry_with(posegen_register_renderers=posegen_register_renderers)
    renderer = reg.get("renderer", "flat").factory()
    joints, rots = pg.forward_kinematics(torch.zeros(2, 3), torch.zeros(2, 23, 3))
    cam, cam_rots = pg.to_camera_frame(joints, rots, torch.zeros(2, 3))
    out = renderer(cam, cam_rots, pg.Intrinsics.framing(16))
    assert out.images.shape == (2, 3, 16, 16) and out.alpha.shape == (2, 1, 16, 16)
    with pytest.raises(pg.ShapeError, match=r"\(B, 24, 3\)"):
        renderer(cam[:, :10], cam_rots, pg.Intrinsics.framing(16))


class MeanPoseEstimator(pg.Estimator):
    """Predicts the rest skeleton seen from the front for every image (a trivial baseline)."""

    name = "mean_pose"

    def __init__(self, checkpoint=None, **options):
        super().__init__()
        joints, rots = pg.forward_kinematics(torch.zeros(1, 3), torch.zeros(1, 23, 3))
        self.register_buffer("mean", pg.root_relative(pg.to_camera_frame(joints, rots, torch.zeros(1, 3))[0]))

    def forward(self, images):
        return pg.EstimatorOutput(joints=self.mean.expand(images.shape[0], -1, -1))


def test_hook_posegen_register_estimators(tmp_path):
    @pg.hookimpl
    def posegen_register_estimators(register):
        register("mean_pose", MeanPoseEstimator)

    est = registry_with(posegen_register_estimators=posegen_register_estimators).get(
        "estimator", "mean_pose").factory(checkpoint=None)
    out = est(torch.rand(3, 3, 32, 32))
    assert out.joints.shape == (3, 24, 3)
    est.save_checkpoint(tmp_path / "m.pt")
    est.load_checkpoint(tmp_path / "m.pt")


class MeanAngleDiscriminator(pg.Discriminator):
    """Scores a pose by how far its mean rotation angle is from a learnable typical angle."""

    def __init__(self):
        super().__init__()
        self.typical = torch.nn.Parameter(torch.tensor(0.3))

    def forward(self, body_pose):
        return -(body_pose.norm(dim=-1).mean(-1, keepdim=True) - self.typical) ** 2


def test_hook_posegen_register_discriminators():
    @pg.hookimpl
    def posegen_register_discriminators(register):
        register("mean_angle", MeanAngleDiscriminator)

    disc = registry_with(posegen_register_discriminators=posegen_register_discriminators).get(
        "discriminator", "mean_angle").factory()
    assert disc(torch.zeros(5, 23, 3)).shape == (5, 1)


class RestPoses(pg.PoseSource):
    """n copies of the rest pose (a minimal source)."""

    name = "rest"

    def __init__(self, n: int = 3):
        self.n = n

    def load(self):
        import numpy as np

        return pg.PoseSet(torch.zeros(self.n, 3), torch.zeros(self.n, 23, 3), np.zeros(self.n, dtype=int), ["rest"])


def test_hook_posegen_register_pose_sources():
    @pg.hookimpl
    def posegen_register_pose_sources(register):
        register("rest", RestPoses)

    source = registry_with(posegen_register_pose_sources=posegen_register_pose_sources).get(
        "pose_source", "rest").factory(n=4)
    assert len(source) == 4 and source.load().body_pose.shape == (4, 23, 3)


COMMAND_PLUGIN = '''
import click
import posegen_core as pg

@click.command("hello")
@click.option("--name", default="world")
def hello(name):
    """Say hello (from a plugin)."""
    click.echo(f"hello {name}")

@pg.hookimpl
def posegen_register_commands(cli):
    cli.add_command(hello)
'''


def test_hook_posegen_register_commands(env, monkeypatch):
    monkeypatch.setattr(cli, "commands", dict(cli.commands))  # forget the plugin's command afterwards
    env.install("posegen-hello", "1.0", {"hello": "hello_plugin"}, {"hello_plugin": COMMAND_PLUGIN})
    env.refresh()
    assert run_cli("hello", "--name", "posegen").output == "hello posegen\n"
    assert "hello" in run_cli("--help").output


def test_a_broken_command_plugin_does_not_take_the_cli_down(env, monkeypatch):
    monkeypatch.setattr(cli, "commands", dict(cli.commands))
    source = "import posegen_core as pg\n@pg.hookimpl\ndef posegen_register_commands(cli):\n    raise KeyError('x')\n"
    env.install("posegen-badcmd", "1.0", {"badcmd": "badcmd_plugin"}, {"badcmd_plugin": source})
    env.refresh()
    assert run_cli("--help").exit_code == 0
    data = json.loads(run_cli("plugins", "--json").output)
    assert [f["source"] for f in data["failures"] if f["distribution"] == "posegen-badcmd"] == ["badcmd_plugin"]


class Recorder:
    """Observes the lifecycle hooks, as a logging or experiment-tracking plugin would."""

    def __init__(self):
        self.calls: list[tuple] = []

    @pg.hookimpl
    def posegen_run_start(self, config, run_dir):
        self.calls.append(("start", config, run_dir))

    @pg.hookimpl
    def posegen_step_end(self, step, metrics):
        self.calls.append(("step", step, dict(metrics)))

    @pg.hookimpl
    def posegen_run_end(self, result):
        self.calls.append(("end", result))


def test_hook_posegen_run_start_posegen_step_end_posegen_run_end(tmp_path):
    recorder = Recorder()
    reg = plugins.build_registry(extra_plugins=(recorder,))
    assert not [f for f in reg.failures if "Recorder" in f.source]
    hook = reg.manager.hook
    hook.posegen_run_start(config={"iters": 2}, run_dir=tmp_path)
    for step in range(2):
        hook.posegen_step_end(step=step, metrics={"loss_g": 1.0 / (step + 1)})
    hook.posegen_run_end(result={"mpjpe_mm": 80.0})
    assert recorder.calls == [
        ("start", {"iters": 2}, tmp_path), ("step", 0, {"loss_g": 1.0}), ("step", 1, {"loss_g": 0.5}),
        ("end", {"mpjpe_mm": 80.0}),
    ]


def test_lifecycle_hooks_reject_misnamed_arguments():
    class Wrong:
        @pg.hookimpl
        def posegen_step_end(self, iteration, metrics):
            pass

    reg = plugins.build_registry(extra_plugins=(Wrong(),))
    assert any("iteration" in f.error for f in reg.failures)


def test_every_hookspec_has_the_prefix():
    assert all(n.startswith("posegen_") for n in dir(Hookspecs) if not n.startswith("_"))



def test_a_function_factory_must_return_the_interface(env):
    source = (
        "import posegen_core as pg\n"
        "@pg.hookimpl\n"
        "def posegen_register_priors(register):\n"
        "    register('liar', lambda: object(), description='returns the wrong thing')\n"
    )
    env.install("posegen-liar", "1.0", {"liar": "liar_plugin"}, {"liar_plugin": source})
    env.refresh()
    with pytest.raises(pg.PluginError, match="returned a object, not a posegen_core.Prior"):
        pg.create_prior("liar")
