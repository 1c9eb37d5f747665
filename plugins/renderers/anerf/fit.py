"""Training an A-NeRF on a new subject (``posegen anerf fit``): photometric loss on rays inside the body's cylinder.

As in the official trainer: Adam, random rays drawn from the training images, stratified coarse samples, detached
importance samples, MSE on the fine and coarse renders composited on the dataset's background, density noise, the
cutoff sharpness ``tau`` annealed as ``min(20 * 10^(step / 250000), 2000)`` and an exponential learning-rate decay.
Checkpoints (official key layout + optimizer + generator state) are written atomically and ``resume`` continues.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

import posegen_core as pg
from posegen_core.io import atomic_write_json, atomic_write_text, load_checkpoint_file

from .config import preset
from .dataset import SubjectDataset
from .raycaster import RayBatch
from .renderer import ANeRFRenderer


@dataclass
class FitSettings:
    config: str = "small"
    overrides: dict[str, Any] = field(default_factory=dict)
    iters: int = 4000
    minutes: float | None = 10.0  # wall-clock budget for training (evaluation time excluded, reported separately)
    rays: int = 256
    fg_fraction: float = 0.5  # share of each batch drawn from the person's mask pixels
    lr: float = 3e-3
    lr_decay_steps: int = 20000  # lr * 0.1^(step / lr_decay_steps), the official form
    raw_noise_std: float = 0.0
    coarse_weight: float = 1.0
    eval_every: int = 250
    eval_images: int = 8  # per held-out split during training; the final evaluation uses all of them
    checkpoint_every: int = 250
    seed: int = 0


def psnr(mse: float) -> float:
    return float("inf") if mse <= 0 else -10.0 * math.log10(mse)


class RayPool:
    """Every ray of the training images that meets the subject's bounding cylinder, with its target colour."""

    def __init__(self, renderer: ANeRFRenderer, data: SubjectDataset, indices: list[int],
                 fg_fraction: float = 0.5) -> None:
        dirs, near, far, image, target, rot_t, offset, fg = [], [], [], [], [], [], [], []
        masks = data.masks.reshape(-1)
        flat = data.images.permute(0, 2, 3, 1).reshape(-1, 3)
        h, w = data.size
        with torch.no_grad():
            for k, i in enumerate(indices):
                rays, pix = renderer.skeleton_rays(data.joints[i:i + 1], data.rotations[i:i + 1], data.camera(i))
                dirs.append(rays.dirs)
                near.append(rays.near)
                far.append(rays.far)
                image.append(torch.full_like(rays.image, k))
                target.append(flat[i * h * w + pix])
                fg.append(masks[i * h * w + pix])
                rot_t.append(rays.rot_t)
                offset.append(rays.offset)
        self.dirs, self.near, self.far = torch.cat(dirs), torch.cat(near), torch.cat(far)
        self.image, self.target = torch.cat(image), torch.cat(target)
        self.rot_t, self.offset = torch.cat(rot_t), torch.cat(offset)
        self.frame = torch.full((len(indices),), -1, dtype=torch.long)
        self.fg = torch.cat(fg).nonzero().squeeze(-1)
        self.fg_fraction = fg_fraction

    def __len__(self) -> int:
        return int(self.dirs.shape[0])

    def sample(self, n: int, generator: torch.Generator) -> tuple[RayBatch, torch.Tensor]:
        """``n`` rays: ``fg_fraction`` of them through the person's mask, the rest anywhere in the boxes."""
        n_fg = int(round(n * self.fg_fraction)) if len(self.fg) else 0
        idx = torch.cat([torch.randint(len(self), (n - n_fg,), generator=generator),
                         self.fg[torch.randint(len(self.fg), (n_fg,), generator=generator)]])
        return RayBatch(self.dirs[idx], self.near[idx], self.far[idx], self.image[idx], self.rot_t, self.offset,
                        self.frame), self.target[idx]


def evaluate(renderer: ANeRFRenderer, data: SubjectDataset, indices: list[int]) -> dict[str, float]:
    """PSNR over whole images and over the person's mask pixels for the given images."""
    if not indices:
        return {}
    se, se_fg, n_fg = 0.0, 0.0, 0
    with torch.no_grad():
        for i in indices:
            img, _ = renderer.render_full(data.joints[i:i + 1], data.rotations[i:i + 1], data.camera(i))
            err = (img[0].clamp(0, 1) - data.images[i]) ** 2
            se += float(err.mean())
            m = data.masks[i]
            se_fg += float(err[:, m].sum())
            n_fg += int(m.sum()) * 3
    return {"psnr": psnr(se / len(indices)), "psnr_person": psnr(se_fg / max(n_fg, 1))}


