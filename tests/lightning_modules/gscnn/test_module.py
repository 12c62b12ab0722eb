"""GSCNNModule: its terms are the loss functions' values, its switches reach them, and its training step
never synchronises with the host nor calls NumPy or OpenCV."""

import math
import os
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.data import DataLoader, TensorDataset

from datamodules.transforms import IMAGENET_MEAN, IMAGENET_STD
from lightning_modules.gscnn.edges import edge_targets
from lightning_modules.gscnn.losses import (
    balanced_edge_bce,
    dual_task_loss,
    edge_attention_loss,
    image_weighted_cross_entropy,
)
from lightning_modules.gscnn.module import GSCNNModule


class TinyGSCNN(nn.Module):
    """A 3×3 convolution standing in for the network: class logits and, with ``edge``, boundary logits."""

    def __init__(self, num_classes: int, edge: bool = True) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.edge = edge
        self.conv = nn.Conv2d(3, num_classes + 1, 3, padding=1)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.conv(images)
        outputs = {"out": features[:, : self.num_classes]}
        if self.edge:
            outputs["edge"] = features[:, self.num_classes :]
        return outputs


def batch(num_classes=4, size=(12, 14), images=2, seed=0, block=4):
    generator = torch.Generator().manual_seed(seed)
    shape = (images, size[0] // block + 1, size[1] // block + 1)
    blocks = torch.randint(0, num_classes, shape, generator=generator)
    target = (
        blocks.repeat_interleave(block, dim=1).repeat_interleave(block, dim=2)[:, : size[0], : size[1]].contiguous()
    )
    target[:, :2, :3] = 255
    return torch.randn(images, 3, *size, generator=generator) * 2, target


def seeded(function, *args, **kwargs):
    torch.manual_seed(1234)
    return function(*args, **kwargs)


def test_training_terms_are_the_weighted_loss_functions():
    torch.manual_seed(0)
    # Blocks of 8 px: pixels off the 2 px boundary band exist, so the edge loss has both classes.
    images, target = batch(size=(24, 28), block=8)
    network = TinyGSCNN(4)
    module = GSCNNModule(network, 4, seg_weight=0.5, attention_weight=2.0, dual_weight=3.0, wt_bound=1.5)
    outputs = network(images)
    losses = seeded(module.compute_losses, outputs, target)
    assert sorted(losses) == ["loss", "loss_attention", "loss_dual", "loss_edge", "loss_seg"]
    logits, edge = outputs["out"], outputs["edge"]
    boundaries = edge_targets(target, 4)
    expected = {
        "loss_seg": 0.5 * image_weighted_cross_entropy(logits, target, 4, upper_bound=1.5),
        "loss_edge": 20.0 * balanced_edge_bce(edge, boundaries),
        "loss_attention": 2.0 * edge_attention_loss(logits, target, edge, 4, upper_bound=1.5),
        "loss_dual": 3.0 * seeded(dual_task_loss, logits, target, 4),
    }
    for key, value in expected.items():
        torch.testing.assert_close(losses[key], value, rtol=0, atol=0)
    torch.testing.assert_close(losses["loss"], sum(expected.values()), rtol=1e-6, atol=0)
    assert float(losses["loss_attention"].detach()) > 0  # some pixels pass the 0.8 threshold
    assert float(losses["loss_edge"].detach()) > 0


def test_released_switches_reach_the_loss_functions():
    torch.manual_seed(0)
    images, target = batch(num_classes=19, seed=1, size=(24, 28), block=8)
    network = TinyGSCNN(19)
    module = GSCNNModule(
        network,
        19,
        dual_mode="released",
        edge_bce="released",
        onehot_offset=1,
        edge_radius=3,
        attention_threshold=0.6,
    )
    outputs = network(images)
    losses = seeded(module.compute_losses, outputs, target)
    logits, edge = outputs["out"], outputs["edge"]
    boundaries = edge_targets(target, 19, radius=3, onehot_offset=1)
    assert not torch.equal(boundaries, edge_targets(target, 19))
    torch.testing.assert_close(losses["loss_edge"], 20.0 * balanced_edge_bce(edge, boundaries, "released"))
    assert float(losses["loss_edge"].detach()) > 0
    torch.testing.assert_close(losses["loss_attention"], edge_attention_loss(logits, target, edge, 19, 0.6))
    torch.testing.assert_close(losses["loss_dual"], seeded(dual_task_loss, logits, target, 19, "released"))
    module.tau = 2.0
    torch.testing.assert_close(
        seeded(module.compute_losses, outputs, target)["loss_dual"],
        seeded(dual_task_loss, logits, target, 19, "released", tau=2.0),
    )


def test_training_terms_of_a_batch_are_the_means_of_its_single_image_terms():
    """The official run has one image per GPU and averages the GPUs (DataParallel): every term is per image.

    The dual term draws its noise for the whole batch; its per-image rule is tested in test_losses.py.
    """
    torch.manual_seed(0)
    images, target = batch(seed=2)
    # Large regions, so that the boundary bands leave negatives, in different proportions per image.
    target[0], target[1] = 0, 1
    target[0, :, 7:] = 3
    target[1, 4:9, 3:8] = 2
    network = TinyGSCNN(4)
    module = GSCNNModule(network, 4, dual_weight=0.0)
    with torch.no_grad():
        outputs = network(images)
        together = module.compute_losses(outputs, target)
        alone = [
            module.compute_losses({k: v[n : n + 1] for k, v in outputs.items()}, target[n : n + 1]) for n in (0, 1)
        ]
    for key in ("loss_seg", "loss_edge", "loss_attention", "loss"):
        assert abs(float(alone[0][key]) - float(alone[1][key])) > 1e-3, key
        torch.testing.assert_close(together[key], (alone[0][key] + alone[1][key]) / 2, rtol=1e-6, atol=0)


def test_zero_weights_skip_terms_and_a_network_without_edge_gets_only_the_seg_term():
    images, target = batch()
    network = TinyGSCNN(4)
    module = GSCNNModule(network, 4, attention_weight=0.0, dual_weight=0.0)
    assert sorted(module.compute_losses(network(images), target)) == ["loss", "loss_edge", "loss_seg"]
    baseline = TinyGSCNN(4, edge=False)
    module = GSCNNModule(baseline, 4)
    losses = module.compute_losses(baseline(images), target)
    assert sorted(losses) == ["loss", "loss_seg"]
    torch.testing.assert_close(losses["loss"], image_weighted_cross_entropy(baseline(images)["out"], target, 4))
    with pytest.raises(ValueError, match="no loss term"):
        GSCNNModule(baseline, 4, seg_weight=0.0).compute_losses(baseline(images), target)


def test_evaluation_loss_is_the_plain_cross_entropy():
    images, target = batch()
    network = TinyGSCNN(4)
    module = GSCNNModule(network, 4).eval()
    with torch.no_grad():
        outputs = network(images)
        losses = module.compute_losses(outputs, target)
    assert sorted(losses) == ["loss"]
    torch.testing.assert_close(losses["loss"], F.cross_entropy(outputs["out"], target, ignore_index=255))


def test_edge_output_shape_is_checked():
    images, target = batch()
    outputs = TinyGSCNN(4)(images)
    outputs["edge"] = outputs["edge"][..., :-1]
    with pytest.raises(ValueError, match="'edge' must be boundary logits"):
        GSCNNModule(TinyGSCNN(4), 4).compute_losses(outputs, target)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dual_mode": "official"}, "dual_mode must be one of"),
        ({"edge_bce": "paper_faithful"}, "edge_bce must be one of"),
        ({"dual_mode": "released"}, 'dual_mode="released"'),
        ({"tau": 0.0}, "tau"),
        ({"onehot_offset": 2}, "onehot_offset"),
        ({"edge_radius": 0}, "edge_radius"),
        ({"attention_threshold": 1.5}, "attention_threshold"),
        ({"wt_bound": -1.0}, "wt_bound"),
        ({"edge_weight": -20.0}, "edge_weight"),
        ({"dual_weight": math.nan}, "dual_weight"),
        ({"seg_weight": 0, "edge_weight": 0, "attention_weight": 0, "dual_weight": 0}, "at least one"),
        ({"loss_weights": {"out": 1.0}}, "loss_weights"),
    ],
)
def test_invalid_switches(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GSCNNModule(TinyGSCNN(4), 4, **kwargs)


def test_released_dual_mode_is_accepted_when_its_term_is_off_or_k_is_19():
    GSCNNModule(TinyGSCNN(4), 4, dual_mode="released", dual_weight=0.0)
    GSCNNModule(TinyGSCNN(19), 19, dual_mode="released")


class Refused(AssertionError):
    """A host synchronisation, NumPy or OpenCV call inside the guarded block."""


class RefusingModule(types.ModuleType):
    def __getattr__(self, name: str):
        raise Refused(f"cv2.{name} used in the training path")


# ATen ops whose result size or value must be read on the host: on a GPU each one waits for the device.
HOST_READ_OPS = {
    "_local_scalar_dense",
    "is_nonzero",
    "equal",
    "allclose",
    "nonzero",
    "masked_select",
    "_unique",
    "_unique2",
    "unique_dim",
    "unique_consecutive",
    "bincount",
}


class RecordHostReads(TorchDispatchMode):
    """Records the ATen ops, forward and backward, that synchronise on a GPU: a CPU run calls no
    ``Tensor.item`` for boolean-mask indexing or ``torch.nonzero``, but it dispatches the same ops."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        masked = name in {"index", "index_put", "index_put_"} and any(
            isinstance(index, torch.Tensor) and index.dtype == torch.bool for index in args[1]
        )
        repeats = name == "repeat_interleave" and any(isinstance(a, torch.Tensor) for a in (*args, *kwargs.values()))
        if name in HOST_READ_OPS or masked or repeats:
            self.ops.append(str(func))
        return func(*args, **kwargs)


@contextmanager
def no_host_sync(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[list[str], list[str]]]:
    """Tensor→host conversions raise, cv2 raises on any use; calls into NumPy and ATen ops that read a
    device value on the host are recorded: ``(numpy_calls, host_read_ops)``.

    A profile hook sees each Python frame (``call``) and each builtin call (``c_call``); a call is NumPy's
    when its code lives under NumPy's directory or the builtin's ``__module__`` starts with ``numpy``.
    """

    def refuse(name: str):
        def method(*args, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            raise Refused(f"Tensor.{name} synchronises with the host (called from {caller})")

        return method

    for name in ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, refuse(name))
    monkeypatch.setitem(sys.modules, "cv2", RefusingModule("cv2"))
    numpy_dir = os.path.dirname(np.__file__)
    calls: list[str] = []

    def profile(frame, event, arg):
        if event == "call" and frame.f_code.co_filename.startswith(numpy_dir):
            calls.append(f"{frame.f_code.co_filename}:{frame.f_code.co_name}")
        elif event == "c_call" and str(getattr(arg, "__module__", None) or "").startswith("numpy"):
            calls.append(repr(arg))

    reads = RecordHostReads()
    sys.setprofile(profile)
    try:
        with reads:
            yield calls, reads.ops
    finally:
        sys.setprofile(None)
        monkeypatch.undo()


def test_the_guard_catches_what_it_should(monkeypatch):
    x = torch.randn(4)
    with no_host_sync(monkeypatch) as (numpy_calls, host_reads):
        np.zeros(3).sum()
        x[x > 0] = 0.0
        torch.nonzero(x)
        with pytest.raises(Refused):
            torch.ones(()).item()
        with pytest.raises(Refused):
            bool(torch.ones(()))
        with pytest.raises(Refused):
            __import__("cv2").Canny  # noqa: B018
    assert numpy_calls
    assert any("index_put" in op for op in host_reads) and any("nonzero" in op for op in host_reads)


@pytest.mark.filterwarnings("ignore:You are trying to `self.log")
@pytest.mark.parametrize("released", [False, True])
def test_training_step_and_backward_never_synchronise_nor_call_numpy(monkeypatch, released):
    torch.manual_seed(0)
    classes = 19 if released else 4
    images, target = batch(num_classes=classes)
    switches = {"dual_mode": "released", "edge_bce": "released", "onehot_offset": 1} if released else {}
    module = GSCNNModule(TinyGSCNN(classes), classes, **switches).train()
    with no_host_sync(monkeypatch) as (numpy_calls, host_reads):
        loss = module.training_step((images, target), 0)
        loss.backward()
    assert numpy_calls == [] and host_reads == []
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in module.parameters())


@pytest.mark.filterwarnings("ignore:You are trying to `self.log")
def test_a_batch_without_labels_gives_finite_losses_and_zero_gradients():
    torch.manual_seed(0)
    images, _ = batch()
    target = torch.full((2, 12, 14), 255)
    module = GSCNNModule(TinyGSCNN(4), 4).train()
    outputs = module.network(images)
    losses = module.compute_losses(outputs, target)
    assert all(math.isfinite(float(value.detach())) for value in losses.values())
    for key in ("loss_seg", "loss_attention", "loss_dual", "loss_edge"):
        assert float(losses[key].detach()) == 0.0
        gradients = torch.autograd.grad(losses[key], list(module.parameters()), allow_unused=True, retain_graph=True)
        assert all(g is None or torch.equal(g, torch.zeros_like(g)) for g in gradients), key
    loss = module.training_step((images, target), 0)
    assert torch.isfinite(loss)


def test_fit_one_epoch_with_validation():
    torch.manual_seed(0)
    images, target = batch(images=4)
    loader = DataLoader(TensorDataset(images, target), batch_size=2)
    module = GSCNNModule(TinyGSCNN(4), 4, lr=0.01)
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=1,
    )
    trainer.fit(module, loader, loader)
    assert math.isfinite(float(trainer.callback_metrics["train/loss"]))
    assert math.isfinite(float(trainer.callback_metrics["val/loss"]))
    assert {"train/loss_seg", "train/loss_edge", "train/loss_attention", "train/loss_dual"} <= set(
        trainer.callback_metrics
    )


@pytest.mark.filterwarnings("ignore:You are trying to `self.log")
@pytest.mark.parametrize("canny_mode", ["device", "released"])
def test_the_real_network_with_its_canny_never_synchronises_nor_calls_numpy(monkeypatch, canny_mode):
    from lightning_modules.gscnn.network import GSCNN

    torch.manual_seed(0)
    _, target = batch(num_classes=4)
    grey = torch.randint(0, 256, (2, 3, *target.shape[-2:]), generator=torch.Generator().manual_seed(0)) / 255.0
    images = (grey - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)
    network = GSCNN(4, backbone="test_resnet", canny_mode=canny_mode, checkpoint_shape_stream=True)
    module = GSCNNModule(network, 4).train()
    with no_host_sync(monkeypatch) as (numpy_calls, host_reads):
        loss = module.training_step((images, target), 0)
        loss.backward()
    assert numpy_calls == [] and host_reads == []
    assert torch.isfinite(loss)
    trained = [p for p in module.parameters() if p.requires_grad]
    assert all(p.grad is not None for p in trained)
