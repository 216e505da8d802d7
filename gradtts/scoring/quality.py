"""Speech quality without a reference: DNSMOS P.835 (SIG, BAK, OVRL) and the P.808 MOS of each utterance.

    scores = dnsmos(wav, sr)            # {"sig": 3.5, "bak": 3.9, "ovrl": 3.1, "p808": 3.5}
    rows = dnsmos_files(paths)          # one such dict per file, in order

The models are the ONNX networks that the ``speechmos`` wheel carries (Microsoft's DNS-Challenge DNSMOS
release), run on the CPU by ``onnxruntime``; nothing is downloaded. The scoring is speechmos's own ``DNSMOS``
class (what its documented ``dnsmos.run`` calls, and the same numbers): only its two ONNX sessions are made
here, so that their thread count follows ``OMP_NUM_THREADS`` like torch's (the grid gives each of its parallel
jobs cores / jobs threads; onnxruntime alone would start one thread per core in every job). The conventions,
those of the DNS-Challenge's ``dnsmos_local.py``:

- input is 16 kHz mono float in [-1, 1] (other rates are resampled here; samples beyond full scale are clipped,
  as :func:`gradtts.audio.write_wav` would write them);
- the networks see 9.01 s windows taken every 1 s; a clip shorter than one window is first doubled (appended
  to itself) until it is at least that long, so a 3 s sentence becomes 12 s and is scored over 3 windows, a
  2 s one becomes 16 s and 6 windows (each window costs about 0.5 CPU-s);
- each window's raw P.835 outputs are mapped to the MOS scale by fixed polynomials (SIG, BAK, OVRL), the P.808
  network reads a 120-band log-mel of the same window, and a clip's score is the mean over its windows.

The numbers are DNSMOS's absolute scale (1 to 5), comparable with the values TTS papers report for DNSMOS.
"""

from __future__ import annotations

import os
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np

from gradtts.audio import AudioError, load_audio, resample

SAMPLE_RATE = 16000
# The score names, in the order a table shows them (P.835 signal, background, overall; then P.808).
FIELDS = ("sig", "bak", "ovrl", "p808")
# speechmos doubles a short clip up to a 9.01 s window; below this the window is mostly copies of a fragment
# (and an empty clip would never fill it), so such input is refused instead of scored.
MIN_SECONDS = 0.5
# speechmos's result keys for our field names.
_SPEECHMOS_KEYS = {"sig": "sig_mos", "bak": "bak_mos", "ovrl": "ovrl_mos", "p808": "p808_mos"}


class QualityAudioError(ValueError):
    """Audio that cannot be scored for quality; the message names the file or waveform."""


def _prepare(wav: np.ndarray, sr: int, name: str) -> np.ndarray:
    """Checked 16 kHz float32 mono in [-1, 1]."""
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim != 1:
        raise QualityAudioError(f"{name}: expected a mono waveform (1-D array), got shape {wav.shape}")
    if not np.all(np.isfinite(wav)):
        raise QualityAudioError(f"{name}: contains NaN or infinite samples")
    if sr != SAMPLE_RATE:
        wav = resample(wav, sr, SAMPLE_RATE)
    if len(wav) < MIN_SECONDS * SAMPLE_RATE:
        raise QualityAudioError(f"{name}: {len(wav) / SAMPLE_RATE:.2f} s of audio; DNSMOS needs at least "
                                f"{MIN_SECONDS} s")
    return np.ascontiguousarray(np.clip(wav, -1.0, 1.0), dtype=np.float32)


def default_threads() -> int:
    """onnxruntime intra-op threads: ``OMP_NUM_THREADS`` when set (as for torch), else 0 (one per core)."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() else 0


@lru_cache(maxsize=4)
def _model(threads: int):
    """speechmos's DNSMOS scorer with CPU sessions of ``threads`` intra-op threads (0: onnxruntime's default)."""
    import onnxruntime as ort
    from speechmos import dnsmos as speechmos_dnsmos

    folder = resources.files("speechmos") / "dnsmos_models"
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle worker threads spin-wait by default, burning a core the parallel grid jobs need.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")

    class _Scorer(speechmos_dnsmos.DNSMOS):
        def __init__(self):  # the parent's __init__ would open the sessions with default options
            self.primary_model_path = str(folder / "sig_bak_ovr.onnx")
            self.onnx_sess = ort.InferenceSession(self.primary_model_path, options,
                                                  providers=["CPUExecutionProvider"])
            self.p808_onnx_sess = ort.InferenceSession(str(folder / "model_v8.onnx"), options,
                                                       providers=["CPUExecutionProvider"])

    return _Scorer()


def dnsmos(wav: np.ndarray, sr: int, name: str = "waveform", threads: int | None = None) -> dict[str, float]:
    """DNSMOS of one utterance: ``{"sig", "bak", "ovrl", "p808"}`` on the 1-5 MOS scale."""
    model = _model(default_threads() if threads is None else threads)
    result = model(_prepare(wav, sr, name), SAMPLE_RATE, False)  # False: DNSMOS, not personalised DNSMOS
    return {field: float(result[key]) for field, key in _SPEECHMOS_KEYS.items()}


def dnsmos_files(paths: Sequence[str | os.PathLike], progress: bool = False,
                 threads: int | None = None) -> list[dict[str, float]]:
    """DNSMOS of each audio file, in order; unreadable or too short files raise naming the file."""
    from tqdm import tqdm

    rows = []
    for path in tqdm([Path(p) for p in paths], desc="DNSMOS", unit="file", disable=not progress):
        try:
            wav, sr = load_audio(path, SAMPLE_RATE)
        except AudioError as exc:
            raise QualityAudioError(str(exc)) from exc
        rows.append(dnsmos(wav, sr, name=str(path), threads=threads))
    return rows


def mean_scores(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    """Per-field mean over utterances (what one cell reports); NaN for every field when there are none."""
    return {f: float(np.mean([r[f] for r in rows])) if rows else float("nan") for f in FIELDS}
