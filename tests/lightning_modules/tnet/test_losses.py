"""TNet's loss against the four terms computed here image by image, with and without the per-feature cap,
and the REINFORCE gradient: it reaches the location module and nothing else."""

import math

import pytest
import torch

from lightning_modules.tnet.losses import tnet_loss
from lightning_modules.tnet.network import TNetOutput, tnet_fmow, tnet_imagenet

A, BETA, LAM, B0 = 0.3, 0.2, 0.1, 0.4


def _output() -> tuple[TNetOutput, torch.Tensor]:
    # 2 images, 3 levels with k = (2, 1): 1 + 2 + 2 = 5 features per image.
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, generator=g, dtype=torch.float64)
    feature_logits = [torch.randn(n, 4, generator=g, dtype=torch.float64) for n in (2, 4, 4)]
    feature_logits[1][0] = torch.tensor([0.0, 5.0, 0.0, 0.0], dtype=torch.float64)  # a sure hit for image 0
    log_probs = [-torch.rand(4, generator=g, dtype=torch.float64) * 3 for _ in range(2)]
    features = [torch.zeros(n, 8, dtype=torch.float64) for n in (2, 4, 4)]
    out = TNetOutput(logits, features, feature_logits, [], [], [], [], log_probs)
    return out, torch.tensor([1, 3])


def _ce(z: torch.Tensor, y: int) -> float:
    return -float(z[y]) + math.log(sum(math.exp(float(v)) for v in z))


def _reference(out: TNetOutput, target: torch.Tensor, levels: int) -> dict[str, float]:
    # Features of image i: level 0 row i; level 1 rows 2i, 2i+1; level 2 rows 2i, 2i+1 (k = 2 then 1).
    rows = {0: lambda i: [i], 1: lambda i: [2 * i, 2 * i + 1], 2: lambda i: [2 * i, 2 * i + 1]}
    n = sum(len(rows[level](0)) for level in range(levels))
    ce = feature_ce = reinforce = feature_reinforce = rewards = 0.0
    hits = 0.0
    for i in range(2):
        y = int(target[i])
        ce += _ce(out.logits[i], y) / 2
        hit = float(int(out.logits[i].argmax()) == y)
        hits += hit / 2
        selected = sum(float(out.log_probs[lv][r]) for lv in (0, 1) for r in rows[lv + 1](i))
        reinforce += (hit - B0) * -selected
        for level in range(levels):
            for r in rows[level](i):
                feature_ce += _ce(out.feature_logits[level][r], y)
                if level > 0:
                    feature_hit = float(int(out.feature_logits[level][r].argmax()) == y)
                    feature_reinforce += (feature_hit - B0) * -float(out.log_probs[level - 1][r])
                    rewards += feature_hit
    return {
        "cross_entropy": A * ce,
        "feature_cross_entropy": (1 - A) * feature_ce / (n * 2),
        "reinforce": LAM * BETA * reinforce / 2,
        "feature_reinforce": LAM * (1 - BETA) * feature_reinforce / ((n - 1) * 2),
        "baseline_target": BETA * hits + (1 - BETA) * rewards / ((n - 1) * 2),
    }


@pytest.mark.parametrize(("cap", "levels"), [(None, 3), (2, 2), (5, 3)])
def test_loss_equals_the_four_terms_computed_image_by_image(cap, levels):
    out, target = _output()
    terms = tnet_loss(out, target, B0, A, BETA, LAM, feature_levels=cap)
    expected = _reference(out, target, levels)
    for name, value in expected.items():
        assert float(getattr(terms, name)) == pytest.approx(value, rel=1e-12), name
    total = sum(v for k, v in expected.items() if k != "baseline_target")
    assert float(terms.total) == pytest.approx(total, rel=1e-12)


def test_single_level_keeps_only_the_weighted_cross_entropy():
    out, target = _output()
    single = TNetOutput(out.logits, out.features[:1], out.feature_logits[:1], [], [], [], [], [])
    terms = tnet_loss(single, target, B0, A, BETA, LAM)
    expected = A * (_ce(out.logits[0], 1) + _ce(out.logits[1], 3)) / 2
    assert float(terms.total) == pytest.approx(expected)
    assert float(terms.baseline_target) == pytest.approx(B0)


def test_bad_weights_and_caps_are_refused():
    out, target = _output()
    with pytest.raises(ValueError, match="ce_weight must be in"):
        tnet_loss(out, target, B0, 1.5, BETA, LAM)
    with pytest.raises(ValueError, match="feature_levels must be None"):
        tnet_loss(out, target, B0, A, BETA, LAM, feature_levels=1)


@pytest.mark.parametrize("build", [tnet_imagenet, tnet_fmow], ids=["imagenet", "fmow"])
def test_reinforce_gradients_reach_only_the_location_module(build):
    torch.manual_seed(0)
    model = build(num_classes=5, locations_per_level=(2,)).train()
    size = 224 if build is tnet_imagenet else 448
    out = model(torch.randn(2, 3, size, size))
    terms = tnet_loss(out, torch.tensor([0, 1]), 0.5, A, BETA, LAM)
    (terms.reinforce + terms.feature_reinforce).backward()
    location = {id(p) for p in model.location.parameters()}
    for name, parameter in model.named_parameters():
        if id(parameter) in location:
            continue
        assert parameter.grad is None or not parameter.grad.any(), name
    assert any(p.grad is not None and p.grad.any() for p in model.location.parameters())


def test_an_evaluation_mode_output_is_refused_with_a_clear_error():
    out, target = _output()
    evaluated = TNetOutput(out.logits, out.features, [], [], [], [], [], out.log_probs)
    with pytest.raises(ValueError, match="needs a traversal in training mode"):
        tnet_loss(evaluated, target, B0, A, BETA, LAM)
