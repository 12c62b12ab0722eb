"""TNet's training augmentation and evaluation preprocessing (the TF-slim Inception recipe), in torchvision v2.

The official fMoW input pipeline (Tpap/TNet, ``fMoW/input_fMoW.py``: ``distort_image``, ``distort_color``,
``preprocess_image``) is TF-slim's Inception preprocessing with its own ranges. Training, in order:

1. ``tf.image.sample_distorted_bounding_box`` with the dataset's boxes (min object covered 0.1, aspect ratio
   [0.5, 2], area [0.85, 1.0], 50 attempts, the whole image when there is no box or no attempt succeeds), then
   crop: :class:`SampleDistortedBoundingBox` (written here, with TF's sampling rules; torchvision's
   ``RandomResizedCrop`` samples differently and ignores boxes).
2. Resize to ``S × S`` (aspect ratio not kept) with one of 8 TF methods drawn uniformly, ``antialias=False``:
   ``v2.RandomChoice`` over the torchvision modes of :data:`RESIZE_METHODS` (TF method → torchvision mode below).
3. Horizontal flip with p = 0.5: ``v2.RandomHorizontalFlip``.
4. Colour distortion, one of 5 cases drawn uniformly (the official ``apply_with_random_selector`` over
   ``np.arange(5)``): TF-slim's 4 orderings of brightness (±32/255, additive), saturation [0.5, 1.5], hue ±0.2 and
   contrast [0.5, 1.5], then a clip to [0, 1]; or case 4, no distortion: :class:`DistortColor`.
5. ``[0, 1] → [−1, 1]`` (``2x − 1``): ``v2.Normalize(0.5, 0.5)``.

Evaluation (official ``preprocess_image`` for any split but training): the whole image resized bilinearly to
``S × S`` (no aspect ratio kept, no centre crop, ``antialias=False``), then ``[−1, 1]``.

TF's 8 resize methods and the torchvision mode each maps to (torchvision offers NEAREST, NEAREST_EXACT,
BILINEAR, BICUBIC on tensors and also BOX, HAMMING, LANCZOS on PIL images); each TF method keeps its 1/8 chance:

=================  ======================  =====================================================================
TF method          torchvision mode        how close
=================  ======================  =====================================================================
BILINEAR           BILINEAR (tensor)       equal: half-pixel centres, no antialiasing, on float
LANCZOS3           LANCZOS (PIL)           same kernel; PIL widens it when shrinking (antialias), TF does not
LANCZOS5           LANCZOS (PIL)           torchvision has no 5-lobe Lanczos: the 3-lobe one
BICUBIC            BICUBIC (tensor)        equal: Keys a = −0.5, half-pixel centres, no antialiasing, on float
GAUSSIAN           HAMMING (PIL)           no Gaussian kernel in torchvision: Hamming, the other smooth 1-px
                                           kernel (TF: radius 1.5, σ 0.5)
NEAREST_NEIGHBOR   NEAREST_EXACT (tensor)  equal: TF 2 samples at the pixel centre, as ``nearest-exact`` does
AREA               BOX (PIL)               equal when shrinking (area average); when enlarging, TF's area
                                           resize is nearest-like, PIL's box is too
MITCHELLCUBIC      BICUBIC (tensor)        no Mitchell–Netravali cubic (B = C = 1/3) in torchvision: Keys
=================  ======================  =====================================================================

The PIL modes resize the uint8 image (TF resizes floats: a rounding of at most half a grey level).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.v2 import functional as F

# sample_distorted_bounding_box's settings in the official distort_image.
MIN_OBJECT_COVERED = 0.1
ASPECT_RATIO_RANGE = (0.5, 2.0)
AREA_RANGE = (0.85, 1.0)
MAX_ATTEMPTS = 50
# distort_color's ranges (TF-slim's, as the official code sets them).
BRIGHTNESS_DELTA = 32.0 / 255.0
SATURATION_RANGE = (0.5, 1.5)
HUE_DELTA = 0.2
CONTRAST_RANGE = (0.5, 1.5)
# TF-slim distort_color's 4 orderings; the official selector draws one of them or ``NO_DISTORTION`` (5 cases).
COLOR_ORDERINGS = (
    ("brightness", "saturation", "hue", "contrast"),
    ("saturation", "brightness", "contrast", "hue"),
    ("contrast", "hue", "brightness", "saturation"),
    ("hue", "saturation", "contrast", "brightness"),
)
NO_DISTORTION = len(COLOR_ORDERINGS)
# The official 8 resize methods, in its order, each with the torchvision mode used for it (module docstring).
RESIZE_METHODS = (
    ("bilinear", InterpolationMode.BILINEAR),
    ("lanczos3", InterpolationMode.LANCZOS),
    ("lanczos5", InterpolationMode.LANCZOS),
    ("bicubic", InterpolationMode.BICUBIC),
    ("gaussian", InterpolationMode.HAMMING),
    ("nearest", InterpolationMode.NEAREST_EXACT),
    ("area", InterpolationMode.BOX),
    ("mitchellcubic", InterpolationMode.BICUBIC),
)
# Modes torchvision implements for tensors (resized as floats without antialiasing, as TF); the others need PIL.
TENSOR_MODES = (InterpolationMode.BILINEAR, InterpolationMode.BICUBIC, InterpolationMode.NEAREST_EXACT)


def _uniform(low: float, high: float, generator: torch.Generator | None = None) -> float:
    """A float drawn uniformly from ``[low, high)`` with torch's generator (seeded per DataLoader worker)."""
    return low + (high - low) * float(torch.rand((), generator=generator))


