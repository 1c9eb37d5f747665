"""Forward and forward+backward milliseconds per image of SPIN and HybrIK at their native input sizes.

Usage: python benchmarks/estimators.py [--models spin,hybrik-res34,hybrik-hrnet48] [--batch 2] [--repeats 3]
                                       [--device cpu|cuda] [--threads N] [--input-size N]

Each model is built with random weights (the cost does not depend on the values), warmed up once, then timed over
``--repeats`` batches: ``forward`` in eval mode under no_grad (what the feedback loop's frozen estimator costs, IK and
scale refinement included), ``forward_backward`` in train mode with the fine-tuning loss (eq. 13) and backward.
Images are 256x256 in [0, 1]; each model crops/resizes to its own input. Prints a table, then one JSON object as its
last line.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings

import torch

import posegen_core as pg

MODELS = {
    "spin": ("spin", {}),
    "hybrik-res34": ("hybrik", {"backbone": "resnet34"}),
    "hybrik-hrnet48": ("hybrik", {"backbone": "hrnet48"}),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_model(label: str, batch: int, repeats: int, device: torch.device, input_size: int | None) -> dict:
    name, options = MODELS[label]
    if input_size:
        options = {**options, "input_size": input_size}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = pg.create_estimator(name, **options).to(device)
    g = torch.Generator().manual_seed(0)
    images = torch.rand(batch, 3, 256, 256, generator=g).to(device)
    target = pg.camera.root_relative(torch.randn(batch, 24, 3, generator=g) * 0.3).to(device)

    def forward() -> None:
        with torch.no_grad():
            est(images)

    def forward_backward() -> None:
        est.zero_grad(set_to_none=True)
        est.joint_loss(est(images), target, threshold=1.0).backward()

    out = {"model": label, "input_size": est.input_size, "batch": batch,
           "params_m": round(sum(p.numel() for p in est.parameters()) / 1e6, 2)}
    for key, mode, fn in (("forward_ms_per_image", False, forward), ("forward_backward_ms_per_image", True, forward_backward)):
        est.train(mode)
        fn()  # warm-up (allocations, kernel selection)
        _sync(device)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times.append(time.perf_counter() - t0)
        out[key] = round(1000.0 * min(times) / batch, 1)  # min over repeats: least disturbed by other processes
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {', '.join(MODELS)}")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--input-size", type=int, default=None, help="override the native input size (smoke runs)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    labels = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in labels if m not in MODELS]
    if unknown:
        raise SystemExit(f"unknown model(s) {unknown}; choose from {', '.join(MODELS)}")
    rows = [time_model(m, args.batch, args.repeats, device, args.input_size) for m in labels]
    print(f"{'model':<16} {'input':>5} {'params (M)':>10} {'forward ms/img':>15} {'fwd+bwd ms/img':>15}")
    for r in rows:
        print(f"{r['model']:<16} {r['input_size']:>5} {r['params_m']:>10} {r['forward_ms_per_image']:>15} "
              f"{r['forward_backward_ms_per_image']:>15}")
    result = {
        "benchmark": "estimators", "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(), "batch": args.batch, "repeats": args.repeats, "torch": torch.__version__,
        "results": rows,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
