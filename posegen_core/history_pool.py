"""Shrivastava et al.'s history pool of fake samples for the discriminator (the official code keeps 4096)."""

from __future__ import annotations

import torch


class HistoryPool:
    """Returns a batch where each fake is, with probability 1/2 once the pool is full, swapped for an older one."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self.items: torch.Tensor | None = None

    def __call__(self, fakes: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        fakes = fakes.detach()
        if self.size <= 0:
            return fakes
        if self.items is None or len(self.items) < self.size:
            self.items = fakes.clone() if self.items is None else torch.cat([self.items, fakes])[: self.size]
            return fakes
        swap = (torch.rand(len(fakes), generator=generator) < 0.5).to(fakes.device)
        slots = torch.randint(len(self.items), (len(fakes),), generator=generator).to(fakes.device)
        out = fakes.clone()
        out[swap] = self.items[slots[swap]]
        self.items[slots[swap]] = fakes[swap]
        return out

    def state_dict(self) -> dict:
        return {"size": self.size, "items": self.items}

    def load_state_dict(self, state: dict, device: torch.device | str = "cpu") -> None:
        self.size = state["size"]
        self.items = None if state["items"] is None else state["items"].to(device)
