"""TNet's ImageNet location module: the official parameter count, the policy against a formula written here,
the bound that the L2-normalised logits put on it, and no gradient into the features."""

import math

import torch
import torch.nn.functional as F

from lightning_modules.tnet.location import LocationModule


def test_parameter_count_is_the_official_models():
    assert sum(p.numel() for p in LocationModule().parameters()) == 788_485


def test_policy_equals_its_formula():
    torch.manual_seed(0)
    module = LocationModule(location_channels=6, global_channels=4).double()
    with torch.no_grad():
        module.height_scaling.weight.fill_(0.7)
        module.height_scaling.bias.fill_(-0.2)
        module.width_scaling.weight.fill_(1.3)
    grid = torch.randn(2, 6, 3, 3, dtype=torch.float64)
    h = torch.randn(2, 4, dtype=torch.float64)
    policy = module(grid, h)
    coords = [-1.0, 0.0, 1.0]
    for b in range(2):
        logits = []
        for i in range(3):
            for j in range(3):
                u = torch.cat(
                    [
                        grid[b, :, i, j],
                        h[b],
                        torch.tensor([0.7 * coords[i] - 0.2, 1.3 * coords[j]], dtype=torch.float64),
                    ]
                )
                hidden = F.leaky_relu(module.conv.weight[:, :, 0, 0] @ u + module.conv.bias, 0.2)
                logits.append(module.output_linear.weight[0, :, 0, 0] @ hidden + module.output_linear.bias[0])
        q = torch.stack(logits)
        expected = torch.softmax(q / q.norm(), dim=0)
        torch.testing.assert_close(policy[b], expected, rtol=0, atol=1e-12)


def test_policy_is_soft_and_trains_only_itself():
    torch.manual_seed(0)
    module = LocationModule()
    grid = (10 * torch.randn(3, 1024, 5, 5)).requires_grad_()
    h = torch.randn(3, 512, requires_grad=True)
    policy = module(grid, h)
    assert policy.shape == (3, 25)
    torch.testing.assert_close(policy.sum(1), torch.ones(3))
    ratio = policy.detach().max(1).values / policy.detach().min(1).values
    assert float(ratio.max()) <= math.exp(2) * (1 + 1e-5)
    policy[:, 0].log().sum().backward()
    assert grid.grad is None and h.grad is None
    assert all(p.grad is not None for p in module.parameters())
