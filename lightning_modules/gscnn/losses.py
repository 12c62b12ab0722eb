"""Gated-SCNN's training losses (official ``loss.py`` and ``my_functionals/``), in torch only.

The official run trains one image per GPU on 8 GPUs (``bs_mult = 1``, ``nn.DataParallel``; official ``train.py``): each
GPU computes the four losses on its one-image batch and ``train.py`` averages the 8 values. So every
batch statistic of the official losses (class weights, edge-class counts, the max of the boundary
magnitudes, the mask sums of L_dual) is a per-image statistic. Here each loss is computed per image as
the official code computes it on its one-image batch, then averaged over the B images, so that it
matches the official training for any batch size B; each docstring states its batch rule.

The official code computes the class and edge weights with NumPy on the CPU at every step; here every
statistic is a fixed-size tensor operation on the logits' device (no host synchronisation), and every
loss is 0 with a zero gradient when the batch has no labelled pixel (:mod:`lightning_modules.losses`),
except ``dual_task_loss(mode="released")``, which keeps the official value (see there).

- :func:`image_weighted_cross_entropy`: L_seg, cross-entropy with per-image class weights (1.2(a)).
- :func:`balanced_edge_bce`: L_edge, class-balanced binary cross-entropy of the boundary map (1.2(b)).
- :func:`edge_attention_loss`: L_att, L_seg on the pixels the predicted boundary map is sure of (1.2(c)).
- :func:`dual_task_loss`: L_dual, L1 between boundary magnitudes of the soft prediction and the labels (1.2(d)).

``mode="paper"`` is the intended operation and ``mode="released"`` what the released code computes; the
module docstring of :mod:`lightning_modules.gscnn.module` lists the differences.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MODES = ("paper", "released")
# Gumbel-softmax temperature: the paper's τ = 1 [S], the code's 0.5 (DualTaskLoss.py).
DEFAULT_TAU = {"paper": 1.0, "released": 0.5}
# The official DualTaskLoss one-hot encodes and expands to 19 channels whatever the dataset.
RELEASED_NUM_CLASSES = 19
TRIANGLE_RADIUS = 4
GUMBEL_EPS = 1e-10
MAGNITUDE_EPS = 1e-6
MASK_THRESHOLD = 1e-8
DENOMINATOR_EPS = 1e-10


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")


def _check_segmentation(logits: torch.Tensor, target: torch.Tensor, num_classes: int) -> None:
    if logits.ndim != 4 or not logits.is_floating_point() or logits.shape[1] != num_classes:
        raise ValueError(
            f"logits must be a float (B, K, H, W) tensor with K = num_classes = {num_classes}, "
            f"got shape {tuple(logits.shape)}, {logits.dtype}."
        )
    if target.is_floating_point() or target.dtype == torch.bool or target.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(
            f"target must be an integer (B, H, W) tensor matching logits {tuple(logits.shape)}, "
            f"got shape {tuple(target.shape)}, {target.dtype}."
        )


def image_class_weights(
    target: torch.Tensor,
    num_classes: int,
    ignore_index: int = 255,
    upper_bound: float = 1.0,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Per-image class weights ``w_c = 1 + upper_bound · (1 − f_c)`` if ``f_c > 0``, else 1.

    ``f_c`` is the fraction of the image's labelled pixels that have class c (official
    ``ImageBasedCrossEntropyLoss2d.calculateWeights`` with ``norm=False``, one image at a time as with its
    default ``BATCH_WEIGHTING = False``). Shapes: ``(B, H, W)`` integer labels → ``(B, K)`` of ``dtype``;
    an image without a labelled pixel gets weights 1. Labels must be in ``[0, K)`` or ``ignore_index``.
    """
    flat = target.reshape(target.shape[0], -1).long()
    # Ignored pixels are counted in an extra column K that is dropped: a fixed-size histogram.
    index = torch.where(flat == ignore_index, num_classes, flat.clamp(0, num_classes - 1))
    counts = torch.zeros(flat.shape[0], num_classes + 1, dtype=dtype, device=target.device)
    counts = counts.scatter_add_(1, index, torch.ones_like(index, dtype=dtype))[:, :num_classes]
    fractions = counts / counts.sum(dim=1, keepdim=True).clamp(min=1)
    return torch.where(fractions > 0, 1 + upper_bound * (1 - fractions), torch.ones_like(fractions))


