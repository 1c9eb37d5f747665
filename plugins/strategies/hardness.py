"""Hardness controls: the estimator's errors on G's batch -> L_fb (weighted by ``w2`` in L_G = w1 L_adv + w2 L_fb)."""

from __future__ import annotations

import math

import torch

from posegen_core.camera import camera_directions
from posegen_core.errors import ConfigError
from posegen_core.losses import banded_ratio_loss, elevation_prior_loss, feedback_loss, linear_schedule
from posegen_core.strategies import Hardness

ERROR_KINDS = ("mpjpe", "pa")


class PaperHardness(Hardness):
    """The paper's eq. 8 as configured: ``ood`` c - e (``feedback_shape`` linear, hinge or target) or ``ind`` e."""

    def loss(self, batch, cfg):
        return feedback_loss(batch.error(), cfg.scenario, cfg.c, shape=cfg.feedback_shape), {}


class _CameraPrior:
    """Optional camera prior shared by the relative strategies: G's elevations tied to cameras uniform on the
    sphere's band |elevation| <= ``camera_prior_deg`` (``losses.elevation_prior_loss``), weight ``w_camera_prior``."""

    def _init_prior(self, camera_prior_deg: float | None, w_camera_prior: float) -> None:
        if camera_prior_deg is not None and not 0 < camera_prior_deg <= 90:
            raise ConfigError(f"camera_prior_deg must be in (0, 90] degrees (or unset); got {camera_prior_deg}.")
        if w_camera_prior < 0:
            raise ConfigError(f"w_camera_prior must be >= 0; got {w_camera_prior}.")
        self.camera_prior_deg, self.w_camera_prior = camera_prior_deg, float(w_camera_prior)

    def view_regularizer(self, view_rotation, cfg):
        if self.camera_prior_deg is None or self.w_camera_prior == 0:
            return None
        up = camera_directions(view_rotation)[..., 1].clamp(-1 + 1e-6, 1 - 1e-6)
        return self.w_camera_prior * elevation_prior_loss(torch.asin(up), math.radians(self.camera_prior_deg))


def _check_band(name: str, beta_start: float, beta_end: float, sigma: float) -> None:
    if min(beta_start, beta_end) <= 0 or sigma < 0:
        raise ConfigError(f"{name}: beta_start and beta_end must be > 0 and sigma >= 0; got {beta_start}, "
                          f"{beta_end}, {sigma}.")


class BandedHardness(_CameraPrior, Hardness):
    """PoseAug's relative, banded hardness: r = e(G's view) / e(the same pose from a source-like view); L_fb =
    (r - beta)^2 where |r - beta| > sigma, beta rising from ``beta_start`` to ``beta_end`` over the feedback
    iterations. ``error``: ``mpjpe`` or ``pa`` (PA-MPJPE, articulation only)."""

    needs_reference = True

    def __init__(self, beta_start: float = 3.0, beta_end: float = 5.0, sigma: float = 2.0, error: str = "mpjpe",
                 camera_prior_deg: float | None = None, w_camera_prior: float = 1.0) -> None:
        _check_band("banded", beta_start, beta_end, sigma)
        if error not in ERROR_KINDS:
            raise ConfigError(f"banded: error must be one of {', '.join(ERROR_KINDS)}; got '{error}'.")
        self.beta_start, self.beta_end, self.sigma, self.error = float(beta_start), float(beta_end), float(sigma), error
        self._init_prior(camera_prior_deg, w_camera_prior)

    def loss(self, batch, cfg):
        if self.error == "pa":
            e, ref = batch.articulation_error(), batch.reference_articulation_error()
        else:
            e, ref = batch.error(), batch.reference_error()
        beta = linear_schedule(self.beta_start, self.beta_end, batch.progress)
        ratio = (e / ref.clamp_min(1e-3)).detach()
        logs = {"hardness_ratio": float(ratio.mean()), "hardness_beta": beta,
                "in_band": float(((ratio - beta).abs() <= self.sigma).float().mean())}
        return banded_ratio_loss(e, ref, beta, self.sigma), logs


class SplitHardness(_CameraPrior, Hardness):
    """Articulation and viewpoint hardness apart, each relative to a source-like view and banded (PoseAug's two
    bands): articulation error = PA-MPJPE (alignment-invariant); viewpoint error = MPJPE - PA-MPJPE (what the
    orientation/scale/position alignment removes). L_fb = w_art * band_art + w_view * band_view."""

    needs_reference = True

    def __init__(self, art_beta_start: float = 3.0, art_beta_end: float = 5.0, art_sigma: float = 2.0,
                 w_art: float = 1.0, view_beta_start: float = 17.0, view_beta_end: float = 17.0,
                 view_sigma: float = 15.0, w_view: float = 0.1, view_floor: float = 0.005,
                 camera_prior_deg: float | None = None, w_camera_prior: float = 1.0) -> None:
        _check_band("split (articulation)", art_beta_start, art_beta_end, art_sigma)
        _check_band("split (viewpoint)", view_beta_start, view_beta_end, view_sigma)
        if w_art < 0 or w_view < 0 or view_floor <= 0:
            raise ConfigError(f"split: w_art and w_view must be >= 0 and view_floor > 0; got {w_art}, {w_view}, "
                              f"{view_floor}.")
        self.art = (float(art_beta_start), float(art_beta_end), float(art_sigma), float(w_art))
        self.view = (float(view_beta_start), float(view_beta_end), float(view_sigma), float(w_view))
        self.view_floor = float(view_floor)
        self._init_prior(camera_prior_deg, w_camera_prior)

    def loss(self, batch, cfg):
        e, ref = batch.error(), batch.reference_error()
        pa, ref_pa = batch.articulation_error(), batch.reference_articulation_error()
        view, ref_view = (e - pa).clamp_min(0.0), (ref - ref_pa).clamp_min(0.0)
        b0, b1, s, w = self.art
        beta_art = linear_schedule(b0, b1, batch.progress)
        loss_art = banded_ratio_loss(pa, ref_pa, beta_art, s)
        v0, v1, vs, vw = self.view
        beta_view = linear_schedule(v0, v1, batch.progress)
        loss_view = banded_ratio_loss(view, ref_view, beta_view, vs, floor=self.view_floor)
        with torch.no_grad():
            logs = {"ratio_art": float((pa / ref_pa.clamp_min(1e-3)).mean()),
                    "ratio_view": float((view / ref_view.clamp_min(self.view_floor)).mean())}
        return w * loss_art + vw * loss_view, logs
