"""Length masks, U-Net length rounding and duration-to-alignment expansion."""

from __future__ import annotations

import torch


def sequence_mask(lengths: torch.Tensor, max_length: int | None = None) -> torch.Tensor:
    """Boolean ``[B, max_length]`` mask, True at positions ``< lengths[b]``."""
    if max_length is None:
        max_length = int(lengths.max())
    positions = torch.arange(int(max_length), dtype=lengths.dtype, device=lengths.device)
    return positions.unsqueeze(0) < lengths.unsqueeze(1)


def fix_len_compatibility(length: int, num_downsamplings: int = 2) -> int:
    """Round ``length`` up to a multiple of ``2 ** num_downsamplings`` (the U-Net halves time twice)."""
    factor = 2 ** num_downsamplings
    return int(-(-int(length) // factor) * factor)


def generate_path(durations: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Hard monotonic alignment ``[B, T_x, T_y]`` from per-token durations ``[B, T_x]``.

    Token i covers frames ``[cum[i-1], cum[i])``; ``mask`` zeroes padded tokens and frames.
    """
    b, t_x, t_y = mask.shape
    cum = torch.cumsum(durations, 1)
    path = sequence_mask(cum.view(b * t_x), t_y).to(mask.dtype).view(b, t_x, t_y)
    shifted = torch.nn.functional.pad(path, (0, 0, 1, 0))[:, :-1]
    return (path - shifted) * mask


def duration_loss(logw: torch.Tensor, logw_target: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Sum of squared log-duration errors divided by the total number of tokens."""
    return torch.sum((logw - logw_target) ** 2) / torch.sum(lengths)
