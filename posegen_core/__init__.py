"""posegen's core: contracts, kinematics, the plugin system, the generation loop.

Public API (import as ``import posegen_core as pg``)::

    pg.create_renderer / create_estimator / create_prior / create_discriminator / create_pose_source
    pg.Renderer, pg.Estimator, pg.EstimatorOutput, pg.Prior, pg.Discriminator, pg.PoseSource, pg.PoseSet
    pg.hookimpl  (for plugins)
"""

from __future__ import annotations

from . import camera, generator, io, kinematics, losses, metrics, rotations, skeleton, spin_data, validation
from .body_models import BodyOutput, SkeletonBody, SMPLBody, create_body_model
from .camera import Intrinsics, project, root_relative, to_camera_frame, viewpoint_rotation
from .errors import (
    CheckpointError,
    ConfigError,
    DataError,
    PluginError,
    PluginNotFoundError,
    PosegenError,
    ShapeError,
    TrainingError,
)
from .hookspecs import hookimpl
from .interfaces import (
    Discriminator,
    Estimator,
    EstimatorOutput,
    PoseSet,
    PoseSource,
    Prior,
    Renderer,
    RenderOutput,
    thresholded_joint_loss,
)
from .kinematics import forward_kinematics
from .plugins import (
    create_discriminator,
    create_estimator,
    create_pose_source,
    create_prior,
    create_renderer,
    get_registry,
    list_plugins,
)

__all__ = [
    "BodyOutput", "CheckpointError", "ConfigError", "DataError", "Discriminator", "Estimator", "EstimatorOutput",
    "Intrinsics", "PluginError", "PluginNotFoundError", "PoseSet", "PoseSource", "PosegenError", "Prior",
    "RenderOutput", "Renderer", "SMPLBody", "ShapeError", "SkeletonBody", "TrainingError", "camera",
    "create_body_model", "create_discriminator", "create_estimator", "create_pose_source", "create_prior",
    "create_renderer", "forward_kinematics", "get_registry", "hookimpl", "kinematics", "list_plugins", "project",
    "root_relative", "rotations", "skeleton", "thresholded_joint_loss", "to_camera_frame", "viewpoint_rotation",
    "generator", "io", "losses", "metrics", "spin_data", "validation",
]

from .config import PretrainConfig, RunConfig  # noqa: E402
from .loop import PoseGenRun, RunResult, evaluate_estimator, resume, run  # noqa: E402
from . import strategies  # noqa: E402
from .strategies import DatasetSampler, FeedbackBatch, FeedbackPath, Hardness, Strategy, create_strategy  # noqa: E402

__all__ += ["DatasetSampler", "FeedbackBatch", "FeedbackPath", "Hardness", "Strategy", "create_strategy", "strategies"]
__all__ += ["PoseGenRun", "PretrainConfig", "RunConfig", "RunResult", "evaluate_estimator", "resume", "run"]
