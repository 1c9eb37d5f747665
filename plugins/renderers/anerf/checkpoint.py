"""Reading and writing A-NeRF checkpoints: the official ``.tar`` layout (reference/anerf_checkpoint_layout.txt).

An official checkpoint stores the coarse/fine network state dicts and the two cutoff encoders' state under
``network_fn_state_dict``, ``network_fine_state_dict``, ``embed_state_dict``, ``embeddirs_state_dict`` (and an
empty ``embedbones_state_dict``). The network shapes determine the configuration (depth, width, skip, encodings,
frame codes); sample counts are not stored, so they come from an ``args.txt`` beside the file when present, else
from the released configs (64 + 16, or 96 + 48 for the single-network model). posegen's own checkpoints use the same
keys plus ``posegen_anerf`` (the config and the subject's rest pose), so one loader reads both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

import posegen_core as pg
from posegen_core.io import atomic_torch_save, load_checkpoint_file, load_state_dict_strict

from .config import NUM_JOINTS, ANeRFConfig
from .raycaster import RayCaster

SOURCE = ("Official A-NeRF checkpoints (surreal.tar, james_ft.tar, archer_ft.tar, ...) are linked from "
          "https://github.com/LemonATsu/A-NeRF; `posegen anerf fit` writes posegen ones.")
NETWORK_KEYS = ("network_fn_state_dict", "network_fine_state_dict")


def _shape(state: dict[str, Any], sub: str, key: str) -> tuple[int, ...]:
    if key not in state:
        raise pg.CheckpointError(f"checkpoint {sub} has no '{key}'; an A-NeRF network needs it. {SOURCE}")
    return tuple(state[key].shape)


def infer_config(data: dict[str, Any], args: dict[str, str] | None = None) -> ANeRFConfig:
    """Recover the ``ANeRFConfig`` from an official checkpoint's network shapes (and ``args.txt`` values)."""
    net = data["network_fn_state_dict"]
    sub = "network_fn_state_dict"
    layers = sorted({int(k.split(".")[1]) for k in net if k.startswith("pts_linears.") and k.endswith(".weight")})
    if not layers:
        raise pg.CheckpointError(f"{sub} has no pts_linears.*.weight: not an A-NeRF network. {SOURCE}")
    width, pts_dim = _shape(net, sub, "pts_linears.0.weight")
    blocks, rem = divmod(pts_dim - NUM_JOINTS * 3, NUM_JOINTS)
    if rem or blocks < 1 or blocks % 2 == 0:
        raise pg.CheckpointError(
            f"{sub}.pts_linears.0.weight has shape {(width, pts_dim)}: its input size {pts_dim} is not "
            f"72 + 24 x (1 + 2 x multires) as A-NeRF's relative-distance + relative-direction encoding requires."
        )
    skip = next((i - 1 for i in layers[1:] if _shape(net, sub, f"pts_linears.{i}.weight")[1] == width + pts_dim), 0)
    codes = net.get("framecodes.codes.weight")
    n_codes, code_dim = (tuple(codes.shape) if codes is not None else (0, 16))
    view_width, view_in = _shape(net, sub, "views_linears.0.weight")
    view_dim = view_in - width - (code_dim if n_codes else 0)
    vblocks, vrem = divmod(view_dim, NUM_JOINTS * 3)
    if vrem or vblocks < 1 or vblocks % 2 == 0:
        raise pg.CheckpointError(
            f"{sub}.views_linears.0.weight has shape {(view_width, view_in)}: {view_in} - {width} (feature)"
            f"{f' - {code_dim} (frame code)' if n_codes else ''} = {view_dim} is not 72 x (1 + 2 x multires_views)."
        )
    fine = data.get("network_fine_state_dict")
    args = args or {}
    # One network when args.txt says so, when the file stores the same tensors twice (how the official code saves a
    # single_net model), or without a direction encoding (multires_views 0: only surreal_single.txt, a single_net
    # config, has none among the released configs).
    if "single_net" in args:
        single = args["single_net"].strip().lower() in ("true", "1")
    else:
        single = (not fine or vblocks == 1
                  or all(torch.equal(fine[k], net[k]) for k in net if k in fine and fine[k].shape == net[k].shape))
    n_samples = int(args.get("N_samples", 96 if single else 64))
    n_importance = int(args.get("N_importance", 48 if single else 16))
    embed = data.get("embed_state_dict") or {}
    return ANeRFConfig(
        depth=len(layers), width=width, skip=skip, view_width=view_width, multires=(blocks - 1) // 2,
        multires_views=(vblocks - 1) // 2, n_samples=n_samples, n_importance=n_importance, single_net=single,
        n_framecodes=n_codes, framecode_dim=code_dim,
        tau=float(embed["tau"]) if "tau" in embed else 20.0,
    )


def read_args_txt(path: Path) -> dict[str, str]:
    """The official ``args.txt`` (``key = value`` lines) beside a checkpoint, if any."""
    out: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text(errors="replace").splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                out[k.strip()] = v.strip()
    return out


