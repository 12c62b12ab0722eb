import pytest
import torch

from lightning_modules.fcn import FCN, FCNHead


def fcn_head_params(in_channels: int, num_classes: int) -> int:
    inter = in_channels // 4
    return in_channels * inter * 9 + 2 * inter + inter * num_classes + num_classes


def test_output_shapes_at_odd_size():
    network = FCN(5, backbone="test_resnet").eval()
    with torch.no_grad():
        outputs = network(torch.randn(2, 3, 45, 47))
    assert set(outputs) == {"out", "aux"}
    assert outputs["out"].shape == outputs["aux"].shape == (2, 5, 45, 47)


def test_without_aux_head():
    network = FCN(3, backbone="test_resnet", aux=False).eval()
    with torch.no_grad():
        assert set(network(torch.randn(1, 3, 32, 32))) == {"out"}
    assert network.aux_head is None


def test_resnet50_heads_parameter_count():
    # PyTorch-Encoding's FCNHead: 3x3 conv to C/4 without bias, BN, 1x1 classifier with bias;
    # the main head reads layer4 (2048 channels), the auxiliary head layer3 (1024).
    network = FCN(19, backbone="resnet50")
    assert sum(p.numel() for p in network.head.parameters()) == fcn_head_params(2048, 19)
    assert sum(p.numel() for p in network.aux_head.parameters()) == fcn_head_params(1024, 19)
    assert isinstance(network.head, FCNHead)
    assert network.backbone.reductions == [8, 8]


def test_logits_are_upsampled_from_stride_8():
    network = FCN(4, backbone="test_resnet", aux=False).eval()
    with torch.no_grad():
        out = network(torch.randn(1, 3, 64, 64))["out"]
        coarse = network.head(network.backbone(torch.randn(1, 3, 64, 64))[1])
    assert coarse.shape[-2:] == (8, 8)
    assert out.shape[-2:] == (64, 64)


def test_wrong_input_channels():
    network = FCN(4, backbone="test_resnet")
    with pytest.raises(ValueError, match=r"have 1 channels but the network was built for in_chans=3"):
        network(torch.randn(1, 1, 32, 32))


def test_single_channel_network():
    network = FCN(4, backbone="test_resnet", in_chans=1).eval()
    with torch.no_grad():
        assert network(torch.randn(1, 1, 32, 32))["out"].shape == (1, 4, 32, 32)


def test_integer_images_rejected():
    network = FCN(4, backbone="test_resnet")
    with pytest.raises(ValueError, match="floating-point"):
        network(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
