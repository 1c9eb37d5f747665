"""Process bodies for tests/test_distributed.py: each joins a gloo group of ``world`` CPU processes (the environment
torchrun would set) and runs, resumes or crashes a posegen run."""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path
from typing import Any

import torch.multiprocessing as mp

from posegen_core import hookimpl


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CrashAt:
    """A plugin whose process dies (as if killed) after GAN step ``step`` on rank ``rank``."""

    def __init__(self, step: int, rank: int) -> None:
        self.step, self.rank = step, rank

    @hookimpl
    def posegen_step_end(self, step: int, metrics: dict[str, Any]) -> None:
        from posegen_core import distributed

        if step == self.step and distributed.world().rank == self.rank:
            os._exit(17)


def _body(rank: int, world: int, port: int, mode: str, cfg: dict[str, Any], run_dir: str, cache: str,
          crash_step: int) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), POSEGEN_CACHE=cache, OMP_NUM_THREADS="1")
    import torch

    torch.set_num_threads(1)
    import posegen_core as pg
    from posegen_core import distributed
    from posegen_core.plugins import get_registry

    if mode == "crash":
        get_registry().manager.register(CrashAt(crash_step, world - 1), name="crash-at")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if mode == "resume":
                pg.PoseGenRun.resume(run_dir).run()
            elif mode == "export":  # cfg: export_run's keyword arguments
                from posegen_core.commands.export import export_run

                export_run(run_dir, **cfg)
            else:
                pg.run(pg.RunConfig.from_dict(cfg), run_dir)
        finally:
            distributed.shutdown()


def run_processes(world: int, mode: str, cfg: dict[str, Any], run_dir: Path, cache: Path, crash_step: int = 0) -> None:
    """Run ``world`` processes (gloo, CPU) to the end; ProcessExitedException when one dies (``mode='crash'``)."""
    args = (world, free_port(), mode, cfg, str(run_dir), str(cache), crash_step)
    if world == 1 and mode != "crash":  # one process: in this one, as a user would
        os.environ.pop("WORLD_SIZE", None)
        import posegen_core as pg

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if mode == "resume":
                pg.PoseGenRun.resume(run_dir).run()
            elif mode == "export":
                from posegen_core.commands.export import export_run

                export_run(run_dir, **cfg)
            else:
                pg.run(pg.RunConfig.from_dict(cfg), run_dir)
        return
    mp.start_processes(_body, args=args, nprocs=world, join=True, start_method="spawn")