def _randint(high: int, generator: torch.Generator | None = None) -> int:
    """An integer drawn uniformly from ``[0, high)``."""
    return int(torch.randint(high, (), generator=generator))


def generate_random_crop(
    height: int,
    width: int,
    area_range: tuple[float, float],
    aspect_ratio: float,
    generator: torch.Generator | None = None,
) -> tuple[int, int, int, int] | None:
    """One attempt of ``sample_distorted_bounding_box``: a ``(top, left, height, width)`` window, or None.

    TF's ``GenerateRandomCrop`` (``tensorflow/core/kernels/image/sample_distorted_bounding_box_op.cc``): the window's
    height is drawn uniformly among the integers whose area ``h · round(h · aspect)`` lies in
    ``area_range × height · width`` (bounded by the image), its width is ``round(h · aspect)`` (half to even, as
    ``lrintf``), then one step up or down corrects a rounding error; None when no such window fits. The top-left
    corner is uniform over ``[0, H − h) × [0, W − w)`` (TF's half-open range: a smaller window never touches the
    bottom or right border).
    """
    min_area = area_range[0] * width * height
    max_area = area_range[1] * width * height
    crop_height = round(math.sqrt(min_area / aspect_ratio))
    max_height = round(math.sqrt(max_area / aspect_ratio))
    if round(max_height * aspect_ratio) > width:
        # The largest height whose rounded width still fits (TF's epsilon guards the half-way case).
        max_height = int((width + 0.5 - 1e-7) / aspect_ratio)
        if round(max_height * aspect_ratio) > width:
            max_height -= 1
    max_height = min(max_height, height)
    crop_height = min(crop_height, max_height)
    if crop_height < max_height:
        crop_height += _randint(max_height - crop_height + 1, generator)
    crop_width = round(crop_height * aspect_ratio)
    area = crop_width * crop_height
    if area < min_area:
        crop_height += 1
        crop_width = round(crop_height * aspect_ratio)
        area = crop_width * crop_height
    if area > max_area:
        crop_height -= 1
        crop_width = round(crop_height * aspect_ratio)
        area = crop_width * crop_height
    if not (min_area <= area <= max_area and 0 < crop_width <= width and 0 < crop_height <= height):
        return None
    top = _randint(height - crop_height, generator) if crop_height < height else 0
    left = _randint(width - crop_width, generator) if crop_width < width else 0
    return top, left, crop_height, crop_width


def covers_an_object(
    window: tuple[int, int, int, int], boxes: Sequence[tuple[int, int, int, int]], min_object_covered: float
) -> bool:
    """TF's ``SatisfiesOverlapConstraints``: the ``(top, left, height, width)`` window holds at least the fraction
    ``min_object_covered`` of the area of one box ``(xmin, ymin, xmax, ymax)`` (integer pixels). Boxes of area < 1
    count for nothing; an empty window covers nothing."""
    top, left, height, width = window
    if height * width < 1:
        return False
    for xmin, ymin, xmax, ymax in boxes:
        area = (xmax - xmin) * (ymax - ymin)
        if area < 1:
            continue
        overlap_w = min(left + width, xmax) - max(left, xmin)
        overlap_h = min(top + height, ymax) - max(top, ymin)
        covered = overlap_w * overlap_h if overlap_w >= 0 and overlap_h >= 0 else 0
        if covered / area >= min_object_covered:
            return True
    return False


