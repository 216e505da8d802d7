"""The torch device a stage runs on."""

from __future__ import annotations

import platform

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


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what ``platform`` knows)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_record(device: torch.device) -> dict:
    """Where a run ran: not part of its identity, but the same run rounds differently on another CPU or GPU
    (bf16 autocast most of all), so a result records it beside its settings."""
    rec = {"cpu": cpu_model(), "torch": torch.__version__, "python": platform.python_version(),
           "device": str(device), "gpu": None, "torch_threads": torch.get_num_threads()}
    if device.type == "cuda":
        rec["gpu"] = torch.cuda.get_device_name(device)
    return rec
