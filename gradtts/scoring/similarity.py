"""Speaker similarity S(gen, ref) of docs/method.md §7.1 (the resilience statistics: ``gradtts.report.stats``)."""

from __future__ import annotations

import numpy as np


def centroid(embeddings: np.ndarray) -> np.ndarray:
    """L2-normalised mean of (already normalised) embeddings ``[N, D]``."""
    if len(embeddings) == 0:
        raise ValueError("a reference set needs at least one embedding")
    c = np.asarray(embeddings, dtype=np.float64).mean(0)
    return c / np.linalg.norm(c)


def cosine_to(embeddings: np.ndarray, ref_centroid: np.ndarray) -> np.ndarray:
    """Cosine of each row of ``embeddings`` with the centroid."""
    e = np.asarray(embeddings, dtype=np.float64)
    return e @ ref_centroid / np.linalg.norm(e, axis=1)


def similarity(gen: np.ndarray, ref: np.ndarray) -> float:
    """S(gen, ref): mean over generated utterances of the cosine to the reference centroid."""
    return float(cosine_to(gen, centroid(ref)).mean())
