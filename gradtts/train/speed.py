"""Speed options that leave the module tree (and so the checkpoints) untouched.

bf16 autocast is applied to the U-Net score estimator only: monotonic alignment search needs float32
numpy input and the losses are summed in float32, while the U-Net holds nearly all of the compute.
``torch.compile`` compiles the estimator in place (``nn.Module.compile``) so state-dict keys keep
their names.
"""

from __future__ import annotations

import functools
import logging

import torch
from torch import nn

log = logging.getLogger(__name__)


def autocast_module(module: nn.Module, device_type: str, dtype: torch.dtype = torch.bfloat16) -> None:
    """Run ``module.forward`` under autocast and return float32 outputs."""
    if getattr(module, "_gradtts_autocast", None) is not None:
        return
    forward = module.forward

    @functools.wraps(forward)
    def wrapped(*args, **kwargs):
        with torch.autocast(device_type=device_type, dtype=dtype):
            out = forward(*args, **kwargs)
        return out.float()

    module.forward = wrapped
    module._gradtts_autocast = dtype


def compile_module(module: nn.Module, **kwargs) -> bool:
    """``module.compile(**kwargs)`` in place; False (with a warning) where torch.compile is unavailable."""
    if not hasattr(module, "compile"):
        log.warning("this torch has no nn.Module.compile; running eager")
        return False
    module.compile(**kwargs)
    return True


def fused_adam_available(device: torch.device) -> bool:
    """Fused Adam kernels exist for CUDA parameters in torch >= 2.0."""
    return device.type == "cuda"


def precision_dtype(name: str) -> torch.dtype | None:
    """``fp32`` -> None (no autocast), ``bf16`` -> torch.bfloat16."""
    if name == "fp32":
        return None
    if name == "bf16":
        return torch.bfloat16
    raise ValueError(f"trainer.precision={name!r}: choose fp32 or bf16")
