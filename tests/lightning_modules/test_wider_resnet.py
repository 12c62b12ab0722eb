"""WiderResNet-38-A2 (GSCNN's regular stream): the released layout's parameter counts, block formula, strides,
dilations, dropouts, feature shapes, and loading NVIDIA's ImageNet checkpoint format."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lightning_modules.pretrained_weights import PretrainedWeightsError
from lightning_modules.wider_resnet import IdentityResidualBlock, WiderResNet38, trunk_state_dict

# Spec Part 1, Sec. 1.1.1, counted on the official code.
MODULE_PARAMS = {
    "mod1": 1_728,
    "mod2": 820_608,
    "mod3": 3_279_616,
    "mod4": 27_274_752,
    "mod5": 26_484_736,
    "mod6": 9_442_304,
    "mod7": 37_758_976,
}


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def meta_trunk() -> WiderResNet38:
    with torch.device("meta"):
        return WiderResNet38()


def test_parameter_counts(meta_trunk):
    assert n_params(meta_trunk) == 105_062_720 == sum(MODULE_PARAMS.values())
    assert {name: n_params(getattr(meta_trunk, name)) for name in MODULE_PARAMS} == MODULE_PARAMS
    assert not any("bn_out" in key or "classifier" in key for key in meta_trunk.state_dict())
    assert not any(module.bias is not None for module in meta_trunk.modules() if isinstance(module, nn.Conv2d))


def test_official_names(meta_trunk):
    keys = set(meta_trunk.state_dict())
    for key in (
        "mod1.conv1.weight",
        "mod2.block1.bn1.0.running_var",
        "mod2.block1.convs.conv2.weight",
        "mod2.block1.proj_conv.weight",
        "mod4.block6.convs.bn2.0.weight",
        "mod6.block1.convs.bn3.0.bias",
        "mod7.block1.convs.conv3.weight",
    ):
        assert key in keys
    assert "mod2.block2.proj_conv.weight" not in keys  # same channels, stride 1: identity shortcut
    assert [len(getattr(meta_trunk, f"mod{i}")) for i in range(2, 8)] == [3, 3, 6, 3, 1, 1]


def test_strides_dilations_and_dropouts(meta_trunk):
    assert meta_trunk.mod4.block1.convs.conv1.stride == (2, 2) and meta_trunk.mod4.block1.proj_conv.stride == (2, 2)
    assert all(block.convs.conv1.stride == (1, 1) for block in list(meta_trunk.mod4)[1:])
    dilations = {
        f"mod{i}": {block.convs.conv2.dilation for block in getattr(meta_trunk, f"mod{i}")} for i in range(2, 8)
    }
    assert dilations == {
        "mod2": {(1, 1)},
        "mod3": {(1, 1)},
        "mod4": {(1, 1)},
        "mod5": {(2, 2)},
        "mod6": {(4, 4)},
        "mod7": {(4, 4)},
    }
    assert all(block.convs.conv2.padding == block.convs.conv2.dilation for block in meta_trunk.mod5)
    dropouts = [m for m in meta_trunk.modules() if isinstance(m, nn.Dropout2d)]
    assert [d.p for d in dropouts] == [0.3, 0.5]
    assert meta_trunk.mod6.block1.convs.dropout is dropouts[0] and meta_trunk.mod7.block1.convs.dropout is dropouts[1]
    assert list(meta_trunk.mod7.block1.convs)[-2:] == [dropouts[1], meta_trunk.mod7.block1.convs.conv3]
    assert nn.Dropout is not nn.Dropout2d  # the official global rebinding is not reproduced


def pre_activation(x: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    shape = (1, -1, 1, 1)
    normalised = (x - bn.running_mean.view(shape)) / torch.sqrt(bn.running_var.view(shape) + bn.eps)
    return torch.clamp(normalised * bn.weight.view(shape) + bn.bias.view(shape), min=0)


def randomised(module: nn.Module) -> nn.Module:
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.3)
        for name, b in module.named_buffers():
            if "running_mean" in name:
                b.copy_(torch.randn(b.shape, generator=generator))
            elif "running_var" in name:
                b.copy_(torch.rand(b.shape, generator=generator) + 0.5)
    return module.double().eval()


@pytest.mark.parametrize(
    ("in_channels", "channels", "stride", "dilation"),
    [(6, (4, 5), 2, 1), (5, (4, 5), 1, 2), (5, (3, 4, 5), 1, 4), (4, (3, 4, 6), 2, 1)],
)
def test_block_matches_the_pre_activation_formula(in_channels, channels, stride, dilation):
    block = randomised(IdentityResidualBlock(in_channels, channels, stride, dilation))
    x = torch.randn(2, in_channels, 9, 11, dtype=torch.float64)
    a = pre_activation(x, block.bn1[0])
    convs = block.convs
    if len(channels) == 2:
        h = F.conv2d(a, convs.conv1.weight, stride=stride, padding=dilation, dilation=dilation)
        residual = F.conv2d(pre_activation(h, convs.bn2[0]), convs.conv2.weight, padding=dilation, dilation=dilation)
    else:
        h = pre_activation(F.conv2d(a, convs.conv1.weight, stride=stride), convs.bn2[0])
        h = pre_activation(F.conv2d(h, convs.conv2.weight, padding=dilation, dilation=dilation), convs.bn3[0])
        residual = F.conv2d(h, convs.conv3.weight)
    projected = stride != 1 or in_channels != channels[-1]
    shortcut = F.conv2d(a, block.proj_conv.weight, stride=stride) if projected else x
    assert (block.proj_conv is not None) == projected
    with torch.no_grad():
        out = block(x)
    assert out.shape == (2, channels[-1], -(-9 // stride), -(-11 // stride))
    assert torch.allclose(out, residual + shortcut, atol=1e-10, rtol=0)


def test_block_identity_shortcut_uses_the_raw_input():
    """Pre-activation: the identity shortcut is x itself, not BN-ReLU(x), and x is not modified in place."""
    block = randomised(IdentityResidualBlock(4, (3, 4)))
    with torch.no_grad():
        block.convs.conv2.weight.zero_()
    x = torch.randn(1, 4, 5, 5, dtype=torch.float64)
    copy = x.clone()
    with torch.no_grad():
        assert torch.equal(block(x), x)
    assert torch.equal(x, copy)


def test_block_errors():
    with pytest.raises(ValueError, match=r"channels must have 2 .* or 3"):
        IdentityResidualBlock(4, (4,))
    with pytest.raises(ValueError, match="dropout must be None for a 2-entry"):
        IdentityResidualBlock(4, (4, 4), dropout=0.3)


def test_feature_shapes_on_an_odd_input():
    torch.manual_seed(0)
    trunk = WiderResNet38().eval()
    assert trunk.channels == [64, 128, 256, 512, 4096] and trunk.reductions == [1, 2, 4, 8, 8]
    with torch.no_grad():
        features = trunk(torch.randn(1, 3, 21, 19))
    assert [tuple(f.shape) for f in features] == [
        (1, 64, 21, 19),
        (1, 128, 11, 10),
        (1, 256, 6, 5),
        (1, 512, 3, 3),
        (1, 4096, 3, 3),
    ]


def imagenet_checkpoint(trunk: WiderResNet38) -> dict:
    """NVIDIA/semantic-segmentation's ``wider_resnet38.pth.tar`` layout: DataParallel names, the ImageNet head
    (``bn_out``, ``classifier.fc``), wrapped in ``{"state_dict": ...}``, and no ``num_batches_tracked``."""
    state = {f"module.{k}": v for k, v in trunk.state_dict().items() if not k.endswith("num_batches_tracked")}
    head = nn.BatchNorm2d(4096).state_dict()
    state |= {f"module.bn_out.0.{k}": v for k, v in head.items() if k != "num_batches_tracked"}
    state |= {"module.classifier.fc.weight": torch.zeros(1000, 4096), "module.classifier.fc.bias": torch.zeros(1000)}
    return {"state_dict": state, "epoch": 90}


def test_imagenet_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    source = WiderResNet38()
    with torch.no_grad():
        for name, buffer in source.named_buffers():
            if "running_var" in name:
                buffer.uniform_(0.5, 1.5)
    path = tmp_path / "wider_resnet38.pth.tar"
    torch.save(imagenet_checkpoint(source), path)
    torch.manual_seed(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the ImageNet head is dropped on purpose, without a warning
        loaded = WiderResNet38(pretrained_path=path)
    loaded_state = loaded.state_dict()
    for key, value in source.state_dict().items():
        assert torch.equal(loaded_state[key], value), key
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(source.eval()(x), loaded.eval()(x), strict=True))


def test_trunk_state_dict_keeps_unknown_keys_for_the_check():
    own = {"mod1.conv1.weight": torch.zeros(1), "mod2.block1.bn1.0.num_batches_tracked": torch.tensor(3)}
    state = {"mod1.conv1.weight": torch.ones(1), "bn_out.0.weight": torch.ones(1), "other.weight": torch.ones(1)}
    trunk = trunk_state_dict(state, own)
    assert set(trunk) == {"mod1.conv1.weight", "other.weight", "mod2.block1.bn1.0.num_batches_tracked"}
    assert trunk["mod2.block1.bn1.0.num_batches_tracked"].item() == 0


def test_wrong_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, path)
    with pytest.raises(PretrainedWeightsError, match=r"missing key\(s\): mod1.conv1.weight"):
        WiderResNet38(pretrained_path=path)
