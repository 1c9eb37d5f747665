"""posegen's built-in plugins, registered through exactly the same hooks and entry point as third-party ones.

``PLUGIN_MODULES`` is the one list of built-in plugin modules; posegen's own entry point (``builtins``) loads this
package and the core registers every module listed here.
"""

PLUGIN_MODULES: tuple[str, ...] = (
    "posegen_plugins.priors",
    "posegen_plugins.renderers.anerf",
    "posegen_plugins.renderers.primitives",
    "posegen_plugins.renderers.anny",
    "posegen_plugins.discriminators.parts",
    "posegen_plugins.strategies",
    "posegen_plugins.estimators.simple",
    "posegen_plugins.estimators.spin",
    "posegen_plugins.estimators.hybrik",
    "posegen_plugins.pose_sources.procedural",
    "posegen_plugins.pose_sources.bvh",
    "posegen_plugins.pose_sources.amass",
)
