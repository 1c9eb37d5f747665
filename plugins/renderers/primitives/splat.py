"""Tile-culled soft-ellipse rasteriser with an analytic backward: the hot loop of the primitives renderer.

Each primitive arrives already projected to the screen as a soft ellipse with a depth profile:

- ``m(p) = A dx^2 + 2 B dx dy + C dy^2`` (``dx = px - mu_x``): m = 1 on the ellipse's boundary;
- opacity ``o = o_max * (1 - smoothstep((m - 1 + e) / 2e))``: 1 inside, 0 beyond ``m = 1 + e`` (compact support,
  so a primitive only touches the tiles its bounding box covers);
- a dome ``h = t (2 - t)`` with ``t = clamp(1 - m, 0, 1)`` (1 at the centre, 0 at the rim) that shades the colour
  (``ambient + diffuse * h``) and bulges the depth: ``z = z_c + g . (p - mu) - r * h``;
- soft z-buffer aggregation (as SoftRas): weights ``w = o * exp((z_ref - z) / tau)``, foreground
  ``fg = sum w c shade / sum w`` and coverage ``alpha = 1 - prod (1 - o)``.

Why tiles: a primitive covers a few percent of the image, so a dense (pixels x primitives) evaluation wastes most of
its work and memory. The image is cut into ``tile x tile`` blocks; every (primitive, tile) pair whose boxes overlap
is evaluated on the tile's pixels only, and pairs are summed into tiles with ``index_add_``. The quadratic ``m`` and
the linear depth are one small matmul per pair against a fixed polynomial basis of the tile's pixel offsets, and the
backward sums the per-pixel gradients back into per-primitive moments with the same basis (no dense intermediates,
no autograd graph over the pixel-primitive pairs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

#: Column layout of the per-primitive screen parameters.
MU_X, MU_Y, CON_A, CON_B, CON_C, EDGE, DEPTH, SLOPE_X, SLOPE_Y, BULGE, RED, GREEN, BLUE = range(13)
NUM_PARAMS = 13


@dataclass(frozen=True)
class SplatSettings:
    """Constants of the shading and aggregation model (not learned)."""

    tile: int = 8
    tau: float = 0.025  # depth softness of the z-buffer in metres: 0.1 m in front wins by e^4
    max_opacity: float = 0.995  # keeps log(1 - o) finite
    ambient: float = 0.45
    diffuse: float = 0.55
    min_exponent: float = -80.0  # exp() range kept inside float32's normal numbers
    max_exponent: float = 80.0


@dataclass
class TileBins:
    """Which primitive touches which tile: ``prim`` and ``tile`` index pairs, plus the grid's shape."""

    prim: torch.Tensor  # (P,) long, row of the (N, 13) parameters
    tile: torch.Tensor  # (P,) long, flat index over (B, tiles_y, tiles_x)
    tiles_x: int
    tiles_y: int
    batch: int
    tile_size: int


