"""GSCNN: Gated Shape CNN (Takikawa et al., ICCV 2019), layer for layer as the released ``network/gscnn.py``.

A regular stream (WiderResNet-38 at output stride 8, or a timm CNN) feeds a full-resolution *shape stream*: three
residual blocks whose features are gated by the regular stream's side outputs (Gated Convolutional Layers, Sec. 3.2)
and fused to one edge map. That edge map, combined with the image's Canny edges, becomes an extra branch of the ASPP
(Sec. 3.3), whose output a DeepLabV3+-style decoder turns into the segmentation (official ``network/gscnn.py``).

Released checkpoints: the submodules carry the official names inside three containers, ``backbone`` (``mod1`` ..
``mod7``), ``shape_stream`` (``dsn*``, ``res*``, ``d*``, ``gate*``, ``fuse``), ``decoder`` (``bot_aspp``,
``bot_fine``, ``final_seg``), and ``aspp`` / ``cw`` at the top; :func:`released_state_dict` adds the container
prefixes to an official state dict.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from lightning_modules.backbones import Backbone
from lightning_modules.blocks.aspp import ASPP, REDUCTION, conv_bn_relu
from lightning_modules.blocks.channel import AttentionSpec
from lightning_modules.blocks.gated_conv import GatedSpatialConv2d
from lightning_modules.fcn import upsample_to
from lightning_modules.gscnn.canny import CANNY_MODES, CannyMode, image_gradients
from lightning_modules.network import SegmentationNetwork, check_images
from lightning_modules.wider_resnet import WiderResNet38

WIDER_RESNET = "wider_resnet38"
# timm stages used with any other backbone: the stem (stride 2), ResNet layer1 (4), layer2 (8) and the last stage.
TIMM_OUT_INDICES = (0, 1, 2, 4)
FINE_CHANNELS = 48
# Channels of the three gated stages of the shape stream.
GATED_CHANNELS = (32, 16, 8)
# The backbone output that plays each role; see FeatureRoles.
WIDER_RESNET_ROLES = (0, 1, 2, 3, 4)
TIMM_ROLES = (0, 0, 1, 2, 3)


class FeatureRoles(NamedTuple):
    """The regular-stream features GSCNN reads, by role.

    ``shape``: input of the shape stream (WRN m1, stride 1; timm stem, stride 2); ``fine``: the decoder's stride-2
    skip features (WRN m2; timm stem); ``side3`` / ``side4`` / ``deep``: inputs of ``dsn3`` / ``dsn4`` / ``dsn7``
    (WRN m3 / m4 / m7; ResNet layer1 / layer2 / layer4), ``deep`` also feeding the ASPP.
    """

    shape: torch.Tensor
    fine: torch.Tensor
    side3: torch.Tensor
    side4: torch.Tensor
    deep: torch.Tensor


def initialize_weights(module: nn.Module) -> None:
    """The official ``initialize_weights``: Kaiming-normal (fan_in) convolutions with zero bias, BN to (1, 0)."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)


