"""The A-NeRF renderer."""
