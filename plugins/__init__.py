"""posegen's built-in plugins, registered through exactly the same hooks and entry point as third-party ones.

``PLUGIN_MODULES`` is the one list of built-in plugin modules; posegen's own entry point (``builtins``) loads this
package and the core registers every module listed here.
"""

PLUGIN_MODULES: tuple[str, ...] = (
    "posegen_plugins.priors",
)