class BasicBlock(nn.Module):
    """The torchvision-style residual block of the shape stream (official ``Resnet.BasicBlock(C, C)``).

    ``ReLU(BN(conv3×3(ReLU(BN(conv3×3(x))))) + x)``; no conv bias; Kaiming-normal (fan_out) convolutions.
    Parameters ``18 C² + 4 C``: 73,984 / 18,560 / 4,672 for C = 64 / 32 / 16.
    Shapes: ``(B, C, H, W)`` → ``(B, C, H, W)``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        for conv in (self.conv1, self.conv2):
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + x)


@contextlib.contextmanager
def frozen_running_statistics(module: nn.Module) -> Iterator[None]:
    """Within the context BatchNorm runs as usual, but on exit the running statistics and ``num_batches_tracked`` of
    every BatchNorm of ``module`` are restored to their values on entry.

    Used around the shape stream's recomputation: the recomputed forward must save the same tensors as the first
    one (so BatchNorm keeps tracking), yet must not count the batch twice in the running statistics.
    """
    norms = [layer for layer in module.modules() if isinstance(layer, nn.modules.batchnorm._BatchNorm)]
    saved = [[buffer.clone() for buffer in layer.buffers()] for layer in norms]
    try:
        yield
    finally:
        with torch.no_grad():
            for layer, buffers in zip(norms, saved, strict=True):
                for buffer, value in zip(layer.buffers(), buffers, strict=True):
                    buffer.copy_(value)


class ShapeStream(nn.Module):
    """The gated shape stream (official ``network/gscnn.py``), at the full input resolution H×W.

    ``s3, s4, s7 = Up(dsn3(side3)), Up(dsn4(side4)), Up(dsn7(deep))`` (1×1 convolutions with bias to one channel,
    bilinear with align_corners=True to H×W), then with ``c0 = Up(shape)``::

        c1 = gate1(d1(res1(c0)), s3)    # BasicBlock(C0), 1×1 C0 → 32 with bias, GCL(32)
        c2 = gate2(d2(res2(c1)), s4)    # BasicBlock(32), 1×1 32 → 16, GCL(16)
        c3 = gate3(d3(res3(c2)), s7)    # BasicBlock(16), 1×1 16 → 8, GCL(8)
        edge = fuse(c3)                 # 1×1 8 → 1 without bias: edge logits

    ``C0`` is the channel count of the ``shape`` features (64 for WRN-38 and ResNets: the official layers).
    The official code resizes to H×W after every block; at stride 1 that is the identity, so only the stride-2
    input of a timm backbone is resized here.

    ``dsn1`` (C0 → 1, 65 parameters at C0 = 64) is built but never used, as in the official code: it is kept only so
    that released checkpoints load strictly and the parameter counts match, and frozen (``requires_grad=False``) so
    that DDP does not wait for the gradient of an unused trainable parameter.

    Args:
        shape_channels, side3_channels, side4_channels, deep_channels: channels of the four input features.

    Shapes: ``forward(shape (B, C0, h0, w0), side3, side4, deep, size=(H, W))`` → edge logits ``(B, 1, H, W)``,
    plus with ``return_gates=True`` the list of the three GCL gates ``α`` ``(B, 1, H, W)``.
    """

    def __init__(self, shape_channels: int, side3_channels: int, side4_channels: int, deep_channels: int) -> None:
        super().__init__()
        c1, c2, c3 = GATED_CHANNELS
        self.dsn1 = nn.Conv2d(shape_channels, 1, 1)
        self.dsn1.requires_grad_(False)
        self.dsn3 = nn.Conv2d(side3_channels, 1, 1)
        self.dsn4 = nn.Conv2d(side4_channels, 1, 1)
        self.dsn7 = nn.Conv2d(deep_channels, 1, 1)
        self.res1 = BasicBlock(shape_channels)
        self.d1 = nn.Conv2d(shape_channels, c1, 1)
        self.gate1 = GatedSpatialConv2d(c1)
        self.res2 = BasicBlock(c1)
        self.d2 = nn.Conv2d(c1, c2, 1)
        self.gate2 = GatedSpatialConv2d(c2)
        self.res3 = BasicBlock(c2)
        self.d3 = nn.Conv2d(c2, c3, 1)
        self.gate3 = GatedSpatialConv2d(c3)
        self.fuse = nn.Conv2d(c3, 1, 1, bias=False)

    def forward(
        self,
        shape: torch.Tensor,
        side3: torch.Tensor,
        side4: torch.Tensor,
        deep: torch.Tensor,
        size: Sequence[int],
        return_gates: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        size = tuple(size)
        dsns = (self.dsn3, self.dsn4, self.dsn7)
        sides = [upsample_to(dsn(x), size, True) for dsn, x in zip(dsns, (side3, side4, deep), strict=True)]
        stages = ((self.res1, self.d1, self.gate1), (self.res2, self.d2, self.gate2), (self.res3, self.d3, self.gate3))
        x = shape if tuple(shape.shape[-2:]) == size else upsample_to(shape, size, True)
        alphas = []
        for (res, reduce, gate), side in zip(stages, sides, strict=True):
            x, alpha = gate(reduce(res(x)), side, return_gate=True)
            alphas.append(alpha)
        edge = self.fuse(x)
        return (edge, alphas) if return_gates else edge


class Decoder(nn.Module):
    """GSCNN's decoder (official ``network/gscnn.py``): the DeepLabV3+ decoder on stride-2 features.

    ``bot_aspp`` (1×1, no bias, no BN) reduces the ASPP output to 256 channels, resized bilinearly
    (align_corners=True) to the fine features; ``bot_fine`` (1×1 C_fine → 48, no bias) reduces those; ``final_seg``
    on ``[fine; up]`` (304 channels): 3×3 256 BN ReLU → 3×3 256 BN ReLU → 1×1 K without bias, initialised with
    :func:`initialize_weights` as in the official code (which leaves ``bot_aspp`` / ``bot_fine`` at PyTorch's
    default). The logits are resized to the output size with align_corners=False, as the official code does.

    Parameters (WRN-38, K = 19): ``bot_fine`` 6,144; ``bot_aspp`` 393,216; ``final_seg`` 1,296,128.

    Shapes: ``forward(aspp (B, aspp_channels, h, w), fine (B, fine_channels, h2, w2), size)`` → ``(B, K, *size)``.
    """

    def __init__(self, aspp_channels: int, fine_channels: int, num_classes: int) -> None:
        super().__init__()
        self.bot_fine = nn.Conv2d(fine_channels, FINE_CHANNELS, 1, bias=False)
        self.bot_aspp = nn.Conv2d(aspp_channels, REDUCTION, 1, bias=False)
        # Flat, so that the indices are the official ones (final_seg.0 / .3 / .6 convolutions).
        self.final_seg = nn.Sequential(
            *conv_bn_relu(REDUCTION + FINE_CHANNELS, REDUCTION, 3),
            *conv_bn_relu(REDUCTION, REDUCTION, 3),
            nn.Conv2d(REDUCTION, num_classes, 1, bias=False),
        )
        initialize_weights(self.final_seg)

    def forward(self, aspp: torch.Tensor, fine: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        up = upsample_to(self.bot_aspp(aspp), fine.shape[-2:], True)
        return upsample_to(self.final_seg(torch.cat([self.bot_fine(fine), up], dim=1)), size, False)


class GSCNN(SegmentationNetwork):
    """Gated-SCNN: regular stream, gated shape stream, ASPP with an edge branch, decoder (``network/gscnn.py``).

    Regular stream: ``"wider_resnet38"`` is the released :class:`~lightning_modules.wider_resnet.WiderResNet38`
    (features m1, m2, m3, m4, m7); any other name is a timm CNN through
    :class:`~lightning_modules.backbones.Backbone` with ``out_indices = (0, 1, 2, 4)``: the stem (stride 2; the
    shape stream's input, resized to H×W, and the decoder's stride-2 skip), ResNet ``layer1`` (stride 4, 256
    channels → ``dsn3``), ``layer2`` (stride 8, 512 → ``dsn4``) and the last stage (→ ``dsn7`` and the ASPP). These
    mirror the strides and channels of WRN's m3 / m4 / m7 (the released code has no ResNet variant; this choice
    reproduces the paper's Table 5 parameter deltas). The shape stream's first block and ``d1`` take the stem's
    channel count (64 for ResNets, so exactly the official layers; 16 for EfficientNet-Lite0).

    Fusion: ``a = σ(cw([σ(edge); canny]))`` with ``cw`` a 1×1 convolution 2 → 1 without bias, the Canny map of
    :func:`~lightning_modules.gscnn.canny.image_gradients` (``canny_mode``): the official ``cv2.Canny(·, 10, 100)``
    on the 3-channel uint8 image, computed on the device with a bounded hysteresis
    (:data:`~lightning_modules.gscnn.canny.HYSTERESIS_ROUNDS` rounds, no host synchronisation); with
    ``image_gradients=False``, cw is 1 → 1 on ``σ(edge)`` alone (Table 3, "GCL without gradients"). ``a`` is the
    ASPP's edge branch input.

    Parameters with WRN-38 and K = 19: 137,278,190 (regular stream 105,062,720; shape stream with ``cw`` 107,950;
    ASPP 30,412,032; decoder 1,695,488), as the released model.

    Args:
        num_classes: K.
        backbone: ``"wider_resnet38"`` or a timm CNN name (``"resnet50"``, ``"resnet101"``, ...).
        output_stride: 8 (16 is allowed for timm backbones: ASPP rates 6, 12, 18).
        pretrained: timm backbones only, see :class:`~lightning_modules.backbones.Backbone`.
        pretrained_path: a local ImageNet state dict of the backbone; for WRN-38, NVIDIA/semantic-segmentation's
            ``wider_resnet38.pth.tar`` (see :func:`~lightning_modules.wider_resnet.trunk_state_dict`). For a
            released GSCNN checkpoint use :func:`released_state_dict` and ``load_state_dict``.
        in_chans: input channels (3 with image gradients).
        shape_stream: build the shape stream and the ASPP edge branch; ``False`` gives the DeepLabV3+-style
            baseline of Table 5 (5-branch ASPP, ``bot_aspp`` 1280 → 256) and only ``"out"``.
        image_gradients: fuse the Canny map (only with the shape stream).
        canny_mode: ``"device"`` (0/1 Canny edges of the un-normalised image, clamped and rounded to uint8) or
            ``"released"`` (0/255 Canny edges of the uint8-wrapped normalised tensor, as the released model was
            trained).
        checkpoint_shape_stream: in training, recompute the full-resolution shape stream in the backward pass
            (``torch.utils.checkpoint``, non-reentrant) instead of storing its activations; the BatchNorm running
            statistics are restored after the recomputation, so that each batch updates them once.
        channels_last: NHWC weights and activations.
        attention: SE / ECA / CBAM in every residual block of a timm backbone (see
            :class:`~lightning_modules.backbones.Backbone`); WRN-38 takes none.

    Shapes: ``(B, in_chans, H, W)`` → ``{"out": (B, K, H, W) logits, "edge": (B, 1, H, W) edge logits}`` (the
    ``fuse`` output before the sigmoid the official code applies; only ``"out"`` without the shape stream).
    Sizes that the stride does not divide are zero-padded at the bottom / right and the outputs cropped back; the
    Canny map is computed on the unpadded image.

    Raises:
        ValueError: for an unknown ``canny_mode``, image gradients with ``in_chans != 3``,
            ``checkpoint_shape_stream`` without the shape stream, WRN-38 with ``output_stride != 8`` or
            ``pretrained``, an output stride the ASPP does not support, or an unknown timm name.
    """

    def __init__(
        self,
        num_classes: int,
        backbone: str = WIDER_RESNET,
        output_stride: int = 8,
        pretrained: bool | str = False,
        pretrained_path: str | os.PathLike | None = None,
        in_chans: int = 3,
        shape_stream: bool = True,
        image_gradients: bool = True,
        canny_mode: CannyMode = "device",
        checkpoint_shape_stream: bool = False,
        channels_last: bool = False,
        attention: AttentionSpec = None,
    ) -> None:
        super().__init__(num_classes, in_chans)
        if canny_mode not in CANNY_MODES:
            raise ValueError(f"canny_mode must be one of {CANNY_MODES}, got {canny_mode!r}.")
        uses_gradients = shape_stream and image_gradients
        if uses_gradients and in_chans != 3:
            raise ValueError(f"image_gradients needs RGB images (in_chans=3), got in_chans={in_chans}.")
        if checkpoint_shape_stream and not shape_stream:
            raise ValueError("checkpoint_shape_stream=True needs shape_stream=True.")
        self.backbone: WiderResNet38 | Backbone
        if backbone == WIDER_RESNET:
            if output_stride != 8:
                raise ValueError(f"{WIDER_RESNET} is built at output stride 8 only, got output_stride={output_stride}.")
            if pretrained:
                raise ValueError(
                    f"{WIDER_RESNET} has no downloadable weights: pass its ImageNet checkpoint as pretrained_path."
                )
            if attention is not None:
                raise ValueError(
                    f"attention={attention!r}: {WIDER_RESNET} takes no attention blocks; use a timm backbone."
                )
            self.backbone = WiderResNet38(in_chans, pretrained_path)
            self.roles = WIDER_RESNET_ROLES
        else:
            self.backbone = Backbone(
                backbone,
                output_stride,
                TIMM_OUT_INDICES,
                pretrained,
                pretrained_path,
                in_chans,
                channels_last,
                attention=attention,
            )
            self.roles = TIMM_ROLES
        shape, fine, side3, side4, deep = (self.backbone.channels[index] for index in self.roles)
        self.shape_stream = ShapeStream(shape, side3, side4, deep) if shape_stream else None
        self.cw = nn.Conv2d(2 if uses_gradients else 1, 1, 1, bias=False) if shape_stream else None
        self.aspp = ASPP(deep, output_stride, edge=shape_stream)
        self.decoder = Decoder(self.aspp.out_channels, fine, num_classes)
        self.uses_image_gradients = uses_gradients
        self.canny_mode = canny_mode
        self.checkpoint_shape_stream = checkpoint_shape_stream
        self.channels_last = channels_last
        self.pad_stride = max(self.backbone.reductions)
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def canny(self, images: torch.Tensor) -> torch.Tensor:
        """The Canny map of ``(B, 3, H, W)`` images → ``(B, 1, H, W)``; no host synchronisation in training."""
        return image_gradients(images, self.canny_mode, check="async" if self.training else "raise")

    def pad(self, images: torch.Tensor) -> torch.Tensor:
        """Zero-pad ``(B, C, H, W)`` at the bottom / right to multiples of the regular stream's stride."""
        height, width = images.shape[-2:]
        pad_h, pad_w = -height % self.pad_stride, -width % self.pad_stride
        return F.pad(images, (0, pad_w, 0, pad_h)) if pad_h or pad_w else images

    def regular_stream(self, images: torch.Tensor) -> FeatureRoles:
        """The backbone's features of padded images, by role."""
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        features = self.backbone(images)
        return FeatureRoles(*(features[index] for index in self.roles))

    def _checkpoint_contexts(self) -> tuple[contextlib.AbstractContextManager, contextlib.AbstractContextManager]:
        # The recomputation must not count the batch twice in the running statistics.
        return contextlib.nullcontext(), frozen_running_statistics(self.shape_stream)

    def edge_logits(self, features: FeatureRoles, size: Sequence[int]) -> torch.Tensor:
        """The shape stream's ``(B, 1, *size)`` edge logits, checkpointed in training if so configured."""
        args = (features.shape, features.side3, features.side4, features.deep, tuple(size))
        if self.checkpoint_shape_stream and self.training and torch.is_grad_enabled():
            return checkpoint(self.shape_stream, *args, use_reentrant=False, context_fn=self._checkpoint_contexts)
        return self.shape_stream(*args)

    def fused_edges(self, edge_logits: torch.Tensor, canny: torch.Tensor | None) -> torch.Tensor:
        """``a = σ(cw([σ(edge); canny]))`` (or ``σ(cw(σ(edge)))`` without image gradients): ``(B, 1, H, W)``."""
        edge = torch.sigmoid(edge_logits)
        inputs = edge if canny is None else torch.cat([edge, canny.to(edge.dtype)], dim=1)
        return torch.sigmoid(self.cw(inputs))

    def forward_outputs(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        height, width = images.shape[-2:]
        canny = self.pad(self.canny(images)) if self.uses_image_gradients else None
        padded = self.pad(images)
        size = padded.shape[-2:]
        features = self.regular_stream(padded)
        if self.shape_stream is None:
            logits = self.decoder(self.aspp(features.deep), features.fine, size)
            return {"out": logits[..., :height, :width]}
        edge = self.edge_logits(features, size)
        logits = self.decoder(self.aspp(features.deep, self.fused_edges(edge, canny)), features.fine, size)
        return {"out": logits[..., :height, :width], "edge": edge[..., :height, :width]}


def shape_stream_maps(network: GSCNN, images: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
    """What the shape stream sees and produces, for the notebook's figures (like the paper's Fig. 5).

    Runs without autograd; call ``network.eval()`` first so that BatchNorm uses its running statistics.

    Args:
        network: a :class:`GSCNN` with its shape stream.
        images: ``(B, 3, H, W)`` normalised images.

    Returns:
        ``"canny"``: the Canny map ``(B, 1, H, W)`` of ``network.canny_mode`` (computed even when the network does
        not fuse it); ``"gates"``: the three GCL gates ``α`` ``(B, 1, H, W)``; ``"edge"``: ``σ`` of the edge
        logits; ``"fused"``: ``a``, the ASPP edge branch's input.

    Raises:
        ValueError: if the network has no shape stream, or ``images`` do not fit it.
    """
    if network.shape_stream is None:
        raise ValueError("shape_stream_maps needs a GSCNN built with shape_stream=True.")
    check_images(images, network.in_chans)
    height, width = images.shape[-2:]
    with torch.no_grad():
        canny = image_gradients(images, network.canny_mode)
        padded = network.pad(images)
        features = network.regular_stream(padded)
        size = tuple(padded.shape[-2:])
        edge, gates = network.shape_stream(
            features.shape, features.side3, features.side4, features.deep, size, return_gates=True
        )
        fused = network.fused_edges(edge, network.pad(canny) if network.uses_image_gradients else None)
    crop = (..., slice(0, height), slice(0, width))
    return {
        "canny": canny,
        "gates": [gate[crop] for gate in gates],
        "edge": torch.sigmoid(edge[crop]),
        "fused": fused[crop],
    }


def shape_stream_parameters(network: GSCNN) -> int:
    """Parameters GSCNN adds to the DeepLabV3+-style network without shape stream (the paper's Table 5).

    The shape stream (with the unused ``dsn1``), ``cw``, the ASPP edge branch and the ``bot_aspp`` weights that read
    it (256 × 256): 174,254 with WRN-38, 172,206 with ResNet-50 / 101. Equal to
    ``count(GSCNN(...)) - count(GSCNN(..., shape_stream=False))``; 0 without the shape stream.
    """
    if network.shape_stream is None:
        return 0
    added = [network.shape_stream, network.cw, network.aspp.edge_conv]
    bot_aspp_inputs = network.decoder.bot_aspp.out_channels * network.aspp.edge_conv[0].out_channels
    return sum(p.numel() for module in added for p in module.parameters()) + bot_aspp_inputs


# Official top-level module → the container that holds it here ("" = top level).
RELEASED_CONTAINERS = {
    **{f"mod{index}": "backbone." for index in range(1, 8)},
    **{name: "shape_stream." for name in ("dsn1", "dsn3", "dsn4", "dsn7", "res1", "res2", "res3", "fuse")},
    **{name: "shape_stream." for name in ("d1", "d2", "d3", "gate1", "gate2", "gate3")},
    **{name: "decoder." for name in ("bot_fine", "bot_aspp", "final_seg")},
    "aspp": "",
    "cw": "",
}
# The official loss submodule, whose buffers released checkpoints carry (see released_state_dict).
RELEASED_CRITERION = "criterion"


def released_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An official GSCNN state dict (``network/gscnn.py``, WRN-38) under this module's names.

    Strips a ``module.`` prefix (DataParallel) and puts each official top-level module into its container
    (:data:`RELEASED_CONTAINERS`): ``mod1.conv1.weight`` → ``backbone.mod1.conv1.weight``, ``gate1.weight`` →
    ``shape_stream.gate1.weight``, ``final_seg.6.weight`` → ``decoder.final_seg.6.weight``; ``aspp.*`` and ``cw.*``
    keep their names. For a checkpoint file: ``GSCNN(K).load_state_dict(released_state_dict(read_state_dict(path)))``
    (:func:`~lightning_modules.pretrained_weights.read_state_dict` unwraps ``{"state_dict": ...}``).

    Keys under ``criterion.`` are dropped: the official GSCNN holds its training loss as the submodule
    ``self.criterion`` (``JointEdgeSegLoss``), and its ``ImageBasedCrossEntropyLoss2d`` (``loss.py``) assigns the
    per-image class weights to ``self.nll_loss.weight``, an ``NLLLoss`` buffer, at every step. A checkpoint saved in
    training therefore holds ``module.criterion.seg_loss.nll_loss.weight``: the last image's class weights, not a
    weight of the network (this module's loss lives in :class:`~lightning_modules.gscnn.module.GSCNNModule`).

    Raises:
        ValueError: for a key whose top-level module the official GSCNN does not have.
    """
    mapped = {}
    for key, tensor in state.items():
        name = key.removeprefix("module.")
        head = name.split(".", 1)[0]
        if head == RELEASED_CRITERION:
            continue
        if head not in RELEASED_CONTAINERS:
            raise ValueError(
                f"state has the key {key!r}, whose module {head!r} is not one of the official GSCNN's "
                f"({', '.join(RELEASED_CONTAINERS)})."
            )
        mapped[RELEASED_CONTAINERS[head] + name] = tensor
    return mapped
