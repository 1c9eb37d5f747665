"""Backbones in plain torch with the official checkpoints' parameter names."""
