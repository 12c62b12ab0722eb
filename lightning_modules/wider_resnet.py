"""WiderResNet-38-A2 at output stride 8: the released GSCNN's regular stream (official ``network/wider_resnet.py``).

The network is the pre-activation ("identity mapping") Wider ResNet of Wu et al. that NVIDIA's GSCNN and
semantic-segmentation repositories build with ``wider_resnet38_a2(classes=1000, dilation=True)``
(official file ``network/wider_resnet.py``): max-pooling before the second and third modules, a strided first
block in ``mod4``, then dilation 2 (``mod5``) and 4 (``mod6``, ``mod7``) instead of striding. Submodules carry the
official names (``mod1`` .. ``mod7``, ``pool2``, ``pool3``, ``block1`` .., ``bn1``, ``convs.conv1`` ..,
``proj_conv``), so the ImageNet checkpoint of NVIDIA/semantic-segmentation loads by name (see
:func:`trunk_state_dict`).

Two things of the official code are deliberately not reproduced: its constructor rebinds ``nn.Dropout`` to
``nn.Dropout2d`` for the whole process (here the two blocks that drop simply use ``nn.Dropout2d``), and the final
``bn_out`` BN-ReLU and the ImageNet classifier, which GSCNN never uses, are not built.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from lightning_modules.pretrained_weights import load_checked, read_state_dict

# Blocks per module (mod2 .. mod7), internal channels of each module's blocks, dilation and Dropout2d probability of
# the dilated A2 variant: the ``"38"`` structure of the official ``_NETS`` table.
STRUCTURE = (3, 3, 6, 3, 1, 1)
CHANNELS: tuple[tuple[int, ...], ...] = (
    (128, 128),
    (256, 256),
    (512, 512),
    (512, 1024),
    (512, 1024, 2048),
    (1024, 2048, 4096),
)
DILATIONS = (1, 1, 1, 2, 4, 4)
DROPOUTS: tuple[float | None, ...] = (None, None, None, None, 0.3, 0.5)
# Tensors of the ImageNet checkpoint that belong to the classification head, not to the trunk.
IMAGENET_HEAD_PREFIXES = ("bn_out.", "classifier.")


def bn_relu(channels: int) -> nn.Sequential:
    """BatchNorm → ReLU, as the official ``bnrelu`` (hence the state-dict names ``bn1.0.weight``, ...)."""
    return nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


class IdentityResidualBlock(nn.Module):
    """Pre-activation residual block (official ``IdentityResidualBlock``, without groups and distributed BN).

    ``y = convs(BNReLU(x)) + shortcut`` where the shortcut is ``proj_conv(BNReLU(x))`` (a 1×1 convolution of the
    *pre-activated* input) when the stride is not 1 or the channel count changes, and ``x`` otherwise.
    With two ``channels`` entries ``convs`` is 3×3 → BN-ReLU → 3×3; with three it is the bottleneck
    1×1 → BN-ReLU → 3×3 → BN-ReLU → [Dropout2d] → 1×1. The stride sits on the first convolution, the dilation on
    every 3×3 one (padding = dilation). No convolution has a bias.

    Args:
        in_channels: input channels.
        channels: internal and output channels, 2 or 3 entries.
        stride: stride of the first convolution.
        dilation: dilation of the 3×3 convolutions.
        dropout: Dropout2d probability before the last 1×1 of a bottleneck, or ``None``.

    Shapes: ``(B, in_channels, H, W)`` → ``(B, channels[-1], ⌈H / stride⌉, ⌈W / stride⌉)``.

    Raises:
        ValueError: if ``channels`` does not have 2 or 3 entries, or ``dropout`` is given for a 2-entry block.
    """

    def __init__(
        self,
        in_channels: int,
        channels: Sequence[int],
        stride: int = 1,
        dilation: int = 1,
        dropout: float | None = None,
    ) -> None:
        super().__init__()
        if len(channels) not in (2, 3):
            raise ValueError(f"channels must have 2 (basic) or 3 (bottleneck) entries, got {tuple(channels)}.")
        if dropout is not None and len(channels) != 3:
            raise ValueError(f"dropout must be None for a 2-entry (non-bottleneck) block, got {dropout}.")
        self.bn1 = bn_relu(in_channels)
        if len(channels) == 2:
            layers = [
                ("conv1", nn.Conv2d(in_channels, channels[0], 3, stride, dilation, dilation, bias=False)),
                ("bn2", bn_relu(channels[0])),
                ("conv2", nn.Conv2d(channels[0], channels[1], 3, 1, dilation, dilation, bias=False)),
            ]
        else:
            layers = [
                ("conv1", nn.Conv2d(in_channels, channels[0], 1, stride, bias=False)),
                ("bn2", bn_relu(channels[0])),
                ("conv2", nn.Conv2d(channels[0], channels[1], 3, 1, dilation, dilation, bias=False)),
                ("bn3", bn_relu(channels[1])),
            ]
            if dropout is not None:
                layers.append(("dropout", nn.Dropout2d(dropout)))
            layers.append(("conv3", nn.Conv2d(channels[1], channels[2], 1, bias=False)))
        self.convs = nn.Sequential(OrderedDict(layers))
        needs_projection = stride != 1 or in_channels != channels[-1]
        self.proj_conv = nn.Conv2d(in_channels, channels[-1], 1, stride, bias=False) if needs_projection else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = self.bn1(x)
        shortcut = x if self.proj_conv is None else self.proj_conv(activated)
        return self.convs(activated) + shortcut


def trunk_state_dict(state: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors of an ImageNet WRN-38 checkpoint that the trunk holds, under the trunk's names.

    The checkpoint of NVIDIA/semantic-segmentation (``wider_resnet38.pth.tar``) is
    ``{"state_dict": {"module.mod1.conv1.weight", ...}}``: :func:`read_state_dict` unwraps ``"state_dict"`` and
    strips ``module.``. This function then drops the ImageNet head (``bn_out.*``, ``classifier.*``), which the trunk
    does not build, and adds any ``num_batches_tracked`` counter the file lacks (checkpoints saved before
    PyTorch 0.4.1 have none; the counter only matters for BatchNorm with ``momentum=None``, which is not used).
    Every other key is left for :func:`load_checked` to match or report.
    """
    trunk = {key: value for key, value in state.items() if not key.startswith(IMAGENET_HEAD_PREFIXES)}
    for key, buffer in own.items():
        if key.endswith("num_batches_tracked") and key not in trunk:
            trunk[key] = torch.zeros_like(buffer, device="cpu")
    return trunk


