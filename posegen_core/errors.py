"""Exceptions that carry a user-facing message: what was wrong, what was expected, what to do."""

from __future__ import annotations


class PosegenError(Exception):
    """Base class of every error posegen raises on purpose (the CLI prints these without a traceback)."""


class ShapeError(PosegenError, ValueError):
    """A tensor has the wrong shape, dtype or non-finite values."""


class PluginError(PosegenError):
    """A plugin could not be registered, found, loaded or built."""


class PluginNotFoundError(PluginError, KeyError):
    """No plugin of that kind has that name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ConfigError(PosegenError, ValueError):
    """A configuration value is invalid."""


class CheckpointError(PosegenError):
    """A checkpoint is missing, truncated, or belongs to another model."""


class DataError(PosegenError):
    """An input data file is missing, corrupt or empty."""


class TrainingError(PosegenError):
    """Training diverged (for example a NaN loss)."""
