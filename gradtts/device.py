"""The torch device a stage runs on."""

from __future__ import annotations

import torch


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` picks CUDA (the local rank's GPU) when available, else CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"trainer.device={name} but CUDA is not available; use trainer.device=cpu")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    return device