def _image_weighted_cross_entropies(
    logits: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int, upper_bound: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B,)`` per-image weighted cross-entropies and ``(B,)`` bool: whether the image has a labelled pixel.

    Image n's loss is ``Σ_p w_{n, y_p} · nll_p / Σ_p w_{n, y_p}`` over its labelled pixels (0, with a zero
    gradient, for an image without one), with the weights of :func:`image_class_weights`.
    """
    labelled = target != ignore_index
    safe_target = torch.where(labelled, target, 0).long()
    nll = F.cross_entropy(logits, safe_target, reduction="none")
    weights = image_class_weights(target, num_classes, ignore_index, upper_bound, dtype=nll.dtype)
    pixel_weights = weights.gather(1, safe_target.flatten(1)) * labelled.flatten(1)
    # Every labelled pixel weighs at least 1, so the clamp only keeps unlabelled images at 0 / 1.
    per_image = (pixel_weights * nll.flatten(1)).sum(dim=1) / pixel_weights.sum(dim=1).clamp(min=1)
    return per_image, labelled.flatten(1).any(dim=1)


def image_weighted_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    num_classes: int,
    ignore_index: int = 255,
    upper_bound: float = 1.0,
) -> torch.Tensor:
    """L_seg: class-weighted cross-entropy per image, averaged over the images that have a labelled pixel.

    Image n's loss is ``Σ_p w_{n, y_p} · nll_p / Σ_p w_{n, y_p}`` over its labelled pixels, with the
    weights of :func:`image_class_weights` (no gradient flows through them): the official
    ``ImageBasedCrossEntropyLoss2d`` (``NLLLoss`` with ``weight`` and mean reduction, per image, summed
    over the images of a GPU). The official run has one image per GPU and averages over its 8 GPUs
    (DataParallel, official ``train.py``), so the batch loss is the mean of the per-image losses over the images that
    have a labelled pixel. An image without one is left out rather than counted as 0, as in the other
    segmentation losses (:mod:`lightning_modules.losses`); the official GPU holding such an image adds 0
    to its average (NaN since PyTorch 1.11, see :func:`edge_attention_loss`), which never happens with
    Cityscapes crops, where every crop has labelled pixels. A batch without a labelled pixel gives 0 with
    a zero gradient.

    Shapes: logits ``(B, K, H, W)``, target ``(B, H, W)`` integer → a scalar.

    Raises:
        ValueError: logits are not ``(B, num_classes, H, W)`` float, or target not ``(B, H, W)`` integer.
    """
    _check_segmentation(logits, target, num_classes)
    per_image, labelled_images = _image_weighted_cross_entropies(logits, target, num_classes, ignore_index, upper_bound)
    images = labelled_images.to(per_image.dtype)
    return per_image.sum() / images.sum().clamp(min=1)


def balanced_edge_bce(edge_logits: torch.Tensor, edge_target: torch.Tensor, mode: str = "paper") -> torch.Tensor:
    """L_edge: class-balanced binary cross-entropy per image (official ``JointEdgeSegLoss.bce2d``), averaged.

    ``bce2d`` flattens the pixels of its GPU's batch, one image in the official run (DataParallel, 1 image
    per GPU on 8 GPUs, official ``train.py``), so its counts are per image: with ``P_n`` positive (target 1) and
    ``N_n`` negative (target 0) pixels in image n, positives weigh ``N_n / (P_n + N_n)``, negatives
    ``P_n / (P_n + N_n)`` and any other target 0; image n's loss is the mean over its ``C·H·W`` pixels of
    ``w · BCEWithLogits(x, t)``, and the batch loss the mean over all B images, as ``train.py`` averages
    the 8 GPUs. An image without a positive pixel contributes 0 with a zero gradient (its negatives weigh
    0); so does a batch without one.

    The counts, weights and loss are computed in float32 (float64 for float64 logits) with autocast off,
    whatever the dtype of ``edge_target``: bfloat16 (8 significant bits) rounds any count above 256, which
    would shift the weights by tenths of a percent on the hundreds of thousands of pixels of a crop.

    Args:
        edge_logits: ``(B, C, H, W)`` boundary logits (before the sigmoid); ``C = 1`` in GSCNN.
        edge_target: float tensor of the same shape, 0 / 1 (:func:`~lightning_modules.gscnn.edges.edge_targets`).
        mode: ``"paper"``: ``x`` = the logits. ``"released"``: ``x = σ(logits)``, the double sigmoid of the
            official code, which feeds the network's sigmoid output to a loss that applies one (issue #62).

    Returns:
        A scalar of dtype ``promote_types(edge_logits.dtype, float32)``.

    Raises:
        ValueError: shapes differ or are not 4D, a tensor is not floating-point, or an unknown ``mode``.
    """
    _check_mode(mode)
    if (
        edge_logits.ndim != 4
        or edge_logits.shape != edge_target.shape
        or not (edge_logits.is_floating_point() and edge_target.is_floating_point())
    ):
        raise ValueError(
            f"edge_logits and edge_target must be float (B, C, H, W) tensors of one shape, got "
            f"{tuple(edge_logits.shape)} {edge_logits.dtype} and {tuple(edge_target.shape)} {edge_target.dtype}."
        )
    dtype = torch.promote_types(edge_logits.dtype, torch.float32)
    with torch.autocast(edge_logits.device.type, enabled=False):
        logits = edge_logits.to(dtype)
        target = edge_target.to(dtype)
        positive = target == 1
        negative = target == 0
        num_positive = positive.flatten(1).sum(dim=1).to(dtype).view(-1, 1, 1, 1)
        num_negative = negative.flatten(1).sum(dim=1).to(dtype).view(-1, 1, 1, 1)
        # An image with neither class has only zero weights; the clamp only avoids 0 / 0 there.
        total = (num_positive + num_negative).clamp(min=1)
        weight = torch.where(positive, num_negative / total, torch.where(negative, num_positive / total, 0.0))
        inputs = logits if mode == "paper" else torch.sigmoid(logits)
        per_pixel = F.binary_cross_entropy_with_logits(inputs, target, weight=weight, reduction="none")
        return per_pixel.flatten(1).mean(dim=1).mean()


def edge_attention_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    edge_logits: torch.Tensor,
    num_classes: int,
    threshold: float = 0.8,
    ignore_index: int = 255,
    upper_bound: float = 1.0,
) -> torch.Tensor:
    """L_att: the image-weighted cross-entropy restricted to pixels with ``σ(edge) > threshold``, averaged over B.

    Official ``JointEdgeSegLoss.edge_attention``: the target becomes ``ignore_index`` wherever the predicted
    boundary probability (max over its channels) is at most ``threshold``, and the class weights are those
    of that masked target. The mask carries no gradient.

    Batch rule: the official run computes this on one image per GPU and averages over its 8 GPUs
    (DataParallel, official ``train.py``), so image n's loss is the image-weighted cross-entropy of its masked target
    (as in :func:`image_weighted_cross_entropy`) and the batch loss their sum divided by B: every image
    counts, as the official average counts every GPU. An image with no confident labelled pixel
    contributes 0 with a zero gradient; so the loss is 0 with a zero gradient when no image has one.

    The official code on such an image: ``calculateWeights`` takes the density of an empty histogram,
    0 / 0, so every class weight is NaN (a NumPy warning), which ``NLLLoss`` never reads since every pixel
    is ignored; its mean over a zero total weight was 0 on the PyTorch of its day (>= 1.1) and is NaN since
    PyTorch 1.11 (pytorch/pytorch#64572), which makes that step's loss NaN. We keep the 0 of the official
    run, on any PyTorch: images with no confident pixel are common while the boundary map is still
    unsure, early in training.

    Shapes: logits ``(B, K, H, W)``, target ``(B, H, W)`` integer, edge_logits ``(B, C, H, W)`` → a scalar.

    Raises:
        ValueError: as :func:`image_weighted_cross_entropy`, or edge_logits not ``(B, C, H, W)`` float.
    """
    _check_segmentation(logits, target, num_classes)
    if (
        edge_logits.ndim != 4
        or not edge_logits.is_floating_point()
        or (edge_logits.shape[0], *edge_logits.shape[2:]) != tuple(target.shape)
    ):
        raise ValueError(
            f"edge_logits must be a float (B, C, H, W) tensor matching target {tuple(target.shape)}, "
            f"got shape {tuple(edge_logits.shape)}, {edge_logits.dtype}."
        )
    confident = torch.sigmoid(edge_logits.detach()).amax(dim=1) > threshold
    masked = torch.where(confident, target, torch.full_like(target, ignore_index))
    per_image, _ = _image_weighted_cross_entropies(logits, masked, num_classes, ignore_index, upper_bound)
    return per_image.mean()


def sample_gumbel(shape: torch.Size | tuple[int, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Gumbel(0, 1) noise ``−log(ε − log(U + ε))``, ``U ~ Uniform[0, 1)``, ``ε = 1e-10``, drawn on ``device``.

    The official ``_sample_gumbel`` (``DualTaskLoss.py``), with its ε placement.
    """
    uniform = torch.rand(shape, device=device, dtype=dtype)
    return -torch.log(GUMBEL_EPS - torch.log(uniform + GUMBEL_EPS))


def symmetric_pad_index(size: int, radius: int, device: torch.device | None = None) -> torch.Tensor:
    """``(size + 2·radius,)`` int64 source indices of the official ``convTri`` padding along one axis.

    ``convTri`` replicate-pads by 1, reflect-pads that by ``radius`` and keeps the outer ``radius`` values:
    a half-sample symmetric extension ``x[r−1] … x[0] | x[0] … x[n−1] | x[n−1] … x[n−r]``, with the
    replicated end value repeated when ``radius > size``. Defined for ``radius <= size + 1``.

    Raises:
        ValueError: ``radius > size + 1`` (the official reflect padding fails there too).
    """
    if radius > size + 1:
        raise ValueError(f"the triangle filter of radius {radius} needs a size of at least {radius - 1}, got {size}.")
    position = torch.arange(-radius, size + radius, device=device)
    mirrored = torch.where(
        position < 0, -position - 1, torch.where(position >= size, 2 * size - position - 1, position)
    )
    return mirrored.clamp(0, size - 1)


def triangle_filter(x: torch.Tensor, radius: int = TRIANGLE_RADIUS) -> torch.Tensor:
    """Separable triangle smoothing of each channel (the official ``convTri`` as written after its early return).

    The 1D kernel is ``[1, 2, …, r + 1, …, 2, 1] / (r + 1)²`` (``[1, 2, 3, 4, 5, 4, 3, 2, 1] / 25`` for r = 4),
    with the padding of :func:`symmetric_pad_index`. Shapes: ``(N, C, H, W)`` → ``(N, C, H, W)``.

    Raises:
        ValueError: ``H`` or ``W`` smaller than ``radius − 1``.
    """
    n, c, h, w = x.shape
    padded = x.index_select(2, symmetric_pad_index(h, radius, x.device))
    padded = padded.index_select(3, symmetric_pad_index(w, radius, x.device))
    taps = radius + 1 - torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype).abs()
    taps = taps / (radius + 1) ** 2
    flat = padded.reshape(n * c, 1, h + 2 * radius, w + 2 * radius)
    smoothed = F.conv2d(F.conv2d(flat, taps.view(1, 1, 1, -1)), taps.view(1, 1, -1, 1))
    return smoothed.reshape(n, c, h, w)


