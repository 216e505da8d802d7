"""How well a speaker encoder tells the voices of a corpus apart (meant for synthvox, works on any data dir).

    python -m data_prep.synthvox_check DATA_DIR [--utts 10] [--encoder ge2e] [--json OUT.json]

For every voice the first ``--utts`` utterances (C-sorted ids) are embedded. Each utterance is compared with
its own voice's centroid computed *without* it (leave-one-out: otherwise an utterance partly matches itself)
and with every other voice's full centroid. Reported: the mean same-voice cosine, the mean cross-voice
cosine, their gap, the share of utterances whose nearest centroid is their own voice's, and the most
confusable voice pairs (highest centroid-to-centroid cosine).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

from gradtts.data.datadir import read_datadir
from gradtts.io import atomic_write_text
from gradtts.logs import setup_logging


@dataclass
class Separation:
    voices: int
    utts_per_voice: int
    same_voice: float         # mean cosine of an utterance to its own leave-one-out centroid
    cross_voice: float        # mean cosine of an utterance to the other voices' centroids
    nearest_own: float        # share of utterances whose nearest centroid is their own voice's
    confusable: list[tuple[str, str, float]]  # most similar voice pairs (centroid cosine), highest first
    per_voice_nearest_own: dict[str, float]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def separation(emb: np.ndarray, labels: list[str], top_pairs: int = 5) -> Separation:
    """Same- vs cross-voice statistics of embeddings ``emb[N, D]`` labelled by voice (>= 2 utts, >= 2 voices)."""
    emb = _unit(np.asarray(emb, dtype=np.float64))
    voices = sorted(set(labels))
    if len(voices) < 2:
        raise ValueError(f"need at least 2 voices to compare, got {len(voices)}")
    lab = np.array([voices.index(s) for s in labels])
    counts = np.bincount(lab, minlength=len(voices))
    if counts.min() < 2:
        raise ValueError(f"voice {voices[int(counts.argmin())]} has {counts.min()} utterance(s); "
                         "leave-one-out centroids need at least 2 per voice")
    sums = np.stack([emb[lab == k].sum(0) for k in range(len(voices))])
    centroids = _unit(sums)
    # Leave-one-out own centroid: the voice's sum minus the utterance itself.
    own = _unit(sums[lab] - emb)
    same = np.einsum("nd,nd->n", emb, own)
    to_all = emb @ centroids.T                              # [N, V]
    to_all[np.arange(len(emb)), lab] = same                 # own voice scored leave-one-out
    others = np.ones_like(to_all, dtype=bool)
    others[np.arange(len(emb)), lab] = False
    cross = to_all[others].reshape(len(emb), -1).mean(1)
    hit = to_all.argmax(1) == lab
    cc = centroids @ centroids.T
    pairs = sorted(((voices[i], voices[j], float(cc[i, j])) for i in range(len(voices))
                    for j in range(i + 1, len(voices))), key=lambda t: -t[2])
    return Separation(len(voices), int(counts.min()), float(same.mean()), float(cross.mean()), float(hit.mean()),
                      pairs[:top_pairs], {v: float(hit[lab == k].mean()) for k, v in enumerate(voices)})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data_dir")
    p.add_argument("--utts", type=int, default=10, help="utterances per voice to embed (default 10)")
    p.add_argument("--encoder", default="ge2e", help="speaker encoder: ge2e (embedded) or ecapa (needs --source)")
    p.add_argument("--source", default=None, help="encoder weights (file for ge2e, directory for ecapa)")
    p.add_argument("--cache-dir", default=None, help="embedding cache (default ~/.cache/gradtts/embeddings)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    a = p.parse_args(argv)
    if a.utts < 2:
        p.error("--utts must be at least 2 (leave-one-out centroids)")
    setup_logging()
    t0 = time.time()
    d = read_datadir(a.data_dir)
    utts = [u for spk, us in d.spk2utt.items() for u in us[:a.utts]]
    from gradtts.scoring import load_speaker_encoder

    enc = load_speaker_encoder(a.encoder, source=a.source, device=a.device, cache_dir=a.cache_dir)
    emb = enc.embed_files([d.wavs[u] for u in utts], progress=True)
    s = separation(emb, [d.utt2spk[u] for u in utts])
    elapsed = time.time() - t0
    print(f"{a.data_dir}: {s.voices} voices x {s.utts_per_voice}+ utts, encoder {a.encoder}")
    print(f"  same-voice cosine (leave-one-out centroid): {s.same_voice:.3f}")
    print(f"  cross-voice cosine (other centroids):       {s.cross_voice:.3f}")
    print(f"  gap:                                        {s.same_voice - s.cross_voice:.3f}")
    print(f"  nearest centroid is own voice:              {100 * s.nearest_own:.1f}% of {len(utts)} utterances")
    worst = sorted(s.per_voice_nearest_own.items(), key=lambda kv: kv[1])[:3]
    print("  lowest per-voice hit rate: " + ", ".join(f"{v} {100 * r:.0f}%" for v, r in worst))
    print("  most confusable pairs: " + ", ".join(f"{x}/{y} {c:.3f}" for x, y, c in s.confusable))
    print(f"  ({elapsed:.1f} s)")
    if a.json:
        atomic_write_text(a.json, json.dumps({**asdict(s), "encoder": a.encoder, "seconds": elapsed}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
