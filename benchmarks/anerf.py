"""Rays/s of the A-NeRF renderer with the full SURREAL network (coarse 64 + fine 16 samples, 8x256 MLPs).

Measures, on the same rays of a posed skeleton (inside its bounding cylinder):
  * ``reference``: a straightforward port of the official computation (per-sample 4x4 world-to-joint transforms,
    concatenated network inputs, the cat-based skip and colour head), to compare on the same machine;
  * ``exact``: posegen's renderer (same output; max abs difference reported);
  * ``early_stop``: early ray termination at transmittance 1e-3 (``fast=True``; pixels change by at most 1e-3);
  * ``early_stop_skip_far``: also skipping samples whose every cutoff weight is below 1e-4 (exact only where the model
    is empty far from the skeleton, as trained A-NeRFs are; a random network is not, so its difference is large),
    with the fraction of coarse samples that lie that far and the max difference to ``exact``.
  * ``matmul_gflops``: this machine's fp32 matrix-multiply throughput at the MLP's shapes (every linear layer of the
    network as one ``addmm`` on a chunk's samples, timed alone), and ``exact_fraction_of_matmul_peak``: the MLP FLOPs
    the exact path executes per second (``mlp_mflop_per_ray`` x rays/s) over that throughput. The MLP is most of the
    work, so this fraction is the honest ceiling on a CPU (target: at least 0.6).
The network has random weights with the density bias set to 0.5 (``--checkpoint`` loads a real one): the cost of
exact rendering does not depend on the weights, but the fast modes' savings and errors do (trained A-NeRFs are
empty far from the skeleton and opaque on the body; random ones are neither).

Usage: python benchmarks/anerf.py [--rays 512] [--threads 2] [--clock wall|cpu] [--device cpu|cuda] [--checkpoint PATH]
The last line printed is a JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

import posegen_core as pg
from posegen_plugins.renderers.anerf.raycaster import FastOptions, RayBatch, RayCaster
from posegen_plugins.renderers.anerf.renderer import ANeRFRenderer
from posegen_plugins.renderers.anerf.sampling import coarse_depths, importance_depths
from posegen_plugins.renderers.anerf.volume import activate, composite, sample_spacing


def reference_render(caster: RayCaster, rays: RayBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """The official computation written plainly: homogeneous skts per sample, concatenated encodings and layers."""
    c = caster.config
    skts = torch.zeros(rays.rot_t.shape[0], 24, 4, 4, dtype=rays.dirs.dtype, device=rays.dirs.device)
    skts[..., :3, :3], skts[..., :3, 3], skts[..., 3, 3] = rays.rot_t, -rays.offset, 1.0

    def raw_at(net, z):
        pts = z[..., None] * rays.dirs[:, None]  # (R, S, 3), origin at the camera centre
        hom = torch.cat([pts, torch.ones_like(pts[..., :1])], -1)
        local = torch.einsum("rjab,rsb->rsja", skts[rays.image], hom)[..., :3]
        pts_in, _ = caster.embed(local)
        dirs = torch.einsum("rjab,rb->rja", skts[rays.image][..., :3, :3], rays.dirs)
        view_in = caster.embeddirs(caster.embeddirs.per_ray(dirs), local.norm(dim=-1))
        x = pts_in
        h = x
        for i, layer in enumerate(net.pts_linears):
            h = torch.relu(layer(h))
            if i == c.skip and i + 1 < len(net.pts_linears):
                h = torch.cat([x, h], -1)
        feat = net.feature_linear(h)
        rgb = net.rgb_linear(torch.relu(net.views_linears[0](torch.cat([feat, view_in], -1))))
        return torch.cat([rgb, net.alpha_linear(h)], -1)

    z = coarse_depths(rays.near, rays.far, c.n_samples)
    rgb, alpha = activate(raw_at(caster.network_fn, z), sample_spacing(z, rays.dirs))
    _, _, w = composite(rgb, alpha)
    z_new = importance_depths(0.5 * (z[:, 1:] + z[:, :-1]), w[:, 1:-1], c.n_importance)
    z_all, _ = torch.sort(torch.cat([z, z_new], -1), -1)
    rgb, alpha = activate(raw_at(caster.fine, z_all), sample_spacing(z_all, rays.dirs))
    colour, acc, _ = composite(rgb, alpha)
    return colour, acc


def mlp_layer_shapes(net) -> list[tuple[int, int]]:
    """(in, out) of every matmul the exact path runs per sample: the trunk (the skip layer as its two halves, as
    posegen computes it), density, feature, the colour layer's feature part (the direction part is per ray) and rgb."""
    c = net.config
    shapes = [(c.pts_dim, c.width)]
    for i in range(1, c.depth):
        shapes.append((c.width, c.width))
        if i == c.skip + 1:
            shapes.append((c.pts_dim, c.width))
    shapes += [(c.width, 1), (c.width, c.width), (c.width, c.view_width), (c.view_width, 3)]
    if c.n_framecodes:
        shapes.append((c.framecode_dim, c.view_width))
    return shapes


