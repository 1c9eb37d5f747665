"""Running one posegen run on several processes (``torchrun``): who this process is, its random streams, and the few
collective operations the stages need. Everything here is a no-op at world size 1, so the stages call it
unconditionally and a plain ``posegen run`` behaves exactly as without it.

The model of a distributed run (docs/DISTRIBUTED.md):

- Every process (rank) holds a full copy of G, D and the estimator P. Each rank draws and renders its own share of the
  batch; gradients are averaged across ranks before every optimiser step (what DistributedDataParallel does), so the
  copies stay identical.
- Random draws come from *streams*: stream 0 is the single-process run's own generator (``stage_seed``); stream
  ``s > 0`` is derived from (stage seed, s). A run has ``streams`` streams (default: its world size); rank ``r`` owns a
  contiguous block of them, draws ``batch_size`` samples from each, and every loss is the mean of per-stream losses.
  A run therefore gives the same result at any world size that divides ``streams`` (one process with two streams
  equals two processes with one each), and it can be resumed at any such world size.
- Rank 0 alone writes the run folder's files (config, manifest, metrics, checkpoints, report); the dataset export's
  shards are written by every rank, each its own.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from .errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place in the run: ``rank`` of ``size`` processes, its GPU index on the node (``local_rank``)
    and the torch.distributed backend (None when running alone)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def main(self) -> bool:
        """Whether this process writes the run folder's files (rank 0)."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1


_world = World()


def world() -> World:
    """The current world (rank 0 of 1 unless ``init_from_env`` joined a torchrun group)."""
    return _world


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def init_from_env(device: torch.device | str = "cpu") -> World:
    """Join the process group torchrun describes in the environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT):
    gloo for CPU runs, NCCL for CUDA ones. Without those variables (or with WORLD_SIZE=1) nothing happens."""
    global _world
    if not launched_by_torchrun():
        return _world
    import torch.distributed as dist

    device = torch.device(device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK {local_rank} but this node has {torch.cuda.device_count()} visible GPU(s); "
                              "start at most one process per GPU (--nproc-per-node).")
        torch.cuda.set_device(local_rank)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        # the store that torchrun's agent keeps across restarts (--max-restarts) still holds the dead attempt's
        # addresses: each attempt keeps its keys apart
        store, rank, size = next(dist.rendezvous("env://"))
        attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
        dist.init_process_group(backend, store=dist.PrefixStore(f"posegen/attempt-{attempt}/", store), rank=rank,
                                world_size=size)
    _world = World(dist.get_rank(), dist.get_world_size(), local_rank, dist.get_backend())
    return _world


def shutdown() -> None:
    """Leave the process group (end of a distributed command)."""
    global _world
    if _world.active:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
    _world = World()


def local_device(device: torch.device) -> torch.device:
    """The device of this rank: a CUDA run uses the GPU of its LOCAL_RANK (one process per GPU)."""
    if _world.active and device.type == "cuda":
        return torch.device("cuda", _world.local_rank)
    return device


# ------------------------------------------------------------------------------------------------ streams
def stream_generator(stage_seed: int, stream: int) -> torch.Generator:
    """Random stream ``stream`` of a stage: stream 0 is seeded with the stage seed itself (the single-process run's
    generator, unchanged); the others from (stage seed, stream) through numpy's SeedSequence."""
    if stream == 0:
        return torch.Generator().manual_seed(stage_seed)
    state = np.random.SeedSequence([int(stage_seed) & 0xFFFFFFFFFFFF, 0x5EED, int(stream)]).generate_state(1, np.uint64)
    return torch.Generator().manual_seed(int(state[0]) & 0x7FFFFFFFFFFFFFFF)


def check_streams(streams: int, size: int | None = None) -> None:
    """A run's streams are shared out in equal blocks: the world size must divide their number."""
    size = _world.size if size is None else size
    if streams < 1 or streams % size:
        raise ConfigError(
            f"the run has {streams} random stream(s) but {size} processes; the world size must divide the number of "
            f"streams (set `streams` to a multiple of {size}, or start {', '.join(map(str, _divisors(streams)))} "
            "processes).")


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, max(n, 1) + 1) if n % d == 0] or [1]


def local_streams(streams: int) -> range:
    """The streams this rank owns: a contiguous block, so concatenating the ranks' samples gives the stream order."""
    check_streams(streams)
    per = streams // _world.size
    return range(_world.rank * per, (_world.rank + 1) * per)


def stream_generators(stage_seed: int, streams: int) -> list[torch.Generator]:
    return [stream_generator(stage_seed, s) for s in local_streams(streams)]


# ------------------------------------------------------------------------------------------------ collectives
def barrier() -> None:
    if _world.active:
        import torch.distributed as dist

        dist.barrier()


def average_gradients(module: nn.Module) -> None:
    """Average the gradients of ``module`` over the ranks (one all-reduce of one flat buffer), as
    DistributedDataParallel does; parameters without a gradient (not in this loss) are left alone on every rank."""
    if not _world.active:
        return
    import torch.distributed as dist

    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= _world.size
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def average_buffers(module: nn.Module) -> None:
    """Average floating-point buffers (BatchNorm running statistics) over the ranks, so every copy stays the same;
    each rank normalised its own share of the batch (no SyncBatchNorm), as ``shards_from_same_buffers`` does for the
    streams of one process."""
    if not _world.active:
        return
    import torch.distributed as dist

    slots = [(m._buffers, name) for m in module.modules() for name, b in m._buffers.items()
             if b is not None and b.is_floating_point()]
    if not slots:
        return
    flat = torch.cat([d[name].detach().reshape(-1) for d, name in slots])
    dist.all_reduce(flat)
    flat /= _world.size
    offset = 0
    for d, name in slots:  # replaced, not written in place: this step's graph may still hold the old ones
        old = d[name]
        d[name] = flat[offset : offset + old.numel()].view_as(old).clone()
        offset += old.numel()


