"""BagNet-77: the official parameter count, shapes at TNet's 77 px base resolution, the 77 px receptive field,
TensorFlow's "same" padding and the cropped shortcut of a valid block, against formulas written here."""

import pytest
import torch
import torch.nn.functional as F

from lightning_modules.tnet.bagnet import BagNet77, BagNetBlock, same_padding


def test_parameter_count_is_the_official_models():
    network = BagNet77()
    assert sum(p.numel() for p in network.parameters()) == 20_033_664
    parts = {name: sum(p.numel() for p in getattr(network, name).parameters()) for name in ("stem", "part2", "part6")}
    assert parts == {"stem": 1_792, "part2": 181_632, "part6": 1_049_088}


def test_shapes_at_the_base_resolution():
    location, h = BagNet77().eval()(torch.randn(2, 3, 77, 77))
    assert location.shape == (2, 1024, 5, 5) and h.shape == (2, 512)


def test_receptive_field_is_77_pixels():
    network = BagNet77(dropout_layers=0).double().eval()
    images = torch.randn(1, 3, 141, 141, dtype=torch.float64, requires_grad=True)
    _, features = network.feature_maps(images)
    row, col = features.shape[-2] // 2, features.shape[-1] // 2
    features[0, :, row, col].sum().backward()
    support = images.grad[0].abs().sum(0) > 0
    rows, cols = support.any(1).nonzero().flatten(), support.any(0).nonzero().flatten()
    assert int(rows[-1] - rows[0] + 1) == 77 and int(cols[-1] - cols[0] + 1) == 77


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "expected"),
    [(75, 3, 2, (1, 1)), (38, 3, 2, (0, 1)), (9, 3, 1, (1, 1)), (38, 1, 2, (0, 0))],
)
def test_same_padding_is_tensorflows(size, kernel, stride, expected):
    assert same_padding(size, kernel, stride) == expected


def test_a_valid_block_crops_its_shortcut_and_a_same_block_pads_after():
    torch.manual_seed(0)
    valid = BagNetBlock(4, 2, 3, stride=2, padding="valid").double()
    x = torch.randn(1, 4, 9, 9, dtype=torch.float64)
    y = F.leaky_relu(valid.conv1(x), 0.2)
    y = valid.conv3(F.leaky_relu(F.conv2d(y, valid.conv2.weight, valid.conv2.bias, stride=2), 0.2))
    shortcut = F.conv2d(x[..., 1:-1, 1:-1], valid.shortcut.weight, valid.shortcut.bias, stride=2)
    torch.testing.assert_close(valid(x), F.leaky_relu(y + shortcut, 0.2), rtol=0, atol=1e-12)
    same = BagNetBlock(8, 2, 3, stride=2).double()
    x = torch.randn(1, 8, 8, 8, dtype=torch.float64)
    y = F.pad(F.leaky_relu(same.conv1(x), 0.2), (0, 1, 0, 1))  # 8 → 4 at stride 2: 1 pixel, after
    y = same.conv3(F.leaky_relu(F.conv2d(y, same.conv2.weight, same.conv2.bias, stride=2), 0.2))
    shortcut = F.conv2d(x, same.shortcut.weight, same.shortcut.bias, stride=2)
    torch.testing.assert_close(same(x), F.leaky_relu(y + shortcut, 0.2), rtol=0, atol=1e-12)
    identity = BagNetBlock(8, 2, 1).double()
    assert identity.shortcut is None


def test_spatial_dropout_follows_the_official_parts():
    network = BagNet77(dropout_layers=1, keep_prob=0.5).train()
    torch.manual_seed(0)
    _, features = network.feature_maps(torch.randn(2, 3, 77, 77))
    dropped = (features.abs().sum(dim=(-2, -1)) == 0).float().mean()
    assert 0.3 < float(dropped) < 0.7  # about half of the 512 channels of each image
    with pytest.raises(ValueError, match=r"dropout_layers must be in 0\.\.4"):
        BagNet77(dropout_layers=5)
    with pytest.raises(ValueError, match=r"keep_prob must be in \(0, 1\]"):
        BagNet77(keep_prob=0.0)
