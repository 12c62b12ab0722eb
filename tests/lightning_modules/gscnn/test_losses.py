"""Gated-SCNN's losses against formulas written out here in NumPy float64, plus gradient checks.

The official run computes each loss on one image per GPU and averages the 8 GPUs (DataParallel), so the
references loop over the images and average; the ``*_batch_is_the_mean_of_single_images`` tests check
that a batch of 2 gives the mean of the two one-image losses.
"""

import math

import numpy as np
import pytest
import torch

from lightning_modules.gscnn.losses import (
    balanced_edge_bce,
    boundary_magnitude,
    central_differences,
    dual_task_loss,
    edge_attention_loss,
    image_class_weights,
    image_weighted_cross_entropy,
    sample_gumbel,
    symmetric_pad_index,
    triangle_filter,
)

TOL = {"rtol": 0, "atol": 1e-10}


def random_case(batch=3, classes=4, height=5, width=6, seed=0, void=0.2):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, classes, height, width, generator=generator, dtype=torch.float64) * 2
    target = torch.randint(0, classes, (batch, height, width), generator=generator)
    target[torch.rand(target.shape, generator=generator) < void] = 255
    return logits, target


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def reference_image_weighted_ce_per_image(logits, target, classes, upper_bound=1.0, ignore=255):
    """Official ImageBasedCrossEntropyLoss2d on each image alone (np.histogram density = normed); None for
    an image without a labelled pixel."""
    logits, target = logits.detach().numpy(), target.numpy()
    log_p = log_softmax(logits)
    losses = []
    for n in range(target.shape[0]):
        labels = target[n]
        if (labels != ignore).sum() == 0:
            losses.append(None)
            continue
        hist = np.histogram(labels.flatten(), bins=range(classes + 1), density=True)[0]
        weights = (hist != 0) * upper_bound * (1 - hist) + 1
        numerator = denominator = 0.0
        for y, x in zip(*np.nonzero(labels != ignore), strict=True):
            w = weights[labels[y, x]]
            numerator -= w * log_p[n, labels[y, x], y, x]
            denominator += w
        losses.append(numerator / denominator)
    return losses


def reference_image_weighted_ce(logits, target, classes, upper_bound=1.0, ignore=255):
    """The mean of the per-image losses over the images with a labelled pixel (0 if none has one)."""
    per_image = reference_image_weighted_ce_per_image(logits, target, classes, upper_bound, ignore)
    losses = [loss for loss in per_image if loss is not None]
    return sum(losses) / len(losses) if losses else 0.0


def assert_batch_is_the_mean_of_single_images(loss_fn, *batched):
    """``loss_fn`` on a batch of 2 equals the mean of ``loss_fn`` on each image alone (float64, 1e-10)."""
    singles = [float(loss_fn(*(x[n : n + 1] for x in batched))) for n in range(2)]
    assert abs(float(loss_fn(*batched)) - (singles[0] + singles[1]) / 2) <= 1e-10
    assert abs(singles[0] - singles[1]) > 1e-3  # the images differ, so the check is not vacuous


def test_image_class_weights_by_hand():
    target = torch.tensor([[[0, 0, 0, 2], [255, 255, 2, 0]], [[255] * 4, [255] * 4]])
    weights = image_class_weights(target, 4, upper_bound=2.0, dtype=torch.float64)
    # Image 0: 6 labelled pixels, f = (4/6, 0, 2/6, 0); image 1 has none: all weights 1.
    expected = torch.tensor([[1 + 2 * (1 - 4 / 6), 1, 1 + 2 * (1 - 2 / 6), 1], [1, 1, 1, 1]], dtype=torch.float64)
    torch.testing.assert_close(weights, expected, **TOL)