def central_differences(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(O_x, O_y)`` with ``O_x[..., j] = (x[..., j + 1] − x[..., j − 1]) / 2``, zeros beyond the border.

    The official ``gradient_central_diff`` as written after its early return (``conv2d_same`` zero-pads by
    one pixel each side). Shapes: ``(N, C, H, W)`` → two ``(N, C, H, W)``.
    """
    padded_x = F.pad(x, (1, 1, 0, 0))
    padded_y = F.pad(x, (0, 0, 1, 1))
    return 0.5 * (padded_x[..., 2:] - padded_x[..., :-2]), 0.5 * (padded_y[..., 2:, :] - padded_y[..., :-2, :])


def boundary_magnitude(x: torch.Tensor, mode: str = "paper") -> torch.Tensor:
    """``M(X) = sqrt(O_x² + O_y² + 1e-6) / max``, the max taken per image, over its ``(C, H, W)`` values.

    The official ``compute_grad_mag``, whose max runs over its whole input: one image in the official run
    (DataParallel, 1 image per GPU, official ``train.py``), hence per image here. ``"paper"``: ``O_x, O_y`` are the
    :func:`central_differences` of the :func:`triangle_filter`-smoothed map. ``"released"``: both early
    returns fire, so there is no smoothing and ``O_x = O_y = X``: ``M(X) = sqrt(2·X² + 1e-6) / max``
    (issue #16). Shapes: ``(N, C, H, W)`` → ``(N, C, H, W)``.
    """
    _check_mode(mode)
    if mode == "paper":
        o_x, o_y = central_differences(triangle_filter(x))
    else:
        o_x = o_y = x
    magnitude = torch.sqrt(o_x * o_x + o_y * o_y + MAGNITUDE_EPS)
    return magnitude / magnitude.amax(dim=(1, 2, 3), keepdim=True)


def dual_task_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    num_classes: int,
    mode: str = "paper",
    tau: float | None = None,
    ignore_index: int = 255,
    gumbel: torch.Tensor | None = None,
) -> torch.Tensor:
    """L_dual: L1 between the boundary magnitudes of a Gumbel-softmax prediction and of the one-hot labels.

    Official ``DualTaskLoss`` (``my_functionals/DualTaskLoss.py``): ``g = softmax((z + G) / τ)`` over classes,
    ``ĝ`` the one-hot labels, ``e = |M(g) − M(ĝ)|`` with :func:`boundary_magnitude`, ``m = 1[M(g) >= 1e-8]``,
    ``m̂ = 1[M(ĝ) >= 1e-8]`` (no gradient), and the loss
    ``½ · Σ e·m / (Σ m + 1e-10) + ½ · Σ e·m̂ / (Σ m̂ + 1e-10)``. The ``1e-6`` inside ``M`` keeps every
    value at least ``1e-3 / max ≫ 1e-8``, so in both modes the masks select every element and the loss
    is about the mean of ``e``.

    Batch rule: the official code takes the max of ``M`` and the sums over its GPU's batch, one image in
    the official run (DataParallel, 1 image per GPU on 8 GPUs, official ``train.py``), and ``train.py`` averages the
    GPUs. So here the max normalisation, ``Σ m``, ``Σ m̂`` and the ½ / ½ combination are per image (sums
    over its ``K·H·W`` elements), and the batch loss is the mean over all B images.

    Modes:
        ``"paper"``: the intended operation, triangle smoothing and central differences (a boundary map,
        so the gradient at a pixel depends on its neighbours' labels); τ = 1 by default. Ignored pixels
        are excluded by zeroing both ``g`` and ``ĝ`` there: inside a void region both maps are flat, and
        at its outline both see the same drop to zero, the prediction's only as sharp as its confidence.
        An image without a labelled pixel gives 0 with a zero gradient (it still counts in the mean), and
        so does a batch without one.
        ``"released"``: what the released code computes: ``M(X) = sqrt(2·X² + 1e-6) / max`` elementwise, so
        the loss is about ``mean |g − onehot(y)|`` over ``B·19·H·W`` elements, with no spatial gradient;
        ignored pixels get logits 0 (no gradient) and class 0; τ = 0.5 by default; K must be 19. An image
        without a labelled pixel keeps the official value, a noise-dependent constant with a zero gradient.

    Args:
        logits: ``(B, K, H, W)`` segmentation logits.
        target: ``(B, H, W)`` integer labels in ``[0, K)`` or ``ignore_index``.
        num_classes: K.
        mode: ``"paper"`` or ``"released"``.
        tau: Gumbel-softmax temperature; None for the mode's default.
        ignore_index: label of void pixels.
        gumbel: ``(B, K, H, W)`` noise to use instead of a fresh :func:`sample_gumbel` draw (tests).

    Returns:
        A scalar, computed in at least float32 with autocast off.

    Raises:
        ValueError: bad shapes or dtypes, an unknown ``mode``, ``tau <= 0``, ``mode="released"`` with
            ``num_classes != 19`` (``dual_mode="released"`` in the module), ``mode="paper"`` with ``H`` or
            ``W`` below 3.
    """
    _check_mode(mode)
    _check_segmentation(logits, target, num_classes)
    if mode == "released" and num_classes != RELEASED_NUM_CLASSES:
        raise ValueError(
            f'mode="released" (dual_mode="released") reproduces the official DualTaskLoss, which hard-codes '
            f'{RELEASED_NUM_CLASSES} classes; got num_classes={num_classes}. Use mode="paper".'
        )
    tau = DEFAULT_TAU[mode] if tau is None else tau
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}.")
    if gumbel is not None and gumbel.shape != logits.shape:
        raise ValueError(f"gumbel must have the logits' shape {tuple(logits.shape)}, got {tuple(gumbel.shape)}.")
    # The max-normalised magnitudes and the 1e-8 mask threshold need float32 at least, not bf16.
    dtype = torch.promote_types(logits.dtype, torch.float32)
    with torch.autocast(logits.device.type, enabled=False):
        logits = logits.to(dtype)
        noise = sample_gumbel(logits.shape, logits.device, dtype) if gumbel is None else gumbel.to(dtype)
        labelled = (target != ignore_index).unsqueeze(1)
        if mode == "released":
            logits = torch.where(labelled, logits, 0.0)
        labels = torch.where(target != ignore_index, target, 0).long()
        soft = torch.softmax((logits + noise) / tau, dim=1)
        # Not F.one_hot, which reads the label range on the host on the CPU (see edges.class_masks).
        onehot = (labels.unsqueeze(1) == torch.arange(num_classes, device=labels.device).view(1, -1, 1, 1)).to(dtype)
        if mode == "paper":
            soft = soft * labelled
            onehot = onehot * labelled
        predicted = boundary_magnitude(soft, mode)
        labelled_boundary = boundary_magnitude(onehot, mode)
        error = (predicted - labelled_boundary).abs()
        halves = []
        for magnitude in (predicted, labelled_boundary):
            mask = (magnitude.detach() >= MASK_THRESHOLD).to(dtype).flatten(1)
            halves.append((error.flatten(1) * mask).sum(dim=1) / (mask.sum(dim=1) + DENOMINATOR_EPS))
        return (0.5 * halves[0] + 0.5 * halves[1]).mean()
