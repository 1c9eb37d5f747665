"""The example third-party package (examples/third_party_plugin) plugs into posegen through its entry point alone.

Its dist-info is written into a temporary folder from the example's own pyproject.toml (as pip would), so the test
checks the real declaration, and nothing in posegen changes.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import tomllib
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from plugin_env import PluginEnv

import posegen_core as pg
from posegen_core.cli import cli

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "third_party_plugin"
PROJECT = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]


@pytest.fixture
def installed(tmp_path):
    env = PluginEnv(tmp_path / "site")
    env.add_path(EXAMPLE)  # the package's source, as an editable install would expose it
    env.modules.append("posegen_mixture_prior")
    env.install(PROJECT["name"], PROJECT["version"], PROJECT["entry-points"]["posegen"])
    env.refresh()
    yield env
    env.close()


def test_the_example_declares_a_posegen_entry_point():
    assert PROJECT["entry-points"]["posegen"] == {"mixture": "posegen_mixture_prior"}
    assert "posegen" in PROJECT["dependencies"]


def test_it_appears_in_posegen_plugins(installed):
    result = CliRunner().invoke(cli, ["plugins", "--json"], catch_exceptions=False)
    data = json.loads(result.output)
    (info,) = [p for p in data["prior"] if p["name"] == "mixture"]
    assert info["distribution"] == "posegen-mixture-prior" and info["version"] == "0.1.0"
    assert info["plugin"] == "posegen_mixture_prior"
    assert "Gaussian mixture" in info["description"]
    assert not [f for f in data["failures"] if "mixture" in f["source"]]
    assert {"normal", "uniform", "spherical"} <= {p["name"] for p in data["prior"]}
    text = CliRunner().invoke(cli, ["plugins"], env={"COLUMNS": "250"}).output
    assert "mixture" in text and "posegen-mixture-prior" in text


def test_create_prior_builds_it_with_the_official_modes(installed):
    prior = pg.create_prior("mixture")
    assert isinstance(prior, pg.Prior)
    z, modes = prior.sample_with_modes(20000, 4, generator=torch.Generator().manual_seed(0))
    centres = torch.tensor([-10.0, -5.0, 0.0, 5.0, 10.0])
    counts = torch.bincount(modes, minlength=5).double() / len(modes)
    torch.testing.assert_close(counts, torch.full((5,), 0.2, dtype=torch.float64), atol=0.02, rtol=0)
    residual = z - centres[modes][:, None]
    assert abs(float(residual.mean())) < 0.03 and abs(float(residual.std()) - 1.0) < 0.03
    # Mixture moments: mean 0, per-coordinate variance std^2 + Var(centres) = 1 + 50.
    assert float(z.mean(0).abs().max()) < 0.2
    torch.testing.assert_close(z.var(0), torch.full((4,), 51.0), atol=1.5, rtol=0)
    # All coordinates of one sample share their mode, so they are strongly correlated.
    assert float(torch.corrcoef(z.T)[0, 1]) > 0.9


def test_options_weights_and_mode_tables(installed):
    prior = pg.create_prior("mixture", centres=[-2.0, 2.0], std=0.5, weights=[1.0, 3.0])
    z, modes = prior.sample_with_modes(8000, 3, generator=torch.Generator().manual_seed(1))
    assert abs(float(modes.double().mean()) - 0.75) < 0.02
    assert abs(float(z.mean()) - (0.25 * -2 + 0.75 * 2)) < 0.05
    table = pg.create_prior("mixture", centres=[[0.0, 10.0], [10.0, 0.0]], std=0.1)
    z, modes = table.sample_with_modes(100, 2, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(z, torch.tensor([[0.0, 10.0], [10.0, 0.0]])[modes], atol=0.5, rtol=0)
    with pytest.raises(pg.ConfigError, match="2-dimensional; asked for dim=3"):
        table.sample(4, 3)


def test_seeded_draws_are_reproducible(installed):
    prior = pg.create_prior("mixture")
    a = prior.sample(64, 32, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, prior.sample(64, 32, generator=torch.Generator().manual_seed(5)))
    assert not torch.equal(a, prior.sample(64, 32, generator=torch.Generator().manual_seed(6)))


@pytest.mark.parametrize(
    "options,message",
    [
        ({"std": 0.0}, "std must be positive"),
        ({"weights": [1.0, 1.0]}, "must be 5 non-negative numbers"),
        ({"weights": [1.0, -1.0, 0.0, 0.0, 0.0]}, "non-negative"),
        ({"centres": []}, "must be K finite numbers"),
    ],
)
def test_bad_settings_are_refused_clearly(installed, options, message):
    with pytest.raises(pg.ConfigError, match=message):
        pg.create_prior("mixture", **options)


def test_without_the_package_the_name_is_unknown():
    try:
        importlib.metadata.distribution(PROJECT["name"])
        pytest.skip("the example plugin is installed in this environment")
    except importlib.metadata.PackageNotFoundError:
        pass
    with pytest.raises(pg.PluginNotFoundError, match=r"Available: .*normal.*spherical.*uniform"):
        pg.create_prior("mixture")


def test_the_example_uses_only_posegens_public_core():
    source = (EXAMPLE / "posegen_mixture_prior" / "__init__.py").read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert not {m for m in imported if m.startswith("posegen_plugins")}
    assert "posegen_core" in imported