@pytest.mark.parametrize("upper_bound", [1.0, 2.5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_image_weighted_cross_entropy_equals_the_official_formula(seed, upper_bound):
    logits, target = random_case(seed=seed)
    target[1] = 255  # an image without a labelled pixel is left out of the mean
    target[2, :, :3] = 1  # unbalanced classes make the weights matter
    loss = image_weighted_cross_entropy(logits, target, 4, upper_bound=upper_bound)
    expected = reference_image_weighted_ce(logits, target, 4, upper_bound)
    assert abs(float(loss.detach()) - expected) <= 1e-10
    assert abs(expected - reference_image_weighted_ce(logits, target, 4, 0.0)) > 1e-3


def test_image_weighted_cross_entropy_without_labels_is_zero_with_zero_gradient():
    logits = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    loss = image_weighted_cross_entropy(logits, torch.full((2, 4, 4), 255), 3)
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.equal(logits.grad, torch.zeros_like(logits))


def test_image_weighted_cross_entropy_batch_is_the_mean_of_single_images():
    logits, target = random_case(batch=2, seed=15)
    target[1, :, :4] = 2  # different class frequencies, so different weights per image
    assert_batch_is_the_mean_of_single_images(lambda z, y: image_weighted_cross_entropy(z, y, 4), logits, target)


def test_image_weighted_cross_entropy_gradcheck():
    logits, target = random_case(batch=2, classes=3, height=3, width=4, seed=3)
    logits.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: image_weighted_cross_entropy(z, target, 3), (logits,))


def test_segmentation_inputs_are_checked():
    logits, target = random_case()
    with pytest.raises(ValueError, match="num_classes = 5"):
        image_weighted_cross_entropy(logits, target, 5)
    with pytest.raises(ValueError, match="target must be an integer"):
        image_weighted_cross_entropy(logits, target.double(), 4)
    with pytest.raises(ValueError, match="target must be an integer"):
        image_weighted_cross_entropy(logits, target[:, :-1], 4)


def reference_bce(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    p = 1 / (1 + np.exp(-x))
    return -(t * np.log(p) + (1 - t) * np.log(1 - p))


def reference_balanced_edge_bce(logits, target, mode):
    """Official bce2d on each image alone (its GPU's batch), then the mean over the images."""
    losses = []
    for x, t in zip(logits.numpy(), target.numpy(), strict=True):
        positives, negatives = (t == 1).sum(), (t == 0).sum()
        weights = np.where(
            t == 1, negatives / (positives + negatives), np.where(t == 0, positives / (positives + negatives), 0)
        )
        inputs = x if mode == "paper" else 1 / (1 + np.exp(-x))
        losses.append((weights * reference_bce(inputs, t)).mean())
    return sum(losses) / len(losses)


def edge_case(seed, batch=2, size=(5, 7)):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, 1, *size, generator=generator, dtype=torch.float64) * 3
    target = (torch.rand(batch, 1, *size, generator=generator) < 0.3).double()
    target[1] = (torch.rand(1, *size, generator=generator) < 0.6).double()  # per-image weights differ
    return logits, target


@pytest.mark.parametrize("mode", ["paper", "released"])
def test_balanced_edge_bce_equals_the_official_formula(mode):
    logits, target = edge_case(4, batch=3)
    target[0, 0, 0, :2] = 2.0  # targets above 1 weigh nothing
    target[2] = 0.0  # an image without a positive pixel adds 0 and counts in the mean
    expected = reference_balanced_edge_bce(logits, target, mode)
    assert abs(float(balanced_edge_bce(logits, target, mode)) - expected) <= 1e-10
    # The batch-wide counts of the old rule give another value.
    assert abs(expected - float(balanced_edge_bce(logits.view(1, 1, 15, 7), target.view(1, 1, 15, 7), mode))) > 1e-3


@pytest.mark.parametrize("mode", ["paper", "released"])
def test_balanced_edge_bce_batch_is_the_mean_of_single_images(mode):
    logits, target = edge_case(16)
    assert_batch_is_the_mean_of_single_images(lambda z, t: balanced_edge_bce(z, t, mode), logits, target)


def test_balanced_edge_bce_counts_in_float32_under_bfloat16_autocast():
    """bf16 holds 8 significant bits: counting the 4096 pixels of an image in bf16 would shift the weights."""
    logits, target = edge_case(17, size=(64, 64))
    logits, target = logits.to(torch.bfloat16), target.to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = balanced_edge_bce(logits, target)
    expected = balanced_edge_bce(logits.float(), target.float())
    assert loss.dtype == torch.float32
    assert abs(float(loss) - float(expected)) <= 1e-6 * abs(float(expected))


def test_balanced_edge_bce_modes_differ_and_no_positive_gives_zero():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 1, 4, 4, dtype=torch.float64, generator=generator).requires_grad_()
    target = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    loss = balanced_edge_bce(logits, target)
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.equal(logits.grad, torch.zeros_like(logits))
    target[0, 0, 1, 1] = 1
    logits = logits.detach()
    assert abs(float(balanced_edge_bce(logits, target)) - float(balanced_edge_bce(logits, target, "released"))) > 1e-3


