"""SANet: outputs, ablation switches, losses against hand-written formulas, gradients, parameter counts."""

import pytest
import torch
from torch import nn

from lightning_modules.backbones import Backbone
from lightning_modules.blocks.channel import SqueezeExcite
from lightning_modules.fcn import FCNHead
from lightning_modules.sanet import CategoryBranch, SANet, SANetModule, SEFCNHead, category_presence, sa_attention_maps

HEADS = {"sa1", "sa2", "sa3", "sa4"}


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_output_keys_and_shapes_at_odd_size():
    network = SANet(5, backbone="test_resnet").eval()
    with torch.no_grad():
        outputs = network(torch.randn(2, 3, 45, 47))
    assert set(outputs) == {"out", "dense", "category"} | HEADS
    for key in {"out", "dense"} | HEADS:
        assert outputs[key].shape == (2, 5, 45, 47)
    assert outputs["category"].shape == (2, 5)
    # The final prediction is Ŷ_den + Ŷ_SA4 (Sec. 3.3).
    torch.testing.assert_close(outputs["out"], outputs["dense"] + outputs["sa4"])


@pytest.mark.parametrize(
    ("switches", "keys", "out_is"),
    [
        ({"sa_heads": False, "category": False}, {"out", "dense"}, "dense"),
        ({"sa_heads": False, "category": False, "dense_se": True}, {"out", "dense"}, "dense"),
        ({"category": False, "dense": False}, {"out"} | HEADS, "sa4"),
        ({"dense": False}, {"out", "category"} | HEADS, "sa4"),
        ({"category": False}, {"out", "dense"} | HEADS, None),
    ],
)
def test_ablation_switches(switches, keys, out_is):
    network = SANet(4, backbone="test_resnet", **switches).eval()
    with torch.no_grad():
        outputs = network(torch.randn(1, 3, 32, 32))
    assert set(outputs) == keys
    if out_is is not None:
        torch.testing.assert_close(outputs["out"], outputs[out_is])
    assert isinstance(network.dense_head, SEFCNHead if switches.get("dense_se") else (FCNHead, type(None)))


def test_invalid_switches():
    with pytest.raises(ValueError, match="needs the SA heads or the dense head"):
        SANet(4, backbone="test_resnet", sa_heads=False, dense=False)
    with pytest.raises(ValueError, match="dense_se=True"):
        SANet(4, backbone="test_resnet", dense=False, dense_se=True)


def test_heads_reduce_channels_to_a_quarter_with_grouped_first_convs():
    network = SANet(4, backbone="test_resnet")
    assert len(network.sa_heads) == len(network.backbone.channels) == 4
    for head, channels in zip(network.sa_heads, network.backbone.channels, strict=True):
        assert head.sa.out_channels == channels // 4
        assert head.sa.main[0].groups == head.sa.attention[0].groups == 2
        assert head.classifier.in_channels == channels // 4 and head.classifier.out_channels == 4


def test_fcn_se_head_has_an_se_block():
    head = SEFCNHead(64, 3)
    (se,) = [m for m in head if isinstance(m, SqueezeExcite)]
    assert se.channels == 16 and se.rd_channels == 1  # C / 4 channels, r = 16


def test_category_branch_is_global_average_pooling_then_two_linear_layers():
    torch.manual_seed(0)
    branch = CategoryBranch(8, 5, width=4)
    x = torch.randn(2, 8, 6, 7)
    pooled = x.sum(dim=(2, 3)) / 42
    hidden = torch.clamp(pooled @ branch.fc1.weight.T + branch.fc1.bias, min=0)
    torch.testing.assert_close(branch(x), hidden @ branch.fc2.weight.T + branch.fc2.bias)
    assert branch.fc1.weight.shape == (4, 8) and branch.fc2.weight.shape == (5, 4)


def test_category_presence_by_hand():
    target = torch.tensor(
        [
            [[0, 0, 255], [2, 2, 255]],  # classes 0 and 2; the ignored pixels are not a class
            [[255, 255, 255], [255, 255, 255]],  # all ignored: no class present
        ]
    )
    expected = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(category_presence(target, 4), expected)


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, ignore: int = 255) -> torch.Tensor:
    """Mean over the non-ignored pixels of -log softmax(logits)[target]."""
    valid = target != ignore
    log_p = logits.log_softmax(dim=1)
    picked = log_p.gather(1, target.clamp(max=logits.shape[1] - 1)[:, None])[:, 0]
    return -(picked[valid]).sum() / valid.sum()


