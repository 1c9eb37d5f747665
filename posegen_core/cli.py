"""The ``posegen`` command line. Core commands live here; plugins add theirs through ``posegen_register_commands``."""

from __future__ import annotations

import errno
import json
import os
import sys
from typing import Any

import click

from .errors import PosegenError


def debug_mode() -> bool:
    """``POSEGEN_DEBUG=1``: let errors through with their traceback (for bug reports)."""
    return os.environ.get("POSEGEN_DEBUG", "") not in ("", "0", "false", "no")


_OS_HINTS = {
    errno.ENOSPC: "the disk is full; free some space (or use --out on another disk) and --resume the run",
    errno.EDQUOT: "the disk quota is exhausted; free some space and --resume the run",
    errno.EACCES: "permission denied; choose a folder you can write (--out) or fix its permissions",
    errno.EPERM: "operation not permitted; choose a folder you can write (--out)",
    errno.EROFS: "the file system is read-only; choose a writable folder with --out",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.ENOENT: "no such file or folder",
}


def error_line(e: BaseException) -> tuple[str, int]:
    """The one line the CLI prints for an error, and the exit code (2: bad input, 1: environment or internal)."""
    if isinstance(e, PosegenError):
        return f"Error: {e}", 2
    if isinstance(e, OSError):
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        hint = _OS_HINTS.get(e.errno or -1, "")
        return f"Error: {e.strerror or type(e).__name__}{where}{': ' + hint if hint else ''}.", 1
    if isinstance(e, RuntimeError) and _lost_peer(e):
        return ("Error: another process of this distributed run stopped (" + str(e).splitlines()[0][:200] + "); its "
                "own error is above. torchrun restarts the processes when --max-restarts allows; otherwise continue "
                "with `posegen run --resume RUN_FOLDER` under the same launcher."), 1
    oom = isinstance(e, RuntimeError) and any(t in str(e) for t in ("can't allocate memory", "out of memory"))
    if isinstance(e, MemoryError) or oom:
        return "Error: out of memory; lower batch_size, image_size, samples or eval_samples (or --size).", 1
    first = str(e).splitlines()[0] if str(e) else ""
    notes = "".join(f" {n}" for n in getattr(e, "__notes__", ()))
    return (f"Error: unexpected {type(e).__name__}: {first}{notes}. This is a bug in posegen or a plugin; run again "
            "with POSEGEN_DEBUG=1 for the traceback and report it."), 1


def _lost_peer(e: BaseException) -> bool:
    """A collective operation failed because another process of a torchrun group died."""
    from .distributed import launched_by_torchrun

    text = str(e)
    return launched_by_torchrun() and any(t in text for t in ("Connection reset by peer", "Connection closed by peer",
                                                               "gloo", "NCCL", "Broken pipe"))


def _report(e: BaseException) -> None:
    line, code = error_line(e)
    click.secho(line, fg="red", err=True)
    sys.exit(code)


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
            except (Exception, SystemExit) as e:  # a broken plugin must not take the CLI down
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
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            if debug_mode():
                raise
            click.secho("Interrupted. A stopped run continues with `posegen run --resume RUN_FOLDER`.", fg="red", err=True)
            ctx.exit(130)
        except Exception as e:
            if debug_mode():
                raise
            line, code = error_line(e)
            click.secho(line, fg="red", err=True)
            ctx.exit(code)


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
    except Exception as e:  # raised outside a command, e.g. by strict plugin loading while listing commands
        if debug_mode():
            raise
        _report(e)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
