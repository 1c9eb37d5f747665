"""Built-in loop strategies (``posegen_register_strategies``): feedback paths, hardness controls, dataset samplers.

- feedback paths (``RunConfig.feedback``): ``render`` (through the pixels; the paper), ``pose`` (the official code:
  no-grad render, gradients through forward kinematics only), ``view`` (through the pixels to G's viewpoints only:
  the poses answer to D alone), ``none``;
- hardness (``RunConfig.hardness``): ``paper`` (ood c - e / ind e, eq. 8, as configured by ``scenario``, ``c``,
  ``feedback_shape``), ``banded`` (PoseAug: the error relative to a source-like view, held inside a rising band),
  ``split`` (articulation and viewpoint bands apart, with their own weights); both take an optional camera prior;
- samplers (``RunConfig.sampler``): ``generator`` (G's samples), ``error_weighted`` (G's samples resampled by the
  estimator's error: a control), ``plausible`` (G's samples nearest to a real pose), ``filtered`` (AdaptPose: keep
  relative hardness inside a band, optionally mixed with unfiltered samples), ``target_like`` (the oracle: real poses
  from novel views).
"""

from __future__ import annotations

import posegen_core as pg

from .feedback import NoFeedback, PoseFeedback, RenderFeedback, ViewFeedback
from .hardness import BandedHardness, PaperHardness, SplitHardness
from .samplers import ErrorWeightedSampler, FilteredSampler, GeneratorSampler, PlausibleSampler, TargetLikeSampler

__all__ = ["BandedHardness", "ErrorWeightedSampler", "FilteredSampler", "GeneratorSampler", "NoFeedback",
           "PaperHardness", "PlausibleSampler", "PoseFeedback", "RenderFeedback", "SplitHardness", "TargetLikeSampler",
           "ViewFeedback"]


@pg.hookimpl
def posegen_register_strategies(register):
    register("render", RenderFeedback, description="feedback through the rendered pixels (the paper)")
    register("pose", PoseFeedback, description="feedback through forward kinematics only (the official code)")
    register("view", ViewFeedback, description="through the pixels to G's viewpoints only; poses answer to D alone")
    register("none", NoFeedback, description="no feedback (the paper's A1/A2)")
    register("paper", PaperHardness, description="L_fb = c - e (ood) or e (ind), eq. 8")
    register("banded", BandedHardness, description="PoseAug: error relative to a source view, held in a rising band")
    register("split", SplitHardness, description="articulation (PA) and viewpoint bands apart, own weights")
    register("generator", GeneratorSampler, description="fine-tune on G's samples")
    register("error_weighted", ErrorWeightedSampler, description="G's samples resampled by the estimator's error")
    register("filtered", FilteredSampler, description="AdaptPose: keep relative hardness inside a band (+ mix)")
    register("plausible", PlausibleSampler, description="G's samples nearest to a real pose (candidates x n drawn)")
    register("target_like", TargetLikeSampler, description="the oracle: real poses from novel views")
