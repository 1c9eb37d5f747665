"""The method's losses (paper eqs. 8-10 and 13) against hand-computed values, and the discriminator's history pool."""

from __future__ import annotations

import math

import pytest
import torch

import posegen_core as pg
from posegen_core.history_pool import HistoryPool
from posegen_core.losses import (
    feedback_loss,
    generator_objective,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
    per_sample_joint_error,
)


def test_lsgan_losses_match_hand_computation():
    real = torch.tensor([[1.0, 0.5], [0.0, 1.0]])
    fake = torch.tensor([[0.5, 0.0], [1.0, 0.0]])
    # E_real[(D - 1)^2] = (0 + .25 + 1 + 0) / 4; E_fake[D^2] = (.25 + 0 + 1 + 0) / 4; halved like the official code
    assert lsgan_discriminator_loss(real, fake).item() == pytest.approx(0.5 * (1.25 / 4 + 1.25 / 4))
    assert lsgan_generator_loss(fake).item() == pytest.approx(0.5 * ((0.25 + 1 + 0 + 1) / 4))


def test_feedback_scenarios_and_shapes():
    e = torch.tensor([0.1, 0.5])
    assert feedback_loss(e, "ind").item() == pytest.approx(0.3)
    assert feedback_loss(e, "ood", c=1.0).item() == pytest.approx(0.7)  # official: c - e, unclamped
    # the hinge stops pushing a sample once it is harder than c
    assert feedback_loss(e, "ood", c=0.3, shape="hinge").item() == pytest.approx((0.2 + 0.0) / 2)
    e.requires_grad_(True)
    feedback_loss(e, "ood", c=0.3, shape="hinge").backward()
    assert e.grad.tolist() == pytest.approx([-0.5, 0.0])
    # the target shape pulls samples towards c from both sides
    e.grad = None
    loss = feedback_loss(e, "ood", c=0.3, shape="target")
    assert loss.item() == pytest.approx((0.2 + 0.2) / 2)
    loss.backward()
    assert e.grad.tolist() == pytest.approx([-0.5, 0.5])
    with pytest.raises(pg.ConfigError, match="expected one of ood, ind"):
        feedback_loss(e, "max")
    with pytest.raises(pg.ConfigError, match="expected one of linear, hinge, target"):
        feedback_loss(e, "ood", shape="band")


def test_generator_objective_is_eq_8():
    adv, fb = torch.tensor(0.4), torch.tensor(0.7)
    assert generator_objective(adv, fb, w1=1.0, w2=0.1).item() == pytest.approx(0.47)
    assert generator_objective(adv, None).item() == pytest.approx(0.4)


def test_thresholded_joint_loss_is_eq_13():
    target = torch.zeros(3, 24, 3)
    pred = target.clone()
    pred[0, :, 0] = 0.1  # error 0.1 m: kept
    pred[1, :, 0] = 0.3  # error 0.3 m: dropped at d = 0.2 (a render failure)
    pred[2, :, 1] = 0.05
    per = per_sample_joint_error(pred, target)
    assert per.tolist() == pytest.approx([0.1, 0.3, 0.05])
    assert pg.thresholded_joint_loss(pred, target, threshold=0.2).item() == pytest.approx((0.1 + 0 + 0.05) / 3)
    assert pg.thresholded_joint_loss(pred, target).item() == pytest.approx(0.15)


def test_history_pool_fills_then_swaps_half_and_round_trips():
    pool = HistoryPool(size=8)
    g = torch.Generator().manual_seed(0)
    first = torch.arange(8.0).view(8, 1)
    assert torch.equal(pool(first, g), first)  # filling: fakes pass through
    new = torch.full((8, 1), 100.0)
    out = pool(new, g)
    swapped = out[:, 0] != 100.0
    assert 0 < int(swapped.sum()) < 8 and set(out[swapped, 0].tolist()) <= set(range(8))
    assert int((pool.items[:, 0] == 100.0).sum()) == int(swapped.sum())  # each swap stores the new fake
    restored = HistoryPool()
    restored.load_state_dict(pool.state_dict())
    assert torch.equal(restored.items, pool.items) and restored.size == 8


def test_spread_loss_is_the_nearest_neighbour_entropy_and_pushes_points_apart():
    from posegen_core.losses import spread_loss

    pts = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    # nearest-neighbour distances 1, 1, 2 (eps 1e-3)
    expected = -(2 * math.log(1.001) + math.log(2.001)) / 3
    assert spread_loss(pts).item() == pytest.approx(expected, rel=1e-6)
    crowded = torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.0, 2.0]], requires_grad=True)
    spread_loss(crowded).backward()
    assert crowded.grad[0, 0] > 0 and crowded.grad[1, 0] < 0  # descending the loss moves the close pair apart