def sample_distorted_bounding_box(
    image_size: Sequence[int],
    boxes: torch.Tensor | Sequence[Sequence[float]] | None = None,
    min_object_covered: float = MIN_OBJECT_COVERED,
    aspect_ratio_range: tuple[float, float] = ASPECT_RATIO_RANGE,
    area_range: tuple[float, float] = AREA_RANGE,
    max_attempts: int = MAX_ATTEMPTS,
    generator: torch.Generator | None = None,
) -> tuple[int, int, int, int]:
    """``tf.image.sample_distorted_bounding_box`` with ``use_image_if_no_bounding_boxes=True``: a random crop window.

    Args:
        image_size: ``(height, width)`` of the image.
        boxes: the objects, ``(N, 4)`` ``(xmin, ymin, xmax, ymax)`` in pixels (truncated to integers, as TF truncates
            ``coordinate · side``); None or none: the whole image is the object.
        min_object_covered, aspect_ratio_range, area_range, max_attempts: the official ``distort_image``'s values by
            default. The aspect ratio (width / height) of an attempt is uniform in ``aspect_ratio_range``.
        generator: torch's global generator by default.

    Returns:
        ``(top, left, height, width)``: the first of ``max_attempts`` windows (:func:`generate_random_crop`) that
        covers enough of one box (:func:`covers_an_object`), else the whole image.
    """
    height, width = (int(side) for side in image_size)
    if height < 1 or width < 1:
        raise ValueError(f"image_size must be two positive integers (height, width), got {tuple(image_size)}.")
    if not 0 < area_range[0] <= area_range[1] <= 1:
        raise ValueError(f"area_range must satisfy 0 < low <= high <= 1, got {area_range}.")
    if not 0 < aspect_ratio_range[0] <= aspect_ratio_range[1]:
        raise ValueError(f"aspect_ratio_range must satisfy 0 < low <= high, got {aspect_ratio_range}.")
    pixels = [] if boxes is None else torch.as_tensor(boxes, dtype=torch.float64).reshape(-1, 4).tolist()
    objects = [tuple(int(value) for value in box) for box in pixels] or [(0, 0, width, height)]
    for _ in range(max_attempts):
        aspect_ratio = _uniform(*aspect_ratio_range, generator)
        window = generate_random_crop(height, width, area_range, aspect_ratio, generator)
        if window is not None and covers_an_object(window, objects, min_object_covered):
            return window
    return 0, 0, height, width


def _image_size(flat_inputs: list[Any]) -> tuple[int, int]:
    """``(height, width)`` of the first image among a v2 transform's inputs."""
    for inpt in flat_inputs:
        if isinstance(inpt, (Image.Image, tv_tensors.Image)) or (
            isinstance(inpt, torch.Tensor) and not isinstance(inpt, tv_tensors.TVTensor)
        ):
            height, width = F.get_size(inpt)
            return height, width
    raise TypeError("SampleDistortedBoundingBox needs an image (PIL, tv_tensors.Image or tensor) among its inputs.")


