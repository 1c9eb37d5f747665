"""Benchmark a renderer (default: primitives): images/s forward and forward+backward, peak memory, scaling.

    .venv/bin/python benchmarks/render.py [--renderer anny] [--batch 64] [--sizes 64,128] [--repeats 5] [--threads N]

Prints a few human-readable lines, then ONE JSON object as the last line. Timings are wall-clock medians over
``--repeats`` runs after a warm-up; the machine's load average is recorded next to them because a shared machine
makes them noisy. ``cpu_*`` rates divide by process CPU time instead (less sensitive to other processes, but they
count every thread's time).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time

import torch

import posegen_core as pg
from posegen_plugins.renderers.primitives import PrimitivesRenderer, splat as sp
from posegen_plugins.renderers.primitives.body import NUM_PRIMITIVES, build_ellipsoids
from posegen_plugins.renderers.primitives.projection import screen_parameters


def posed_batch(batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random poses (small perturbations of rest) seen from random azimuths and elevations, 4 m away."""
    g = torch.Generator().manual_seed(seed)
    body_pose = torch.randn(batch, 23, 3, generator=g) * 0.25
    joints, rots = pg.forward_kinematics(torch.zeros(batch, 3), body_pose)
    el = (torch.rand(batch, generator=g) - 0.5) * torch.pi
    az = (torch.rand(batch, generator=g) * 2 - 1) * torch.pi
    k = pg.rotations.matrix_to_axis_angle(
        pg.rotations.rotation_about_axis("x", el) @ pg.rotations.rotation_about_axis("y", az)
    )
    return pg.to_camera_frame(joints, rots, k, 4.0)


