"""Ground-truth boundaries: equal to the official SciPy distance-transform procedure, written out here."""

import numpy as np
import pytest
import torch
from scipy.ndimage import distance_transform_edt

from lightning_modules.gscnn.edges import class_masks, disk_kernel, edge_targets


def official_edges(labels: np.ndarray, num_classes: int, radius: float, offset: int, skip_absent: bool) -> np.ndarray:
    """``datasets/edge_utils.py``: one-hot with ``label == i + offset``, zero-pad by 1, EDT(mask) + EDT(1 - mask),
    keep ``0 < dist <= radius``, union over channels, crop; per image, ``(B, 1, H, W)``.

    ``skip_absent`` drops the channels of absent classes, whose ``EDT(1 - mask)`` has no zero to measure from.
    """
    out = []
    for image in labels:
        edges = np.zeros(image.shape, dtype=bool)
        for i in range(num_classes):
            mask = (image == i + offset).astype(np.uint8)
            if skip_absent and not mask.any():
                continue
            padded = np.pad(mask, 1, mode="constant", constant_values=0)
            dist = distance_transform_edt(padded) + distance_transform_edt(1.0 - padded)
            dist = dist[1:-1, 1:-1]
            edges |= (dist > 0) & (dist <= radius)
        out.append(edges[None])
    return np.stack(out).astype(np.float32)


def blob_labels(batch: int, height: int, width: int, num_classes: int, seed: int) -> torch.Tensor:
    """Blobs of random classes (rectangles and discs painted in turn) with void regions and void specks."""
    rng = np.random.default_rng(seed)
    labels = np.full((batch, height, width), rng.integers(0, num_classes), dtype=np.int64)
    yy, xx = np.mgrid[:height, :width]
    for b in range(batch):
        for _ in range(rng.integers(3, 9)):
            value = 255 if rng.random() < 0.2 else rng.integers(0, num_classes)
            cy, cx = rng.integers(0, height), rng.integers(0, width)
            size = rng.integers(1, max(2, min(height, width) // 2))
            if rng.random() < 0.5:
                shape = (np.abs(yy - cy) <= size) & (np.abs(xx - cx) <= rng.integers(0, size + 1))
            else:
                shape = (yy - cy) ** 2 + (xx - cx) ** 2 <= size**2
            labels[b][shape] = value
        specks = rng.random((height, width)) < 0.02
        labels[b][specks] = 255
    return torch.from_numpy(labels)


CASES = [  # (batch, height, width, num_classes, seed)
    (1, 1, 7, 2, 0),
    (2, 5, 3, 3, 1),
    (3, 17, 23, 4, 2),
    (2, 32, 29, 7, 3),
    (1, 40, 40, 19, 4),
]


@pytest.mark.parametrize("offset", [0, 1])
@pytest.mark.parametrize("radius", [1, 2])
@pytest.mark.parametrize("case", CASES)
def test_equal_to_the_official_procedure(case, radius, offset):
    batch, height, width, num_classes, seed = case
    labels = blob_labels(batch, height, width, num_classes, seed)
    expected = official_edges(labels.numpy(), num_classes, radius, offset, skip_absent=False)
    edges = edge_targets(labels, num_classes, radius=radius, onehot_offset=offset)
    assert edges.shape == (batch, 1, height, width) and edges.dtype == torch.float32
    assert np.array_equal(edges.numpy(), expected)


@pytest.mark.parametrize("offset", [0, 1])
@pytest.mark.parametrize("case", CASES)
def test_radius_3_equals_the_official_procedure_without_absent_classes(case, offset):
    batch, height, width, num_classes, seed = case
    labels = blob_labels(batch, height, width, num_classes, seed)
    expected = official_edges(labels.numpy(), num_classes, 3, offset, skip_absent=True)
    assert np.array_equal(edge_targets(labels, num_classes, radius=3, onehot_offset=offset).numpy(), expected)
    # Non-integer radii: the disk holds the offsets with dy² + dx² <= r².
    for radius in (1.5, 2.9):
        expected = official_edges(labels.numpy(), num_classes, radius, offset, skip_absent=True)
        assert np.array_equal(edge_targets(labels, num_classes, radius=radius, onehot_offset=offset).numpy(), expected)


def test_scipy_edt_without_zero_stays_beyond_radius_2_inside_the_crop():
    """The module docstring's claim about absent classes: the official EDT(1 - mask) of an all-zero mask
    measures from a virtual pixel above the top-left corner, at least sqrt(5) from every cropped pixel."""
    for shape in [(3, 3), (3, 9), (12, 5), (40, 40)]:
        garbage = distance_transform_edt(np.ones(shape))
        i, j = np.mgrid[: shape[0], : shape[1]]
        np.testing.assert_allclose(garbage, np.sqrt((i + 1) ** 2 + j**2), rtol=0, atol=1e-12)
        assert garbage[1:-1, 1:-1].min() > 2
    # So at radius 3 the official maps gain pixels for an absent class, which edge_targets does not.
    labels = torch.zeros(1, 6, 6, dtype=torch.int64)
    with_absent = official_edges(labels.numpy(), 2, 3, 0, skip_absent=False)
    assert with_absent[0, 0, 0, :2].tolist() == [1, 1]
    assert torch.equal(
        edge_targets(labels, 2, radius=3), torch.from_numpy(official_edges(labels.numpy(), 2, 3, 0, True))
    )


def test_by_hand_two_classes_and_the_released_offset():
    labels = torch.tensor([[[0, 0, 0, 0, 1, 1, 1, 1, 1, 1]]])
    # A one-row image: every pixel is one pixel from the zero padding above it, so all are boundary.
    assert edge_targets(labels, 2, radius=1).flatten().tolist() == [1] * 10
    labels = torch.zeros(1, 7, 7, dtype=torch.int64)
    labels[0, 3, 3] = 1
    fixed = edge_targets(labels, 2, radius=1)[0, 0]
    # Class 0 fills the image but one pixel: its channel gives the border ring and the four pixels next to
    # the hole; the class-1 pixel and its four neighbours are boundary in both channels.
    expected = torch.zeros(7, 7)
    expected[0, :] = expected[-1, :] = expected[:, 0] = expected[:, -1] = 1
    expected[2:5, 3] = expected[3, 2:5] = 1
    assert torch.equal(fixed, expected)
    # Offset 1: class 0 has no channel, class 1 sits in channel 0 and class 2 (channel 1) never occurs.
    released = edge_targets(labels, 2, radius=1, onehot_offset=1)[0, 0]
    expected = torch.zeros(7, 7)
    expected[2:5, 3] = expected[3, 2:5] = 1
    assert torch.equal(released, expected)


def test_absent_classes_void_and_all_void_images_give_no_spurious_edges():
    assert torch.equal(edge_targets(torch.full((2, 5, 6), 255), 3), torch.zeros(2, 1, 5, 6))
    # A void pixel inside one class (void belongs to no channel): it and its four neighbours are boundary.
    labels = torch.ones(1, 9, 9, dtype=torch.int64)
    labels[0, 4, 4] = 255
    edges = edge_targets(labels, 3, radius=1)[0, 0]
    assert edges[4, 4] == 1 and edges[3, 4] == 1 and edges[4, 5] == 1
    assert edges[2, 4] == 0 and edges[3, 3] == 0


def test_class_masks_and_disk_kernel():
    labels = torch.tensor([[[0, 1, 2, 255]]])
    masks = class_masks(labels, 3)
    assert masks[0, :, 0].T.tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]]
    shifted = class_masks(labels, 3, onehot_offset=1)
    assert shifted[0, :, 0].T.tolist() == [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 0]]
    assert disk_kernel(2)[0, 0].tolist() == [
        [0, 0, 1, 0, 0],
        [0, 1, 1, 1, 0],
        [1, 1, 1, 1, 1],
        [0, 1, 1, 1, 0],
        [0, 0, 1, 0, 0],
    ]