def bin_primitives(
    params: torch.Tensor, valid: torch.Tensor, batch: int, height: int, width: int, tile: int
) -> TileBins:
    """Pairs (primitive, tile) whose bounding boxes overlap; the box holds the whole support m <= 1 + e.

    ``params`` is (B*K, 13) with rows of image b at ``b*K ... b*K+K-1``; ``valid`` (B*K,) drops primitives behind
    the camera.
    """
    with torch.no_grad():
        n = params.shape[0]
        k = n // batch
        a, b, c, e = params[:, CON_A], params[:, CON_B], params[:, CON_C], params[:, EDGE]
        det = (a * c - b * b).clamp_min(1e-12)
        # Half extents of {m <= 1 + e}: sqrt((1 + e) * Sigma_xx) with Sigma = conic^-1.
        hx = torch.sqrt((1.0 + e) * c / det)
        hy = torch.sqrt((1.0 + e) * a / det)
        tx = -(-width // tile)
        ty = -(-height // tile)
        x0 = torch.floor((params[:, MU_X] - hx) / tile).clamp(0, tx - 1)
        x1 = torch.floor((params[:, MU_X] + hx) / tile).clamp(-1, tx - 1)
        y0 = torch.floor((params[:, MU_Y] - hy) / tile).clamp(0, ty - 1)
        y1 = torch.floor((params[:, MU_Y] + hy) / tile).clamp(-1, ty - 1)
        off = (params[:, MU_X] + hx < 0) | (params[:, MU_X] - hx > width) | (params[:, MU_Y] + hy < 0)
        off = off | (params[:, MU_Y] - hy > height) | ~valid
        gx = torch.arange(tx, dtype=params.dtype, device=params.device)
        gy = torch.arange(ty, dtype=params.dtype, device=params.device)
        in_x = (gx[None] >= x0[:, None]) & (gx[None] <= x1[:, None])  # (N, tx)
        in_y = (gy[None] >= y0[:, None]) & (gy[None] <= y1[:, None])  # (N, ty)
        hit = (in_y[:, :, None] & in_x[:, None, :]) & ~off[:, None, None]  # (N, ty, tx)
        prim, iy, ix = hit.nonzero(as_tuple=True)
        image = torch.div(prim, k, rounding_mode="floor")
        tile_index = (image * ty + iy) * tx + ix
    return TileBins(prim, tile_index, tx, ty, batch, tile)


def _basis(tile: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(6, tile*tile) rows 1, jx, jy, jx^2, jx*jy, jy^2 over the tile's pixel offsets (row-major)."""
    j = torch.arange(tile, dtype=dtype, device=device)
    jy, jx = torch.meshgrid(j, j, indexing="ij")
    jx, jy = jx.reshape(-1), jy.reshape(-1)
    return torch.stack([torch.ones_like(jx), jx, jy, jx * jx, jx * jy, jy * jy])


class _Pairs:
    """Per-pair, per-pixel quantities of the forward pass (kept for the backward when gradients are needed).

    Written with in-place ops on (P, n) buffers: this is the hot loop, and its cost is the number of passes
    over those buffers.
    """

    def __init__(self, params: torch.Tensor, bins: TileBins, zref: torch.Tensor, basis: torch.Tensor,
                 s: SplatSettings) -> None:
        pp = torch.index_select(params, 0, bins.prim)  # (P, 13)
        t = bins.tile
        ts = bins.tile_size
        ix = t % bins.tiles_x
        iy = torch.div(t, bins.tiles_x, rounding_mode="floor") % bins.tiles_y
        # Offsets of the tile's first pixel centre from the ellipse centre.
        self.dx0 = ix.to(pp.dtype) * ts + 0.5 - pp[:, MU_X]
        self.dy0 = iy.to(pp.dtype) * ts + 0.5 - pp[:, MU_Y]
        a, b, c = pp[:, CON_A], pp[:, CON_B], pp[:, CON_C]
        dx0, dy0 = self.dx0, self.dy0
        inv_tau = 1.0 / s.tau
        gxs, gys = pp[:, SLOPE_X], pp[:, SLOPE_Y]
        z_lin0 = pp[:, DEPTH] + gxs * dx0 + gys * dy0
        e = pp[:, EDGE:EDGE + 1]
        self.inv2e = 0.5 / e
        self.bulge = pp[:, BULGE:BULGE + 1]
        # The exponent is clamped to float32's range; its gradient is taken as unclamped (the clamp only bites
        # for contributions ~e^-80, or for absurd depth slopes).
        # One matmul gives m (quadratic in the pixel offsets), the linear part of the exponent, and u's numerator.
        zero = torch.zeros_like(a)
        coef = torch.stack(
            [a * dx0 * dx0 + 2 * b * dx0 * dy0 + c * dy0 * dy0, 2 * (a * dx0 + b * dy0), 2 * (b * dx0 + c * dy0),
             a, 2 * b, c,
             (zref[t] - z_lin0) * inv_tau, -gxs * inv_tau, -gys * inv_tau, zero, zero, zero], 1,
        ).view(-1, 2, 6)
        mx = coef @ basis  # (P, 2, n)
        self.m = m = mx[:, 0]
        xi = mx[:, 1]
        tt = torch.rsub(m, 1.0).clamp_(0.0, 1.0)
        self.tt = tt
        self.h = h = (2.0 - tt).mul_(tt)  # dome: 1 at the centre, 0 on the rim
        u = torch.addcmul((e - 1.0) * self.inv2e, m, self.inv2e).clamp_(0.0, 1.0)
        self.u = u
        # o = o_max * (1 - u^2 (3 - 2u))
        self.o = o = (u * u).mul_(torch.mul(u, -2.0).add_(3.0)).mul_(-s.max_opacity).add_(s.max_opacity)
        xi.addcmul_(h, self.bulge, value=inv_tau)
        self.E = xi.clamp_(s.min_exponent, s.max_exponent).exp_()
        self.w = o * self.E
        self.shade = torch.mul(h, s.diffuse).add_(s.ambient)
        self.colour = pp[:, RED:BLUE + 1]  # (P, 3)
        self.pp = pp
        self.e = e


def tile_zref(params: torch.Tensor, bins: TileBins) -> torch.Tensor:
    """Per-tile depth reference (the nearest primitive front), so exp((z_ref - z)/tau) stays in range."""
    with torch.no_grad():
        front = params[bins.prim, DEPTH] - params[bins.prim, BULGE]
        n_tiles = bins.batch * bins.tiles_y * bins.tiles_x
        zref = torch.full((n_tiles,), float("inf"), dtype=params.dtype, device=params.device)
        zref.scatter_reduce_(0, bins.tile, front, reduce="amin", include_self=True)
        return torch.where(torch.isfinite(zref), zref, torch.zeros_like(zref))


def _untile(x: torch.Tensor, bins: TileBins, height: int, width: int) -> torch.Tensor:
    """(B*ty*tx, C, ts*ts) -> (B, C, H, W)."""
    ts = bins.tile_size
    ch = x.shape[1]
    x = x.view(bins.batch, bins.tiles_y, bins.tiles_x, ch, ts, ts).permute(0, 3, 1, 4, 2, 5)
    x = x.reshape(bins.batch, ch, bins.tiles_y * ts, bins.tiles_x * ts)
    return x[:, :, :height, :width]


def _tile(x: torch.Tensor, bins: TileBins) -> torch.Tensor:
    """(B, C, H, W) -> (B*ty*tx, C, ts*ts), zero padded to whole tiles."""
    ts = bins.tile_size
    b, ch, h, w = x.shape
    ph, pw = bins.tiles_y * ts - h, bins.tiles_x * ts - w
    if ph or pw:
        x = torch.nn.functional.pad(x, (0, pw, 0, ph))
    x = x.reshape(b, ch, bins.tiles_y, ts, bins.tiles_x, ts).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b * bins.tiles_y * bins.tiles_x, ch, ts * ts)


class SplatFunction(torch.autograd.Function):
    """params (N, 13) -> foreground colour (B, 3, H, W) and coverage alpha (B, 1, H, W); analytic backward."""

    @staticmethod
    def forward(ctx, params: torch.Tensor, bins: TileBins, height: int, width: int,  # type: ignore[override]
                settings: SplatSettings) -> tuple[torch.Tensor, torch.Tensor]:
        basis = _basis(bins.tile_size, params.dtype, params.device)
        zref = tile_zref(params, bins)
        pr = _Pairs(params, bins, zref, basis, settings)
        n = basis.shape[1]
        vals = torch.empty(pr.w.shape[0], 5, n, dtype=params.dtype, device=params.device)
        vals[:, 0] = pr.w
        torch.mul((pr.w * pr.shade)[:, None], pr.colour[:, :, None], out=vals[:, 1:4])
        torch.log1p(torch.neg(pr.o), out=vals[:, 4])
        n_tiles = bins.batch * bins.tiles_y * bins.tiles_x
        acc = torch.zeros(n_tiles, 5, n, dtype=params.dtype, device=params.device)
        acc.index_add_(0, bins.tile, vals)
        del vals
        s_sum = acc[:, 0]
        fg = acc[:, 1:4] / (s_sum + _EPS[params.dtype])[:, None]
        alpha = -torch.expm1(acc[:, 4])
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(params, s_sum, fg, alpha)
            ctx.pairs, ctx.basis = pr, basis
        ctx.bins, ctx.settings = bins, settings
        return _untile(fg, bins, height, width), _untile(alpha[:, None], bins, height, width)

    @staticmethod
    def backward(ctx, grad_fg: torch.Tensor, grad_alpha: torch.Tensor):  # type: ignore[override]
        params, s_sum, fg, alpha = ctx.saved_tensors
        bins: TileBins = ctx.bins
        s: SplatSettings = ctx.settings
        pr: _Pairs = ctx.pairs
        basis = ctx.basis
        g_fg = _tile(grad_fg.contiguous(), bins)  # (T, 3, n)
        g_a = _tile(grad_alpha.contiguous(), bins)[:, 0]  # (T, n)
        per_tile = torch.empty(g_fg.shape[0], 5, g_fg.shape[2], dtype=fg.dtype, device=fg.device)
        gs = torch.div(g_fg, (s_sum + _EPS[params.dtype])[:, None], out=per_tile[:, :3])
        torch.sum(gs * fg, 1, out=per_tile[:, 3])  # k0 = sum_c G_c fg_c / S
        torch.mul(g_a, alpha - 1.0, out=per_tile[:, 4])  # d loss / d sum log(1 - o)
        t = bins.tile
        gathered = torch.index_select(per_tile, 0, t)  # (P, 5, n)
        gs_p = gathered[:, :3]
        col = pr.colour
        gc_dot = gs_p[:, 0] * col[:, :1]  # (P, n): sum_c G_c colour_c / S
        gc_dot.addcmul_(gs_p[:, 1], col[:, 1:2]).addcmul_(gs_p[:, 2], col[:, 2:3])
        g_w = gc_dot.mul(pr.shade).sub_(gathered[:, 3])
        q = pr.w * pr.shade
        g_colour = (gs_p * q[:, None]).sum(-1)  # (P, 3)
        del q
        inv_tau = 1.0 / s.tau
        g_xi = g_w * pr.w  # d loss / d exponent
        g_h = gc_dot.mul_(pr.w).mul_(s.diffuse).addcmul_(g_xi, pr.bulge, value=inv_tau)  # d loss / d dome
        g_o = g_w.mul_(pr.E).sub_(gathered[:, 4] / torch.rsub(pr.o, 1.0))  # d loss / d opacity
        del gathered, gs_p
        # d o / d m = -o_max * 6 u (1 - u) / (2 e); d o / d e = d o / d m * (1 - m) / e
        g_om = torch.rsub(pr.u, 1.0).mul_(pr.u).mul_(pr.inv2e * (-6.0 * s.max_opacity)).mul_(g_o)
        del g_o
        g_e = (g_om.sum(1) - _rowdot(g_om, pr.m)) / pr.e[:, 0]
        dh_dm = torch.where(pr.m < 1.0, 2.0 * pr.tt - 2.0, torch.zeros_like(pr.tt))
        g_m = g_om.addcmul_(g_h, dh_dm)
        del dh_dm, g_h
        g_bulge = _rowdot(g_xi, pr.h) * inv_tau
        mom = torch.stack([g_m, g_xi], 1) @ basis.T  # (P, 2, 6) moments over pixel offsets
        sm, smx, smy, smxx, smxy, smyy = mom[:, 0].unbind(1)
        sx, sxx, sxy = mom[:, 1, 0], mom[:, 1, 1], mom[:, 1, 2]
        dx0, dy0 = pr.dx0, pr.dy0
        pp = pr.pp
        a, b, c = pp[:, CON_A], pp[:, CON_B], pp[:, CON_C]
        m_dx = dx0 * sm + smx  # sum g_m dx
        m_dy = dy0 * sm + smy
        m_dxdx = dx0 * dx0 * sm + 2 * dx0 * smx + smxx
        m_dxdy = dx0 * dy0 * sm + dx0 * smy + dy0 * smx + smxy
        m_dydy = dy0 * dy0 * sm + 2 * dy0 * smy + smyy
        x_dx = dx0 * sx + sxx  # sum g_xi dx
        x_dy = dy0 * sx + sxy
        gxs, gys = pp[:, SLOPE_X], pp[:, SLOPE_Y]
        grad = torch.zeros_like(pp)
        grad[:, MU_X] = -2.0 * (a * m_dx + b * m_dy) + gxs * inv_tau * sx
        grad[:, MU_Y] = -2.0 * (b * m_dx + c * m_dy) + gys * inv_tau * sx
        grad[:, CON_A] = m_dxdx
        grad[:, CON_B] = 2.0 * m_dxdy
        grad[:, CON_C] = m_dydy
        grad[:, EDGE] = g_e
        grad[:, DEPTH] = -inv_tau * sx
        grad[:, SLOPE_X] = -inv_tau * x_dx
        grad[:, SLOPE_Y] = -inv_tau * x_dy
        grad[:, BULGE] = g_bulge
        grad[:, RED:BLUE + 1] = g_colour
        out = torch.zeros_like(params).index_add_(0, bins.prim, grad)
        return out, None, None, None, None


def _rowdot(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(P, n), (P, n) -> (P,) row-wise dot product."""
    return (x * y).sum(1)


_EPS = {torch.float32: 1e-36, torch.float64: 1e-300, torch.float16: 1e-7, torch.bfloat16: 1e-30}


def splat(params: torch.Tensor, valid: torch.Tensor, batch: int, height: int, width: int,
          settings: SplatSettings = SplatSettings()) -> tuple[torch.Tensor, torch.Tensor]:
    """Rasterise screen ellipses ``params`` (B*K, 13): returns foreground (B, 3, H, W) and alpha (B, 1, H, W)."""
    bins = bin_primitives(params.detach(), valid, batch, height, width, settings.tile)
    return SplatFunction.apply(params, bins, height, width, settings)
