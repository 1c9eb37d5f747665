"""``hybrik``: HybrIK's camera models (ResNet-34 ``Simple3DPoseBaseSMPLCam``, HRNet-W48 ``HRNetSMPLCam``).

Network: a backbone gives 3D heatmaps for 29 joints (24 SMPL + 5 leaves, 64 depth bins at 1/4 of the input) and a
feature vector; soft-argmax turns the heatmaps into normalised (u, v, d) per joint; linear heads give the twist
``phi`` (23 x (cos, sin)), shape (``init_shape`` + delta), camera (``init_cam`` + delta: [s, tx, ty] for ResNet-34,
[s] for HRNet) and per-joint uncertainty sigma. The (u, v, d) are back-projected to camera-frame metres with the
predicted camera (focal 1000 px on the 256 crop, depth unit 2.2 m); the twist-and-swing IK (``hybrik_ik``) turns
joints + twists into SMPL rotations, which pose the body (SMPL via smplx when ``smpl_model=PATH`` is given, posegen's
skeleton otherwise) to give the contract's root-relative SMPL-24 joints.

Input: images (B, 3, H, W) in [0, 1], RGB, any size: the centred square (``crop_scale`` x the longer side; HybrIK's
demo uses 1.25 around a tight person box) resized to 256x256, then HybrIK's normalisation quirk: the ImageNet
constants in BGR order applied to RGB channels (subtract (0.406, 0.457, 0.480), divide by (0.225, 0.224, 0.229)).

Checkpoints: the official files (a bare state dict, or a dict with 'model') load strictly; their ``smpl.*`` SMPL
buffers are filtered out (posegen takes SMPL from ``smpl_model`` instead, so model checkpoints stay small and free of
licensed data). A ResNet-34 checkpoint from before HybrIK added the sigma head (``pretrained_w_cam.pth``, July 2022)
loads with a warning; sigma only weights the (HRNet-only, optional for ResNet-34) scale refinement, which then weights
all joints equally.

A loaded official checkpoint predicts what the official model does (back-projection, scale refinement only for HRNet,
IK, flip test as an option): docs/OFFICIAL_MODELS.md gives the mapping and the measured differences.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import posegen_core as pg
from posegen_core import io as pgio
from posegen_core import skeleton, validation
from posegen_core.errors import ConfigError, DataError

from . import hybrik_ik
from .backbones.resnet import ResNet
from .official_base import (
    OfficialEstimator, identify_state_dict, normalise, peek_checkpoint, square_crop_resize, unwrap_official,
    warn_random_init,
)

INPUT_SIZE = 256
#: HybrIK's quirk: ImageNet mean/std in BGR order, applied to RGB channels (SimpleTransform3DSMPLCam).
NORM_MEAN = (0.406, 0.457, 0.480)
NORM_STD = (0.225, 0.224, 0.229)
FOCAL_LENGTH = 1000.0  # pixels of the 256 crop
DEPTH_FACTOR = 2.2  # metres per unit of normalised depth (BBOX_3D_SHAPE 2200 mm)
DEPTH_DIM = 64
NUM_JOINTS = hybrik_ik.NUM_JOINTS_29
BACKBONES = ("resnet34", "hrnet48")
SOURCE = ("Official HybrIK checkpoints (github.com/Jeff-sjtu/HybrIK, model zoo): pretrained_w_cam.pth "
          "(ResNet-34) or hybrik_hrnet.pth (HRNet-W48).")
_SIGMA_KEYS = {"decsigma.weight", "decsigma.bias"}


def soft_argmax_3d(logits: torch.Tensor, num_joints: int = NUM_JOINTS) -> tuple[torch.Tensor, torch.Tensor]:
    """Integral regression: heatmap logits (B, J*D, H, W) -> (u, v, d) (B, J, 3) in [-0.5, 0.5) and the heatmap
    maxima (B, J). Softmax over each joint's whole D x H x W volume, then the expectation of each axis index."""
    b, c, h, w = logits.shape
    hm = logits.reshape(b, num_joints, -1).softmax(-1)
    return heatmap_coordinates(hm.reshape(b, num_joints, c // num_joints, h, w))


def heatmap_coordinates(hm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised 3D heatmaps (B, J, D, H, W) -> expected (u, v, d) (B, J, 3) in [-0.5, 0.5) and maxima (B, J)."""
    b, j, d, h, w = hm.shape
    maxvals = hm.reshape(b, j, -1).max(-1).values
    coord = []
    for dims, n in (((2, 3), w), ((2, 4), h), ((3, 4), d)):  # x: sum over (D, H); y: over (D, W); z: over (H, W)
        marginal = hm.sum(dims)
        idx = torch.arange(n, dtype=hm.dtype, device=hm.device)
        coord.append((marginal * idx).sum(-1) / n - 0.5)
    return torch.stack(coord, -1), maxvals


#: Left/right joint pairs of the 29-joint set (HybrIK ``joint_pairs_29``); the first nine are the SMPL-24 pairs.
FLIP_PAIRS_29 = ((1, 2), (4, 5), (7, 8), (10, 11), (13, 14), (16, 17), (18, 19), (20, 21), (22, 23), (25, 26),
                 (27, 28))


def _swap_pairs(n: int, pairs: tuple[tuple[int, int], ...], shift: int = 0) -> list[int]:
    perm = list(range(n))
    for a, b in pairs:
        perm[a - shift], perm[b - shift] = b - shift, a - shift
    return perm


def flip_heatmap_logits(logits: torch.Tensor) -> torch.Tensor:
    """HybrIK's ``flip_heatmap`` for the mirrored input's logits (B, J, D, H, W): mirror the x axis, swap left/right
    joints and shift x by one bin (``h[..., 1:] = h[..., :-1]``; the first bin keeps its value), so that the
    mirrored expectation of x is exactly -u."""
    hm = logits.flip(4)[:, _swap_pairs(logits.shape[1], FLIP_PAIRS_29)]
    return torch.cat([hm[..., :1], hm[..., :-1]], -1)


def flip_phi(phi: torch.Tensor) -> torch.Tensor:
    """HybrIK's ``flip_phi``: negate sin(phi) and swap the left/right joints (phi of joint j is row j - 1)."""
    phi = torch.stack([phi[..., 0], -phi[..., 1]], -1)
    return phi[:, _swap_pairs(phi.shape[1], FLIP_PAIRS_29[:9], shift=1)]


def flip_sigma(sigma: torch.Tensor) -> torch.Tensor:
    return sigma[:, _swap_pairs(sigma.shape[1], FLIP_PAIRS_29)]


def load_mean_shape(path: str | Path) -> torch.Tensor:
    """HybrIK's h36m_mean_beta.npy: the 10 betas its shape head starts from."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"mean shape file not found: {path}. It is model_files/h36m_mean_beta.npy from HybrIK's "
                        "model files; omit mean_shape to start from zero betas.")
    try:
        beta = np.asarray(np.load(path), dtype=np.float32).reshape(-1)
    except Exception as e:
        raise DataError(f"could not read mean shape {path}: {type(e).__name__}: {e}") from None
    if beta.size != 10:
        raise DataError(f"{path} holds {beta.size} values; HybrIK's mean shape has 10 betas.")
    return torch.from_numpy(beta)


class HybrIK(OfficialEstimator):
    """HybrIK camera model (ResNet-34 or HRNet-W48): 3D heatmaps + twist -> analytical IK -> SMPL rotations."""

    name = "hybrik"
    input_size = INPUT_SIZE
    official_what = "HybrIK checkpoint"
    checkpoint_source = SOURCE

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        backbone: str = "resnet34",
        smpl_model: str | Path | None = None,
        mean_shape: str | Path | None = None,
        input_size: int = INPUT_SIZE,
        refine_scale: bool | None = None,
        flip_test: bool = False,
        freeze_bn: bool = False,
        scale_align: bool = False,
        crop_scale: float = 1.0,
        strict: bool = True,
        seed: int = 0,
        warn: bool = True,
    ) -> None:
        super().__init__(smpl_model=smpl_model, freeze_bn=freeze_bn, scale_align=scale_align, crop_scale=crop_scale)
        if backbone not in BACKBONES:
            raise ConfigError(f"HybrIK backbone must be one of {', '.join(BACKBONES)}; got {backbone!r}.")
        if input_size < 32 or input_size % 32:
            raise ConfigError(f"HybrIK input_size must be a multiple of 32 (256 is the official size); got {input_size}.")
        self.backbone = backbone
        self.input_size = int(input_size)
        # The official eval-time scale refinement (update_scale) exists only in the HRNet model.
        self.refine_scale = (backbone == "hrnet48") if refine_scale is None else bool(refine_scale)
        self.flip_test = bool(flip_test)
        self.has_sigma = True
        init_shape = torch.zeros(10) if mean_shape is None else load_mean_shape(mean_shape)
        self.register_buffer("init_shape", init_shape)
        self.register_buffer("init_cam", torch.tensor([0.9, 0.0, 0.0] if backbone == "resnet34" else [0.9]))
        generator = torch.Generator().manual_seed(seed)
        if backbone == "resnet34":
            self.preact = ResNet(34, generator)
            layers: list[nn.Module] = []
            cin = self.preact.out_channels
            for _ in range(3):
                layers += [nn.ConvTranspose2d(cin, 256, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(256),
                           nn.ReLU(inplace=True)]
                cin = 256
            self.deconv_layers = nn.Sequential(*layers)
            self.final_layer = nn.Conv2d(256, NUM_JOINTS * DEPTH_DIM, 1)
            self.fc1 = nn.Linear(self.preact.out_channels, 1024)
            self.drop1 = nn.Dropout()
            self.fc2 = nn.Linear(1024, 1024)
            self.drop2 = nn.Dropout()
            feat = 1024
        else:
            from .backbones.hrnet import FEATURE_DIM, HRNetW48

            self.preact = HRNetW48(NUM_JOINTS, DEPTH_DIM, generator=generator)
            feat = FEATURE_DIM
        self.decshape = nn.Linear(feat, 10)
        self.decphi = nn.Linear(feat, skeleton.NUM_BODY_JOINTS * 2)
        self.deccam = nn.Linear(feat, self.init_cam.numel())
        self.decsigma = nn.Linear(feat, NUM_JOINTS)
        self._init_heads(generator)
        if checkpoint is not None:
            self.load_checkpoint(checkpoint, strict=strict)
        elif warn:
            warn_random_init("hybrik", SOURCE)

    @torch.no_grad()
    def _init_heads(self, generator: torch.Generator) -> None:
        """HybrIK's start: deconvs and final_layer N(0, 0.001), zero biases; heads xavier(gain 0.01)."""
        if self.backbone == "resnet34":
            for m in self.deconv_layers:
                if isinstance(m, nn.ConvTranspose2d):
                    m.weight.normal_(0.0, 0.001, generator=generator)
            self.final_layer.weight.normal_(0.0, 0.001, generator=generator)
            self.final_layer.bias.zero_()
            for fc in (self.fc1, self.fc2):
                bound = 1.0 / fc.in_features ** 0.5
                fc.weight.uniform_(-bound, bound, generator=generator)
                fc.bias.uniform_(-bound, bound, generator=generator)
        for head in (self.decshape, self.decphi, self.deccam, self.decsigma):
            nn.init.xavier_uniform_(head.weight, gain=0.01, generator=generator)
            head.bias.zero_()

    def expected_variant(self) -> tuple[str, str]:
        return ("hybrik", self.backbone)

    def options(self) -> dict[str, Any]:
        return {**super().options(), "backbone": self.backbone, "input_size": self.input_size,
                "refine_scale": self.refine_scale, "flip_test": self.flip_test}

    # -- checkpoints ------------------------------------------------------------------------------------
    def filter_official_state(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v for k, v in state.items() if not k.startswith("smpl.")}

    def load_checkpoint_data(self, data: Any, path: str | Path, strict: bool = True) -> dict[str, list[str]]:
        state = self.state_dict_from_checkpoint(data, path)
        own = self.state_dict()
        missing = set(own) - set(state)
        if strict and missing == _SIGMA_KEYS and not set(state) - set(own):
            warnings.warn(
                f"{path} predates HybrIK's sigma head (decsigma.*): loading the rest strictly; the scale refinement "
                "weights every joint equally and sigma outputs are meaningless.", stacklevel=2,
            )
            report = pgio.load_state_dict_strict(self, state, path, strict=False)
            self.has_sigma = False
            return report
        report = pgio.load_state_dict_strict(self, state, path, strict=strict)
        self.has_sigma = not (_SIGMA_KEYS & set(report["missing"]))
        return report

    # -- network ------------------------------------------------------------------------------------------
    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """[0, 1] RGB images of any size -> the 256x256 input with HybrIK's BGR-order constants on RGB channels."""
        crop = square_crop_resize(images, self.input_size, self.crop_scale, antialias=False)
        return normalise(crop, NORM_MEAN, NORM_STD)

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised input -> heatmap logits (B, 29*64, H/4, W/4) and the regression feature (B, 1024 | 2048)."""
        if self.backbone == "resnet34":
            feat = self.preact(x)
            logits = self.final_layer(self.deconv_layers(feat))
            xc = self.drop2(self.fc2(self.drop1(self.fc1(feat.mean(dim=(2, 3))))))
            return logits, xc
        out = self.preact(x)
        return out.heatmaps, out.features

    def rest_skeleton(self, betas: torch.Tensor) -> torch.Tensor:
        """(B, 29, 3) rest skeleton for the IK: SMPL shaped by ``betas`` when given, the default skeleton otherwise."""
        body = self.body_on(betas)
        if isinstance(body, pg.SMPLBody):
            smpl = body.smpl
            rest = hybrik_ik.smpl_rest_joints29(smpl.v_template, smpl.shapedirs, smpl.J_regressor, betas.to(smpl.shapedirs.dtype))
            return rest.to(betas.dtype)
        return hybrik_ik.skeleton_rest_joints29(betas.dtype, betas.device).expand(betas.shape[0], -1, -1)

    @staticmethod
    def back_project(uvd: torch.Tensor, scale: torch.Tensor, trans: torch.Tensor | None = None,
                     bbox_center: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """HybrIK's back-projection: (u, v, d) normalised -> (root-relative camera-frame joints (B, J, 3) in metres,
        camera-frame root (B, 3)). Root depth D = f / (256 s); x, y = (u, v) 256 / f (2.2 d + D), where (u, v) are
        shifted by the box centre's offset from the image centre when a box is given, and the ResNet-34 camera's
        translation t is subtracted after scaling otherwise (``uv * 256 / f * z - t``, as the official model)."""
        # The operations follow the official order (units of 2.2 m, then metres) so that float32 results agree.
        cam_depth = FOCAL_LENGTH / (INPUT_SIZE * scale + 1e-9)  # (B, 1)
        d = uvd[..., 2:]
        uv = uvd[..., :2] if bbox_center is None else uvd[..., :2] + bbox_center[:, None]
        xy = (uv * INPUT_SIZE / FOCAL_LENGTH) * (d * DEPTH_FACTOR + cam_depth[:, None])
        if bbox_center is None and trans is not None:
            xy = xy - trans[:, None]
        xyz = torch.cat([xy / DEPTH_FACTOR, d], -1)  # units of 2.2 m
        root = xyz[:, 0] * DEPTH_FACTOR
        root = root + torch.cat([torch.zeros_like(root[:, :2]), cam_depth], -1)
        return (xyz - xyz[:, :1]) * DEPTH_FACTOR, root

    @staticmethod
    def box_center(bboxes: torch.Tensor, img_center: torch.Tensor) -> torch.Tensor:
        """Offset (B, 2) of the crop box's centre from the image centre in box widths/heights (HybrIK's
        ``bbox_center``); ``bboxes`` (B, 4) xyxy in original-image pixels, ``img_center`` (B, 2)."""
        centre = 0.5 * (bboxes[:, :2] + bboxes[:, 2:])
        return (centre - img_center) / (bboxes[:, 2:] - bboxes[:, :2])

    def refined_scale(self, uvd: torch.Tensor, phi: torch.Tensor, rest: torch.Tensor, scale: torch.Tensor,
                      sigma: torch.Tensor, bbox_center: torch.Tensor | None = None) -> torch.Tensor:
        """HybrIK-HRNet's eval-time ``update_scale``: pose the shaped skeleton by the naive IK, place it at the
        back-projected root, then the root depth D that best explains the 24 predicted (u, v) by perspective, a
        least-squares fit with per-joint weights (1 - 10 sigma)+ on both sides: with a = (u, v) 256 / f,
        a D = X_xy - a Z. s = f / (256 D). As the official code (a try/except around a matrix inverse), the whole
        batch keeps its predicted scale when the fit is singular for any sample (e.g. every weight zero)."""
        xyz, root = self.back_project(uvd, scale, None, bbox_center)
        ik = hybrik_ik.inverse_kinematics(xyz, phi, rest, naive=True)
        posed, _ = hybrik_ik.forward_kinematics29(ik.rotations, rest)
        posed = (posed - posed[:, :1])[:, : skeleton.NUM_JOINTS]
        root = root - torch.cat([torch.zeros_like(root[:, :2]), FOCAL_LENGTH / (INPUT_SIZE * scale + 1e-9)], -1)
        posed = posed + root[:, None]  # the official camera_root without the root depth
        uv = uvd[:, : skeleton.NUM_JOINTS, :2]
        if bbox_center is not None:
            uv = uv + bbox_center[:, None]
        w = ((1.0 - 10.0 * sigma[:, : skeleton.NUM_JOINTS]).clamp_min(0.0) if self.has_sigma
             else torch.ones_like(uv[..., 0]))
        a = uv * w[..., None]
        rhs = (posed[..., :2] - (INPUT_SIZE / FOCAL_LENGTH) * uv * posed[..., 2:]) * w[..., None]
        den = (a * a).sum((1, 2))
        if bool((den == 0).any()) or not bool(torch.isfinite(den).all()):
            return scale
        res = (a * rhs).sum((1, 2)) / den
        return (1.0 / res)[:, None]

    def network(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The heads on a normalised input (B, 3, S, S): uvd, maxvals, betas, phi, camera, sigma; with
        ``flip_test`` averaged with the mirrored input's as HybrIK does (heatmaps after softmax, phi, shape, sigma;
        camera arithmetic mean with tx negated for ResNet-34, harmonic mean of the scale for HRNet)."""
        b = x.shape[0]
        logits, xc = self.heads(x)
        hm = logits.reshape(b, NUM_JOINTS, -1).softmax(-1)
        if self.backbone == "resnet34" and not self.flip_test:
            # The official ResNet-34 model renormalises the softmax (its float32 sum over 64^3 bins is off by ~1e-5,
            # which moves u, v, d by as much); HRNet does not.
            hm = hm / hm.sum(-1, keepdim=True)
        betas = self.init_shape.to(xc.dtype) + self.decshape(xc)
        phi = self.decphi(xc).view(b, skeleton.NUM_BODY_JOINTS, 2)
        cam = self.deccam(xc) + self.init_cam.to(xc.dtype)
        sigma = self.decsigma(xc).sigmoid()
        if self.flip_test:
            f_logits, f_xc = self.heads(x.flip(3))
            f_hm = flip_heatmap_logits(f_logits.reshape(b, NUM_JOINTS, DEPTH_DIM, *f_logits.shape[2:]))
            hm = 0.5 * (hm + f_hm.reshape(b, NUM_JOINTS, -1).softmax(-1))
            betas = 0.5 * (betas + self.init_shape.to(xc.dtype) + self.decshape(f_xc))
            phi = 0.5 * (phi + flip_phi(self.decphi(f_xc).view(b, skeleton.NUM_BODY_JOINTS, 2)))
            f_cam = self.deccam(f_xc) + self.init_cam.to(xc.dtype)
            if cam.shape[1] == 3:
                cam = 0.5 * (cam + f_cam * torch.tensor([1.0, -1.0, 1.0], dtype=cam.dtype, device=cam.device))
            else:
                cam = 2.0 / (1.0 / f_cam + 1.0 / cam)
            sigma = 0.5 * (sigma + flip_sigma(self.decsigma(f_xc).sigmoid()))
        uvd, maxvals = heatmap_coordinates(hm.reshape(b, NUM_JOINTS, DEPTH_DIM, *logits.shape[2:]))
        return {"uvd": uvd, "maxvals": maxvals, "betas": betas, "phi": phi, "camera": cam, "sigma": sigma}

    def forward(self, images: torch.Tensor, bboxes: torch.Tensor | None = None,
                img_center: torch.Tensor | None = None) -> pg.EstimatorOutput:
        """The contract: images (B, 3, H, W) in [0, 1] -> root-relative camera-frame joints etc. ``bboxes`` (B, 4)
        xyxy and ``img_center`` (B, 2), both in original-image pixels, select HybrIK's box back-projection (for
        images cropped around a person box); without them, the whole-image crop's."""
        validation.check_images(images.detach())  # (B, 3, H, W) in [0, 1]; detached: the check reads values
        return self.predict(self.preprocess(images), bboxes, img_center)

    def predict(self, x: torch.Tensor, bboxes: torch.Tensor | None = None,
                img_center: torch.Tensor | None = None) -> pg.EstimatorOutput:
        """The official model on an already cropped and normalised input (B, 3, S, S), as HybrIK's
        ``model(x, flip_test, bboxes=..., img_center=...)``."""
        if (bboxes is None) != (img_center is None):
            raise ConfigError("pass both bboxes (B, 4) xyxy and img_center (B, 2) for HybrIK's box back-projection, "
                              "or neither.")
        bbox_center = None
        if bboxes is not None:
            validation.check_tensor(bboxes, "bboxes", (x.shape[0], 4), hint="One xyxy box per image, in pixels.")
            validation.check_tensor(img_center, "img_center", (x.shape[0], 2), hint="(W / 2, H / 2) per image.")
            bbox_center = self.box_center(bboxes.to(x), img_center.to(x))
        out = self.network(x)
        uvd, phi, betas, cam, sigma = out["uvd"], out["phi"], out["betas"], out["camera"], out["sigma"]
        scale = cam[:, :1]
        trans = cam[:, 1:3] if cam.shape[1] == 3 else None
        rest = self.rest_skeleton(betas)
        if self.refine_scale and not self.training:
            scale = self.refined_scale(uvd, phi, rest, scale, sigma, bbox_center)
        xyz, cam_root = self.back_project(uvd, scale, trans, bbox_center)
        # As HybrIK: in training the IK sees detached joints (rotations learn through phi and betas only; the
        # heatmap joints are supervised directly, see joint_loss); evaluation uses the accumulating IK.
        ik = hybrik_ik.inverse_kinematics(xyz.detach() if self.training else xyz, phi, rest, naive=self.training)
        body = self.body_on(ik.rotations).forward_rotmats(ik.rotations, betas)
        extras: dict[str, torch.Tensor] = {
            "uvd": uvd, "phi": phi, "sigma": sigma, "maxvals": out["maxvals"], "cam_scale": scale,
            "cam_depth": FOCAL_LENGTH / (INPUT_SIZE * scale + 1e-9), "cam_root": cam_root,
            "heatmap_joints": xyz[:, : skeleton.NUM_JOINTS], "global_rotations": body.rotations,
        }
        if body.vertices is not None:
            extras["vertices"] = body.vertices
        return pg.EstimatorOutput(
            joints=body.joints.to(x.dtype), rotations=ik.rotations, betas=betas, camera=cam, native_joints=xyz,
            extras=extras,
        )

    def joint_loss(self, output: pg.EstimatorOutput, target: torch.Tensor, threshold: float | None = None) -> torch.Tensor:
        """Eq. 13 on the heatmap joints (what HybrIK supervises; the IK input is detached in training) plus eq. 13
        on the posed body joints (which trains the twist and shape heads)."""
        validation.check_tensor(target, "target", (output.joints.shape[0], skeleton.NUM_JOINTS, 3),
                                hint="Targets are root-relative camera-frame SMPL-24 joints in metres.")
        terms = []
        for pred in (output.extras.get("heatmap_joints", output.joints), output.joints):
            pred = self.align_scale(pred, target) if self.scale_align else pred
            terms.append(pg.thresholded_joint_loss(pred, target, threshold))
        return terms[0] + terms[1]


def build_hybrik(checkpoint: str | Path | None = None, strict: bool = True, **options: Any) -> HybrIK:
    """Build ``hybrik``; the backbone follows the checkpoint (official or posegen) unless given explicitly."""
    data = peek_checkpoint(checkpoint, HybrIK.official_what, SOURCE)
    if isinstance(data, dict) and data.get("posegen_estimator") == "hybrik":
        saved = data.get("options", {})
        arch = {k: saved[k] for k in ("backbone", "input_size") if k in saved}
        options = {**saved, **options, **arch}
    elif data is not None and "backbone" not in options:
        try:
            found = identify_state_dict(unwrap_official(data, checkpoint, HybrIK.official_what))
        except pg.CheckpointError:
            found = None
        if found is not None and found[0] == "hybrik":
            options["backbone"] = found[1]
    model = HybrIK(checkpoint=None, warn=checkpoint is None, **options)
    if data is not None:
        model.load_checkpoint_data(data, checkpoint, strict=strict)
    return model


@pg.hookimpl
def posegen_register_estimators(register):
    register("hybrik", build_hybrik,
             description="HybrIK (ResNet-34 or HRNet-W48, 256x256, twist-and-swing IK); loads the official checkpoints.")
