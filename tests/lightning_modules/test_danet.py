"""DANet network: head layout and parameter count of the official code, outputs, multi-grid, attention maps."""

import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn

from lightning_modules.danet import DANet, DANetHead, attention_maps, set_multi_grid
from lightning_modules.segmentation import SegmentationModule


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def official_head_params(in_channels: int, num_classes: int) -> int:
    """The official DANetHead's layers, written out one by one."""
    inter = in_channels // 4
    key = inter // 8
    conv3x3_bn = inter * inter * 9 + 2 * inter  # conv51 / conv52: no bias, BN weight and bias
    layers = {
        "conv5a": in_channels * inter * 9 + 2 * inter,
        "conv5c": in_channels * inter * 9 + 2 * inter,
        "sa.query_conv": inter * key + key,
        "sa.key_conv": inter * key + key,
        "sa.value_conv": inter * inter + inter,
        "sa.gamma": 1,
        "sc.gamma": 1,
        "conv51": conv3x3_bn,
        "conv52": conv3x3_bn,
        "conv6": inter * num_classes + num_classes,
        "conv7": inter * num_classes + num_classes,
        "conv8": inter * num_classes + num_classes,
    }
    return sum(layers.values())


@pytest.mark.parametrize("num_classes", [19, 59, 60, 171])
def test_head_parameter_count_matches_the_official_layers(num_classes):
    head = DANetHead(2048, num_classes)
    assert n_params(head) == official_head_params(2048, num_classes) == 23_925_378 + 1_539 * num_classes
    if num_classes == 19:
        assert n_params(head) == 23_954_619


def test_danet_resnet101_parameter_count():
    network = DANet(19, backbone="resnet101", pretrained=False)
    features = timm.create_model("resnet101", features_only=True, out_indices=(4,), output_stride=8)
    assert n_params(network.backbone) == n_params(features) == 42_500_160
    assert n_params(network) == n_params(features) + official_head_params(2048, 19) == 66_454_779


def test_outputs_at_odd_size():
    network = DANet(5, backbone="test_resnet", aux=True).eval()
    with torch.no_grad():
        outputs = network(torch.randn(2, 3, 45, 47))
    assert set(outputs) == {"out", "pam", "cam", "aux"}
    assert all(logits.shape == (2, 5, 45, 47) for logits in outputs.values())
    assert network.loss_weights(0.4) == {"out": 1.0, "pam": 1.0, "cam": 1.0, "aux": 0.4}


@pytest.mark.parametrize(("pam", "cam"), [(True, False), (False, True)])
def test_single_branch_heads(pam, cam):
    network = DANet(4, backbone="test_resnet", pam=pam, cam=cam).eval()
    head = network.head
    assert (head.sa is not None, head.sc is not None, head.conv8) == (pam, cam, None)
    assert (head.conv5a is not None, head.conv5c is not None) == (pam, cam)
    with torch.no_grad():
        outputs = network(torch.randn(1, 3, 32, 32))
    assert set(outputs) == {"out"} and outputs["out"].shape == (1, 4, 32, 32)
    assert network.loss_weights() == {"out": 1.0}
    features = network.backbone(torch.randn(1, 3, 32, 32))[-1]
    branch = head.conv6(head.conv51(head.sa(head.conv5a(features)))) if pam else None
    if cam:
        branch = head.conv7(head.conv52(head.sc(head.conv5c(features))))
    assert branch.shape == (1, 4, 4, 4)
    with pytest.raises(ValueError, match="at least one of pam / cam"):
        DANetHead(64, 4, pam=False, cam=False)


def test_fused_output_is_the_classified_sum_of_the_branches():
    torch.manual_seed(0)
    head = DANetHead(32, 3).eval()
    with torch.no_grad():
        head.sa.gamma.fill_(0.5)
        head.sc.gamma.fill_(0.5)
        x = torch.randn(2, 32, 6, 7)
        outputs = head(x)
        sa_conv = head.conv51(head.sa(head.conv5a(x)))
        sc_conv = head.conv52(head.sc(head.conv5c(x)))
        torch.testing.assert_close(outputs["out"], head.conv8(sa_conv + sc_conv))
        torch.testing.assert_close(outputs["pam"], head.conv6(sa_conv))
        torch.testing.assert_close(outputs["cam"], head.conv7(sc_conv))


