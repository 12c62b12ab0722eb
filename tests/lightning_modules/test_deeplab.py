import pytest
import torch

from lightning_modules.deeplab import DeepLabV3Plus


@pytest.mark.parametrize("output_stride", [8, 16])
def test_output_shape(output_stride):
    network = DeepLabV3Plus(7, backbone="test_resnet", output_stride=output_stride).eval()
    with torch.no_grad():
        outputs = network(torch.randn(2, 3, 64, 96))
    assert set(outputs) == {"out"}
    assert outputs["out"].shape == (2, 7, 64, 96)
    assert network.model.encoder.output_stride == output_stride


def test_backbone_is_the_timm_encoder():
    network = DeepLabV3Plus(3, backbone="resnet18")
    encoder = sum(p.numel() for p in network.backbone.parameters())
    # torchvision's ResNet-18 has 11,689,512 parameters, 513,000 of them in the classifier.
    assert encoder == 11_689_512 - 513_000


def test_bad_output_stride():
    with pytest.raises(ValueError, match="output_stride 8 or 16"):
        DeepLabV3Plus(3, backbone="test_resnet", output_stride=32)


def test_unknown_backbone():
    with pytest.raises(ValueError, match="Unknown backbone"):
        DeepLabV3Plus(3, backbone="not_a_model")


def test_wrong_input_channels():
    network = DeepLabV3Plus(3, backbone="test_resnet")
    with pytest.raises(ValueError, match="in_chans=3"):
        network(torch.randn(1, 4, 64, 64))


def test_sizes_the_stride_does_not_divide_are_padded_and_cropped_back():
    torch.manual_seed(0)
    network = DeepLabV3Plus(3, backbone="test_resnet").eval()
    images = torch.randn(1, 3, 360, 200)
    with torch.no_grad():
        out = network(images)["out"]
        padded = network.model(torch.nn.functional.pad(images, (0, 8, 0, 8)))
    assert out.shape == (1, 3, 360, 200)
    torch.testing.assert_close(out, padded[..., :360, :200])
