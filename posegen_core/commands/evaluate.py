"""``posegen eval``: an estimator on a SPIN evaluation file, with a table of MPJPE / PA-MPJPE / PCK / AUC and JSON."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(name="eval")
@click.option("--estimator", "estimator_name", required=True, help="Registered estimator name (see `posegen plugins`).")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Estimator checkpoint (posegen's or the model's official file). Without it the weights are random.")
@click.option("--dataset", "dataset_spec", required=True, metavar="KIND:FILE",
              help="Evaluation file and its protocol: 3dpw, h36m-p1, h36m-p2, mpi-inf-3dhp or posegen, e.g. "
                   "3dpw:data/dataset_extras/3dpw_test.npz.")
@click.option("--images", "images_root", required=True, type=click.Path(path_type=Path),
              help="Folder that the npz's imgname paths are relative to.")
@click.option("--smpl-model", type=click.Path(exists=True, path_type=Path), default=None,
              help="SMPL model file or folder (SMPL_{NEUTRAL,MALE,FEMALE}.pkl): joints from the mesh, as published.")
@click.option("--regressor", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="J_regressor_h36m.npy (17 x 6890); needs --smpl-model.")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1))
@click.option("--limit", default=None, type=click.IntRange(min=1), help="Evaluate only the first N samples.")
@click.option("--workers", default=4, show_default=True, type=click.IntRange(min=1),
              help="Threads that decode and crop images.")
@click.option("--device", default="auto", show_default=True, help="torch device; auto picks cuda when available.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the results as JSON here (atomically).")
def evaluate(
    estimator_name: str,
    checkpoint: Path | None,
    dataset_spec: str,
    images_root: Path,
    smpl_model: Path | None,
    regressor: Path | None,
    batch_size: int,
    limit: int | None,
    workers: int,
    device: str,
    out_path: Path | None,
) -> None:
    """Evaluate an estimator on 3DPW / Human3.6M / MPI-INF-3DHP (SPIN's npz files) or a posegen dataset."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    import posegen_core as pg
    from posegen_core import evaluation, spin_data
    from posegen_core.config import resolve_device
    from posegen_core.io import atomic_write_json

    kind, npz = spin_data.parse_dataset_spec(dataset_spec)
    annotations = spin_data.load_evaluation_set(kind, npz)
    n = len(annotations) if limit is None else min(limit, len(annotations))
    spin_data.check_images_root(images_root, annotations.imgname[:n])
    device = resolve_device(device)
    est = pg.create_estimator(estimator_name, checkpoint=checkpoint)
    console = Console(stderr=True)
    with Progress(TextColumn("[bold]eval[/bold] {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=console, transient=True) as progress:
        task = progress.add_task(kind.name, total=n)
        result = evaluation.evaluate(
            est, kind, annotations, images_root, batch_size=batch_size, smpl_model=smpl_model, regressor=regressor,
            limit=limit, device=device, workers=workers,
            on_batch=lambda done, total: progress.update(task, completed=done),
        )
    s = result.summary
    out = Console()
    out.print(f"[bold]{estimator_name}[/bold] on {kind.name}: {s['samples']} samples, {s['joints']} joints")
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("MPJPE (mm)", f"{s['mpjpe_mm']:.1f}")
    table.add_row("PA-MPJPE (mm)", f"{s['pa_mpjpe_mm']:.1f}")
    table.add_row("PCK@150mm (%)", f"{s['pck150_percent']:.1f}")
    table.add_row("AUC 0-150mm (%)", f"{s['auc_percent']:.1f}")
    out.print(table)
    for note in result.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    if out_path is not None:
        record = {
            "estimator": estimator_name, "checkpoint": None if checkpoint is None else str(checkpoint),
            "file": str(npz), "images": str(images_root), "smpl_model": None if smpl_model is None else str(smpl_model),
            "regressor": None if regressor is None else str(regressor), **result.as_dict(),
        }
        atomic_write_json(record, out_path)
        console.print(f"wrote {out_path}")
