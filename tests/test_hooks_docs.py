"""Every hook is exercised by a test and documented in docs/PLUGINS.md (the datasette rule).

A hook counts as tested when some test function under tests/ is named ``test_hook_<hook name>...`` (one test may
cover several hooks by naming them all). A hook counts as documented when docs/PLUGINS.md has a heading
``### <hook name>(<its arguments>)`` with the hook's exact argument names.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

from posegen_core.hookspecs import Hookspecs

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "PLUGINS.md"
HOOKS = sorted(name for name in dir(Hookspecs) if name.startswith("posegen_"))


def hook_arguments(name: str) -> list[str]:
    return [p for p in inspect.signature(getattr(Hookspecs, name)).parameters if p != "self"]


def documented_hooks() -> dict[str, list[str]]:
    found = {}
    for m in re.finditer(r"^###\s+`?(posegen_\w+)\(([^)]*)\)`?\s*$", DOCS.read_text(), flags=re.MULTILINE):
        found[m.group(1)] = [a.strip() for a in m.group(2).split(",") if a.strip()]
    return found


def hook_test_names() -> list[str]:
    names = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_hook_"):
                names.append(node.name)
    return names


def test_there_are_hooks():
    assert {"posegen_register_priors", "posegen_register_commands", "posegen_run_end"} <= set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_test(hook):
    tests = hook_test_names()
    assert any(hook in t for t in tests), f"add a test named test_hook_{hook} that exercises the {hook} hook"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_with_its_signature(hook):
    docs = documented_hooks()
    assert hook in docs, f"docs/PLUGINS.md needs a '### {hook}({', '.join(hook_arguments(hook))})' section"
    assert docs[hook] == hook_arguments(hook), f"docs/PLUGINS.md documents {hook} with the wrong arguments"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_docstring(hook):
    assert len((getattr(Hookspecs, hook).__doc__ or "").strip()) > 40


def test_docs_describe_no_hook_that_does_not_exist():
    assert set(documented_hooks()) <= set(HOOKS)


def test_docs_cover_entry_points_strict_mode_and_the_register_callback():
    text = DOCS.read_text()
    for needle in ("[project.entry-points.posegen]", "POSEGEN_STRICT_PLUGINS", "register(name, factory",
                   "posegen plugins --json", "get_registry(refresh=True)", "@pg.hookimpl"):
        assert needle in text, needle