def save_comparison(renderer: ANeRFRenderer, data: SubjectDataset, indices: list[int], path: Path) -> None:
    """A PNG grid: ground truth on top, the A-NeRF render below, one column per image."""
    import io

    from PIL import Image

    from posegen_core.io import atomic_write_bytes

    with torch.no_grad():
        cols = [torch.cat([data.images[i], renderer.render_full(data.joints[i:i + 1], data.rotations[i:i + 1],
                                                                 data.camera(i))[0][0].clamp(0, 1)], 1)
                for i in indices]
    grid = (torch.cat(cols, 2).permute(1, 2, 0) * 255).round().byte().numpy()
    img = Image.fromarray(grid)
    img = img.resize((img.width * 4, img.height * 4), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write_bytes(buf.getvalue(), path)


def fit(
    data: SubjectDataset, out_dir: str | Path, settings: FitSettings, resume: bool = False,
    log: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train on ``data``'s training split, evaluating held-out views and poses; returns the summary."""
    out = Path(out_dir)
    ckpt = out / "checkpoints" / "latest.tar"
    gen = torch.Generator().manual_seed(settings.seed)
    history: list[dict[str, Any]] = []
    step, train_seconds, wall_before = 0, 0.0, 0.0
    started = time.perf_counter()
    if resume and ckpt.is_file():
        renderer = ANeRFRenderer(checkpoint=ckpt)
        state = load_checkpoint_file(ckpt, what="A-NeRF fit checkpoint")
        step = int(state.get("global_step") or 0)
        meta = state.get("posegen_anerf") or {}
        train_seconds = float(meta.get("train_seconds", 0.0))
        wall_before = float(meta.get("wall_seconds", 0.0))
        if "rng_state" in meta:
            gen.set_state(meta["rng_state"])
        metrics = out / "metrics.jsonl"
        if metrics.is_file():
            history = [json.loads(l) for l in metrics.read_text().splitlines() if l.strip()]
            history = [h for h in history if h["step"] <= step]
    else:
        renderer = ANeRFRenderer(config=preset(settings.config, **settings.overrides), background=data.background,
                                 seed=settings.seed)
    renderer.background = data.background
    caster = renderer.caster
    opt = torch.optim.Adam(caster.parameters(), lr=settings.lr, betas=(0.9, 0.999))
    if resume and ckpt.is_file() and state.get("optimizer_state_dict"):
        opt.load_state_dict(state["optimizer_state_dict"])
    train_idx = data.indices("train")
    pool = RayPool(renderer, data, train_idx, settings.fg_fraction)
    held = {name: data.indices(name) for name in ("heldout_view", "heldout_pose")}
    pick = torch.Generator().manual_seed(settings.seed + 1)
    quick = {k: [v[int(j)] for j in torch.randperm(len(v), generator=pick)[: settings.eval_images]]
             for k, v in held.items()}
    quick["train"] = [train_idx[int(j)] for j in torch.randperm(len(train_idx), generator=pick)[: settings.eval_images]]
    bg = torch.tensor(data.background)

    def save() -> None:
        renderer.save(ckpt, global_step=step, optimizer_state_dict=opt.state_dict(), rng_state=gen.get_state(),
                      train_seconds=train_seconds, wall_seconds=wall_before + time.perf_counter() - started,
                      fit=asdict(settings))
        atomic_write_text("".join(json.dumps(h) + "\n" for h in history), out / "metrics.jsonl")

    def record(final: bool = False) -> dict[str, Any]:
        caster.eval()
        row: dict[str, Any] = {"step": step, "train_seconds": round(train_seconds, 1),
                               "wall_seconds": round(wall_before + time.perf_counter() - started, 1)}
        for name, idx in (held if final else quick).items():
            for k, v in evaluate(renderer, data, idx).items():
                row[f"{name}_{k}"] = round(v, 2)
        if not final:
            row.update({f"train_{k}": round(v, 2) for k, v in evaluate(renderer, data, quick["train"]).items()})
        caster.train()
        if log:
            log(row)
        return row

    caster.train()
    last_loss = float("nan")
    while step < settings.iters and (settings.minutes is None or train_seconds < settings.minutes * 60):
        t0 = time.perf_counter()
        tau = min(20.0 * 10 ** (step / 250000), 2000.0)
        caster.embed.tau.fill_(tau)
        caster.embeddirs.tau.fill_(tau)
        for g in opt.param_groups:
            g["lr"] = settings.lr * 0.1 ** (step / settings.lr_decay_steps)
        rays, target = pool.sample(settings.rays, gen)
        res = caster.render_rays(rays, perturb=True, raw_noise_std=settings.raw_noise_std, detach_samples=True,
                                 generator=gen)
        pred = res["rgb"] + (1.0 - res["acc"])[:, None] * bg
        loss = torch.mean((pred - target) ** 2)
        if "rgb0" in res:
            loss = loss + settings.coarse_weight * torch.mean((res["rgb0"] + (1.0 - res["acc0"])[:, None] * bg
                                                               - target) ** 2)
        if not torch.isfinite(loss):
            raise pg.TrainingError(f"A-NeRF fit diverged at step {step} (loss {float(loss)}); lower --lr.")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        train_seconds += time.perf_counter() - t0
        last_loss = float(loss.detach())
        if step % settings.eval_every == 0:
            row = record()
            row["loss"] = round(last_loss, 5)
            history.append(row)
        if step % settings.checkpoint_every == 0:
            save()
    final = record(final=True)
    final["loss"] = round(last_loss, 5)
    history.append({**final, "final": True})
    save()
    summary = {"steps": step, "train_seconds": round(train_seconds, 1),
               "wall_seconds_with_evaluation": round(wall_before + time.perf_counter() - started, 1),
               "train_images": len(train_idx),
               "rays_in_pool": len(pool), "config": caster.config.as_dict(), "final": final,
               "checkpoint": str(ckpt), "curve": [h for h in history if not h.get("final")]}
    atomic_write_json(summary, out / "summary.json")
    caster.eval()
    for name, idx in held.items():
        if idx:
            save_comparison(renderer, data, idx[:: max(1, len(idx) // 8)][:8], out / f"{name}.png")
    return summary
