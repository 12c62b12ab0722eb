"""One traversal step: top-k cell choice, the batched crops against slicing written here, child coordinates,
and the base-resolution resize against its sampling formula."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lightning_modules.tnet.traversal import child_positions, crop_cells, resize_to_base, select_cells


def test_select_cells_takes_the_top_k_in_cell_order_and_breaks_ties_to_the_lower_index():
    probs = torch.tensor([[0.1, 0.4, 0.05, 0.3, 0.15], [0.2, 0.2, 0.2, 0.2, 0.2]])
    assert select_cells(probs, 2).tolist() == [[1, 3], [0, 1]]
    assert select_cells(probs, 3).tolist() == [[1, 3, 4], [0, 1, 2]]


def test_select_cells_rejects_k_outside_the_grid():
    with pytest.raises(ValueError, match="cannot attend to 6 of the 5 cells"):
        select_cells(torch.full((1, 5), 0.2), 6)


def _reference_crop(image: np.ndarray, cell: int, n: int, patch: int, stride: int, before: int) -> np.ndarray:
    # Pad by hand with the official arithmetic's numbers, then slice one window.
    side = image.shape[-1]
    total = (n - 1) * stride + patch - side
    padded = np.pad(image, ((0, 0), (before, total - before), (before, total - before)))
    r, c = divmod(cell, n)
    return padded[:, r * stride : r * stride + patch, c * stride : c * stride + patch]


@pytest.mark.parametrize(
    ("side", "n", "overlap", "patch", "stride", "before"),
    [(224, 5, 0.34375, 77, 37, 1), (448, 3, 0.5, 224, 112, 0), (225, 3, 0.5, 112, 57, 1), (33, 4, 0.5, 16, 6, 1)],
)
def test_crops_equal_slices_of_the_padded_image(side, n, overlap, patch, stride, before):
    images = torch.randn(3, 2, side, side)
    cells = torch.stack([torch.tensor([0, n * n - 1]), torch.tensor([1, n + 1]), torch.tensor([n - 1, n * (n - 1)])])
    crops = crop_cells(images, cells, n, overlap)
    assert crops.shape == (6, 2, patch, patch)
    for i in range(3):
        for j in range(2):
            expected = _reference_crop(images[i].numpy(), int(cells[i, j]), n, patch, stride, before)
            np.testing.assert_array_equal(crops[i * 2 + j].numpy(), expected)


def test_child_positions_nest_in_the_parent_grid():
    y, x = torch.tensor([0, 2]), torch.tensor([0, 1])
    cells = torch.tensor([[1, 5], [0, 8]])
    cy, cx, cs = child_positions(y, x, cells, 3, level=2)
    assert cy.tolist() == [0, 1, 6, 8]
    assert cx.tolist() == [1, 2, 3, 5]
    assert cs.tolist() == [2, 2, 2, 2]


def test_resize_without_antialias_samples_the_two_pixels_at_each_half_pixel_centre():
    image = torch.randn(1, 1, 16, 16)
    # A 4× reduction with half-pixel centres reads source coordinate 4i + 1.5: the mean of pixels 4i+1 and 4i+2.
    rows = (image[..., 1::4, :] + image[..., 2::4, :]) / 2
    expected = (rows[..., 1::4] + rows[..., 2::4]) / 2
    torch.testing.assert_close(resize_to_base(image, (4, 4)), expected)
    smooth = resize_to_base(image, (4, 4), antialias=True)
    assert not torch.allclose(smooth, expected)
    torch.testing.assert_close(smooth, F.interpolate(image, (4, 4), mode="bilinear", antialias=True))


def test_resize_leaves_a_batch_at_the_base_resolution_alone():
    image = torch.randn(2, 3, 8, 8)
    assert resize_to_base(image, (8, 8)) is image
