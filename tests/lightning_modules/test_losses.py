"""Losses without labelled pixels: defined, zero, with a zero gradient; otherwise the usual means."""

import math

import torch
import torch.nn.functional as F

from lightning_modules.losses import labelled_images, labelled_pixels, pixel_cross_entropy, presence_bce


def test_pixel_cross_entropy_is_the_mean_over_labelled_pixels():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 4, 5, generator=generator, dtype=torch.float64)
    target = torch.randint(0, 3, (2, 4, 5), generator=generator)
    target[0, :2] = 255
    # The mean written out: -log softmax at the labelled pixels' classes, summed, divided by their number (30).
    log_probabilities = logits.log_softmax(dim=1)
    labelled = (target != 255).nonzero().tolist()
    expected = -sum(float(log_probabilities[b, target[b, y, x], y, x]) for b, y, x in labelled) / len(labelled)
    assert len(labelled) == 30 and int(labelled_pixels(target)) == 30
    assert math.isclose(float(pixel_cross_entropy(logits, target)), expected, rel_tol=1e-12)
    torch.testing.assert_close(pixel_cross_entropy(logits, target), F.cross_entropy(logits, target, ignore_index=255))


def test_pixel_cross_entropy_of_an_all_ignored_batch_is_zero_with_zero_gradient():
    logits = torch.randn(2, 3, 4, 5, requires_grad=True)
    target = torch.full((2, 4, 5), 255)
    assert F.cross_entropy(logits, target, ignore_index=255).isnan()  # what the mean reduction gives
    loss = pixel_cross_entropy(logits, target)
    assert float(loss) == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_presence_bce_leaves_out_images_without_labels():
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.5], [-3.0, 4.0]], requires_grad=True)
    presence = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    target = torch.full((3, 2, 2), 255)
    target[0, 0, 0], target[2, 1, 1] = 0, 1
    labelled = labelled_images(target)
    assert labelled.tolist() == [True, False, True]

    def bce(z: float, y: float) -> float:
        return -(y * math.log(1 / (1 + math.exp(-z))) + (1 - y) * math.log(1 - 1 / (1 + math.exp(-z))))

    expected = (bce(2.0, 1) + bce(-1.0, 0) + bce(-3.0, 0) + bce(4.0, 1)) / 4
    loss = presence_bce(logits, presence, labelled)
    assert math.isclose(float(loss), expected, rel_tol=1e-6)
    loss.backward()
    assert torch.equal(logits.grad[1], torch.zeros(2))

    none = presence_bce(logits, presence, torch.zeros(3, dtype=torch.bool))
    assert float(none) == 0.0