def test_total_loss_is_the_weighted_sum_of_the_terms():
    torch.manual_seed(0)
    k, alpha, beta = 5, 0.3, 0.7
    network = SANet(k, backbone="test_resnet")
    module = SANetModule(network, k, alpha=alpha, beta=beta)
    target = torch.randint(0, 3, (2, 32, 32))  # classes 3 and 4 absent
    target[0, :5] = 255
    outputs = network(torch.randn(2, 3, 32, 32))
    losses = module.compute_losses(outputs, target)
    mask = sum(cross_entropy(outputs[key], target) for key in sorted(HEADS)) / 4
    presence = torch.tensor([[1.0, 1, 1, 0, 0], [1, 1, 1, 0, 0]])
    z = outputs["category"]
    category = (torch.clamp(z, min=0) - z * presence + torch.log1p(torch.exp(-z.abs()))).mean()  # stable BCE
    dense = cross_entropy(outputs["dense"], target)
    torch.testing.assert_close(losses["loss_mask"], mask)
    torch.testing.assert_close(losses["loss_category"], category)
    torch.testing.assert_close(losses["loss_dense"], dense)
    torch.testing.assert_close(losses["loss"], mask + alpha * category + beta * dense)


def test_images_without_labels_add_nothing_to_any_term():
    torch.manual_seed(0)
    network = SANet(4, backbone="test_resnet")
    module = SANetModule(network, 4)
    images = torch.randn(2, 3, 32, 32)
    target = torch.randint(0, 3, (2, 32, 32))
    target[1] = 255
    outputs = network(images)
    mixed = module.compute_losses(outputs, target)
    # The all-ignored second image changes no term: each equals the first image's loss alone.
    alone = module.compute_losses({key: value[:1] for key, value in outputs.items()}, target[:1])
    for key in ("loss_mask", "loss_category", "loss_dense", "loss"):
        torch.testing.assert_close(mixed[key], alone[key])
    # A batch without any labelled pixel: every term is 0 and no parameter gets a gradient.
    target[:] = 255
    losses = module.compute_losses(network(images), target)
    assert {key: float(value) for key, value in losses.items()} == dict.fromkeys(
        ("loss_mask", "loss_category", "loss_dense", "loss"), 0.0
    )
    losses["loss"].backward()
    assert all(p.grad is None or torch.equal(p.grad, torch.zeros_like(p)) for p in network.parameters())


def test_loss_without_disabled_parts():
    network = SANet(3, backbone="test_resnet", category=False, dense=False)
    module = SANetModule(network, 3)
    target = torch.randint(0, 3, (2, 32, 32))
    losses = module.compute_losses(network(torch.randn(2, 3, 32, 32)), target)
    assert set(losses) == {"loss_mask", "loss"}
    torch.testing.assert_close(losses["loss"], losses["loss_mask"])
    with pytest.raises(ValueError, match="loss_weights is not used"):
        SANetModule(network, 3, loss_weights={"out": 1.0})


def test_gradients_reach_every_head():
    torch.manual_seed(0)
    network = SANet(4, backbone="test_resnet")
    module = SANetModule(network, 4)
    target = torch.randint(0, 4, (2, 32, 32))
    module.compute_losses(network(torch.randn(2, 3, 32, 32)), target)["loss"].backward()
    for part in (network.sa_heads, network.dense_head, network.category_head):
        for name, p in part.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_attention_maps_for_the_notebook():
    network = SANet(4, backbone="test_resnet").eval()
    maps = sa_attention_maps(network, torch.randn(1, 3, 40, 36))
    assert list(maps) == sorted(HEADS)
    for value, channels in zip(maps.values(), network.backbone.channels, strict=True):
        assert value.shape == (1, channels // 4, 40, 36) and (value >= 0).all()
    with pytest.raises(ValueError, match="no attention maps"):
        sa_attention_maps(SANet(4, backbone="test_resnet", sa_heads=False), torch.randn(1, 3, 32, 32))


def sa_head_params(c: int, k: int, num_convs: int = 2) -> int:
    """Two paths of [grouped 3×3 conv C → C/4 (groups 2) + BN] + (num_convs - 1) × [3×3 conv C/4 → C/4 + BN],
    then the 1×1 classifier with bias."""
    o = c // 4
    path = c * o * 9 // 2 + 2 * o + (num_convs - 1) * (o * o * 9 + 2 * o)
    return 2 * path + o * k + k


def dense_head_params(c: int, k: int) -> int:
    """FCNHead: 3×3 conv C → C/4 without bias, BN, 1×1 classifier with bias."""
    return c * (c // 4) * 9 + 2 * (c // 4) + (c // 4) * k + k


def category_params(c: int, k: int, width: int = 4) -> int:
    return c * width + width + width * k + k


@pytest.mark.parametrize("depth", [50, 101])
def test_parameter_count(depth):
    k = 59
    with torch.device("meta"):
        network = SANet(k, backbone=f"resnet{depth}")
        backbone = Backbone(f"resnet{depth}", out_indices=(1, 2, 3, 4))
    channels = backbone.channels
    assert channels == [256, 512, 1024, 2048]
    heads = sum(sa_head_params(c, k) for c in channels) + dense_head_params(2048, k) + category_params(2048, k)
    total = n_params(network)
    assert total == n_params(backbone) + heads
    assert n_params(network.dense_head) == dense_head_params(2048, k)
    print(
        f"SANet-R{depth}, {k} classes: {total:,} parameters ({total / 1e6:.2f} M), "
        f"{(total - dense_head_params(2048, k)) / 1e6:.2f} M without the dense head; paper (R101): 55.5 M"
    )