def timed(fn, repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``fn`` over ``repeats`` runs after one warm-up run."""
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus)


def bench_renderer(batch: int, size: int, repeats: int, r: pg.Renderer | None = None) -> dict[str, float]:
    jc, rc = posed_batch(batch)
    intr = pg.Intrinsics.framing(size)
    r = PrimitivesRenderer() if r is None else r

    def forward() -> None:
        with torch.no_grad():
            r(jc, rc, intr)

    joints = jc.clone().requires_grad_()
    rotations = rc.clone().requires_grad_()

    def forward_backward() -> None:
        out = r(joints, rotations, intr)
        (out.images.mean() + out.alpha.mean()).backward()

    fw, fc = timed(forward, repeats)
    bw, bc = timed(forward_backward, repeats)
    return {"fwd": batch / fw, "fwd_bwd": batch / bw, "cpu_fwd": batch / fc, "cpu_fwd_bwd": batch / bc}


def bench_primitive_count(batch: int, size: int, factors: tuple[int, ...], repeats: int) -> dict[str, float]:
    """Splat-only forward+backward images/s with the body's primitives repeated ``factor`` times (jittered)."""
    jc, rc = posed_batch(batch, seed=1)
    ell = build_ellipsoids(jc, rc, torch.ones(batch))
    colours = torch.rand(batch, NUM_PRIMITIVES, 3, generator=torch.Generator().manual_seed(0))
    params, valid = screen_parameters(ell, colours, pg.Intrinsics.framing(size))
    params = params.view(batch, NUM_PRIMITIVES, sp.NUM_PARAMS).detach()
    valid = valid.view(batch, NUM_PRIMITIVES)
    out = {}
    g = torch.Generator().manual_seed(2)
    for f in factors:
        p = params.repeat(1, f, 1)
        p[..., :2] += torch.randn(p[..., :2].shape, generator=g) * size / 40 * (f > 1)
        p = p.reshape(-1, sp.NUM_PARAMS).requires_grad_()
        v = valid.repeat(1, f).reshape(-1)

        def run() -> None:
            fg, alpha = sp.splat(p, v, batch, size, size)
            (fg.mean() + alpha.mean()).backward()

        wall, _ = timed(run, repeats)
        out[str(NUM_PRIMITIVES * f)] = batch / wall
    return out


def dense_splat(params: torch.Tensor, batch: int, h: int, w: int, s: sp.SplatSettings = sp.SplatSettings()):
    """The same image model evaluated densely (every pixel x every primitive, plain autograd): the baseline that
    tile culling and the analytic backward are measured against."""
    p = params.view(batch, -1, sp.NUM_PARAMS)
    ys = torch.arange(h, dtype=p.dtype) + 0.5
    xs = torch.arange(w, dtype=p.dtype) + 0.5

    def col(i: int) -> torch.Tensor:
        return p[..., i][..., None, None]

    dx, dy = xs[None, None, None, :] - col(sp.MU_X), ys[None, None, :, None] - col(sp.MU_Y)
    m = col(sp.CON_A) * dx * dx + 2 * col(sp.CON_B) * dx * dy + col(sp.CON_C) * dy * dy
    e = col(sp.EDGE)
    u = ((m - (1 - e)) / (2 * e)).clamp(0, 1)
    o = s.max_opacity * (1 - (3 * u * u - 2 * u * u * u))
    t = (1 - m).clamp(0, 1)
    dome = t * (2 - t)
    z = col(sp.DEPTH) + col(sp.SLOPE_X) * dx + col(sp.SLOPE_Y) * dy - col(sp.BULGE) * dome
    zref = (p[..., sp.DEPTH] - p[..., sp.BULGE]).min(1).values.detach()[:, None, None, None]
    weight = o * torch.exp(((zref - z) / s.tau).clamp(s.min_exponent, s.max_exponent))
    shade = s.ambient + s.diffuse * dome
    rgb = p[..., sp.RED:sp.BLUE + 1].permute(0, 2, 1)[..., None, None]
    fg = (weight[:, None] * shade[:, None] * rgb).sum(2) / (weight.sum(1)[:, None] + 1e-30)
    alpha = 1 - torch.exp(torch.log1p(-o).sum(1, keepdim=True))
    return fg, alpha


def bench_dense(batch: int, size: int, repeats: int) -> dict[str, float]:
    """Forward and forward+backward images/s of ``dense_splat`` on the renderer's own primitives."""
    jc, rc = posed_batch(batch, seed=1)
    ell = build_ellipsoids(jc, rc, torch.ones(batch))
    colours = torch.rand(batch, NUM_PRIMITIVES, 3, generator=torch.Generator().manual_seed(0))
    params, _ = screen_parameters(ell, colours, pg.Intrinsics.framing(size))
    params = params.detach()

    def forward() -> None:
        with torch.no_grad():
            dense_splat(params, batch, size, size)

    p = params.clone().requires_grad_()

    def forward_backward() -> None:
        fg, alpha = dense_splat(p, batch, size, size)
        (fg.mean() + alpha.mean()).backward()

    return {"fwd": batch / timed(forward, repeats)[0], "fwd_bwd": batch / timed(forward_backward, repeats)[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--renderer", default="primitives",
                    help="registered renderer to time (the primitive-count scaling and the dense baseline are "
                         "primitives' own)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--sizes", default="64,128", help="comma-separated square image sizes")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", default=f"1,{torch.get_num_threads()}",
                    help="comma-separated torch thread counts to time (default: 1 and torch's default); the top-level "
                         "figures are the best setting, every setting is under 'by_threads'")
    ap.add_argument("--no-scaling", action="store_true", help="skip the primitive-count scaling runs")
    ap.add_argument("--dense-baseline", action="store_true",
                    help="also time a dense (untiled, autograd) evaluation of the same splat at the first size")
    args = ap.parse_args()
    threads = sorted({int(t) for t in args.threads.split(",") if t})
    sizes = [int(s) for s in args.sizes.split(",") if s]
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    load0 = os.getloadavg()[0]
    renderer = None if args.renderer == "primitives" else pg.create_renderer(args.renderer)
    count = NUM_PRIMITIVES if renderer is None else getattr(renderer, "num_primitives", None)
    if renderer is not None and hasattr(renderer, "body"):  # anny: its surfels are the primitives
        count = renderer.body.num_points
    result: dict[str, object] = {
        "benchmark": "render", "renderer": args.renderer, "batch": args.batch, "primitives": count,
        "cpu_count": os.cpu_count(), "torch": torch.__version__,
    }
    by_threads: dict[str, dict[str, float]] = {}
    for n in threads:
        torch.set_num_threads(n)
        by_threads[str(n)] = {}
        for size in sizes:
            rates = bench_renderer(args.batch, size, args.repeats, renderer)
            print(f"{n} thread(s) {size}x{size}: forward {rates['fwd']:.0f} images/s, "
                  f"forward+backward {rates['fwd_bwd']:.0f} images/s")
            for key, value in rates.items():
                by_threads[str(n)][f"{key}_images_per_s_{size}"] = round(value, 1)
    best = max(by_threads, key=lambda n: by_threads[n][f"fwd_bwd_images_per_s_{sizes[0]}"])
    result["threads"] = int(best)
    result.update(by_threads[best])
    result["by_threads"] = by_threads
    torch.set_num_threads(int(best))
    result["peak_memory_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # renderer runs
    result["peak_memory_above_start_mb"] = round(result["peak_memory_mb"] - rss0, 1)
    if not args.no_scaling and renderer is None:
        scaling = bench_primitive_count(args.batch, sizes[0], (1, 2, 4), args.repeats)
        print(f"splat fwd+bwd images/s at {sizes[0]}px by primitive count: "
              + ", ".join(f"{k}: {v:.0f}" for k, v in scaling.items()))
        result[f"splat_fwd_bwd_images_per_s_{sizes[0]}_by_primitives"] = {k: round(v, 1) for k, v in scaling.items()}
    if args.dense_baseline and renderer is None:
        dense = bench_dense(args.batch, sizes[0], args.repeats)
        print(f"dense baseline at {sizes[0]}px: forward {dense['fwd']:.0f} images/s, "
              f"forward+backward {dense['fwd_bwd']:.0f} images/s (splat only, no body/projection/background)")
        result[f"dense_baseline_splat_images_per_s_{sizes[0]}"] = {k: round(v, 1) for k, v in dense.items()}
    result["peak_memory_mb_all_runs"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result["load_average"] = [round(load0, 2), round(os.getloadavg()[0], 2)]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
