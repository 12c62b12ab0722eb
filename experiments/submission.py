"""``python -m experiments submit``: a Cityscapes test-server submission from a checkpoint of the results store.

The server (www.cityscapes-dataset.com, "pixel-level semantic labeling") takes one 8-bit PNG per test image,
at the image's full 2048×1024 size, holding Cityscapes *label ids* (road = 7, ..., bicycle = 33), not the 19
train ids the networks predict; each file's name must contain the image's ``<city>_<seq>_<frame>``. Here the
prediction of ``leftImg8bit/test/<city>/<name>_leftImg8bit.png`` goes to ``<out>/<name>_labelIds.png``.

Each PNG is written to a temporary file and renamed, and files already written are skipped, so an interrupted
submission resumes where it stopped. ``<out>/submission.json`` names the checkpoint and split the PNGs come from;
a folder that holds another checkpoint's predictions is refused rather than mixed. Zip the PNGs for the server.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import tv_tensors
from tqdm.auto import tqdm

from datamodules.base import read_image
from datamodules.cityscapes import IMAGE_SUFFIX, LABEL_TO_TRAIN_ID, CityscapesDataModule
from experiments.evaluate import load_trained
from experiments.results import write_json_atomic
from experiments.run_folder import atomic_temp_file
from lightning_modules.inference import predict

SUFFIX = "_labelIds.png"


def train_id_to_label_id_table() -> np.ndarray:
    """``table[train id]`` = Cityscapes label id, for the 19 train ids (cityscapesScripts ``labels.py``)."""
    table = np.zeros(len(LABEL_TO_TRAIN_ID), dtype=np.uint8)
    for label_id, train_id in LABEL_TO_TRAIN_ID.items():
        table[train_id] = label_id
    return table


TRAIN_ID_TO_LABEL_ID = train_id_to_label_id_table()


def to_label_ids(train_ids: np.ndarray) -> np.ndarray:
    """Train ids ``(H, W)`` in 0..18 → Cityscapes label ids ``(H, W)`` uint8.

    Raises:
        ValueError: for a value outside 0..18 (a prediction never holds the ignore index).
    """
    if train_ids.size and (train_ids.min() < 0 or train_ids.max() >= len(TRAIN_ID_TO_LABEL_ID)):
        raise ValueError(
            f"predictions must be Cityscapes train ids 0..{len(TRAIN_ID_TO_LABEL_ID) - 1}, "
            f"got values {train_ids.min()}..{train_ids.max()}."
        )
    return TRAIN_ID_TO_LABEL_ID[train_ids]


def submission_name(image: Path) -> str:
    """``<city>_<seq>_<frame>_leftImg8bit.png`` → ``<city>_<seq>_<frame>_labelIds.png``."""
    if not image.name.endswith(IMAGE_SUFFIX):
        raise ValueError(f"{image} is not a Cityscapes image: its name should end with {IMAGE_SUFFIX}.")
    return image.name[: -len(IMAGE_SUFFIX)] + SUFFIX


def write_png(path: Path, label_ids: np.ndarray) -> None:
    """Write ``label_ids`` as an 8-bit greyscale PNG, atomically (a temporary file renamed onto ``path``)."""
    tmp = atomic_temp_file(path)
    try:
        Image.fromarray(label_ids, mode="L").save(tmp, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


MANIFEST = "submission.json"


def claim_folder(out: Path, source: dict[str, str]) -> None:
    """Record in ``out`` which checkpoint and split its PNGs come from, or check that it already holds those.

    Raises:
        ValueError: when ``out`` holds the predictions of another checkpoint or split.
    """
    manifest = out / MANIFEST
    if manifest.is_file():
        held = json.loads(manifest.read_text())
        if held != source:
            raise ValueError(
                f"{out} holds the {held.get('split')} predictions of {held.get('checkpoint')}; resuming there with "
                f"{source['checkpoint']} ({source['split']}) would mix two networks. Use another --out."
            )
        return
    write_json_atomic(manifest, source)


def write_submission(
    ckpt: str | Path,
    out: str | Path,
    root: str | Path | None = None,
    split: str = "test",
    device: str | None = None,
    progress: bool = True,
) -> dict[str, int]:
    """Predict every image of Cityscapes ``split`` with the run's network and test protocol; write the PNGs.

    The image is prepared as the run evaluates (its ``eval_short_side``, if any), and the logits are resized
    back to the image's own size before the argmax, so every PNG has the size of its image.

    Args:
        ckpt: a checkpoint written by ``python -m experiments run`` on Cityscapes.
        out: the folder of the PNGs (created).
        root: the Cityscapes folder (default: the run's).
        split: ``"test"`` (the server's), or ``"val"`` to check a submission against the public labels.

    Returns:
        ``{"written": n, "skipped": m}``: images predicted now, and images whose PNG an earlier call wrote.

    Raises:
        ValueError: for a run that did not train on Cityscapes, or an ``out`` holding another checkpoint's PNGs.
        FileNotFoundError: when the split's image folder is missing.
    """
    module, datamodule, run = load_trained(ckpt, root=str(root) if root is not None else None)
    if not isinstance(datamodule, CityscapesDataModule):
        raise ValueError(
            f"the run {run['experiment']} / {run['variant']} trained on {run['recipe'].get('data')!r}: "
            "a Cityscapes submission needs a network trained on Cityscapes' 19 classes."
        )
    folder = datamodule.root / "leftImg8bit" / split
    if not folder.is_dir():
        raise FileNotFoundError(f"Cityscapes {split} images not found: {folder} does not exist.")
    images = sorted(folder.glob(f"*/*{IMAGE_SUFFIX}"))
    if not images:
        raise FileNotFoundError(f"{folder} holds no <city>/*{IMAGE_SUFFIX} image.")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    claim_folder(out, {"checkpoint": str(Path(ckpt).resolve()), "split": split})
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    network = module.network.to(device).eval()
    transform = datamodule.transform(train=False)
    counts = {"written": 0, "skipped": 0}
    for image_path in tqdm(images, desc=f"submission ({split})", disable=not progress):
        target = out / submission_name(image_path)
        if target.is_file():
            counts["skipped"] += 1
            continue
        pixels = read_image(image_path)
        height, width = pixels.shape[:2]
        image = tv_tensors.Image(torch.from_numpy(pixels).permute(2, 0, 1).contiguous())
        blank = tv_tensors.Mask(torch.zeros(height, width, dtype=torch.int64))
        image, _ = transform(image, blank)
        with torch.inference_mode():
            logits = predict(
                network, image.as_subclass(torch.Tensor)[None].to(device), mode=module.eval_mode, **module.eval_kwargs
            )
            if logits.shape[-2:] != (height, width):
                logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
        write_png(target, to_label_ids(logits.argmax(dim=1)[0].cpu().numpy()))
        counts["written"] += 1
    return counts