class SampleDistortedBoundingBox(v2.Transform):
    """Crop a random window drawn by :func:`sample_distorted_bounding_box` (official ``distort_image``, step 1).

    Call with an image (PIL, ``tv_tensors.Image`` or tensor) and optionally ``tv_tensors.BoundingBoxes`` of the
    objects (any format; the image's own category only, as the official TFRecords keep); the boxes are cropped too.
    Without boxes, or with an empty set, the whole image is the object.
    """

    def __init__(
        self,
        min_object_covered: float = MIN_OBJECT_COVERED,
        aspect_ratio_range: tuple[float, float] = ASPECT_RATIO_RANGE,
        area_range: tuple[float, float] = AREA_RANGE,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        super().__init__()
        self.min_object_covered = min_object_covered
        self.aspect_ratio_range = tuple(aspect_ratio_range)
        self.area_range = tuple(area_range)
        self.max_attempts = max_attempts

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        boxes = [inpt for inpt in flat_inputs if isinstance(inpt, tv_tensors.BoundingBoxes)]
        objects = None
        if boxes:
            objects = torch.cat(
                [F.convert_bounding_box_format(b, new_format=tv_tensors.BoundingBoxFormat.XYXY) for b in boxes]
            ).as_subclass(torch.Tensor)
        top, left, height, width = sample_distorted_bounding_box(
            _image_size(flat_inputs),
            objects,
            self.min_object_covered,
            self.aspect_ratio_range,
            self.area_range,
            self.max_attempts,
        )
        return {"top": top, "left": left, "height": height, "width": width}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(F.crop, inpt, **params)


def adjust_brightness(image: torch.Tensor, delta: float) -> torch.Tensor:
    """``tf.image.adjust_brightness`` on floats: add ``delta`` to every value, no clipping.

    (torchvision's and PIL's brightness multiplies instead.)
    """
    return image + delta


def adjust_contrast(image: torch.Tensor, factor: float) -> torch.Tensor:
    """``tf.image.adjust_contrast``: ``(x − m) · factor + m`` with ``m`` each channel's own mean, no clipping.

    (torchvision's contrast blends with the mean of the grey image, one value for all channels, and clips.)
    """
    mean = image.mean(dim=(-2, -1), keepdim=True)
    return (image - mean) * factor + mean


def adjust_saturation(image: torch.Tensor, factor: float) -> torch.Tensor:
    """``tf.image.adjust_saturation``: the HSV saturation times ``factor``, clipped to [0, 1]; hue and value kept.

    Computed without the HSV round trip: with ``v`` the largest channel and ``s = (v − min) / v`` (0 when
    ``v <= 0``, as TF sets it), each channel becomes ``v − (v − c) · s' / s`` with ``s' = clip(s · factor, 0, 1)``
    (every channel becomes ``v`` when ``s = 0``). No clipping of the values themselves, as TF.
    (torchvision's saturation blends with the grey image instead.)
    """
    value = image.amax(dim=-3, keepdim=True)
    spread = value - image.amin(dim=-3, keepdim=True)
    saturation = torch.where(value > 0, spread / torch.where(value > 0, value, 1.0), 0.0)
    scaled = (saturation * factor).clamp(0.0, 1.0)
    gain = torch.where(saturation > 0, scaled / torch.where(saturation > 0, saturation, 1.0), 0.0)
    return value - (value - image) * gain


def adjust_hue(image: torch.Tensor, delta: float) -> torch.Tensor:
    """``tf.image.adjust_hue``: rotate the HSV hue by ``delta`` turns (torchvision's ``adjust_hue``, the same op).

    For values inside [0, 1] the two are equal; torchvision clips the two non-largest channels of a value pushed
    outside [0, 1] by an earlier brightness or contrast step, TF does not (the final clip hides most of it).
    """
    return F.adjust_hue(image, delta)


COLOR_OPS = {
    "brightness": adjust_brightness,
    "saturation": adjust_saturation,
    "hue": adjust_hue,
    "contrast": adjust_contrast,
}


def distort_color(
    image: torch.Tensor, ordering: int, brightness: float, saturation: float, hue: float, contrast: float
) -> torch.Tensor:
    """The official ``distort_color`` with its random factors given: float image ``(..., 3, H, W)`` in [0, 1].

    ``ordering`` 0..3 applies the four ops in that TF-slim order (:data:`COLOR_ORDERINGS`) and clips to [0, 1];
    :data:`NO_DISTORTION` (4) returns the image unchanged, as the official code does.
    """
    if ordering == NO_DISTORTION:
        return image
    if not 0 <= ordering < NO_DISTORTION:
        raise ValueError(f"ordering must be in 0..{NO_DISTORTION}, got {ordering}.")
    factors = {"brightness": brightness, "saturation": saturation, "hue": hue, "contrast": contrast}
    for name in COLOR_ORDERINGS[ordering]:
        image = COLOR_OPS[name](image, factors[name])
    return image.clamp(0.0, 1.0)


class DistortColor(v2.Transform):
    """Random colour distortion (official ``distort_image``, step 4): one of 5 cases drawn uniformly, 4 orderings of
    brightness / saturation / hue / contrast or none (:func:`distort_color`), each factor uniform in its range:
    brightness ``±32/255`` (added), saturation and contrast ``[0.5, 1.5)``, hue ``±0.2`` turns.

    Takes float images in [0, 1] and returns them clipped to [0, 1] in every case. The official code does not clip
    the undistorted case (1 in 5), whose values only leave [0, 1] where a cubic or Lanczos resize overshot them:
    clipping them too keeps the output in [−1, 1].
    """

    def __init__(
        self,
        brightness: float = BRIGHTNESS_DELTA,
        saturation: tuple[float, float] = SATURATION_RANGE,
        hue: float = HUE_DELTA,
        contrast: tuple[float, float] = CONTRAST_RANGE,
        num_cases: int = NO_DISTORTION + 1,
    ) -> None:
        super().__init__()
        if not 1 <= num_cases <= NO_DISTORTION + 1:
            raise ValueError(f"num_cases must be in 1..{NO_DISTORTION + 1}, got {num_cases}.")
        self.brightness = brightness
        self.saturation = tuple(saturation)
        self.hue = hue
        self.contrast = tuple(contrast)
        self.num_cases = num_cases

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {
            "ordering": _randint(self.num_cases),
            "brightness": _uniform(-self.brightness, self.brightness),
            "saturation": _uniform(*self.saturation),
            "hue": _uniform(-self.hue, self.hue),
            "contrast": _uniform(*self.contrast),
        }

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.TVTensor) and not isinstance(inpt, tv_tensors.Image):
            return inpt  # boxes pass through
        if not torch.is_floating_point(inpt):
            raise TypeError(f"DistortColor expects a float image in [0, 1], got dtype {inpt.dtype}.")
        out = distort_color(inpt.as_subclass(torch.Tensor), **params).clamp(0.0, 1.0)
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.Image) else out


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive integer (the side S of the S×S output), got {size!r}.")
    return size


