"""``posegen anerf``: make a teacher-subject dataset and fit an A-NeRF to a subject."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.group()
def anerf() -> None:
    """A-NeRF: train the articulated NeRF renderer on a new subject."""


@anerf.command("make-dataset")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--teacher", default="primitives", show_default=True, help="Renderer that draws the subject.")
@click.option("--subject", default="0", show_default=True, help="Teacher subject id or name.")
@click.option("--size", default=32, show_default=True, help="Image size in pixels (square).")
@click.option("--poses", "train_poses", default=12, show_default=True, help="Training poses.")
@click.option("--heldout-poses", default=3, show_default=True, help="Poses only used for evaluation.")
@click.option("--views", default=8, show_default=True, help="Training cameras around the subject.")
@click.option("--heldout-views", default=2, show_default=True, help="Cameras only used for evaluation.")
@click.option("--seed", default=0, show_default=True)
def make_dataset(out: Path, teacher: str, subject: str, size: int, train_poses: int, heldout_poses: int, views: int,
                 heldout_views: int, seed: int) -> None:
    """Render a multi-view dataset of one teacher subject on a white background (layout: see the dataset module)."""
    import posegen_core as pg

    from .dataset import make_teacher_dataset, save_dataset

    options = {"background": "plain", "background_color": (1.0, 1.0, 1.0)} if teacher == "primitives" else {}
    renderer = pg.create_renderer(teacher, **options)
    subj: int | str = int(subject) if subject.lstrip("-").isdigit() else subject
    ds = make_teacher_dataset(renderer, size=size, train_poses=train_poses, heldout_poses=heldout_poses, views=views,
                              heldout_views=heldout_views, seed=seed, subject=subj)
    save_dataset(out, ds)
    counts = {k: len(ds.indices(k)) for k in ("train", "heldout_view", "heldout_pose")}
    click.echo(f"wrote {out}: {len(ds)} images of {size}x{size} ({counts})")


@anerf.command("fit")
@click.argument("dataset", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for checkpoints/latest.tar, metrics.jsonl and summary.json.")
@click.option("--config", default="small", show_default=True, help="Network preset (small, surreal, ...).")
@click.option("--iters", default=4000, show_default=True)
@click.option("--minutes", default=10.0, show_default=True, help="Training time budget (0: no limit).")
@click.option("--rays", default=256, show_default=True, help="Rays per step.")
@click.option("--lr", default=3e-3, show_default=True)
@click.option("--eval-every", default=250, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue from OUT/checkpoints/latest.tar.")
@click.option("--threads", default=1, show_default=True,
              help="CPU threads. Small networks are bound by per-operation latency: one thread is fastest on a "
                   "2-core machine, and far faster when other jobs share the cores.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override a config field, e.g. --set n_samples=32 (repeatable).")
def fit_command(dataset: Path, out_dir: Path, config: str, iters: int, minutes: float, rays: int, lr: float,
                eval_every: int, seed: int, resume: bool, threads: int, sets: tuple[str, ...]) -> None:
    """Train an A-NeRF on DATASET's training split; report PSNR on held-out views and poses."""
    import torch

    import posegen_core as pg

    torch.set_num_threads(max(1, threads))
    from .dataset import load_dataset
    from .fit import FitSettings, fit

    overrides = {}
    for item in sets:
        if "=" not in item:
            raise pg.ConfigError(f"--set expects KEY=VALUE; got '{item}'.")
        k, v = item.split("=", 1)
        overrides[k.strip()] = json.loads(v) if v.strip() not in ("True", "False") else v.strip() == "True"
    settings = FitSettings(config=config, overrides=overrides, iters=iters, minutes=minutes or None, rays=rays,
                           lr=lr, eval_every=eval_every, checkpoint_every=eval_every, seed=seed)
    data = load_dataset(dataset)
    summary = fit(data, out_dir, settings, resume=resume, log=lambda row: click.echo(json.dumps(row)))
    click.echo(json.dumps({"final": summary["final"], "steps": summary["steps"],
                           "train_seconds": summary["train_seconds"], "checkpoint": summary["checkpoint"]}))
