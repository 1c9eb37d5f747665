"""Core CLI commands, one module each (loaded lazily by posegen_core.cli)."""
