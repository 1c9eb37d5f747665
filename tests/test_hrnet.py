"""HybrIK's HRNet-W48 backbone: official key names/shapes, strict loading, fusion arithmetic, shapes, gradients."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from posegen_core.errors import CheckpointError, ConfigError, ShapeError
from posegen_core.io import load_state_dict_strict
from posegen_plugins.estimators.backbones.hrnet import HighResolutionModule, HRNetW48

sys.path.insert(0, str(Path(__file__).parent))
from official_layouts import fabricate, reference_layout  # noqa: E402


def _reference_preact() -> dict[str, tuple[int, ...]]:
    """The ``preact.*`` entries of the official HybrIK HRNet state dict, prefix stripped, in file order."""
    layout = reference_layout("hybrik_hrnet_w48_state_dict.txt")
    return {k[len("preact."):]: shape for k, shape in layout if k.startswith("preact.")}


@pytest.fixture(scope="module")
def model() -> HRNetW48:
    return HRNetW48(generator=torch.Generator().manual_seed(0))


def test_state_dict_has_exactly_the_official_keys_and_shapes(model):
    ref = _reference_preact()
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert len(ref) == 1956
    assert list(own) == list(ref)  # same names, same order
    assert own == ref


def test_parameter_count_matches_the_reference_rebuild(model):
    # spin_hybrik_notes.md section 4: body 65.31 M + feature head 10.11 M + final_layer 0.09 M.
    n = sum(p.numel() for p in model.parameters())
    assert abs(n / 1e6 - 75.51) < 0.01


def test_fabricated_official_state_dict_loads_strictly_and_round_trips():
    ref = _reference_preact()
    state = fabricate(list(ref.items()), seed=3)
    net = HRNetW48(generator=torch.Generator().manual_seed(1))
    report = load_state_dict_strict(net, state, "fabricated.pth")
    assert report == {"missing": [], "unexpected": [], "mismatched": []}
    loaded = net.state_dict()
    for name, value in state.items():
        assert torch.equal(loaded[name], value), name


def test_checkpoint_for_another_joint_count_is_refused_with_the_key_named(model):
    state = dict(HRNetW48(num_joints=24, generate_features=False).state_dict())
    with pytest.raises(CheckpointError) as err:
        load_state_dict_strict(model, state, "hrnet_24.pth")
    msg = str(err.value)
    assert "final_layer.weight: checkpoint (1536, 48, 1, 1) vs model (1856, 48, 1, 1)" in msg
    assert "missing: stage4.2.fuse_layers.1.0.0.0.weight" in msg  # HybrIK's multi-scale stage-4 rows are absent


def test_forward_256_gives_hybrik_output_shapes(model):
    model.eval()
    x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        heatmaps, features = model(x)
    assert heatmaps.shape == (1, 29 * 64, 64, 64)
    assert features.shape == (1, 2048)
    assert torch.isfinite(heatmaps).all() and torch.isfinite(features).all()
    assert (features >= 0).all()  # pooled after ReLU
    assert features.abs().max() < 1e4  # the random start keeps eval-mode activations moderate


def test_batch_items_do_not_interact(model):
    model.eval()
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        both = model(x)
        first = model(x[:1])
        second = model(x[1:])
    assert both.heatmaps.shape == (2, 1856, 16, 24)
    torch.testing.assert_close(both.heatmaps, torch.cat([first.heatmaps, second.heatmaps]), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(both.features, torch.cat([first.features, second.features]), rtol=1e-4, atol=1e-4)


def test_backward_gives_finite_gradients_everywhere():
    net = HRNetW48(generator=torch.Generator().manual_seed(5)).train()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(6), requires_grad=True)
    heatmaps, features = net(x)
    (heatmaps.square().mean() + features.square().mean()).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name in ("conv1.weight", "final_layer.weight", "final_feat_layer.0.weight", "incre_modules.3.0.bn3.weight"):
        assert net.get_parameter(name).grad.abs().sum() > 0, name


def test_fusion_matches_a_hand_computation():
    """Two branches, one block each: row 0 adds the low-res branch through 1x1 conv + BN + nearest x2 upsampling,
    row 1 adds the high-res branch through a 3x3 stride-2 conv + BN; both rows end in ReLU."""
    g = torch.Generator().manual_seed(7)
    mod = HighResolutionModule((4, 8), blocks=1)
    with torch.no_grad():
        for name, t in mod.state_dict().items():
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif not name.endswith("num_batches_tracked"):
                t.copy_(torch.randn(t.shape, generator=g) * 0.5)
    mod.eval()
    x0 = torch.randn(1, 4, 8, 8, generator=g)
    x1 = torch.randn(1, 8, 4, 4, generator=g)

    def bn(t, b):
        return (t - b.running_mean[:, None, None]) / (b.running_var[:, None, None] + b.eps).sqrt() * b.weight[
            :, None, None
        ] + b.bias[:, None, None]

    def block(t, blk):
        y = F.relu(bn(F.conv2d(t, blk.conv1.weight, padding=1), blk.bn1))
        return F.relu(bn(F.conv2d(y, blk.conv2.weight, padding=1), blk.bn2) + t)

    with torch.no_grad():
        b0 = block(x0, mod.branches[0][0])
        b1 = block(x1, mod.branches[1][0])
        up = mod.fuse_layers[0][1]
        low = bn(F.conv2d(b1, up[0].weight), up[1])
        expected0 = F.relu(b0 + low.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3))
        down = mod.fuse_layers[1][0][0]
        expected1 = F.relu(bn(F.conv2d(b0, down[0].weight, stride=2, padding=1), down[1]) + b1)
        out0, out1 = mod([x0, x1])
    torch.testing.assert_close(out0, expected0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out1, expected1, rtol=1e-5, atol=1e-5)


def test_same_seed_same_weights_and_different_seed_different_weights(model):
    again = HRNetW48(generator=torch.Generator().manual_seed(0))
    a, b = model.state_dict(), again.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    again.reset_parameters(torch.Generator().manual_seed(12))
    assert not torch.equal(a["conv1.weight"], again.conv1.weight)
    assert not torch.equal(a["stage4.2.branches.3.0.conv1.weight"], again.stage4[2].branches[3][0].conv1.weight)


def test_heatmap_only_variant_drops_the_feature_head_and_multi_scale_stage4_output():
    net = HRNetW48(generate_features=False, generator=torch.Generator().manual_seed(8)).eval()
    keys = net.state_dict().keys()
    assert not any(k.startswith(("incre_modules", "downsamp_modules", "final_feat_layer")) for k in keys)
    assert len(net.stage4[2].fuse_layers) == 1 and len(net.stage4[1].fuse_layers) == 4
    with torch.no_grad():
        heatmaps, features = net(torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(9)))
    assert heatmaps.shape == (1, 1856, 16, 16) and features is None


def test_bad_input_and_bad_options_get_clear_errors(model):
    with pytest.raises(ShapeError, match=r"multiples of 32, got \(1, 3, 250, 256\)"):
        model(torch.rand(1, 3, 250, 256))
    with pytest.raises(ShapeError, match=r"\(B, 3, H, W\)"):
        model(torch.rand(1, 1, 256, 256))
    with pytest.raises(ShapeError):
        model(torch.rand(3, 256, 256))
    with pytest.raises(ConfigError, match="at least one output"):
        HRNetW48(generate_heatmaps=False, generate_features=False)
