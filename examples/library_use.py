"""posegen as a library: configure a run in Python, run it, read the results, reuse the fine-tuned estimator.

    python examples/library_use.py            # a small run on the embedded CPU default (a few minutes)
"""

from __future__ import annotations

import torch

import posegen_core as pg


def main() -> None:
    # Everything `posegen run` does is a RunConfig field; plugins are chosen by name (or passed as built objects).
    cfg = pg.RunConfig(
        renderer="primitives", estimator="simple", prior="normal", scenario="ood", feedback="render",
        iters=100, samples=500, finetune_steps=150, eval_samples=256, out="runs/library-example",
        seed=0,
        pretrain=pg.PretrainConfig(steps=600),
    )
    result = pg.run(cfg, overwrite=True)
    for split, row in result.summary["table"].items():
        print(f"{split:>14}: MPJPE {row['mpjpe_before']:.1f} -> {row['mpjpe_after']:.1f} mm")

    # The fine-tuned estimator loads through the public factory, like any plugin.
    est = pg.create_estimator("simple", checkpoint=result.summary["paths"]["estimator_final"]).eval()

    # Render a pose from a top view with the default renderer and ask the estimator for its joints.
    renderer = pg.create_renderer("primitives")
    poses = pg.create_pose_source("default").load()
    body = pg.SkeletonBody()(poses.global_orient[:1] * 0, poses.body_pose[:1])
    top = pg.camera.viewpoint_from_angles(torch.tensor([1.2]), torch.tensor([0.0]))
    joints, rotations = pg.to_camera_frame(body.joints, body.rotations, top, distance=4.0)
    image = renderer(joints, rotations, pg.Intrinsics.framing(64)).images
    pred = est(image).joints
    error = pg.metrics.mpjpe(pred, pg.root_relative(joints)).item() * 1000
    print(f"top view of one pose: MPJPE {error:.1f} mm")


if __name__ == "__main__":
    main()
