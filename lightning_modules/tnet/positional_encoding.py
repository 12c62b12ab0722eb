"""Sinusoidal encoding of TNet's positional triplets (y, x, s).

Official ``create_positional_vectors`` (Tpap/TNet, ``ImageNet/models.py``), after Vaswani et al. (2017): with
``K = channels // 6`` angular frequencies ``ω_j = (1 / min_inv_freq) · (min_inv_freq / max_inv_freq)^(j / (K − 1))``,
``j = 0 .. K − 1`` (from ``1 / min_inv_freq`` down to ``1 / max_inv_freq``), each coordinate ``c`` of ``(y, x, s)``
gets the block ``[sin(c · ω_0) .. sin(c · ω_{K−1}), cos(c · ω_0) .. cos(c · ω_{K−1})]``; the blocks of y, x and s
follow each other and the ``channels − 6K`` channels left over are zero. y and x are the cell's integer indices in
the grid of its level (a child ``(r, c)`` of the cell ``(y, x)`` of an ``n × n`` grid is ``(y · n + r, x · n + c)``)
and s is the level. The replication commands pass ``min_inv_afreq = 1``, ``max_inv_afreq = 100``.
"""

from __future__ import annotations

import math

import torch


def positional_encoding(
    y: torch.Tensor,
    x: torch.Tensor,
    s: torch.Tensor,
    channels: int,
    min_inv_freq: float = 1.0,
    max_inv_freq: float = 100.0,
) -> torch.Tensor:
    """``(N, channels)`` encodings of ``N`` triplets ``(y, x, s)`` given as three ``(N,)`` tensors.

    Args:
        y, x, s: ``(N,)`` coordinates (integer indices, any dtype); the output is float32, or their dtype when
            they are floating point.
        channels: the encoding's width, at least 12 (two frequencies per coordinate).
        min_inv_freq, max_inv_freq: the range of the inverse angular frequencies, ``0 < min < max``.

    Raises:
        ValueError: for coordinates that are not three 1-D tensors of one length, fewer than 12 channels, or an
            empty or reversed frequency range.
    """
    if not all(isinstance(c, torch.Tensor) and c.ndim == 1 for c in (y, x, s)) or not y.shape == x.shape == s.shape:
        shapes = [tuple(c.shape) if isinstance(c, torch.Tensor) else type(c).__name__ for c in (y, x, s)]
        raise ValueError(f"y, x and s must be 1-D tensors of one length (N,), got {shapes}.")
    if channels < 12:
        raise ValueError(f"channels must be >= 12 (two frequencies for each of y, x and s), got {channels}.")
    if not 0.0 < min_inv_freq < max_inv_freq:
        raise ValueError(f"need 0 < min_inv_freq < max_inv_freq, got {min_inv_freq} and {max_inv_freq}.")
    dtype = y.dtype if y.is_floating_point() else torch.float32
    num_freq = channels // 6
    steps = torch.arange(num_freq, device=y.device, dtype=dtype)
    frequencies = torch.exp(steps * (math.log(min_inv_freq / max_inv_freq) / (num_freq - 1))) / min_inv_freq
    blocks = []
    for coordinate in (y, x, s):
        angles = coordinate.to(dtype)[:, None] * frequencies[None, :]
        blocks += [torch.sin(angles), torch.cos(angles)]
    encoding = torch.cat(blocks, dim=1)
    return torch.nn.functional.pad(encoding, (0, channels - 6 * num_freq))