def shards_from_same_buffers(module: nn.Module, calls: Sequence[Callable[[], T]]) -> list[T]:
    """Run ``calls`` (one per local stream, each a training-mode forward) each from the same buffers and leave the
    average of the buffers they produced: the BatchNorm running statistics of several streams in one process then
    equal those of the same streams on several ranks (``average_buffers``)."""
    if len(calls) == 1:
        return [calls[0]()]
    # buffers are replaced, never written in place: a forward's graph may still hold the ones it read
    slots = [(m._buffers, name) for m in module.modules() for name, b in m._buffers.items() if b is not None]
    start = [d[name].detach().clone() for d, name in slots]
    outs, ends = [], []
    for call in calls:
        for (d, name), s in zip(slots, start):
            d[name] = s.clone()
        outs.append(call())
        ends.append([d[name].detach() for d, name in slots])
    for i, (d, name) in enumerate(slots):
        d[name] = torch.stack([e[i] for e in ends]).mean(0) if start[i].is_floating_point() else ends[0][i].clone()
    return outs


def mean(values: Sequence[torch.Tensor]) -> torch.Tensor:
    """The mean of per-stream losses (the single stream's own loss, untouched, when there is one)."""
    return values[0] if len(values) == 1 else torch.stack(list(values)).mean()


def mean_over_ranks(row: dict[str, Any]) -> dict[str, Any]:
    """The numbers of a log row averaged over the ranks (each rank's are means over its equal share)."""
    if not _world.active:
        return row
    import torch.distributed as dist

    keys = [k for k, v in row.items() if isinstance(v, float)]
    if not keys:
        return row
    t = torch.tensor([row[k] for k in keys], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    return {**row, **{k: float(v) / _world.size for k, v in zip(keys, t)}}


def _comm_device() -> torch.device:
    """Where collectives run: the process's GPU under NCCL, else the CPU (gloo)."""
    return torch.device("cuda", _world.local_rank) if _world.backend == "nccl" else torch.device("cpu")


def all_gather_rows(local: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's rows (in rank order); ranks may hold different numbers of rows."""
    if not _world.active:
        return local
    import torch.distributed as dist

    dev = _comm_device()
    x = local.detach().to(dev).contiguous()
    counts = torch.zeros(_world.size, dtype=torch.long, device=dev)
    counts[_world.rank] = len(x)
    dist.all_reduce(counts)
    most = int(counts.max())
    padded = torch.zeros((most, *x.shape[1:]), dtype=x.dtype, device=dev)
    padded[: len(x)] = x
    parts = [torch.empty_like(padded) for _ in range(_world.size)]
    dist.all_gather(parts, padded)
    return torch.cat([p[: int(c)] for p, c in zip(parts, counts)]).to(local.device)


def all_gather_dicts(local: dict[str, torch.Tensor], keys: Sequence[str]) -> dict[str, torch.Tensor]:
    """``all_gather_rows`` for each of ``keys`` of a dict of row-aligned tensors."""
    return {k: all_gather_rows(local[k]) for k in keys}


def on_main_then_share(local: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Apply ``fn`` on rank 0 to the rows of every rank (state only rank 0 keeps, such as D's history pool, drawn
    from stream 0) and hand each rank its own rows of the result. Ranks hold equal numbers of rows."""
    if not _world.active:
        return fn(local)
    import torch.distributed as dist

    everything = all_gather_rows(local)
    dev = _comm_device()
    out = fn(everything).to(dev).contiguous() if _world.main else torch.empty_like(everything, device=dev)
    dist.broadcast(out, 0)
    n = len(local)
    return out[_world.rank * n : (_world.rank + 1) * n].to(local.device)


def from_main(flag: bool) -> bool:
    """Rank 0's answer to a yes/no question every rank must agree on (e.g. "is the cache there?")."""
    if not _world.active:
        return flag
    import torch.distributed as dist

    t = torch.tensor([int(flag)], device=_comm_device())
    dist.broadcast(t, 0)
    return bool(t.item())


def gather_generator_states(gens: Sequence[torch.Generator]) -> list[torch.Tensor]:
    """The states of every stream of the run, in stream order (each rank contributes its own block)."""
    local = torch.stack([g.get_state() for g in gens])
    return [row.clone() for row in all_gather_rows(local)]  # each its own storage: set_state reads from its start


def broadcast_parameters(module: nn.Module) -> None:
    """Make every rank start from rank 0's weights and buffers (what DistributedDataParallel does at construction)."""
    if not _world.active:
        return
    import torch.distributed as dist

    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            dev = _comm_device()
            x = t.detach().to(dev).contiguous()
            dist.broadcast(x, 0)
            t.copy_(x.to(t.device))


def shares(n: int, parts: int) -> list[int]:
    """``n`` split into ``parts`` nearly equal contiguous counts (the first ones one larger)."""
    base, extra = divmod(n, parts)
    return [base + (i < extra) for i in range(parts)]