def mlp_flop_per_ray(caster: RayCaster) -> float:
    """MLP FLOPs (multiply-add = 2) per ray of the exact path: coarse samples through the coarse network, the merged
    samples through the fine one (a single network evaluates only its new samples), plus the per-ray direction
    projection of each network."""
    c = caster.config
    per_sample = sum(2 * i * o for i, o in mlp_layer_shapes(caster.network_fn))
    fine_samples = c.n_importance if caster.network_fine is None else c.n_samples + c.n_importance
    nets = 1 if caster.network_fine is None else 2
    return per_sample * (c.n_samples + fine_samples) + nets * 2 * c.view_dim * c.view_width


def matmul_gflops(caster: RayCaster, rows: int, repeats: int, device: str, cpu_clock: bool = False) -> float:
    """fp32 GFLOP/s of ``addmm`` at the MLP's layer shapes on ``rows`` samples (the renderer's matmul sizes), the
    mean over ``repeats`` after a warm-up, timed as the renderer is (``cpu_clock``: process time / threads)."""
    g = torch.Generator().manual_seed(0)
    layers = [(torch.randn(rows, i, generator=g).to(device), torch.randn(o, i, generator=g).to(device),
               torch.randn(o, generator=g).to(device)) for i, o in mlp_layer_shapes(caster.network_fn)]
    flop = sum(2 * rows * w.shape[0] * w.shape[1] for _, w, _ in layers)

    def run():
        for x, w, b in layers:
            torch.addmm(b, x, w.t())

    run()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t, c = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        run()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    took = (time.process_time() - c) / torch.get_num_threads() if cpu_clock else time.perf_counter() - t
    return flop * repeats / took / 1e9