class WiderResNet38(nn.Module):
    """WiderResNet-38-A2 dilated to output stride 8, without ``bn_out`` and classifier (``network/wider_resnet.py``).

    ========  ==========================================  ========  ======  ===========
    feature   module                                      channels  stride  parameters
    ========  ==========================================  ========  ======  ===========
    m1        ``mod1``: 3×3 conv in_chans → 64            64        1       1,728
    m2        ``pool2`` + ``mod2``: 3 blocks (128, 128)   128       2       820,608
    m3        ``pool3`` + ``mod3``: 3 blocks (256, 256)   256       4       3,279,616
    m4        ``mod4``: 6 blocks (512, 512), stride 2     512       8       27,274,752
    m5        ``mod5``: 3 blocks (512, 1024), dilation 2  1024      8       26,484,736
    m6        ``mod6``: bottleneck (512, 1024, 2048), d4  2048      8       9,442,304
    m7        ``mod7``: bottleneck (1024, 2048, 4096), d4 4096      8       37,758,976
    ========  ==========================================  ========  ======  ===========

    In all 105,062,720 parameters (with ``in_chans = 3``). ``mod6`` / ``mod7`` apply Dropout2d 0.3 / 0.5 before
    their last 1×1 convolution. m7 is returned before any final activation, as GSCNN uses it.

    Args:
        in_chans: input channels of ``mod1``.
        pretrained_path: a local ImageNet checkpoint of this network (NVIDIA/semantic-segmentation's
            ``wider_resnet38.pth.tar``, or a state dict of this module); every trunk tensor must be in it, see
            :func:`trunk_state_dict`. There are no downloadable weights.

    Attributes:
        channels: ``[64, 128, 256, 512, 4096]``, the channels of the returned features.
        reductions: ``[1, 2, 4, 8, 8]``, their strides.
        output_stride: 8.

    Shapes: ``(B, in_chans, H, W)`` → ``[m1, m2, m3, m4, m7]`` with ``m_i`` of shape
    ``(B, channels[i], ⌈H / reductions[i]⌉, ⌈W / reductions[i]⌉)``.

    Raises:
        FileNotFoundError, PretrainedWeightsError: if ``pretrained_path`` cannot be read or does not fit.
    """

    channels: list[int]
    reductions: list[int]

    def __init__(self, in_chans: int = 3, pretrained_path: str | os.PathLike | None = None) -> None:
        super().__init__()
        self.in_chans = in_chans
        self.output_stride = 8
        self.mod1 = nn.Sequential(OrderedDict([("conv1", nn.Conv2d(in_chans, 64, 3, padding=1, bias=False))]))
        self.pool2 = nn.MaxPool2d(3, stride=2, padding=1)
        self.pool3 = nn.MaxPool2d(3, stride=2, padding=1)
        in_channels = 64
        for index, (depth, channels) in enumerate(zip(STRUCTURE, CHANNELS, strict=True)):
            blocks = []
            for block in range(depth):
                # Only mod4 strides (in its first block); the later modules dilate instead.
                stride = 2 if index == 2 and block == 0 else 1
                unit = IdentityResidualBlock(in_channels, channels, stride, DILATIONS[index], DROPOUTS[index])
                blocks.append((f"block{block + 1}", unit))
                in_channels = channels[-1]
            self.add_module(f"mod{index + 2}", nn.Sequential(OrderedDict(blocks)))
        self.channels = [64, CHANNELS[0][-1], CHANNELS[1][-1], CHANNELS[2][-1], CHANNELS[-1][-1]]
        self.reductions = [1, 2, 4, 8, 8]
        if pretrained_path is not None:
            state = trunk_state_dict(read_state_dict(pretrained_path), self.state_dict())
            load_checked(self, state, f"pretrained_path {str(pretrained_path)!r}")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        m1 = self.mod1(x)
        m2 = self.mod2(self.pool2(m1))
        m3 = self.mod3(self.pool3(m2))
        m4 = self.mod4(m3)
        m7 = self.mod7(self.mod6(self.mod5(m4)))
        return [m1, m2, m3, m4, m7]
