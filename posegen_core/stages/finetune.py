"""Stage 3: fine-tune the estimator on the generated set, mixed with source-domain renders against forgetting (the
pre-training objective; eq. 13's threshold ``d`` drops generated samples whose error says the render failed)."""

from __future__ import annotations

import math

import torch

from .. import distributed
from ..config import RunConfig
from ..interfaces import EstimatorOutput
from ..io import atomic_torch_save
from ..pretrain import supervised_loss
from .context import RunContext


def finetune_split(cfg: RunConfig) -> tuple[int, int]:
    """(generated, source-domain) images in each fine-tuning batch of ``finetune_batch``: at least one generated."""
    n_src = min(cfg.finetune_batch - 1, round(cfg.finetune_batch * cfg.source_mix))
    return cfg.finetune_batch - n_src, n_src


def finetune_loss(ctx: RunContext, images: torch.Tensor, joints: torch.Tensor, rotations: torch.Tensor, n_src: int,
                  gen: torch.Generator) -> torch.Tensor:
    """The pre-training objective (joints, eq. 13's threshold d, rotations) on generated samples, mixed with
    ``n_src`` freshly rendered source-domain ones, weighted by ``source_mix``."""
    cfg, P = ctx.cfg, ctx.state.P
    ctx.set_p_train()
    if not n_src:
        return supervised_loss(P, P(images), joints, rotations, threshold=cfg.d)
    src = ctx.source_batch(n_src, gen)
    out = P(torch.cat([images, src.images]))
    n = len(images)

    def part(sl: slice) -> EstimatorOutput:
        return EstimatorOutput(joints=out.joints[sl], rotations=None if out.rotations is None else out.rotations[sl])

    loss_gen = supervised_loss(P, part(slice(None, n)), joints, rotations, threshold=cfg.d)
    loss_src = supervised_loss(P, part(slice(n, None)), src.joints, src.rotations)
    return (1 - cfg.source_mix) * loss_gen + cfg.source_mix * loss_src


def finetune(ctx: RunContext, data: dict[str, torch.Tensor] | None) -> None:
    """Fine-tune P for ``finetune_steps`` (cosine learning rate), then save P and G; resumable mid-way."""
    cfg, st = ctx.cfg, ctx.state
    steps = cfg.finetune_steps if cfg.finetune in ("after", "both") and data is not None else 0
    if st.step == 0:  # a fresh stage (on resume past step 0, rng and optimiser come from the checkpoint)
        st.reseed("finetune", cfg.seed)
        st.opt_p = torch.optim.Adam(st.P.parameters(), lr=cfg.lr_p)
    n_gen, n_src = finetune_split(cfg)
    task = ctx.reporter.task("fine-tune estimator", steps, st.step)
    while st.step < steps:
        for group in st.opt_p.param_groups:  # cosine decay: a deterministic function of the step (resumable)
            group["lr"] = cfg.lr_p * 0.5 * (1.0 + math.cos(math.pi * st.step / steps))
        assert data is not None

        def stream_loss(gen: torch.Generator) -> torch.Tensor:
            """``finetune_batch`` images of one random stream (every stream draws from the whole set)."""
            idx = torch.randint(len(data["images"]), (n_gen,), generator=gen)
            images = data["images"][idx].to(ctx.device).float() / 255.0
            return finetune_loss(ctx, images, data["joints"][idx].to(ctx.device),
                                 data["rotations"][idx].to(ctx.device), n_src, gen)

        loss = estimator_step(ctx, [lambda g=g: stream_loss(g) for g in st.rngs])
        st.step += 1
        if st.step % cfg.log_every == 0 or st.step == steps:
            row = distributed.mean_over_ranks({"stage": "finetune", "step": st.step, "loss_p": loss.item()})
            ctx.metric(row)
            ctx.reporter.update(task, st.step, row)
        if st.step % cfg.checkpoint_every == 0 or st.step == steps:
            ctx.save_state()
    ctx.reporter.done(task)
    st.P.eval()
    st.stage, st.step = "evaluate", 0
    ckpt = ctx.run_dir / "checkpoints"
    if distributed.world().main:  # every rank holds the same weights; one writes them
        st.P.save_checkpoint(ckpt / "estimator_final.pt")
        atomic_torch_save({"G": st.G.state_dict(), "D": st.D.state_dict(), "config": cfg.to_dict()},
                          ckpt / "generator.pt")
    ctx.save_state()


def estimator_step(ctx: RunContext, stream_losses: list) -> torch.Tensor:
    """One optimiser step of the estimator on the mean of its per-stream losses (``stream_losses``: one callable per
    local stream, each a training-mode forward), gradients and BatchNorm statistics averaged over the processes;
    returns the loss. Both the fine-tuning stage and the GAN loop's in-loop updates take it."""
    st = ctx.state
    loss = distributed.mean(distributed.shards_from_same_buffers(st.P, stream_losses))
    ctx.check_finite({"loss_p": loss})
    st.opt_p.zero_grad(set_to_none=True)
    loss.backward()
    distributed.average_gradients(st.P)
    distributed.average_buffers(st.P)
    st.opt_p.step()
    return loss
