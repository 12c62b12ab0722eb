"""ASPP with Gated-SCNN's edge branch: the official branch order against a formula written here, and the plain
DeepLabV3+ ASPP without it."""

import pytest
import torch
import torch.nn.functional as F

from lightning_modules.blocks.aspp import ASPP


def test_aspp_with_edge_branch_matches_its_formula(randomise):
    torch.manual_seed(0)
    aspp = randomise(ASPP(6, output_stride=8, reduction=4)).double().eval()
    x = torch.randn(2, 6, 5, 7, dtype=torch.float64)
    edge = torch.rand(2, 1, 40, 56, dtype=torch.float64)

    def branch(block, t, dilation=1):
        conv, bn = block[0], block[1]
        y = F.conv2d(t, conv.weight, padding=dilation * (conv.kernel_size[0] // 2), dilation=dilation)
        y = (y - bn.running_mean.view(1, -1, 1, 1)) / torch.sqrt(bn.running_var.view(1, -1, 1, 1) + bn.eps)
        return torch.clamp(y * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1), min=0)

    pooled = branch(aspp.img_conv, x.mean(dim=(2, 3), keepdim=True)).expand(-1, -1, 5, 7)
    small_edge = F.interpolate(edge, size=(5, 7), mode="bilinear", align_corners=True)
    expected = torch.cat(
        [
            pooled,
            branch(aspp.edge_conv, small_edge),
            branch(aspp.features[0], x),
            *(branch(aspp.features[i + 1], x, rate) for i, rate in enumerate((12, 24, 36))),
        ],
        dim=1,
    )
    with torch.no_grad():
        assert torch.allclose(aspp(x, edge), expected, atol=1e-10, rtol=0)
    with pytest.raises(ValueError, match="has edge branch: expected an edge map"):
        aspp(x)


def test_without_the_edge_branch_it_is_the_five_branch_aspp():
    aspp = ASPP(4096, output_stride=8, edge=False)
    with_edge = ASPP(4096, output_stride=8)
    count = sum(p.numel() for p in aspp.parameters())
    assert sum(p.numel() for p in with_edge.parameters()) - count == 768  # 1 → 256 conv and its BN
    assert sum(p.numel() for p in with_edge.parameters()) == 30_412_032
    assert (aspp.out_channels, with_edge.out_channels) == (1280, 1536)
    with pytest.raises(ValueError, match="has no edge branch: expected no edge map"):
        aspp(torch.zeros(1, 4096, 2, 2), torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="output_stride must be 8 or 16"):
        ASPP(8, output_stride=32)
