"""``posegen export``: re-export a finished run's generator as a dataset SPIN's training code reads unchanged, with any
number of samples, at any image size (streamed to disk in shards; see posegen_core.dataset_export and docs/EXPORT.md).
"""

from __future__ import annotations

import hashlib
import typing
from pathlib import Path
from typing import Any

import click
import torch

from ..config import RunConfig, resolve_device
from ..errors import ConfigError


def _generator_state(run_dir: Path) -> tuple[dict[str, torch.Tensor], Path]:
    """G's weights: checkpoints/generator.pt (written when the run finished fine-tuning), else the run checkpoint
    once its GAN stage is over."""
    from ..io import load_checkpoint_file

    final = run_dir / "checkpoints" / "generator.pt"
    if final.is_file():
        return load_checkpoint_file(final, what="generator checkpoint")["G"], final
    state = run_dir / "checkpoints" / "state.pt"
    if state.is_file():
        s = load_checkpoint_file(state, what="run checkpoint")
        if s.get("stage") != "gan":
            return s["G"], state
    raise ConfigError(
        f"{run_dir} has no trained generator yet (no checkpoints/generator.pt, and its GAN stage has not finished). "
        f"Finish the run first: posegen run --resume {run_dir}."
    )


def _default_size(cfg: RunConfig) -> int:
    """What the run's estimator reads, without building it (see dataset_export.export_size_for)."""
    from ..dataset_export import export_size_for
    from ..plugins import get_registry

    if cfg.export_size is None and isinstance(cfg.estimator, str) and "input_size" in cfg.estimator_options:
        return int(cfg.estimator_options["input_size"])
    est_class = None
    if isinstance(cfg.estimator, str) and cfg.estimator in get_registry().plugins["estimator"]:
        factory = get_registry().get("estimator", cfg.estimator).factory
        est_class = factory
        if not isinstance(factory, type):  # a build function: its return annotation names the class
            try:
                est_class = typing.get_type_hints(factory).get("return")
            except Exception:  # an unresolvable annotation: fall back to the loop's size
                est_class = None
    return export_size_for(cfg, est_class)


def export_run(
    run_dir: str | Path,
    out: str | Path,
    samples: int | None = None,
    size: int | None = None,
    seed: int | None = None,
    shard_size: int | None = None,
    name: str = "posegen",
    images: bool = True,
    device: str = "cpu",
    overwrite: bool = False,
    threads: int | None = None,
    console: Any = None,
    encode_threads: int = 2,
) -> dict[str, Any]:
    """Library form of ``posegen export``; returns a summary (folder, samples, size, seconds, images/s)."""
    import time

    from ..body_models import create_body_model
    from ..dataset_export import DEFAULT_SHARD, ExportSettings, GeneratedSource, export_dataset
    from ..generator import PoseGenerator, generated_shape_dim
    from ..io import load_state_dict_strict
    from ..loop import stage_seed
    from ..plugins import create_prior, create_renderer
    from ..progress import Reporter

    run_dir = Path(run_dir)
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"--threads must be at least 1; got {threads}.")
        torch.set_num_threads(threads)
    if not (run_dir / "config.json").is_file():
        raise ConfigError(f"{run_dir} is not a posegen run folder (no config.json); pass the folder `posegen run` wrote.")
    cfg = RunConfig.from_file(run_dir / "config.json")
    state, ckpt = _generator_state(run_dir)
    from .. import distributed

    # under torchrun every process renders and writes its own shards (docs/DISTRIBUTED.md)
    distributed.init_from_env(resolve_device(device))
    dev = distributed.local_device(torch.device(resolve_device(device)))
    opts = dict(cfg.renderer_options)
    if cfg.renderer_checkpoint:
        opts["checkpoint"] = cfg.renderer_checkpoint
    renderer = create_renderer(cfg.renderer, **opts)
    G = PoseGenerator(cfg.latent_dim, viewpoint=cfg.generate_viewpoint, viewpoint_param=cfg.viewpoint_param,
                      k_max=cfg.k_max, max_elevation=cfg.max_elevation, max_roll=cfg.max_roll,
                      shape_dim=generated_shape_dim(cfg.generate_shape, renderer))
    load_state_dict_strict(G, state, ckpt)
    if isinstance(renderer, torch.nn.Module):
        renderer.to(dev)
    body = create_body_model(cfg.smpl_model).to(dev)
    settings = ExportSettings(
        samples=cfg.samples if samples is None else samples,
        size=_default_size(cfg) if size is None else size,
        seed=stage_seed(cfg.seed, "dataset") if seed is None else seed,
        shard_size=shard_size or DEFAULT_SHARD, name=name, write_images=images, encode_threads=encode_threads,
    ).check()
    source = GeneratedSource(G.to(dev), create_prior(cfg.prior), cfg.latent_dim, renderer, body, cfg.camera_distance,
                             cfg.subject, settings.seed, dev)
    digest = hashlib.sha256(ckpt.read_bytes()).hexdigest()[:16]
    reporter = Reporter(console)
    t0 = time.time()
    with reporter:
        folder = export_dataset(out, source, settings, reporter=reporter, replace=overwrite, log=reporter.log,
                                extra_info={"run": str(run_dir.resolve()), "generator_sha256": digest,
                                            "renderer": cfg.renderer})
    seconds = time.time() - t0
    return {"folder": str(folder), "samples": settings.samples, "size": settings.size, "seed": settings.seed,
            "seconds": round(seconds, 2), "images_per_s": round(settings.samples / max(seconds, 1e-9), 1)}


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder of the exported dataset (new).")
@click.option("--samples", "-n", type=int, help="Number of samples (default: the run's `samples`).")
@click.option("--size", type=int,
              help="Image size in pixels (default: what the run's estimator reads: SPIN 224, HybrIK 256, simple 64).")
@click.option("--seed", type=int, help="Sample seed (default: the run's own dataset seed, so the first samples match it).")
@click.option("--shard-size", type=int, help="Samples per shard, the unit of atomic writes and resuming (default 1024).")
@click.option("--name", default="posegen", show_default=True,
              help="The dataset's name in SPIN's config; the static fits file is <name>_fits.npy.")
@click.option("--images/--no-images", default=True, show_default=True, help="Write the PNG images.")
@click.option("--device", default="cpu", show_default=True, help="torch device for G and the renderer (auto, cpu, cuda).")
@click.option("--overwrite", is_flag=True, help="Replace an earlier posegen export in --out.")
@click.option("--threads", type=int, help="torch threads for rendering (PNGs are encoded in --encode-threads more).")
@click.option("--encode-threads", type=int, default=2, show_default=True,
              help="Threads encoding PNGs while the next chunk renders; 0 encodes in the rendering thread.")
def export(run_dir, out, samples, size, seed, shard_size, name, images, device, overwrite, threads,
           encode_threads) -> None:
    """Export a finished run's generator as a dataset in SPIN's layout (images/*.png, annotations.npz, fits).

    An interrupted export continues from its last complete shard when run again with the same options."""
    from .. import distributed

    try:
        s = export_run(run_dir, out, samples, size, seed, shard_size, name, images, device, overwrite, threads,
                       encode_threads=encode_threads)
        main = distributed.world().main
    finally:
        distributed.shutdown()
    if main:
        click.echo(f"wrote {s['folder']}: {s['samples']} samples at {s['size']}x{s['size']} in {s['seconds']} s "
               f"({s['images_per_s']} images/s)")
