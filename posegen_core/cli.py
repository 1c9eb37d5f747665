"""The ``posegen`` command line. Core commands live here; plugins add theirs through ``posegen_register_commands``."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from .errors import PosegenError


#: Core commands, imported only when used so that ``posegen --help`` stays fast: name -> "module:attribute".
CORE_COMMANDS: dict[str, str] = {
    "run": "posegen_core.commands.run:run",
    "pretrain": "posegen_core.commands.pretrain:pretrain",
    "render": "posegen_core.commands.render:render",
    "eval": "posegen_core.commands.evaluate:evaluate",
    "export": "posegen_core.commands.export:export",
}


class PosegenGroup(click.Group):
    """A click group that prints posegen's own errors as one clear line (no traceback) and loads plugin commands."""

    _plugin_commands_loaded = False

    def _core_command(self, name: str) -> click.Command | None:
        target = CORE_COMMANDS.get(name)
        if target is None:
            return None
        import importlib

        module, attr = target.split(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as e:
            if e.name == module:  # not written yet in this checkout
                return None
            raise

    def _load_plugin_commands(self) -> None:
        if PosegenGroup._plugin_commands_loaded:
            return
        PosegenGroup._plugin_commands_loaded = True
        from .plugins import get_registry

        reg = get_registry()
        for impl in reg.manager.hook.posegen_register_commands.get_hookimpls():
            try:
                impl.function(cli=self)
            except Exception as e:  # a broken plugin must not take the CLI down
                reg._fail(impl.plugin_name, reg.distributions.get(impl.plugin_name, ("", ""))[0], e)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugin_commands()
        core = [n for n in CORE_COMMANDS if self._core_command(n) is not None]
        return sorted(set(super().list_commands(ctx)) | set(core))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        cmd = super().get_command(ctx, name) or self._core_command(name)
        if cmd is None:
            self._load_plugin_commands()
            cmd = super().get_command(ctx, name)
        return cmd

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PosegenError as e:
            click.secho(f"Error: {e}", fg="red", err=True)
            ctx.exit(2)


@click.group(cls=PosegenGroup)
@click.version_option(package_name="posegen")
def cli() -> None:
    """posegen: learn to generate 3D human pose datasets that a pose estimator gets wrong, and fine-tune it on them."""


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def plugins(as_json: bool) -> None:
    """List installed plugins by kind, with their distribution, version and description, and load failures."""
    from .plugins import KINDS, get_registry

    reg = get_registry()
    if as_json:
        out = {kind: [reg.plugins[kind][n].as_dict() for n in reg.names(kind)] for kind in KINDS}
        out["failures"] = [f.as_dict() for f in reg.failures]
        click.echo(json.dumps(out, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for kind in KINDS:
        table = Table(title=f"{kind.replace('_', ' ')}s", title_justify="left", expand=False)
        for col in ("name", "distribution", "version", "description"):
            table.add_column(col)
        for n in reg.names(kind):
            p = reg.plugins[kind][n]
            table.add_row(p.name, p.distribution or "-", p.version or "-", p.description)
        console.print(table)
    if reg.failures:
        table = Table(title="load failures", title_justify="left", style="red")
        for col in ("source", "distribution", "error"):
            table.add_column(col)
        for f in reg.failures:
            table.add_row(f.source, f.distribution or "-", f.error)
        console.print(table)


def main() -> None:  # console-script entry point
    try:
        cli(prog_name="posegen")
    except PosegenError as e:  # raised outside a command, e.g. by strict plugin loading while listing commands
        click.secho(f"Error: {e}", fg="red", err=True)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
