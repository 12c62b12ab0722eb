"""TNet's grid: the official arithmetic (NumPy rounding, ceil stride, padding split) on the paper's configurations
and on sides where the patch is a tie."""

import math

import numpy as np
import pytest

from lightning_modules.tnet import grid_geometry


def official(side, n, overlap):
    """The official computation written out with NumPy's rounding."""
    patch = int(np.round(overlap * side))
    stride = int(np.ceil((side - patch) / (n - 1)))
    padding = (n - 1) * stride + patch - side
    return patch, stride, int(np.ceil(padding / 2)), padding - int(np.ceil(padding / 2))


@pytest.mark.parametrize(
    ("side", "n", "overlap", "expected"),
    [
        (224, 5, 0.34375, (77, 37, 1, 0)),  # ImageNet
        (448, 3, 0.5, (224, 112, 0, 0)),  # fMoW stage 1
        (896, 3, 0.5, (448, 224, 0, 0)),  # fMoW level 1 at 896
        (448, 5, 0.35, (157, 73, 1, 0)),  # CUB / NABirds
    ],
)
def test_the_papers_configurations(side, n, overlap, expected):
    assert tuple(grid_geometry(side, n, overlap)) == expected == official(side, n, overlap)


@pytest.mark.parametrize("side", [449, 451, 453, 225, 227, 3, 5])
def test_ties_round_half_to_even_as_numpy(side):
    # ω · side ends in .5: 224.5 → 224, 225.5 → 226, 226.5 → 226, 112.5 → 112, 113.5 → 114, 1.5 → 2, 2.5 → 2.
    geometry = grid_geometry(side, 3, 0.5)
    assert tuple(geometry) == official(side, 3, 0.5)
    assert geometry.patch == {449: 224, 451: 226, 453: 226, 225: 112, 227: 114, 3: 2, 5: 2}[side]
    assert geometry.patch % 2 == 0 or side * 0.5 % 1 == 0


@pytest.mark.parametrize("side", range(40, 140, 7))
@pytest.mark.parametrize(("n", "overlap"), [(2, 0.6), (3, 0.5), (4, 0.3), (5, 0.34375), (7, 0.2)])
def test_patches_tile_the_padded_image(side, n, overlap):
    patch, stride, before, after = grid_geometry(side, n, overlap)
    assert (patch, stride, before, after) == official(side, n, overlap)
    assert before + side + after == (n - 1) * stride + patch
    assert 0 <= after <= before <= after + 1
    assert stride == math.ceil((side - patch) / (n - 1))


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((0, 3, 0.5), "side must be a positive number of pixels"),
        ((224, 1, 0.5), "num_patches must be an integer >= 2"),
        ((224, 3, 0.0), r"overlap must be the fraction of the side a patch covers, in \(0, 1\]"),
        ((224, 3, 1.5), r"in \(0, 1\]"),
        ((1, 3, 0.4), "rounds to an empty patch"),
    ],
)
def test_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        grid_geometry(*args)
