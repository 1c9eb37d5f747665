"""The run report: plots a person would rather look at than read (matplotlib, Agg backend, PNGs written atomically).

- viewpoints.png: camera elevation/azimuth of the source, generated and evaluation data (the paper's Fig. 4);
- error_per_joint.png and error_per_view.png: before/after fine-tuning, on the held-out evaluation sets;
- samples.png: a grid of generated samples with their ground-truth skeletons drawn on top.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .camera import Intrinsics, viewpoint_angles
from .io import atomic_write_bytes
from .scene import source_viewpoints
from .skeleton import JOINT_NAMES

def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(buf.getvalue(), path)


def _angles_deg(views: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    e, a = viewpoint_angles(views)
    return np.degrees(e.numpy()), np.degrees(a.numpy())


def plot_viewpoints(groups: dict[str, torch.Tensor], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for (name, views), color in zip(groups.items(), ("tab:gray", "tab:red", "tab:blue", "tab:green")):
        e, a = _angles_deg(views)
        axes[0].scatter(a, e, s=4, alpha=0.4, label=f"{name} ({len(e)})", color=color)
        axes[1].hist(e, bins=36, range=(-90, 90), histtype="step", density=True, label=name, color=color, lw=1.5)
    axes[0].set(xlabel="azimuth (deg)", ylabel="elevation (deg)", xlim=(-180, 180), ylim=(-90, 90),
                title="camera viewpoints")
    axes[1].set(xlabel="elevation (deg)", ylabel="density", title="elevation distribution")
    axes[0].legend(markerscale=4, fontsize=8)
    axes[1].legend(fontsize=8)
    _save(fig, path)


def plot_error_per_joint(before: dict, after: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    splits = list(before)
    fig, axes = plt.subplots(len(splits), 1, figsize=(12, 3.2 * len(splits)), squeeze=False)
    x = np.arange(len(JOINT_NAMES))
    for ax, split in zip(axes[:, 0], splits):
        b = before[split]["_per_joint_m"].numpy() * 1000
        a = after[split]["_per_joint_m"].numpy() * 1000
        ax.bar(x - 0.2, b, 0.4, label="pre-trained", color="tab:gray")
        ax.bar(x + 0.2, a, 0.4, label="fine-tuned", color="tab:red")
        ax.set_xticks(x, JOINT_NAMES, rotation=60, ha="right", fontsize=8)
        ax.set(ylabel="error (mm)", title=f"error per joint: {split.replace('_', ' ')}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def plot_error_per_view(sets: dict, before: dict, after: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    views = torch.cat([sets[s].viewpoint for s in sets])
    e, _ = _angles_deg(views)
    b = torch.cat([before[s]["_per_sample_m"] for s in sets]).numpy() * 1000
    a = torch.cat([after[s]["_per_sample_m"] for s in sets]).numpy() * 1000
    edges = np.linspace(-90, 90, 13)
    centres = (edges[:-1] + edges[1:]) / 2
    which = np.clip(np.digitize(e, edges) - 1, 0, len(centres) - 1)

    def binned(v: np.ndarray) -> np.ndarray:
        return np.array([v[which == i].mean() if (which == i).any() else np.nan for i in range(len(centres))])

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(centres, binned(b), "o-", color="tab:gray", label="pre-trained")
    ax.plot(centres, binned(a), "o-", color="tab:red", label="fine-tuned")
    ax.set(xlabel="camera elevation (deg)", ylabel="MPJPE (mm)", title="error per viewpoint (held-out poses)")
    ax.legend()
    _save(fig, path)


def write_report(run_dir: Path, intrinsics: Intrinsics, seed: int, sets: dict, before: dict, after: dict) -> Path:
    """Write the report's PNGs under ``run_dir/report`` from the evaluation sets and the exported dataset."""
    out = run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    annotations = run_dir / "dataset" / "annotations.npz"
    dataset = np.load(annotations) if annotations.is_file() else None  # none when samples = 0
    groups = {"source (pre-training)": source_viewpoints(2000, gen)}
    if dataset is not None:
        groups["generated (PoseGen)"] = torch.from_numpy(dataset["viewpoint"])
    groups["evaluation: novel views"] = sets["novel_views"].viewpoint
    plot_viewpoints(groups, out / "viewpoints.png")
    plot_error_per_joint(before, after, out / "error_per_joint.png")
    plot_error_per_view(sets, before, after, out / "error_per_view.png")
    if dataset is not None:
        _sample_grid(run_dir, intrinsics, dataset, out / "samples.png")
    return out


def _sample_grid(run_dir: Path, intrinsics: Intrinsics, dataset: Any, path: Path, n: int = 16) -> None:
    from PIL import Image

    from .camera import project
    from .drawing import save_grid

    root = run_dir / "dataset"
    count = min(n, len(dataset["imgname"]))
    if count == 0 or not (root / str(dataset["imgname"][0])).is_file():
        return
    images = torch.stack([
        torch.from_numpy(np.array(Image.open(root / str(dataset["imgname"][i])).convert("RGB"))).permute(2, 0, 1)
        for i in range(count)
    ]).float() / 255.0
    joints = torch.from_numpy(dataset["joints_smpl24"][:count]) + torch.from_numpy(dataset["cam_t"][:count])[:, None]
    uv = project(joints, intrinsics)
    save_grid(images, path, joints_2d=uv, ncol=int(math.ceil(math.sqrt(count))), scale=2)
