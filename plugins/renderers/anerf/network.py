"""The A-NeRF MLP (official ``NeRF`` in core/networks/nerf.py): 8x256 ReLU trunk with a skip, density and colour heads.

Parameter names and shapes match the official state dicts (reference/anerf_checkpoint_layout.txt), so official
weights load without renaming: ``pts_linears.k``, ``alpha_linear``, ``feature_linear``, ``views_linears.0``,
``rgb_linear`` and, with frame codes, ``framecodes.codes``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ANeRFConfig


class FrameCodes(nn.Module):
    """Per-frame appearance codes; any index < 0 selects the mean code (the official choice for novel renders)."""

    def __init__(self, n: int, dim: int) -> None:
        super().__init__()
        self.codes = nn.Embedding(n, dim)
        nn.init.xavier_normal_(self.codes.weight)

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        index = index.long()
        mean = self.codes.weight.mean(0)
        picked = self.codes(index.clamp_min(0))
        return torch.where((index < 0).unsqueeze(-1), mean.expand_as(picked), picked)


class ANeRFNetwork(nn.Module):
    """Maps the density input (..., pts_dim), colour input (..., view_dim) and frame code to raw (rgb, sigma)."""

    def __init__(self, config: ANeRFConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        self.skip = c.skip
        layers = [nn.Linear(c.pts_dim, c.width)]
        for i in range(1, c.depth):
            layers.append(nn.Linear(c.width + (c.pts_dim if i == c.skip + 1 else 0), c.width))
        self.pts_linears = nn.ModuleList(layers)
        self.alpha_linear = nn.Linear(c.width, 1)
        self.feature_linear = nn.Linear(c.width, c.width)
        code_dim = c.framecode_dim if c.n_framecodes > 0 else 0
        self.views_linears = nn.ModuleList([nn.Linear(c.width + c.view_dim + code_dim, c.view_width)])
        self.rgb_linear = nn.Linear(c.view_width, 3)
        self.framecodes = FrameCodes(c.n_framecodes, c.framecode_dim) if c.n_framecodes > 0 else None

    def _skip_split(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The skip layer's weight split into its input part and its hidden part (concat order [input, h])."""
        w = self.pts_linears[self.skip + 1].weight
        return w[:, : self.config.pts_dim], w[:, self.config.pts_dim:]

    def density_features(self, pts_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The trunk: raw density (..., 1) and the feature that feeds the colour head.

        Equal to the official ``cat([input, h])`` skip, computed without the concatenation: the skip layer's weight
        is applied to the input and to h separately and the two products are added.
        """
        relu = torch.relu if torch.is_grad_enabled() else torch.relu_
        has_skip = self.skip + 1 < len(self.pts_linears)
        first = self.pts_linears[0]
        skip_in = None
        if has_skip:
            w_in, w_h = self._skip_split()
            skip_in = F.linear(pts_in, w_in, self.pts_linears[self.skip + 1].bias)
        h = relu(first(pts_in))
        for i in range(1, len(self.pts_linears)):
            layer = self.pts_linears[i]
            if i == self.skip + 1 and skip_in is not None:
                h = relu(torch.addmm(skip_in.reshape(-1, skip_in.shape[-1]), h.reshape(-1, h.shape[-1]), w_h.t())
                         .view(*h.shape[:-1], -1))
            else:
                h = relu(layer(h))
        return self.alpha_linear(h), self.feature_linear(h)

    def direction_projection(self, dir_code: torch.Tensor) -> torch.Tensor:
        """Per-ray, per-joint contribution of the relative ray direction to the colour layer: (R, 1+2L, 24, 3) ->
        (R, 24, view_width). Weighted by a sample's cutoff weights and summed over joints it equals the official
        ``views_linears.0`` applied to the (cutoff-weighted) direction encoding, at 1/27 of the cost per sample."""
        c = self.config
        w = self.views_linears[0].weight[:, c.width: c.width + c.view_dim]
        w = w.reshape(c.view_width, -1, dir_code.shape[-2], 3)
        return torch.einsum("objx,rbjx->rjo", w, dir_code)

    def colour(self, feature: torch.Tensor, view_proj: torch.Tensor, code: torch.Tensor | None) -> torch.Tensor:
        """RGB logits from the trunk feature, the sample's direction term (.., view_width) and an optional frame code.
        Equal to the official ``views_linears.0(cat([feature, dir_enc, code]))`` with the direction term precomputed."""
        c = self.config
        lin = self.views_linears[0]
        h = F.linear(feature, lin.weight[:, : c.width], lin.bias) + view_proj
        if code is not None:
            h = h + F.linear(code, lin.weight[:, c.width + c.view_dim:])
        return self.rgb_linear(torch.relu(h) if torch.is_grad_enabled() else torch.relu_(h))

    def code_for(self, frame: torch.Tensor) -> torch.Tensor | None:
        """Frame codes (..., framecode_dim) for indices ``frame`` (...), or None without frame codes."""
        return None if self.framecodes is None else self.framecodes(frame)

    def forward(self, pts_in: torch.Tensor, view_in: torch.Tensor, frame: torch.Tensor | None = None) -> torch.Tensor:
        """The official interface: raw outputs (..., 4) = (rgb logits, sigma) from the full density input
        (..., pts_dim) and the cutoff-weighted direction encoding (..., view_dim)."""
        c = self.config
        sigma, feature = self.density_features(pts_in)
        view_proj = F.linear(view_in, self.views_linears[0].weight[:, c.width: c.width + c.view_dim])
        code = None
        if self.framecodes is not None:
            if frame is None:
                frame = torch.full(pts_in.shape[:-1], -1, dtype=torch.long, device=pts_in.device)
            code = self.code_for(frame)
        return torch.cat([self.colour(feature, view_proj, code), sigma], dim=-1)