def load_raycaster(
    path: str | Path, config: ANeRFConfig | None = None, overrides: dict[str, Any] | None = None
) -> tuple[RayCaster, dict[str, Any]]:
    """Build a RayCaster from a checkpoint; every mismatch is reported by its key (``<sub-dict>.<param>``).

    ``config`` (optional) is the configuration the file must match; otherwise it is inferred from the shapes.
    ``overrides`` changes sampler settings (``n_samples``, ``n_importance``) after inference.
    Returns the caster and posegen extras (rest pose, units, background) when the file has them.
    """
    path = Path(path)
    data = load_checkpoint_file(path, what="A-NeRF checkpoint", source=SOURCE)
    if not isinstance(data, dict) or "network_fn_state_dict" not in data:
        keys = sorted(data)[:10] if isinstance(data, dict) else type(data).__name__
        raise pg.CheckpointError(
            f"{path} is not an A-NeRF checkpoint: expected the keys network_fn_state_dict, network_fine_state_dict, "
            f"embed_state_dict, embeddirs_state_dict; found {keys}. {SOURCE}"
        )
    extra = data.get("posegen_anerf") or {}
    if config is None:
        config = (ANeRFConfig.from_dict(extra["config"]) if "config" in extra
                  else infer_config(data, read_args_txt(path.parent / "args.txt")))
    config = config.with_options(**(overrides or {}))
    caster = RayCaster(config)
    # One network (single_net): the official RayCaster loads both keys into the same module, so the one loaded
    # second, network_fine_state_dict, wins (real checkpoints hold the same tensors under both keys).
    fn_key = ("network_fine_state_dict" if config.single_net and data.get("network_fine_state_dict") is not None
              else "network_fn_state_dict")
    parts = {fn_key: caster.network_fn, "embed_state_dict": caster.embed, "embeddirs_state_dict": caster.embeddirs}
    if caster.network_fine is not None:
        if "network_fine_state_dict" not in data:
            raise pg.CheckpointError(f"{path} has no network_fine_state_dict but the configuration has a separate "
                                     "fine network; pass config=... with single_net=True for a one-network model.")
        parts["network_fine_state_dict"] = caster.network_fine
    problems = []
    for key, module in parts.items():
        state = data.get(key)
        if state is None:
            problems.append(f"{key} is missing")
            continue
        try:
            load_state_dict_strict(module, state, f"{path} [{key}]")
        except pg.CheckpointError as e:
            problems.append(str(e).replace(f"{path} [{key}] does not match {type(module).__name__}: ", f"{key}: "))
    if problems:
        raise pg.CheckpointError(
            f"{path} does not match the A-NeRF configuration {config.as_dict()}: " + " | ".join(problems)
            + ". Check that the checkpoint and config belong together (keys are named <sub-dict>.<parameter>)."
        )
    out: dict[str, Any] = {"global_step": int(data.get("global_step") or 0)}
    if "rest_pose" in extra:
        out["rest_pose"] = torch.as_tensor(extra["rest_pose"], dtype=torch.float32)
    for k in ("units_per_metre", "background"):
        if k in extra:
            out[k] = extra[k] if k != "background" else tuple(float(v) for v in extra[k])
    if data.get("posegen_anerf") is not None:  # posegen checkpoints from before the option used posegen's rays
        out["convention"] = str(extra.get("convention", "posegen"))
    return caster, out


def caster_state(caster: RayCaster) -> dict[str, Any]:
    """The official top-level entries for ``caster`` (a single network is stored as both coarse and fine)."""
    return {
        "network_fn_state_dict": caster.network_fn.state_dict(),
        "network_fine_state_dict": caster.fine.state_dict(),
        "embed_state_dict": caster.embed.state_dict(),
        "embedbones_state_dict": {},
        "embeddirs_state_dict": caster.embeddirs.state_dict(),
    }


def save_checkpoint(
    caster: RayCaster, path: str | Path, *, rest_pose: torch.Tensor | None = None, units_per_metre: float | None = None,
    background: tuple[float, float, float] | None = None, global_step: int = 0,
    optimizer_state_dict: dict[str, Any] | None = None, **extra: Any,
) -> None:
    """Atomically write the official layout plus posegen's ``posegen_anerf`` entry (tensors, numbers, strings only,
    so it loads with ``weights_only=True``)."""
    meta: dict[str, Any] = {"config": caster.config.as_dict(), **extra}
    if rest_pose is not None:
        meta["rest_pose"] = rest_pose.detach().cpu()
    if units_per_metre is not None:
        meta["units_per_metre"] = float(units_per_metre)
    if background is not None:
        meta["background"] = list(background)
    atomic_torch_save({
        "global_step": int(global_step), "optimizer_state_dict": optimizer_state_dict,
        "poseopt_layer_state_dict": None, "pose_optimizer_state_dict": None, "poseopt_anchors": None,
        **caster_state(caster), "posegen_anerf": meta,
    }, path)
