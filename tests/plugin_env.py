"""Installs fake distributions (a dist-info with METADATA and entry_points.txt, plus module files) on sys.path for
plugin tests, exactly as pip would lay them out, and restores the interpreter and the plugin registry afterwards."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from posegen_core import cli as cli_module
from posegen_core import plugins


class PluginEnv:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.modules: list[str] = []
        self.paths: list[str] = []

    def add_path(self, path: Path) -> None:
        """Put a source folder on sys.path (e.g. an example package's checkout)."""
        sys.path.insert(0, str(path))
        self.paths.append(str(path))

    def install(
        self, dist: str, version: str, entry_points: dict[str, str], modules: dict[str, str] | None = None
    ) -> Path:
        """Write ``modules`` (dotted name -> source) and a dist-info declaring ``entry_points`` in the posegen group."""
        for name, source in (modules or {}).items():
            path = self.root.joinpath(*name.split(".")).with_suffix(".py")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(source)
            self.modules.append(name)
        info = self.root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
        (info / "entry_points.txt").write_text(f"[posegen]\n{lines}")
        if str(self.root) not in self.paths:
            self.add_path(self.root)
        importlib.invalidate_caches()
        return info

    def refresh(self) -> plugins.PluginRegistry:
        cli_module.PosegenGroup._plugin_commands_loaded = False
        return plugins.get_registry(refresh=True)

    def close(self) -> None:
        for p in self.paths:
            while p in sys.path:
                sys.path.remove(p)
        for name in list(sys.modules):
            if any(name == m or name.startswith(m + ".") for m in self.modules):
                del sys.modules[name]
        importlib.invalidate_caches()
        cli_module.PosegenGroup._plugin_commands_loaded = False
        plugins.get_registry(refresh=True)
