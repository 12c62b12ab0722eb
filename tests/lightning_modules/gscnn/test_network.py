"""GSCNN network: the released model's parameter budget, Table 5 deltas, outputs at odd sizes, the fusion, the
decoder against formulas written here, checkpointing without double BN updates, and loading weights."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from datamodules.transforms import IMAGENET_MEAN, IMAGENET_STD
from lightning_modules.gscnn.canny import image_gradients
from lightning_modules.gscnn.network import (
    GSCNN,
    Decoder,
    released_state_dict,
    shape_stream_maps,
    shape_stream_parameters,
)
from lightning_modules.pretrained_weights import PretrainedWeightsError
from lightning_modules.wider_resnet import WiderResNet38


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def images(batch: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """ImageNet-normalised images of random grey levels."""
    grey = torch.randint(0, 256, (batch, 3, height, width), generator=torch.Generator().manual_seed(seed)).float()
    return (grey / 255 - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def randomise_norms(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random BN affine parameters and statistics, so that eval-mode BN is not the identity."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, nn.BatchNorm2d):
                layer.weight.copy_(torch.rand(layer.weight.shape, generator=generator) + 0.5)
                layer.bias.copy_(torch.randn(layer.bias.shape, generator=generator) * 0.3)
                layer.running_mean.copy_(torch.randn(layer.running_mean.shape, generator=generator) * 0.3)
                layer.running_var.copy_(torch.rand(layer.running_var.shape, generator=generator) + 0.5)
    return module


@pytest.fixture(scope="module")
def released() -> GSCNN:
    with torch.device("meta"):
        return GSCNN(19)


@pytest.fixture(scope="module")
def baseline() -> GSCNN:
    with torch.device("meta"):
        return GSCNN(19, shape_stream=False)


def test_released_parameter_budget(released):
    """Spec Sec. 1.1.5, counted on the official code."""
    stream, decoder = released.shape_stream, released.decoder
    assert n_params(released) == 137_278_190
    assert n_params(released.backbone) == 105_062_720
    assert n_params(released.aspp) == 30_412_032
    assert n_params(released.aspp.edge_conv) == 768
    assert n_params(decoder) == 1_695_488
    assert (n_params(decoder.bot_fine), n_params(decoder.bot_aspp), n_params(decoder.final_seg)) == (
        6_144,
        393_216,
        1_296_128,
    )
    assert n_params(stream) + n_params(released.cw) == 107_950
    assert [n_params(g) for g in (stream.gate1, stream.gate2, stream.gate3)] == [2_248, 616, 184]
    assert [n_params(r) for r in (stream.res1, stream.res2, stream.res3)] == [73_984, 18_560, 4_672]
    assert n_params(stream.dsn1) == 65 and n_params(released.cw) == 2


def test_unused_dsn1_is_frozen(released):
    assert not any(p.requires_grad for p in released.shape_stream.dsn1.parameters())
    trainable = sum(p.numel() for p in released.parameters() if p.requires_grad)
    assert trainable == 137_278_190 - 65


def test_shape_stream_parameters_and_the_wrn_table5_delta(released, baseline):
    added = n_params(released) - n_params(baseline)
    assert added == shape_stream_parameters(released) == 174_254 == 107_950 + 768 + 256 * 256
    assert shape_stream_parameters(baseline) == 0
    assert n_params(baseline.aspp) == 30_412_032 - 768 and baseline.decoder.bot_aspp.in_channels == 1280
    assert 100 * added / n_params(baseline) == pytest.approx(0.13, abs=0.01)
    assert 100 * added / n_params(baseline) == pytest.approx(0.1271, abs=1e-4)


@pytest.mark.parametrize(
    ("backbone", "delta", "base"), [("resnet50", 0.4269, 40_341_824), ("resnet101", 0.2902, 59_333_952)]
)
def test_table5_deltas_for_resnets(backbone, delta, base):
    """Paper Table 5: +0.43% (ResNet-50), +0.29% (ResNet-101)."""
    with torch.device("meta"):
        network = GSCNN(19, backbone)
        plain = GSCNN(19, backbone, shape_stream=False)
    added = n_params(network) - n_params(plain)
    assert n_params(plain) == base
    assert added == shape_stream_parameters(network) == 174_254 - 4096 + 2048  # dsn7 reads 2048 channels
    percent = 100 * added / n_params(plain)
    assert percent == pytest.approx(round(delta, 2), abs=0.01)
    assert percent == pytest.approx(delta, abs=1e-4)


def test_aspp_rates_follow_the_output_stride(released):
    assert [branch[0].dilation for branch in released.aspp.features] == [(1, 1), (12, 12), (24, 24), (36, 36)]
    with torch.device("meta"):
        os16 = GSCNN(4, "test_resnet", output_stride=16)
    assert [branch[0].dilation for branch in os16.aspp.features] == [(1, 1), (6, 6), (12, 12), (18, 18)]
    assert os16.pad_stride == 16


def test_official_layers_and_init(released):
    assert released.cw.weight.shape == (1, 2, 1, 1) and released.cw.bias is None
    assert released.shape_stream.fuse.bias is None and released.shape_stream.d1.bias is not None
    convs = [m for m in released.decoder.final_seg if isinstance(m, nn.Conv2d)]
    assert [tuple(c.weight.shape) for c in convs] == [(256, 304, 3, 3), (256, 256, 3, 3), (19, 256, 1, 1)]
    assert all(c.bias is None for c in convs)
    with torch.device("meta"):
        no_gradients = GSCNN(19, image_gradients=False)
    assert no_gradients.cw.weight.shape == (1, 1, 1, 1)


def test_final_seg_is_kaiming_normal():
    torch.manual_seed(0)
    decoder = Decoder(40, 8, 3)
    weight = decoder.final_seg[0].weight
    assert weight.std().item() == pytest.approx((2 / (304 * 9)) ** 0.5, rel=0.02)
    assert torch.equal(decoder.final_seg[1].weight, torch.ones(256))


@pytest.mark.parametrize("backbone", ["test_resnet", "resnet18"])
def test_outputs_at_odd_sizes_and_gradients(backbone):
    torch.manual_seed(0)
    network = GSCNN(5, backbone)
    outputs = network(images(2, 45, 61))
    assert set(outputs) == {"out", "edge"}
    assert outputs["out"].shape == (2, 5, 45, 61) and outputs["edge"].shape == (2, 1, 45, 61)
    (outputs["out"].square().mean() + outputs["edge"].square().mean()).backward()
    missing = [name for name, p in network.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
    assert network.shape_stream.gate1.weight.grad.abs().sum() > 0
    assert next(network.backbone.parameters()).grad.abs().sum() > 0


def test_wider_resnet_outputs_at_an_odd_size():
    torch.manual_seed(0)
    network = GSCNN(3).eval()
    with torch.no_grad():
        outputs = network(images(1, 21, 19))
    assert outputs["out"].shape == (1, 3, 21, 19) and outputs["edge"].shape == (1, 1, 21, 19)


def test_without_shape_stream_only_out():
    network = GSCNN(4, "test_resnet", shape_stream=False).eval()
    assert network.shape_stream is None and network.cw is None and network.aspp.edge_conv is None
    with torch.no_grad():
        outputs = network(images(1, 33, 35))
    assert set(outputs) == {"out"} and outputs["out"].shape == (1, 4, 33, 35)


def test_padding_then_cropping():
    """Without image gradients the network is a function of the zero-padded image, cropped back."""
    torch.manual_seed(0)
    network = randomise_norms(GSCNN(4, "test_resnet", image_gradients=False)).eval()
    x = images(1, 45, 61)
    with torch.no_grad():
        outputs = network(x)
        padded = network(F.pad(x, (0, 3, 0, 3)))
    for key in ("out", "edge"):
        assert torch.equal(outputs[key], padded[key][..., :45, :61])


def test_edge_output_is_logits_and_maps_agree():
    torch.manual_seed(0)
    network = randomise_norms(GSCNN(4, "test_resnet")).double().eval()
    with torch.no_grad():
        network.shape_stream.fuse.weight.mul_(50)
    x = images(2, 24, 20).double()
    with torch.no_grad():
        outputs = network(x)
    maps = shape_stream_maps(network, x)
    assert outputs["edge"].min() < 0 or outputs["edge"].max() > 1  # logits, not probabilities
    assert torch.allclose(maps["edge"], 1 / (1 + torch.exp(-outputs["edge"])), atol=1e-12, rtol=0)
    assert [tuple(g.shape) for g in maps["gates"]] == [(2, 1, 24, 20)] * 3
    assert all(g.min() > 0 and g.max() < 1 for g in maps["gates"])
    canny = image_gradients(x)
    assert torch.equal(maps["canny"], canny)
    w_edge, w_canny = network.cw.weight.flatten().tolist()
    expected = 1 / (1 + torch.exp(-(w_edge * maps["edge"] + w_canny * canny.double())))
    assert torch.allclose(maps["fused"], expected, atol=1e-12, rtol=0)


def test_released_canny_mode_and_no_gradients_fusion():
    torch.manual_seed(0)
    x = images(1, 16, 24)
    released = GSCNN(4, "test_resnet", canny_mode="released").eval()
    maps = shape_stream_maps(released, x)
    assert torch.equal(maps["canny"], image_gradients(x, mode="released"))
    assert set(maps["canny"].unique().tolist()) == {0.0, 255.0}  # the 0/255 scale the released cw was trained on
    plain = GSCNN(4, "test_resnet", image_gradients=False).double().eval()
    maps = shape_stream_maps(plain, x.double())
    expected = 1 / (1 + torch.exp(-plain.cw.weight.item() * maps["edge"]))
    assert torch.allclose(maps["fused"], expected, atol=1e-12, rtol=0)


def test_shape_stream_wiring():
    """edge = fuse(gate3(d3(res3(gate2(d2(res2(gate1(d1(res1(Up(stem))), s3))), s4))), s7)) with sᵢ = Up(dsnᵢ(·))."""
    torch.manual_seed(0)
    network = randomise_norms(GSCNN(4, "test_resnet")).double().eval()
    x = images(1, 16, 24).double()
    stream = network.shape_stream
    with torch.no_grad():
        stem, layer1, layer2, layer4 = network.backbone(x)

        def up(t):
            return F.interpolate(t, size=(16, 24), mode="bilinear", align_corners=True)

        c = stream.gate1(stream.d1(stream.res1(up(stem))), up(stream.dsn3(layer1)))
        c = stream.gate2(stream.d2(stream.res2(c)), up(stream.dsn4(layer2)))
        c = stream.gate3(stream.d3(stream.res3(c)), up(stream.dsn7(layer4)))
        assert torch.allclose(network(x)["edge"], stream.fuse(c), atol=1e-12, rtol=0)


def test_decoder_matches_its_formula():
    torch.manual_seed(0)
    decoder = randomise_norms(Decoder(10, 6, 3)).double().eval()
    aspp = torch.randn(1, 10, 3, 4, dtype=torch.float64)
    fine = torch.randn(1, 6, 6, 8, dtype=torch.float64)
    seg = decoder.final_seg
    up = F.interpolate(F.conv2d(aspp, decoder.bot_aspp.weight), size=(6, 8), mode="bilinear", align_corners=True)
    h = torch.cat([F.conv2d(fine, decoder.bot_fine.weight), up], dim=1)
    for conv, bn in ((seg[0], seg[1]), (seg[3], seg[4])):
        h = F.batch_norm(F.conv2d(h, conv.weight, padding=1), bn.running_mean, bn.running_var, bn.weight, bn.bias)
        h = torch.clamp(h, min=0)
    expected = F.interpolate(F.conv2d(h, seg[6].weight), size=(11, 15), mode="bilinear", align_corners=False)
    with torch.no_grad():
        assert torch.allclose(decoder(aspp, fine, (11, 15)), expected, atol=1e-10, rtol=0)


def test_checkpointed_shape_stream_updates_batchnorm_once():
    torch.manual_seed(0)
    plain = GSCNN(4, "test_resnet").train()
    checkpointed = GSCNN(4, "test_resnet", checkpoint_shape_stream=True).train()
    checkpointed.load_state_dict(plain.state_dict())
    x = images(2, 24, 20)
    results, calls = [], []
    for network in (plain, checkpointed):
        count = []
        network.shape_stream.res1.register_forward_hook(lambda *_, count=count: count.append(1))
        torch.manual_seed(1)
        outputs = network(x)
        (outputs["out"].square().mean() + outputs["edge"].square().mean()).backward()
        results.append(outputs)
        calls.append(len(count))
    assert calls == [1, 2]  # the checkpointed shape stream did run again in the backward pass
    for key in ("out", "edge"):
        assert torch.allclose(results[0][key], results[1][key], atol=1e-6, rtol=0)
    buffers = dict(checkpointed.named_buffers())
    for name, buffer in plain.named_buffers():
        assert torch.allclose(buffer.float(), buffers[name].float(), atol=1e-7, rtol=0), name
    assert buffers["shape_stream.res1.bn1.num_batches_tracked"].item() == 1
    assert buffers["shape_stream.res1.bn1.running_mean"].abs().sum() > 0  # updated once from 0
    grads = {name: p.grad for name, p in checkpointed.named_parameters()}
    for name, p in plain.named_parameters():
        if p.grad is None:
            assert grads[name] is None, name
        else:
            assert torch.allclose(p.grad, grads[name], atol=1e-6, rtol=1e-5), name


def test_pretrained_path_round_trip_for_wider_resnet(tmp_path):
    torch.manual_seed(0)
    trunk = WiderResNet38()
    path = tmp_path / "wrn38.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in trunk.state_dict().items()}}, path)
    network = GSCNN(19, pretrained_path=path).eval()
    x = images(1, 16, 16)
    with torch.no_grad():
        expected = trunk.eval()(x)
        features = network.backbone(x)
    assert all(torch.equal(a, b) for a, b in zip(features, expected, strict=True))
    bad = tmp_path / "bad.pth"
    torch.save({"mod1.conv1.weight": torch.zeros(64, 3, 3, 3), "stem.weight": torch.zeros(1)}, bad)
    with pytest.raises(PretrainedWeightsError, match=r"missing key\(s\): mod2.block1.bn1.0.weight"):
        GSCNN(19, pretrained_path=bad)


# State-dict entries of a BatchNorm2d (the official Norm2d), and WRN-38's modules mod2 .. mod7 in the official
# network/wider_resnet.py: (name, blocks, bottleneck); every module's block1 has a proj_conv (its width changes).
BN_ENTRIES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
OFFICIAL_WRN38_MODULES = (("mod2", 3, False), ("mod3", 3, False), ("mod4", 6, False), ("mod5", 3, False))
OFFICIAL_WRN38_MODULES += (("mod6", 1, True), ("mod7", 1, True))


def official_gscnn_keys() -> list[str]:
    """The keys of a released GSCNN checkpoint (DataParallel of ``network/gscnn.py``'s ``GSCNN`` with its training
    criterion), written from the official module names: WRN-38's ``IdentityResidualBlock`` (``bn1.0``, ``convs``
    with ``conv1`` / ``bn2.0`` / ``conv2`` [/ ``bn3.0`` / ``conv3``], ``proj_conv``), the torchvision-style
    ``BasicBlock`` of ``network/Resnet.py``, ``GatedSpatialConv2d``'s ``_gate_conv`` Sequential, the ASPP's
    ``features`` / ``img_conv`` / ``edge_conv`` and the loss's ``NLLLoss`` weight buffer."""

    def bn(prefix: str) -> list[str]:
        return [f"{prefix}.{entry}" for entry in BN_ENTRIES]

    keys = ["mod1.conv1.weight"]
    for module, blocks, bottleneck in OFFICIAL_WRN38_MODULES:
        for index in range(1, blocks + 1):
            block = f"{module}.block{index}"
            keys += [*bn(f"{block}.bn1.0"), f"{block}.convs.conv1.weight", *bn(f"{block}.convs.bn2.0")]
            keys.append(f"{block}.convs.conv2.weight")
            if bottleneck:
                keys += [*bn(f"{block}.convs.bn3.0"), f"{block}.convs.conv3.weight"]
            if index == 1:
                keys.append(f"{block}.proj_conv.weight")
    for dsn in ("dsn1", "dsn3", "dsn4", "dsn7"):
        keys += [f"{dsn}.weight", f"{dsn}.bias"]
    for stage in (1, 2, 3):
        res, gate = f"res{stage}", f"gate{stage}"
        keys += [f"{res}.conv1.weight", *bn(f"{res}.bn1"), f"{res}.conv2.weight", *bn(f"{res}.bn2")]
        keys += [f"d{stage}.weight", f"d{stage}.bias", f"{gate}.weight", *bn(f"{gate}._gate_conv.0")]
        keys += [f"{gate}._gate_conv.1.weight", f"{gate}._gate_conv.1.bias", f"{gate}._gate_conv.3.weight"]
        keys += [f"{gate}._gate_conv.3.bias", *bn(f"{gate}._gate_conv.4")]
    keys += ["fuse.weight", "cw.weight"]
    for branch in range(4):
        keys += [f"aspp.features.{branch}.0.weight", *bn(f"aspp.features.{branch}.1")]
    keys += ["aspp.img_conv.0.weight", *bn("aspp.img_conv.1"), "aspp.edge_conv.0.weight", *bn("aspp.edge_conv.1")]
    keys += ["bot_fine.weight", "bot_aspp.weight", "final_seg.0.weight", *bn("final_seg.1"), "final_seg.3.weight"]
    keys += [*bn("final_seg.4"), "final_seg.6.weight", "criterion.seg_loss.nll_loss.weight"]
    return ["module." + key for key in keys]