def timed(fn, repeats: int, cpu_clock: bool) -> tuple[float, object]:
    """Seconds per call: wall-clock, or on CPU process time / threads (robust when other jobs share the cores)."""
    out = fn()  # warm-up
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t, c = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    if cpu_clock:
        return (time.process_time() - c) / torch.get_num_threads() / repeats, out
    return (time.perf_counter() - t) / repeats, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rays", type=int, default=512)
    ap.add_argument("--chunk", type=int, default=None, help="rays per batch (default: the renderer's, 64 on CPU)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="cpu: process time / threads, for machines shared with other jobs")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    renderer = ANeRFRenderer(checkpoint=args.checkpoint, config=None if args.checkpoint else "surreal",
                             chunk=args.chunk, seed=0).to(args.device)
    renderer.eval()
    if not args.checkpoint:  # raise the density so that rays are partly opaque, as in a trained model
        with torch.no_grad():
            for net in {id(m): m for m in (renderer.caster.network_fn, renderer.caster.fine)}.values():
                net.alpha_linear.bias.fill_(0.5)
    g = torch.Generator().manual_seed(0)
    joints, rots = pg.forward_kinematics(torch.zeros(1, 3), torch.randn(1, 23, 3, generator=g) * 0.2)
    joints, rots = pg.to_camera_frame(joints, rots, torch.zeros(1, 3), 4.0)
    rays, _ = renderer.skeleton_rays(joints, rots, pg.Intrinsics.framing(128))
    pick = torch.randperm(rays.dirs.shape[0], generator=g)[: args.rays].to(rays.dirs.device)
    rays = RayBatch(rays.dirs[pick], rays.near[pick], rays.far[pick], rays.image[pick], rays.rot_t, rays.offset,
                    rays.frame)
    args.chunk = args.chunk or renderer.rays_per_chunk(rays.dirs.device)
    n = rays.dirs.shape[0]
    caster = renderer.caster
    amp = args.device.startswith("cuda")
    cpu = args.clock == "cpu" and not amp

    def run(fast: FastOptions, use_amp: bool = False):
        outs = [caster.render_rays(rays.take(slice(s, s + args.chunk)), fast=fast, amp=use_amp)
                for s in range(0, n, args.chunk)]
        return torch.cat([o["rgb"] for o in outs]), torch.cat([o["acc"] for o in outs])

    cfg = caster.config
    result: dict[str, object] = {"benchmark": "anerf",
                                 "network": f"{cfg.depth}x{cfg.width}, coarse {cfg.n_samples} + fine "
                                            f"{cfg.n_importance}{' (one shared net)' if cfg.single_net else ''}",
                                 "rays": n, "chunk": args.chunk, "threads": args.threads, "device": args.device,
                                 "machine": platform.processor() or platform.machine(),
                                 "weights": args.checkpoint or "random (seed 0, density bias 0.5)",
                                 "clock": args.clock}
    with torch.inference_mode():
        t_exact, (rgb, acc) = timed(lambda: run(FastOptions()), args.repeats, cpu)
        result["exact_rays_per_s"] = round(n / t_exact, 1)
        if not args.skip_reference:
            t_ref, (rgb_ref, acc_ref) = timed(lambda: reference_render(caster, rays), max(1, args.repeats // 2), cpu)
            result["reference_rays_per_s"] = round(n / t_ref, 1)
            result["exact_vs_reference_max_abs_diff"] = float(max((rgb - rgb_ref).abs().max(),
                                                                  (acc - acc_ref).abs().max()))
            result["speedup_exact_vs_reference"] = round(t_ref / t_exact, 2)
        for name, fast in (("early_stop", FastOptions(early_stop=1e-3)),
                           ("early_stop_skip_far", FastOptions(early_stop=1e-3, skip_far=1e-4))):
            t_fast, (rgb_f, acc_f) = timed(lambda: run(fast), args.repeats, cpu)
            result[f"{name}_rays_per_s"] = round(n / t_fast, 1)
            result[f"{name}_vs_exact_max_abs_diff"] = float(max((rgb - rgb_f).abs().max(),
                                                                (acc - acc_f).abs().max()))
        flop = mlp_flop_per_ray(caster)
        # the best of several batch sizes (the renderer's CPU and GPU chunks): the machine's throughput, not ours
        peak = max(matmul_gflops(caster, rays * caster.config.n_samples, 5, args.device, cpu)
                   for rays in (64, 256, 1024))
        result["mlp_mflop_per_ray"] = round(flop / 1e6, 1)
        result["matmul_gflops"] = round(peak, 1)
        result["exact_mlp_gflops"] = round(result["exact_rays_per_s"] * flop / 1e9, 1)
        result["exact_fraction_of_matmul_peak"] = round(result["exact_mlp_gflops"] / peak, 3)
        far = caster.embed.negligible_beyond(1e-4)
        z = coarse_depths(rays.near, rays.far, caster.config.n_samples)
        local = z[..., None, None] * (rays.rot_t[rays.image] @ rays.dirs[:, None, :, None]).squeeze(-1)[:, None] \
            - rays.offset[rays.image][:, None]
        result["coarse_samples_beyond_cutoff"] = round(float((local.norm(dim=-1).min(-1).values >= far).float()
                                                             .mean()), 3)
        if amp:
            t_amp, (rgb_a, _) = timed(lambda: run(FastOptions(), True), args.repeats, cpu)
            result["exact_amp_bf16_rays_per_s"] = round(n / t_amp, 1)
            result["amp_vs_fp32_max_abs_diff"] = float((rgb - rgb_a).abs().max())
    if not args.skip_reference:
        print(f"reference (plain port): {result['reference_rays_per_s']} rays/s")
    print(f"matmul at the MLP's shapes: {result['matmul_gflops']} GFLOP/s; exact path: "
          f"{result['exact_mlp_gflops']} GFLOP/s = {result['exact_fraction_of_matmul_peak']:.0%} of it")
    print(f"exact: {result['exact_rays_per_s']} rays/s   early stop: {result['early_stop_rays_per_s']} rays/s   "
          f"early stop + skip far: {result['early_stop_skip_far_rays_per_s']} rays/s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
