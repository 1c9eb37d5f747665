"""``posegen run``: the PoseGen loop end to end (see posegen_core.loop)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ..config import RunConfig
from ..errors import ConfigError

def parse_set(values: tuple[str, ...], flag: str = "--set") -> dict[str, Any]:
    """``key=value`` pairs; values are JSON when they parse as JSON (numbers, booleans, lists, objects), else text.
    Dotted keys reach nested tables, e.g. ``pretrain.steps=500`` or ``pose_source_options.path=/data/cmu``."""
    out: dict[str, Any] = {}
    for item in values:
        if "=" not in item:
            raise ConfigError(f"{flag} expects KEY=VALUE (e.g. {flag} iters=100); got '{item}'.")
        key, raw = item.split("=", 1)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node = out
        *parents, leaf = key.strip().split(".")
        if not all(parents) or not leaf:
            raise ConfigError(f"{flag} {item!r}: the key must be a field name such as iters or pretrain.steps.")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{flag} {item!r}: {p} was already given a value, so it cannot also hold {key}.")
        node[leaf] = value
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def resolve_config(config_file: str | None, flags: dict[str, Any], sets: tuple[str, ...]) -> RunConfig:
    data = RunConfig().to_dict()
    if config_file:
        data = _merge(data, RunConfig.from_file(config_file).to_dict())
    data = _merge(data, {k: v for k, v in flags.items() if v is not None})  # each flag is named after its field
    data = _merge(data, parse_set(sets))
    return RunConfig.from_dict(data).validate()


@click.command()
@click.option("--renderer", help="Renderer plugin (default: primitives).")
@click.option("--renderer-checkpoint", type=click.Path(dir_okay=False), help="Checkpoint for the renderer (e.g. A-NeRF).")
@click.option("--random-renderer-weights", "renderer_random_weights", is_flag=True, default=None,
              help="Run a renderer that needs a trained checkpoint (A-NeRF) with random weights (tests, timing).")
@click.option("--estimator", help="Estimator plugin (default: simple).")
@click.option("--estimator-checkpoint", type=click.Path(dir_okay=False),
              help="Pre-trained estimator checkpoint; without one, `simple` is pre-trained (and cached).")
@click.option("--prior", help="Latent prior: normal, uniform, spherical.")
@click.option("--discriminator", help="Discriminator plugin (default: parts).")
@click.option("--pose-source", help="Real poses for D and the source domain (default: the embedded 'default').")
@click.option("--scenario", type=click.Choice(["ood", "ind"]), help="ood: seek failures (c - e); ind: seek successes (e).")
@click.option("--feedback", help="Feedback strategy: render (gradients through pixels; default), pose (official-code "
              "variant), view (through pixels to the viewpoints only), none; `posegen plugins` lists all.")
@click.option("--finetune", type=click.Choice(["after", "loop", "both", "none"]), help="When to fine-tune the estimator.")
@click.option("--iters", type=int, help="GAN iterations.")
@click.option("--samples", type=int, help="Size of the generated dataset.")
@click.option("--finetune-steps", type=int, help="Fine-tuning steps on the generated dataset.")
@click.option("--batch-size", type=int, help="Batch size of the GAN loop.")
@click.option("--image-size", type=int, help="Rendered image size in pixels.")
@click.option("--smpl-model", type=click.Path(), help="SMPL model file (else the SMPL-24 skeleton body is used).")
@click.option("--seed", type=int, help="Seed of every random draw.")
@click.option("--device", help="torch device: auto (default; cuda when a GPU is visible), cpu, cuda, cuda:1.")
@click.option("--out", type=click.Path(file_okay=False), help="Run folder (default runs/<time>_<renderer>-<estimator>).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML (or JSON) configuration file.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Any other configuration field (repeatable).")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False), help="Continue a stopped run from its folder.")
@click.option("--overwrite", is_flag=True, help="Replace an existing run folder.")
@click.option("--nproc-per-node", "nproc", type=click.IntRange(min=1), default=None,
              help="Start this many processes on this machine with torch's launcher (torchrun --standalone) and run "
                   "on all of them (docs/DISTRIBUTED.md).")
@click.option("--max-restarts", type=click.IntRange(min=0), default=0, show_default=True,
              help="With --nproc-per-node: restart the processes this many times when one dies; the run continues "
                   "from its last checkpoint.")
def run(config_file: str | None, sets: tuple[str, ...], resume_dir: str | None, overwrite: bool, nproc: int | None,
        max_restarts: int, **flags: Any) -> None:
    """Learn to generate poses and viewpoints the estimator fails on, build a dataset, fine-tune, evaluate."""
    from .. import distributed
    from ..loop import PoseGenRun

    if nproc is not None and not distributed.launched_by_torchrun():
        launch_local(nproc, max_restarts)
        return
    if resume_dir:
        if config_file or sets or any(v is not None for v in flags.values()):
            raise ConfigError("--resume continues a run with its saved config.json; pass no other options with it.")
        if not Path(resume_dir).is_dir():
            raise ConfigError(f"--resume: {resume_dir} does not exist.")
        runner = PoseGenRun.resume(resume_dir)
    else:
        cfg = resolve_config(config_file, flags, sets)
        restarted = restarted_run(cfg)
        runner = PoseGenRun.resume(restarted) if restarted else PoseGenRun(cfg, overwrite=overwrite)
    main = distributed.world().main
    try:
        result = runner.run()
    finally:
        distributed.shutdown()
    if main:
        click.echo(f"run folder: {result.run_dir}")


def restarted_run(cfg: RunConfig) -> Path | None:
    """The run folder to continue when torchrun restarted this process group after a process died
    (``--max-restarts``): the same command line then resumes the run it started, from its last checkpoint."""
    import os

    from ..run_folder import config_differences, is_run_folder, started_config

    if int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0) == 0 or not cfg.out:
        return None
    out = Path(cfg.out)
    if not (is_run_folder(out) and (out / "config.json").is_file()):
        return None  # the first attempt died before it wrote the folder: start afresh
    started = started_config(out)
    # an earlier run with another configuration (the first attempt died before replacing it): start afresh
    return out if started is not None and not config_differences(started, cfg.to_dict()) else None


def launch_local(nproc: int, max_restarts: int) -> None:
    """``posegen run --nproc-per-node N ...``: the same command line on N local processes, started by torch's own
    launcher (what ``torchrun --standalone --nproc-per-node N -m posegen run ...`` does)."""
    import sys

    from torch.distributed.run import main as torchrun

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    args = _without_launcher_options(sys.argv[1:])
    try:
        torchrun(["--standalone", f"--nproc-per-node={nproc}", f"--max-restarts={max_restarts}", "-m", "posegen",
                  *args])
    except ChildFailedError as e:  # the processes printed their own errors above
        failures = "; ".join(f"rank {rank} exit code {f.exitcode}" for rank, f in e.failures.items())
        raise click.ClickException(f"the distributed run failed ({failures}); see the processes' errors above. A "
                                   "stopped run continues with `posegen run --resume RUN_FOLDER --nproc-per-node N`.")


def _without_launcher_options(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in ("--nproc-per-node", "--max-restarts"):
            skip = True
            continue
        if a.startswith(("--nproc-per-node=", "--max-restarts=")):
            continue
        out.append(a)
    return out
