"""The plugin system: a pluggy manager, a registry per kind, entry-point loading and the public factories.

Built-in plugins arrive exactly like third-party ones: through the ``posegen`` entry-point group (posegen's own
distribution declares ``builtins = "posegen_plugins"``). A module loaded from an entry point may list further plugin
modules in a ``PLUGIN_MODULES`` tuple, so one package can bundle several. Each entry point and each registration hook
runs in isolation: a broken third-party plugin is recorded and shown by ``posegen plugins``; it fails hard only when
the user asks for it or sets ``POSEGEN_STRICT_PLUGINS=1``.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata as md
import inspect
import os
import threading
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

import pluggy

from . import interfaces
from .errors import PluginError, PluginNotFoundError, PosegenError
from .hookspecs import PROJECT, Hookspecs
from .strategies import Strategy

ENTRY_POINT_GROUP = "posegen"

#: kind -> (hook name, interface the factory must produce)
KINDS: dict[str, tuple[str, type]] = {
    "renderer": ("posegen_register_renderers", interfaces.Renderer),
    "estimator": ("posegen_register_estimators", interfaces.Estimator),
    "prior": ("posegen_register_priors", interfaces.Prior),
    "discriminator": ("posegen_register_discriminators", interfaces.Discriminator),
    "pose_source": ("posegen_register_pose_sources", interfaces.PoseSource),
    "strategy": ("posegen_register_strategies", Strategy),
}


@dataclass
class PluginInfo:
    kind: str
    name: str
    factory: Callable[..., Any]
    description: str = ""
    plugin: str = ""  # the pluggy plugin (module) that registered it
    distribution: str = ""
    version: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind, "name": self.name, "description": self.description, "plugin": self.plugin,
            "distribution": self.distribution, "version": self.version,
        }


@dataclass
class PluginFailure:
    source: str  # entry point "name = module" or plugin module name
    distribution: str
    error: str
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"source": self.source, "distribution": self.distribution, "error": self.error}


@dataclass
class PluginRegistry:
    manager: pluggy.PluginManager
    plugins: dict[str, dict[str, PluginInfo]] = field(default_factory=lambda: {k: {} for k in KINDS})
    failures: list[PluginFailure] = field(default_factory=list)
    distributions: dict[str, tuple[str, str]] = field(default_factory=dict)  # plugin name -> (dist, version)

    # -- registration ----------------------------------------------------------------------------------
    def _register_kind(self, kind: str) -> None:
        hook_name, base = KINDS[kind]
        for impl in getattr(self.manager.hook, hook_name).get_hookimpls():
            dist, version = self.distributions.get(impl.plugin_name, ("", ""))

            def register(name: str, factory: Callable[..., Any], description: str = "", *, _p=impl.plugin_name,
                         _d=dist, _v=version) -> None:
                # A refused registration is recorded (and raised in strict mode); the plugin's others still count.
                try:
                    _validate(kind, name, factory, base)
                    existing = self.plugins[kind].get(name)
                    if existing is not None:
                        raise PluginError(
                            f"{kind} '{name}' from {_p} is already registered by {existing.plugin}"
                            f"{' (' + existing.distribution + ')' if existing.distribution else ''}; "
                            "choose another name."
                        )
                except PluginError as e:
                    self._fail(_p, _d, e)
                    return
                if not description:
                    description = (inspect.getdoc(factory) or "").split("\n")[0]
                self.plugins[kind][name] = PluginInfo(kind, name, factory, description, _p, _d, _v)

            try:
                impl.function(register=register)
            except (Exception, SystemExit) as e:
                self._fail(impl.plugin_name, dist, e)

    def _fail(self, source: str, dist: str, e: BaseException) -> None:
        """Record a load failure; in strict mode (POSEGEN_STRICT_PLUGINS=1) raise it instead of carrying on."""
        if getattr(e, "_posegen_recorded", False):  # strict mode: already recorded further down, pass it up
            raise e
        failure = PluginFailure(source, dist, f"{type(e).__name__}: {e}", traceback.format_exc())
        self.failures.append(failure)
        if strict_mode():
            err = PluginError(
                f"plugin {source} failed to load: {failure.error} (strict mode: unset POSEGEN_STRICT_PLUGINS "
                "to skip broken plugins and see them in `posegen plugins`)"
            )
            err._posegen_recorded = True  # type: ignore[attr-defined]
            raise err from e

    # -- lookup ----------------------------------------------------------------------------------------
    def get(self, kind: str, name: str) -> PluginInfo:
        if kind not in KINDS:
            raise PluginError(f"unknown plugin kind '{kind}'; expected one of {', '.join(KINDS)}.")
        found = self.plugins[kind].get(name)
        if found is not None:
            return found
        names = sorted(self.plugins[kind])
        msg = f"unknown {kind.replace('_', ' ')} '{name}'. Available: {', '.join(names) or '(none)'}."
        close = difflib.get_close_matches(name, names, n=1)
        if close:
            msg += f" Did you mean '{close[0]}'?"
        related = [f for f in self.failures if name in f.source]
        if related:
            msg += f" Note: plugin {related[0].source} failed to load: {related[0].error}"
        elif self.failures:
            msg += " Some plugins failed to load; run `posegen plugins` to see why."
        raise PluginNotFoundError(msg)

    def names(self, kind: str) -> list[str]:
        return sorted(self.plugins[kind])


def strict_mode() -> bool:
    return os.environ.get("POSEGEN_STRICT_PLUGINS", "") not in ("", "0", "false", "no")


def _validate(kind: str, name: str, factory: Callable[..., Any], base: type) -> None:
    if not isinstance(name, str) or not name or not name.replace("-", "_").replace(".", "_").isidentifier():
        raise PluginError(f"{kind} name {name!r} must be a non-empty identifier-like string (letters, digits, _ - .).")
    if inspect.isclass(factory):
        if not issubclass(factory, base):
            raise PluginError(
                f"{kind} '{name}': {factory.__qualname__} must subclass posegen_core.{base.__name__}."
            )
        if inspect.isabstract(factory):
            missing = ", ".join(sorted(factory.__abstractmethods__))
            raise PluginError(f"{kind} '{name}': {factory.__qualname__} does not implement {missing}.")
    elif not callable(factory):
        raise PluginError(f"{kind} '{name}': factory must be a class or a callable; got {type(factory).__name__}.")


def _new_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(Hookspecs)
    return pm


def _register_module(registry: PluginRegistry, module: Any, name: str, dist: tuple[str, str]) -> None:
    pm = registry.manager
    if pm.is_registered(module) or pm.has_plugin(name):
        return
    pm.register(module, name=name)
    registry.distributions[name] = dist
    for sub in getattr(module, "PLUGIN_MODULES", ()) or ():
        try:
            _register_module(registry, importlib.import_module(sub), sub, dist)
        except (Exception, SystemExit) as e:  # a plugin calling sys.exit on import is a load failure too
            registry._fail(sub, dist[0], e)


def build_registry(extra_plugins: tuple[Any, ...] = ()) -> PluginRegistry:
    """Load every entry point of the ``posegen`` group (each in isolation) plus ``extra_plugins``, then register."""
    registry = PluginRegistry(_new_manager())
    for ep in sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (e.name != "builtins", e.name)):
        dist = (ep.dist.name, ep.dist.version) if ep.dist is not None else ("", "")
        try:
            module = ep.load()
            _register_module(registry, module, module.__name__, dist)
        except (Exception, SystemExit) as e:  # a plugin calling sys.exit on import is a load failure too
            registry._fail(f"{ep.name} = {ep.value}", dist[0], e)
    for module in extra_plugins:
        name = getattr(module, "__name__", repr(module))
        try:
            _register_module(registry, module, name, ("", ""))
        except (Exception, SystemExit) as e:  # a plugin calling sys.exit on import is a load failure too
            registry._fail(name, "", e)
    _check_hook_names(registry)
    for kind in KINDS:
        registry._register_kind(kind)
    return registry


def _check_hook_names(registry: PluginRegistry) -> None:
    """Report hook implementations pluggy would silently ignore: unknown names (a typo such as
    ``posegen_register_estimator``) and ``posegen_*`` functions that lack the ``@posegen_core.hookimpl`` marker."""
    specs = sorted(h for h in dir(Hookspecs) if h.startswith("posegen_"))
    for plugin_name, plugin in registry.manager.list_name_plugin():
        dist = registry.distributions.get(plugin_name, ("", ""))[0]
        for attr in dir(plugin):
            value = getattr(plugin, attr, None)
            opts = getattr(value, PROJECT + "_impl", None)
            if not inspect.isroutine(value) or not (opts is not None or attr.startswith("posegen_")):
                continue
            hook = (opts or {}).get("specname") or attr
            if hook not in specs:
                if (opts or {}).get("optionalhook"):
                    continue
                close = difflib.get_close_matches(hook, specs, n=1)
                hint = f" Did you mean {close[0]}?" if close else f" Known hooks: {', '.join(specs)}."
                registry._fail(plugin_name, dist, PluginError(f"unknown hook {hook} in {plugin_name}.{hint}"))
            elif opts is None:
                registry._fail(plugin_name, dist, PluginError(
                    f"{plugin_name}.{attr} is not decorated with @posegen_core.hookimpl, so posegen never calls it."
                ))


_lock = threading.Lock()
_registry: PluginRegistry | None = None


def get_registry(refresh: bool = False) -> PluginRegistry:
    """The process-wide registry, built on first use (``refresh=True`` re-reads the entry points)."""
    global _registry
    with _lock:
        if _registry is None or refresh:
            _registry = None  # a failed (strict-mode) build must not leave a stale registry behind
            _registry = build_registry()
        return _registry


def get_plugin_manager() -> pluggy.PluginManager:
    return get_registry().manager


def create(kind: str, name: str, **options: Any) -> Any:
    """Build the ``kind`` plugin registered as ``name`` with ``options`` (checked against its signature first)."""
    info = get_registry().get(kind, name)
    try:
        sig = inspect.signature(info.factory)
    except (TypeError, ValueError):  # some builtins have no signature: let the call itself complain
        sig = None
    if sig is not None:
        try:
            sig.bind(**options)
        except TypeError as e:
            raise PluginError(
                f"could not build {kind} '{name}' with options {sorted(options)}: {e}. Accepted: {sig}"
            ) from None
    try:
        built = info.factory(**options)
    except Exception as e:  # not disguised (the plugin's own error type stays), but it names the plugin it came from
        if not isinstance(e, PosegenError):
            e.add_note(f"(raised while building {kind} '{name}' from {info.plugin or 'its plugin'})")
        raise
    base = KINDS[kind][1]
    if not isinstance(built, base):
        raise PluginError(
            f"{kind} '{name}' from {info.plugin or 'its plugin'}: the factory returned a {type(built).__name__}, "
            f"not a posegen_core.{base.__name__}. Report this to the plugin's author."
        )
    return built


def create_renderer(name: str, **options: Any) -> interfaces.Renderer:
    """Build a registered renderer (``posegen plugins`` lists them)."""
    return create("renderer", name, **options)


def create_estimator(name: str, checkpoint: Any = None, **options: Any) -> interfaces.Estimator:
    """Build a registered estimator, loading ``checkpoint`` (a posegen or the model's official file) if given."""
    return create("estimator", name, checkpoint=checkpoint, **options)


def create_prior(name: str, **options: Any) -> interfaces.Prior:
    return create("prior", name, **options)


def create_discriminator(name: str, **options: Any) -> interfaces.Discriminator:
    return create("discriminator", name, **options)


def create_pose_source(name: str, **options: Any) -> interfaces.PoseSource:
    return create("pose_source", name, **options)


def list_plugins() -> dict[str, list[PluginInfo]]:
    reg = get_registry()
    return {kind: [reg.plugins[kind][n] for n in reg.names(kind)] for kind in KINDS}