@pytest.mark.parametrize("mode", ["paper", "released"])
def test_balanced_edge_bce_gradcheck(mode):
    generator = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 1, 3, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    target = (torch.rand(2, 1, 3, 3, generator=generator) < 0.4).double()
    assert torch.autograd.gradcheck(lambda z: balanced_edge_bce(z, target, mode), (logits,))


def test_balanced_edge_bce_checks_its_input():
    with pytest.raises(ValueError, match="one shape"):
        balanced_edge_bce(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 3))
    with pytest.raises(ValueError, match="mode"):
        balanced_edge_bce(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), "paper_faithful")


def test_edge_attention_loss_masks_the_target_where_the_boundary_is_not_sure():
    logits, target = random_case(seed=6, void=0.1)
    logits.requires_grad_(True)
    generator = torch.Generator().manual_seed(7)
    edge_logits = (torch.randn(3, 1, 5, 6, generator=generator, dtype=torch.float64) * 2 + 1).requires_grad_(True)
    edge_logits.data[2] = -5.0  # image 2 keeps no pixel: it adds 0 and still counts in the mean
    probability = 1 / (1 + np.exp(-edge_logits.detach().numpy()[:, 0]))
    masked = torch.from_numpy(np.where(probability > 0.8, target.numpy(), 255))
    per_image = reference_image_weighted_ce_per_image(logits, masked, 4)
    assert per_image[2] is None
    expected = (per_image[0] + per_image[1]) / 3  # the mean over all 3 images, as over 3 one-image GPUs
    loss = edge_attention_loss(logits, target, edge_logits, 4)
    assert abs(float(loss.detach()) - expected) <= 1e-10
    # The class weights are those of the masked target, not of the full one.
    full = reference_image_weighted_ce_per_image(logits, target, 4)
    assert abs(expected - (full[0] + full[1]) / 3) > 1e-3
    loss.backward()
    assert edge_logits.grad is None
    assert torch.equal(logits.grad[2], torch.zeros_like(logits.grad[2]))


def test_edge_attention_loss_batch_is_the_mean_of_single_images():
    logits, target = random_case(batch=2, seed=18, void=0.1)
    edge_logits = torch.randn(2, 1, 5, 6, generator=torch.Generator().manual_seed(19), dtype=torch.float64) * 2 + 1
    assert_batch_is_the_mean_of_single_images(
        lambda z, y, e: edge_attention_loss(z, y, e, 4), logits, target, edge_logits
    )
    edge_logits[1] = -5.0  # image 1 keeps no pixel: the batch loss is half of image 0's
    assert_batch_is_the_mean_of_single_images(
        lambda z, y, e: edge_attention_loss(z, y, e, 4), logits, target, edge_logits
    )


def test_edge_attention_loss_without_a_confident_pixel_is_zero_with_zero_gradient():
    logits, target = random_case(seed=8)
    logits.requires_grad_(True)
    loss = edge_attention_loss(logits, target, torch.full((3, 1, 5, 6), math.log(4.0), dtype=torch.float64), 4)
    loss.backward()  # σ(log 4) = 0.8 exactly: not above the threshold
    assert float(loss.detach()) == 0.0 and torch.equal(logits.grad, torch.zeros_like(logits))
    with pytest.raises(ValueError, match="edge_logits"):
        edge_attention_loss(logits, target, torch.zeros(3, 1, 5, 5), 4)