def test_released_state_dict_maps_official_names(released):
    official_keys = official_gscnn_keys()
    for key in (
        "module.mod1.conv1.weight",
        "module.mod2.block3.convs.bn2.0.running_var",
        "module.mod4.block6.convs.conv2.weight",
        "module.mod7.block1.convs.conv3.weight",
        "module.mod7.block1.proj_conv.weight",
        "module.dsn3.weight",
        "module.res1.conv1.weight",
        "module.gate1._gate_conv.1.weight",
        "module.gate3._gate_conv.4.running_mean",
        "module.aspp.edge_conv.0.weight",
        "module.aspp.features.3.0.weight",
        "module.bot_aspp.weight",
        "module.final_seg.0.weight",
        "module.criterion.seg_loss.nll_loss.weight",
    ):
        assert key in official_keys, key
    official = {key: torch.zeros(0) for key in official_keys}
    mapped = released_state_dict(official)
    assert set(mapped) == set(released.state_dict()) and len(mapped) == len(official) - 1
    assert mapped["backbone.mod7.block1.convs.conv3.weight"] is official["module.mod7.block1.convs.conv3.weight"]
    assert mapped["shape_stream.gate1._gate_conv.1.weight"] is official["module.gate1._gate_conv.1.weight"]
    assert mapped["decoder.final_seg.6.weight"] is official["module.final_seg.6.weight"]
    assert mapped["aspp.edge_conv.0.weight"] is official["module.aspp.edge_conv.0.weight"]
    assert not any("criterion" in key for key in mapped)
    unwrapped = {key.removeprefix("module."): value for key, value in official.items()}  # without DataParallel
    assert released_state_dict(unwrapped).keys() == mapped.keys()
    with pytest.raises(ValueError, match="'classifier' is not one of the official GSCNN's"):
        released_state_dict({"classifier.fc.weight": torch.zeros(1)})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"canny_mode": "opencv"}, "canny_mode must be one of"),
        ({"in_chans": 4}, r"image_gradients needs RGB images \(in_chans=3\)"),
        ({"shape_stream": False, "checkpoint_shape_stream": True}, "checkpoint_shape_stream=True needs"),
        ({"output_stride": 16}, "wider_resnet38 is built at output stride 8 only"),
        ({"pretrained": True}, "no downloadable weights"),
        ({"backbone": "test_resnet", "output_stride": 32}, "output_stride must be 8 or 16"),
        ({"backbone": "resnet5O"}, "Unknown backbone"),
    ],
)
def test_argument_errors(kwargs, match):
    with torch.device("meta"), pytest.raises(ValueError, match=match):
        GSCNN(19, **kwargs)


def test_shape_stream_maps_needs_the_shape_stream(baseline):
    with pytest.raises(ValueError, match="needs a GSCNN built with shape_stream=True"):
        shape_stream_maps(baseline, torch.zeros(1, 3, 8, 8))