def resize_choices(size: int) -> list[v2.Transform]:
    """One pipeline per official resize method (:data:`RESIZE_METHODS`): uint8 image → float ``(3, S, S)`` in [0, 1]
    (a cubic or Lanczos kernel may overshoot it slightly, as TF's)."""
    size = _check_size(size)
    to_float = v2.ToDtype(torch.float32, scale=True)
    choices: list[v2.Transform] = []
    for _, mode in RESIZE_METHODS:
        if mode in TENSOR_MODES:
            choices.append(v2.Compose([to_float, v2.Resize((size, size), interpolation=mode, antialias=False)]))
        else:
            pil_resize = v2.Resize((size, size), interpolation=mode)
            choices.append(v2.Compose([v2.ToPILImage(), pil_resize, v2.ToImage(), to_float]))
    return choices


def _to_symmetric_range() -> v2.Normalize:
    """``[0, 1] → [−1, 1]``: ``(x − 0.5) / 0.5``, the official ``(x − 0.5) · 2``."""
    return v2.Normalize(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])


def inception_train_transforms(size: int) -> v2.Compose:
    """The official fMoW training augmentation (module docstring): image → float32 ``(3, S, S)`` in [−1, 1].

    Call with a PIL image or uint8 ``tv_tensors.Image`` ``(3, H, W)``, and optionally the objects'
    ``tv_tensors.BoundingBoxes`` (then the call returns ``(image, boxes)``).
    """
    return v2.Compose(
        [
            v2.ToImage(),
            SampleDistortedBoundingBox(),
            v2.RandomChoice(resize_choices(size)),
            v2.RandomHorizontalFlip(p=0.5),
            DistortColor(),
            _to_symmetric_range(),
        ]
    )


def inception_eval_transforms(size: int) -> v2.Compose:
    """The official evaluation preprocessing: the whole image resized bilinearly to ``S × S`` (aspect ratio not kept,
    no centre crop, no antialiasing, on floats), then [−1, 1]. PIL image or uint8 image → float32 ``(3, S, S)``."""
    size = _check_size(size)
    return v2.Compose(
        [
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Resize((size, size), interpolation=InterpolationMode.BILINEAR, antialias=False),
            _to_symmetric_range(),
        ]
    )
