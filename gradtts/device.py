"""The torch device a stage runs on: one resolver for every stage that computes (training, synthesis, scoring).

``auto`` (every stage's default) is CUDA when this process sees a GPU, else the CPU. The resolver logs the
device it chose, one INFO line per call (``device: cuda:0 (NVIDIA H100 80GB HBM3)``, ``device: cpu
(2 threads)``), so each stage's log says where it ran.
"""

from __future__ import annotations

import logging
import platform

import torch

from gradtts.errors import UserError

log = logging.getLogger(__name__)


class DeviceError(UserError):
    """A device that is not a torch device, or CUDA asked for where there is none; the message says what to use."""


def resolve_device(name: str | torch.device, local_rank: int = 0, *, setting: str | None = None,
                   announce: bool = True) -> torch.device:
    """``auto`` picks CUDA (the local rank's GPU) when available, else CPU; ``cuda`` without an index is that GPU.

    ``setting`` names the option the value came from (``device``, ``synth.device``) in the error for a device
    that cannot be had; ``announce`` logs the choice (:func:`describe_device`) at INFO.
    """
    asked = str(name)
    where = f"{setting}={asked}" if setting else f"device {asked!r}"
    if asked == "auto":
        asked = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(asked)
    except (RuntimeError, ValueError, TypeError):
        raise DeviceError(f"{where}: not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = "built without CUDA" if torch.version.cuda is None else f"CUDA {torch.version.cuda}, no GPU visible"
            raise DeviceError(f"{where}: CUDA is not available on this machine (torch {torch.__version__}, {build}); "
                              "use cpu, or auto (CUDA where there is a GPU, else the CPU)")
        if device.index is None:
            device = torch.device("cuda", local_rank)
        if device.index >= torch.cuda.device_count():
            raise DeviceError(f"{where}: this machine has {torch.cuda.device_count()} GPU(s) (cuda:0 .. "
                              f"cuda:{torch.cuda.device_count() - 1})")
    if announce:
        log.info("device: %s", describe_device(device))
    return device


def describe_device(device: torch.device) -> str:
    """``cuda:0 (NVIDIA H100 80GB HBM3)`` or ``cpu (2 threads)``: the device and what computes on it."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        n = torch.get_num_threads()
        return f"cpu ({n} thread{'' if n == 1 else 's'})"
    return str(device)


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