def test_training_forward_draws_dropout_in_the_official_order():
    # The official DANetHead.forward: conv5a, sa, conv51, conv6 (dropout), conv5c, sc, conv52, conv7 (dropout), conv8
    # (dropout). With one seed, each Dropout2d mask must fall on the branch the official code draws it for.
    torch.manual_seed(0)
    head = DANetHead(128, 3).train()  # 2 images × 32 channels: 64 dropout draws per classifier
    x = torch.randn(2, 128, 6, 7)
    with torch.no_grad():
        head.sa.gamma.fill_(0.5)
        head.sc.gamma.fill_(0.5)
        torch.manual_seed(1)
        outputs = head(x)
        torch.manual_seed(1)
        sa_conv = head.conv51(head.sa(head.conv5a(x)))
        pam = head.conv6(sa_conv)
        sc_conv = head.conv52(head.sc(head.conv5c(x)))
        cam = head.conv7(sc_conv)
        out = head.conv8(sa_conv + sc_conv)
    for key, expected in (("out", out), ("pam", pam), ("cam", cam)):
        torch.testing.assert_close(outputs[key], expected)


def test_logits_are_upsampled_bilinearly_with_align_corners_as_in_the_official_code():
    torch.manual_seed(0)
    network = DANet(3, backbone="test_resnet").eval()
    images = torch.randn(1, 3, 45, 47)
    with torch.no_grad():
        head = network.head(network.backbone(images)[-1])
        outputs = network(images)
    for key, logits in head.items():
        expected = F.interpolate(logits, size=(45, 47), mode="bilinear", align_corners=True)
        torch.testing.assert_close(outputs[key], expected)


def test_classifiers_drop_whole_channels():
    # Official classifiers: Dropout2d(0.1) then a 1×1 convolution; in training a channel is kept whole or zeroed.
    head = DANetHead(64, 3)
    torch.manual_seed(0)
    for classifier in (head.conv6, head.conv7, head.conv8):
        dropped = classifier[0].train()(torch.ones(4, 16, 5, 5))
        per_channel = dropped.flatten(2)
        assert torch.equal(per_channel.amin(dim=-1), per_channel.amax(dim=-1))
        torch.testing.assert_close(per_channel[..., 0].unique(), torch.tensor([0.0, 1 / 0.9]))


def test_fused_and_naive_networks_agree():
    torch.manual_seed(0)
    fused = DANet(3, backbone="test_resnet").eval()
    naive = DANet(3, backbone="test_resnet", pam_mode="naive").eval()
    with torch.no_grad():
        fused.head.sa.gamma.fill_(1.0)
        naive.load_state_dict(fused.state_dict())
        images = torch.randn(2, 3, 40, 48)
        for key, logits in fused(images).items():
            torch.testing.assert_close(logits, naive(images)[key], rtol=1e-5, atol=1e-5)


def test_multi_grid_dilates_layer4_blocks():
    network = DANet(4, backbone="resnet50", multi_grid=(4, 8, 16))
    convs = [block.conv2 for block in network.backbone.body.layer4]
    assert [conv.dilation for conv in convs] == [(4, 4), (8, 8), (16, 16)]
    assert [conv.padding for conv in convs] == [(4, 4), (8, 8), (16, 16)]
    plain = DANet(4, backbone="resnet50")
    assert [block.conv2.dilation for block in plain.backbone.body.layer4] == [(2, 2), (4, 4), (4, 4)]