# The dual-task loss, written out in NumPy: the official DualTaskLoss / custom_functional procedure.


def reference_triangle(x: np.ndarray, r: int = 4) -> np.ndarray:
    """convTri: replicate-pad 1, reflect-pad r, keep the outer r on each side; row then column filter."""
    taps = np.array([*range(1, r + 1), r + 1, *range(r, 0, -1)], dtype=np.float64) / (r + 1) ** 2
    h, w = x.shape[-2:]
    a = np.pad(x, ((0, 0), (0, 0), (0, 0), (1, 1)), mode="edge")
    a = np.pad(a, ((0, 0), (0, 0), (0, 0), (r, r)), mode="reflect")
    wide = np.concatenate([a[..., :r], x, a[..., -r:]], axis=3)
    b = np.pad(wide, ((0, 0), (0, 0), (1, 1), (0, 0)), mode="edge")
    b = np.pad(b, ((0, 0), (0, 0), (r, r), (0, 0)), mode="reflect")
    full = np.concatenate([b[:, :, :r], wide, b[:, :, -r:]], axis=2)
    rows = sum(taps[k] * full[..., k : k + w] for k in range(2 * r + 1))
    return sum(taps[k] * rows[:, :, k : k + h] for k in range(2 * r + 1))


def reference_central(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correlation with 0.5·[-1, 0, 1] after zero padding by one (conv2d_same)."""
    px = np.pad(x, ((0, 0), (0, 0), (0, 0), (1, 1)))
    py = np.pad(x, ((0, 0), (0, 0), (1, 1), (0, 0)))
    return -0.5 * px[..., :-2] + 0.5 * px[..., 2:], -0.5 * py[:, :, :-2] + 0.5 * py[:, :, 2:]


def reference_magnitude(x: np.ndarray, paper: bool) -> np.ndarray:
    """compute_grad_mag on each image alone: the max runs over one image's (C, H, W) values."""
    ox, oy = reference_central(reference_triangle(x)) if paper else (x, x)
    magnitude = np.sqrt(ox**2 + oy**2 + 1e-6)
    return np.stack([image / image.max() for image in magnitude])


def reference_dual(logits, target, classes, paper, tau, gumbel):
    """DualTaskLoss on each image alone (its GPU's batch), then the mean over the images."""
    losses = [
        reference_dual_one_image(logits[n : n + 1], target[n : n + 1], classes, paper, tau, gumbel[n : n + 1])
        for n in range(target.shape[0])
    ]
    return sum(losses) / len(losses)


def reference_dual_one_image(logits, target, classes, paper, tau, gumbel):
    z, y, noise = logits.detach().numpy().copy(), target.numpy().copy(), gumbel.numpy()
    ignored = y == 255
    if not paper:
        z = np.where(ignored[:, None], 0.0, z)
    y[ignored] = 0
    onehot = np.eye(classes)[y].transpose(0, 3, 1, 2)
    s = (z + noise) / tau
    g = np.exp(s - s.max(axis=1, keepdims=True))
    g = g / g.sum(axis=1, keepdims=True)
    if paper:
        g = g * ~ignored[:, None]
        onehot = onehot * ~ignored[:, None]
    mg, mh = reference_magnitude(g, paper), reference_magnitude(onehot, paper)
    error = np.abs(mg - mh)
    first = (error * (mg >= 1e-8)).sum() / ((mg >= 1e-8).sum() + 1e-10)
    second = (error * (mh >= 1e-8)).sum() / ((mh >= 1e-8).sum() + 1e-10)
    return 0.5 * first + 0.5 * second


def sample_gumbel_seeded(shape, seed):
    generator = torch.Generator().manual_seed(seed)
    uniform = torch.rand(shape, generator=generator, dtype=torch.float64)
    return -torch.log(1e-10 - torch.log(uniform + 1e-10))


@pytest.mark.parametrize("size", [(3, 3), (3, 4), (4, 9), (7, 5), (12, 11)])
def test_triangle_filter_and_central_differences_equal_the_official_operations(size):
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    torch.testing.assert_close(triangle_filter(x), torch.from_numpy(reference_triangle(x.numpy())), **TOL)
    ox, oy = central_differences(x)
    rx, ry = reference_central(x.numpy())
    torch.testing.assert_close(ox, torch.from_numpy(rx), **TOL)
    torch.testing.assert_close(oy, torch.from_numpy(ry), **TOL)


def test_triangle_filter_keeps_constants_and_needs_three_pixels():
    torch.testing.assert_close(
        triangle_filter(torch.full((1, 1, 3, 6), 2.5, dtype=torch.float64)),
        torch.full((1, 1, 3, 6), 2.5, dtype=torch.float64),
        **TOL,
    )
    assert symmetric_pad_index(5, 2).tolist() == [1, 0, 0, 1, 2, 3, 4, 4, 3]
    with pytest.raises(ValueError, match="at least 3"):
        triangle_filter(torch.zeros(1, 1, 2, 8))


@pytest.mark.parametrize("mode", ["paper", "released"])
def test_boundary_magnitude_equals_the_official_operation(mode):
    x = torch.rand(2, 3, 6, 7, dtype=torch.float64)
    expected = reference_magnitude(x.numpy(), paper=mode == "paper")
    torch.testing.assert_close(boundary_magnitude(x, mode), torch.from_numpy(expected), **TOL)


def test_sample_gumbel_formula_and_mean():
    torch.manual_seed(0)
    uniform = torch.rand(200_000, dtype=torch.float64)
    torch.manual_seed(0)
    noise = sample_gumbel((200_000,), torch.device("cpu"), torch.float64)
    torch.testing.assert_close(noise, -torch.log(1e-10 - torch.log(uniform + 1e-10)), **TOL)
    assert abs(float(noise.mean()) - 0.5772156649) < 0.01  # the Euler–Mascheroni constant


@pytest.mark.parametrize("tau", [None, 0.7])
@pytest.mark.parametrize("seed", [0, 1])
def test_dual_task_loss_paper_equals_the_written_out_procedure(seed, tau):
    logits, target = random_case(batch=2, classes=4, height=7, width=9, seed=seed)
    gumbel = sample_gumbel_seeded(logits.shape, seed + 10)
    loss = dual_task_loss(logits, target, 4, "paper", tau=tau, gumbel=gumbel)
    expected = reference_dual(logits, target, 4, True, 1.0 if tau is None else tau, gumbel)
    assert abs(float(loss.detach()) - expected) <= 1e-10


@pytest.mark.parametrize("tau", [None, 1.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_dual_task_loss_released_equals_the_written_out_procedure(seed, tau):
    logits, target = random_case(batch=2, classes=19, height=3, width=4, seed=seed)
    gumbel = sample_gumbel_seeded(logits.shape, seed + 20)
    loss = dual_task_loss(logits, target, 19, "released", tau=tau, gumbel=gumbel)
    expected = reference_dual(logits, target, 19, False, 0.5 if tau is None else tau, gumbel)
    assert abs(float(loss.detach()) - expected) <= 1e-10
    # About the mean |g − onehot| over B·19·H·W elements (M(X) ≈ X / max X).
    noisy = torch.softmax((torch.where(target[:, None] == 255, 0.0, logits) + gumbel) / (tau or 0.5), dim=1)
    onehot = torch.nn.functional.one_hot(torch.where(target == 255, 0, target), 19).permute(0, 3, 1, 2)
    peaks = noisy.amax(dim=(1, 2, 3), keepdim=True)
    assert abs(float(loss.detach()) - float((noisy / peaks - onehot).abs().mean())) < 0.01


def test_dual_task_loss_released_by_hand():
    """One labelled pixel (class 3) and one ignored pixel, K = 19, τ = 0.5, no noise.

    Pixel 0: z_3 = ½·ln 2, other logits 0, so (z + G) / τ is ln 2 for class 3 and 0 elsewhere: g = 0.1 for
    class 3 and 0.05 for the 18 others. Pixel 1 is ignored: its logits are set to 0 (g = 1/19 each) and
    its label to class 0. M(g) = sqrt(2g² + 1e-6) / sqrt(2·0.1² + 1e-6); M(ĝ) is 1 at the two ones and
    s = sqrt(1e-6) / sqrt(2 + 1e-6) elsewhere. Every element passes the 1e-8 masks, so both halves are
    Σ e / (38 + 1e-10).
    """
    logits = torch.zeros(1, 19, 1, 2, dtype=torch.float64)
    logits[0, 3, 0, 0] = 0.5 * math.log(2)
    logits[0, :, 0, 1] = torch.arange(19, dtype=torch.float64)
    target = torch.tensor([[[3, 255]]])
    peak = math.sqrt(2 * 0.1**2 + 1e-6)
    a = math.sqrt(2 * 0.05**2 + 1e-6) / peak
    b = math.sqrt(2 / 19**2 + 1e-6) / peak
    s = math.sqrt(1e-6) / math.sqrt(2 + 1e-6)
    errors = 0.0 + 18 * (a - s) + (1 - b) + 18 * (b - s)
    expected = errors / (38 + 1e-10)
    logits.requires_grad_(True)
    loss = dual_task_loss(logits, target, 19, "released", gumbel=torch.zeros_like(logits))
    assert abs(float(loss.detach()) - expected) <= 1e-12
    loss.backward()
    assert torch.equal(logits.grad[..., 1], torch.zeros(1, 19, 1, dtype=torch.float64))


@pytest.mark.parametrize(("mode", "classes"), [("paper", 4), ("released", 19)])
def test_dual_task_loss_batch_is_the_mean_of_single_images(mode, classes):
    logits, target = random_case(batch=2, classes=classes, height=6, width=7, seed=20)
    logits[1] *= 3  # sharper predictions: a different max of M(g) in each image
    target[1, :3] = 255  # and different ignored regions
    gumbel = sample_gumbel_seeded(logits.shape, 21)
    assert_batch_is_the_mean_of_single_images(
        lambda z, y, g: dual_task_loss(z, y, classes, mode, gumbel=g), logits, target, gumbel
    )


def test_dual_task_loss_paper_ignores_an_unlabelled_image_but_counts_it():
    logits, target = random_case(batch=2, classes=3, height=5, width=5, seed=22)
    target[1] = 255
    gumbel = sample_gumbel_seeded(logits.shape, 23)
    logits.requires_grad_(True)
    loss = dual_task_loss(logits, target, 3, gumbel=gumbel)
    single = dual_task_loss(logits[:1], target[:1], 3, gumbel=gumbel[:1])
    assert abs(float(loss.detach()) - float(single.detach()) / 2) <= 1e-12 and float(single.detach()) > 1e-3
    loss.backward()
    assert torch.equal(logits.grad[1], torch.zeros_like(logits.grad[1]))


@pytest.mark.parametrize(("mode", "classes", "size"), [("paper", 3, (4, 4)), ("released", 19, (2, 3))])
def test_dual_task_loss_gradcheck(mode, classes, size):
    logits, target = random_case(batch=2, classes=classes, height=size[0], width=size[1], seed=9)
    gumbel = sample_gumbel_seeded(logits.shape, 11)
    logits.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: dual_task_loss(z, target, classes, mode, gumbel=gumbel), (logits,))


def gradient(logits, target, classes, mode, gumbel):
    logits = logits.clone().requires_grad_(True)
    dual_task_loss(logits, target, classes, mode, gumbel=gumbel).backward()
    return logits.grad


@pytest.mark.parametrize("mode", ["paper", "released"])
def test_only_the_paper_loss_has_a_spatial_gradient(mode):
    """Relabel one pixel p; the gradient at the other pixels q changes only in paper mode.

    g does not depend on the labels, so the max of M(g) stays where it is; the pixel holding it is left
    out, since the max couples it to every pixel in both modes.
    """
    classes = 4 if mode == "paper" else 19
    logits, target = random_case(batch=1, classes=classes, height=9, width=9, seed=12, void=0.0)
    gumbel = sample_gumbel_seeded(logits.shape, 13)
    relabelled = target.clone()
    relabelled[0, 4, 4] = (target[0, 4, 4] + 1) % classes
    changed = gradient(logits, target, classes, mode, gumbel) - gradient(logits, relabelled, classes, mode, gumbel)
    changed = changed.abs().amax(dim=1)[0]
    soft = torch.softmax((logits + gumbel) / (1.0 if mode == "paper" else 0.5), dim=1).numpy()
    raw = reference_magnitude(soft, paper=mode == "paper")
    peak = np.unravel_index(raw.argmax(), raw.shape)[2:]
    others = torch.ones(9, 9, dtype=torch.bool)
    others[4, 4] = others[peak] = False
    if mode == "released":
        assert torch.equal(changed[others], torch.zeros(int(others.sum()), dtype=torch.float64))
    else:
        # The relabelled pixel's neighbours (within the triangle filter's reach) feel it.
        assert float(changed[4, 5]) > 1e-6 and float(changed[2, 4]) > 1e-6
        assert int((changed[others] > 1e-9).sum()) > 20


def test_dual_task_loss_paper_without_labels_is_zero_with_zero_gradient():
    logits = torch.randn(2, 3, 5, 5, dtype=torch.float64, requires_grad=True)
    loss = dual_task_loss(logits, torch.full((2, 5, 5), 255), 3, "paper")
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.equal(logits.grad, torch.zeros_like(logits))


def test_dual_task_loss_released_without_labels_has_zero_gradient():
    logits = torch.randn(1, 19, 2, 2, dtype=torch.float64, requires_grad=True)
    loss = dual_task_loss(logits, torch.full((1, 2, 2), 255), 19, "released")
    loss.backward()
    assert math.isfinite(float(loss.detach())) and torch.equal(logits.grad, torch.zeros_like(logits))


def test_dual_task_loss_draws_its_noise_with_the_global_generator():
    logits, target = random_case(batch=1, classes=3, height=4, width=4, seed=14)
    torch.manual_seed(3)
    drawn = dual_task_loss(logits, target, 3)
    torch.manual_seed(3)
    noise = sample_gumbel(logits.shape, logits.device, logits.dtype)
    assert float(drawn.detach()) == float(dual_task_loss(logits, target, 3, gumbel=noise))


def test_dual_task_loss_checks_its_switches():
    logits, target = random_case(batch=1, classes=4, height=4, width=4)
    with pytest.raises(ValueError, match='dual_mode="released"'):
        dual_task_loss(logits, target, 4, "released")
    with pytest.raises(ValueError, match="mode must be one of"):
        dual_task_loss(logits, target, 4, "official")
    with pytest.raises(ValueError, match="tau"):
        dual_task_loss(logits, target, 4, tau=0.0)
    with pytest.raises(ValueError, match="gumbel"):
        dual_task_loss(logits, target, 4, gumbel=torch.zeros(1, 4, 4, 3))
    with pytest.raises(ValueError, match="at least 3"):
        dual_task_loss(logits[..., :2, :], target[:, :2], 4)


def test_released_edge_bce_double_sigmoid_by_hand():
    # One image, one edge pixel and one background pixel, both with logit 0: the weights are N/(P+N) = P/(P+N) = ½.
    # Paper: BCE of σ(0) = ½ against 1 and 0, ln 2 each, so the mean is ½·ln 2.
    # Released: the sigmoid output ½ is taken as a logit again, σ(½) = 0.6225: −ln 0.6225 = 0.47408 for the edge,
    # −ln 0.3775 = 0.97408 for the background, mean of ½ of each = (0.47408 + 0.97408) / 4.
    logits = torch.zeros(1, 1, 1, 2, dtype=torch.float64)
    target = torch.tensor([[[[1.0, 0.0]]]], dtype=torch.float64)
    assert float(balanced_edge_bce(logits, target, "paper")) == pytest.approx(0.5 * math.log(2), abs=1e-12)
    released = (math.log(1 + math.exp(-0.5)) + math.log(1 + math.exp(0.5))) / 4
    assert float(balanced_edge_bce(logits, target, "released")) == pytest.approx(released, abs=1e-12)
    assert released == pytest.approx((0.474077 + 0.974077) / 4, abs=1e-6)