def test_uint8_labels_and_ignore_index_inside_the_channel_range():
    labels = blob_labels(2, 12, 13, 4, 7)
    expected = edge_targets(labels, 4, onehot_offset=1)
    assert torch.equal(edge_targets(labels.to(torch.uint8), 4, onehot_offset=1), expected)
    # An ignore label that a shifted channel would match is still in no channel.
    relabelled = torch.where(labels == 255, torch.full_like(labels, 4), labels)
    assert torch.equal(edge_targets(relabelled, 4, ignore_index=4, onehot_offset=1), expected)


def test_bad_input_raises():
    labels = torch.zeros(1, 4, 4, dtype=torch.int64)
    with pytest.raises(ValueError, match=r"\(B, H, W\) integer"):
        edge_targets(labels[0], 2)
    with pytest.raises(ValueError, match=r"\(B, H, W\) integer"):
        edge_targets(labels.float(), 2)
    with pytest.raises(ValueError, match="outside the valid range"):
        edge_targets(labels + 2, 2)
    assert edge_targets(labels + 2, 2, validate=False).shape == (1, 1, 4, 4)
    with pytest.raises(ValueError, match="radius"):
        edge_targets(labels, 2, radius=0.5)
    with pytest.raises(ValueError, match="onehot_offset"):
        edge_targets(labels, 2, onehot_offset=2)
    with pytest.raises(ValueError, match="num_classes"):
        edge_targets(labels, 0, validate=False)
