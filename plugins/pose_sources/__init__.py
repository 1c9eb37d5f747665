"""Built-in pose_sources."""
