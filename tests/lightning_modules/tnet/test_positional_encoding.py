"""TNet's positional encoding against the official formula written out with NumPy, in float64."""

import math

import numpy as np
import pytest
import torch

from lightning_modules.tnet import positional_encoding


def reference(y, x, s, channels, min_inv, max_inv):
    k = channels // 6
    out = np.zeros((len(y), channels))
    for n, triplet in enumerate(zip(y, x, s, strict=True)):
        for dim, coordinate in enumerate(triplet):
            for j in range(k):
                omega = (1.0 / min_inv) * math.exp(j * math.log(min_inv / max_inv) / (k - 1))
                out[n, dim * 2 * k + j] = math.sin(coordinate * omega)
                out[n, dim * 2 * k + k + j] = math.cos(coordinate * omega)
    return out


@pytest.mark.parametrize(("channels", "min_inv", "max_inv"), [(512, 1.0, 100.0), (320, 1.0, 100.0), (13, 2.0, 1e4)])
def test_equals_the_official_formula(channels, min_inv, max_inv):
    # Two levels of a 5 × 5 grid: the image (0, 0, 0), its cells (r, c, 1) and grandchildren (y·5 + r, x·5 + c, 2).
    y = torch.tensor([0, 0, 4, 2, 2 * 5 + 3, 4 * 5 + 4], dtype=torch.float64)
    x = torch.tensor([0, 3, 1, 2, 0 * 5 + 1, 1 * 5 + 0], dtype=torch.float64)
    s = torch.tensor([0, 1, 1, 1, 2, 2], dtype=torch.float64)
    encoding = positional_encoding(y, x, s, channels, min_inv, max_inv)
    assert encoding.shape == (6, channels) and encoding.dtype == torch.float64
    expected = reference(y.tolist(), x.tolist(), s.tolist(), channels, min_inv, max_inv)
    assert np.abs(encoding.numpy() - expected).max() <= 1e-12


def test_layout_of_the_imagenet_encoding():
    # 512 channels: K = 85 frequencies from 1 to 0.01; 510 used, the last 2 zero; the image's own (0, 0, 0)
    # encodes as sin 0 = 0 and cos 0 = 1 in every block.
    encoding = positional_encoding(torch.zeros(1), torch.zeros(1), torch.zeros(1), 512)[0]
    k = 85
    for dim in range(3):
        block = encoding[dim * 2 * k : (dim + 1) * 2 * k]
        assert torch.equal(block[:k], torch.zeros(k)) and torch.equal(block[k:], torch.ones(k))
    assert torch.equal(encoding[510:], torch.zeros(2))
    one = positional_encoding(torch.ones(1), torch.zeros(1), torch.zeros(1), 512)[0]
    assert one[0] == pytest.approx(math.sin(1.0)) and one[k - 1] == pytest.approx(math.sin(0.01), rel=1e-6)
    integer = positional_encoding(torch.tensor([3]), torch.tensor([1]), torch.tensor([1]), 64)
    assert integer.dtype == torch.float32


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"channels": 11}, "channels must be >= 12"),
        ({"channels": 64, "min_inv_freq": 100.0, "max_inv_freq": 1.0}, "need 0 < min_inv_freq < max_inv_freq"),
    ],
)
def test_bad_arguments(kwargs, match):
    coordinates = torch.zeros(2)
    with pytest.raises(ValueError, match=match):
        positional_encoding(coordinates, coordinates, coordinates, **kwargs)
    with pytest.raises(ValueError, match="1-D tensors of one length"):
        positional_encoding(torch.zeros(2), torch.zeros(3), torch.zeros(2), 64)