def test_multi_grid_changes_the_features_but_not_their_size():
    # test_resnet's layer4 is one basic block: its conv1 carries the block's dilation.
    torch.manual_seed(0)
    plain = DANet(4, backbone="test_resnet").eval()
    grid = DANet(4, backbone="test_resnet", multi_grid=(3,)).eval()
    with torch.no_grad():
        plain.backbone.body.layer4[0].bn2.weight.fill_(1.0)  # timm zero-initialises it: the residual branch would be 0
    grid.load_state_dict(plain.state_dict())
    assert grid.backbone.body.layer4[0].conv1.dilation == (3, 3)
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        plain_features, grid_features = plain.backbone(images)[-1], grid.backbone(images)[-1]
    assert plain_features.shape == grid_features.shape == (1, 96, 8, 8)
    assert not torch.allclose(plain_features, grid_features)


def test_multi_grid_errors():
    backbone = DANet(4, backbone="test_efficientnet").backbone
    with pytest.raises(ValueError, match="timm ResNet backbone"):
        set_multi_grid(backbone)
    with pytest.raises(ValueError, match="output stride 32"):
        DANet(4, backbone="test_resnet", output_stride=32, multi_grid=(4, 8, 16))
    with pytest.raises(ValueError, match="positive integers"):
        DANet(4, backbone="test_resnet", multi_grid=(0,))


def test_attention_maps_are_the_rows_of_the_full_position_attention():
    torch.manual_seed(0)
    network = DANet(4, backbone="test_resnet").eval()
    images = torch.randn(2, 3, 57, 49)
    maps = attention_maps(network, images, [(0, 0), (56, 48), (28, 10)])
    head = network.head
    with torch.no_grad():
        features = network.backbone(images)[-1]
        h, w = features.shape[-2:]
        assert (h, w) == (8, 7)
        assert maps.queries.tolist() == [[0, 0], [7, 6], [4, 1]]  # align_corners=True: round(y · (h - 1) / (H - 1))
        pam_input = head.conv5a(features)
        q = head.sa.query_conv(pam_input).flatten(2)
        k = head.sa.key_conv(pam_input).flatten(2)
        full = torch.softmax(q.transpose(1, 2) @ k, dim=-1)  # (B, N, N)
        channel = head.sc.attention(head.conv5c(features))
    assert maps.position.shape == (2, 3, h, w) and maps.channel.shape == (2, 24, 24)
    torch.testing.assert_close(maps.position.sum(dim=(-2, -1)), torch.ones(2, 3))
    torch.testing.assert_close(maps.position.flatten(2), full[:, [0, 7 * w + 6, 4 * w + 1]])
    torch.testing.assert_close(maps.channel, channel)
    torch.testing.assert_close(maps.channel.sum(dim=-1), torch.ones(2, 24))


def test_attention_maps_query_cells_without_align_corners():
    # align_corners=False: pixel y lies in cell floor((y + 0.5) · h / H).
    network = DANet(4, backbone="test_resnet", align_corners=False).eval()
    maps = attention_maps(network, torch.randn(1, 3, 64, 64), [(0, 63), (8, 7), (63, 40)])
    assert maps.queries.tolist() == [[0, 7], [1, 0], [7, 5]]


def test_attention_maps_without_a_branch_and_bad_points():
    network = DANet(4, backbone="test_resnet", cam=False).eval()
    maps = attention_maps(network, torch.randn(1, 3, 32, 32), torch.tensor([[3, 4]]))
    assert maps.channel is None and maps.position.shape == (1, 1, 4, 4)
    with pytest.raises(ValueError, match="inside the 32×32 images"):
        attention_maps(network, torch.randn(1, 3, 32, 32), [(32, 0)])


def test_training_step_supervises_the_three_outputs():
    network = DANet(4, backbone="test_resnet")
    module = SegmentationModule(network, 4, loss_weights=network.loss_weights())
    images, target = torch.randn(2, 3, 32, 32), torch.randint(0, 4, (2, 32, 32))
    losses = module.compute_losses(network(images), target)
    assert set(losses) == {"loss", "loss_out", "loss_pam", "loss_cam"}
    torch.testing.assert_close(losses["loss"], losses["loss_out"] + losses["loss_pam"] + losses["loss_cam"])
    losses["loss"].backward()
    assert network.head.sa.gamma.grad is not None and network.head.sc.gamma.grad is not None
