"""The primitives renderer (default, CPU, differentiable)."""
