"""TNet's training objective (Tpap/TNet ``ImageNet/train.py`` and ``fMoW/train.py``, ``compute_total_loss``).

For a batch of ``B`` images with final logits ``z``, per-feature logits ``z_f`` and the selected cells'
``log π``, with ``a`` = ``perFReg_ce_weight``, ``β`` = ``perFReg_reinf_weight``, ``λ`` = ``reinfornce_reg_w``
and the baseline ``b``:

- ``a · mean_i CE(z_i, y_i)``;
- ``(1 − a) / (N · B) · Σ_i Σ_f CE(z_{i,f}, y_i)`` over the ``N`` features of the first ``feature_levels`` levels
  (the fMoW fine-tune counts levels 1–2 only: ``perFReg_cap = 2``; all levels otherwise), the level-0 feature
  included;
- ``λ · β / B · Σ_i (R_i − b) · (−Σ log π)`` over all the image's selected cells of all levels, with the reward
  ``R_i = 1[argmax z_i = y_i]``;
- ``λ · (1 − β) / ((N − 1) · B) · Σ_i Σ_{f ≥ 1} (R_{i,f} − b) · (−log π(ℓ_f))`` for the features of levels
  ``1 .. feature_levels − 1``, each with the log-probability of the cell it came from and its own reward.

``(R − b)`` carries no gradient; since the location module reads detached features, the REINFORCE terms
train it alone. After the step the baseline moves to
``0.9 · b + 0.1 · (β · mean R_i + (1 − β) · Σ R_{i,f} / ((N − 1) · B))`` (:func:`baseline_target` gives the
bracket). With a single level there is nothing to attend: the official code then keeps only ``a · CE``, and so
does this one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lightning_modules.tnet.network import TNetOutput


@dataclass
class TNetLoss:
    """The loss and its terms (scalars; ``total`` is their sum) and the rewards' bracket for the baseline."""

    total: torch.Tensor
    cross_entropy: torch.Tensor
    feature_cross_entropy: torch.Tensor
    reinforce: torch.Tensor
    feature_reinforce: torch.Tensor
    baseline_target: torch.Tensor


def _feature_counts(output: TNetOutput, feature_levels: int | None) -> tuple[int, int]:
    """``(levels counted, N)``: how many levels the per-feature terms see and the features per image in them."""
    levels = len(output.features)
    if feature_levels is not None:
        if feature_levels < 2:
            raise ValueError(f"feature_levels must be None (all levels) or >= 2, got {feature_levels}.")
        levels = min(levels, feature_levels)
    return levels, sum(output.features[level].shape[0] for level in range(levels)) // output.batch_size


def tnet_loss(
    output: TNetOutput,
    target: torch.Tensor,
    baseline: torch.Tensor | float,
    ce_weight: float,
    reinforce_weight: float,
    reinforce_scale: float,
    feature_levels: int | None = None,
) -> TNetLoss:
    """The four terms of the module docstring for ``output`` of a training pass and class ids ``target`` ``(B,)``.

    Args:
        baseline: the current baseline ``b`` (a scalar).
        ce_weight: ``a``; reinforce_weight: ``β``; reinforce_scale: ``λ``.
        feature_levels: the per-feature cap (``None``: all levels).

    Raises:
        ValueError: for weights outside ``[0, 1]``, a cap below 2, or an output of an evaluation-mode traversal.
    """
    for name, value in (("ce_weight", ce_weight), ("reinforce_weight", reinforce_weight)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}.")
    batch = output.batch_size
    baseline = torch.as_tensor(baseline, dtype=output.logits.dtype, device=output.logits.device).detach()
    zero = output.logits.new_zeros(())
    cross_entropy = ce_weight * F.cross_entropy(output.logits, target)
    if len(output.features) == 1:
        return TNetLoss(cross_entropy, cross_entropy, zero, zero, zero, baseline)
    if not output.feature_logits:
        raise ValueError(
            "the output has no per-feature logits: the loss needs a traversal in training mode (network.train())."
        )
    levels, num_features = _feature_counts(output, feature_levels)
    reward = (output.logits.detach().argmax(dim=1) == target).to(output.logits.dtype)
    reinforce = reinforce_scale * reinforce_weight / batch * ((reward - baseline) * -output.location_log_probs()).sum()

    feature_ce = zero
    feature_reinforce = zero
    feature_reward = zero
    for level in range(levels):
        logits = output.feature_logits[level]
        labels = target.repeat_interleave(logits.shape[0] // batch)
        feature_ce = feature_ce + F.cross_entropy(logits, labels, reduction="sum")
        if level > 0:
            rewards = (logits.detach().argmax(dim=1) == labels).to(logits.dtype)
            feature_reinforce = feature_reinforce + ((rewards - baseline) * -output.log_probs[level - 1]).sum()
            feature_reward = feature_reward + rewards.sum()
    feature_ce = (1.0 - ce_weight) / (num_features * batch) * feature_ce
    attended = (num_features - 1) * batch
    feature_reinforce = reinforce_scale * (1.0 - reinforce_weight) / attended * feature_reinforce
    target_value = reinforce_weight * reward.mean() + (1.0 - reinforce_weight) * feature_reward / attended
    total = cross_entropy + feature_ce + reinforce + feature_reinforce
    return TNetLoss(total, cross_entropy, feature_ce, reinforce, feature_reinforce, target_value.detach())
