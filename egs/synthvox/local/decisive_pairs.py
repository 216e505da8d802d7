"""Form the (target, intruder) pairs of the decisive synthvox study by a rule fixed before any study run.

    python egs/synthvox/local/decisive_pairs.py OUT_DIR [--first_voice 34 --candidates 180 --clips 6 --clips_dir DIR]

The rule, applied to GE2E voice centroids (each the normalised mean of ``--clips`` unit embeddings of one
voice reading sentences of sentence seed ``--sentence_seed``, 1 by default, which the study corpus, seed 0,
does not use):

1. Candidates are the voices ``first_voice .. first_voice + candidates - 1`` of the synthvox voice table
   (index 34 on is disjoint from the base model's sv000-sv023 and from the committed studies' sv024-sv033).
2. Novelty: a candidate whose cosine to any base voice's centroid exceeds ``--max_cos`` (0.92) is dropped.
   0.92 lies below 0.94, the 5th percentile of the cosine between two halves (3 + 3 clips) of one candidate
   voice's own clips: a dropped voice is about as close to a base voice as a voice is to itself. (The
   stricter 0.85, the 0.86-0.97 that the voice table's notes give for two recipes of one espeak-ng variant,
   leaves 29 of 180 candidates and 13 pairs; 0.92 was fixed from that count, before any study run.)
3. Independence: the remaining candidates are taken in index order and one is kept only if its cosine to
   every voice kept before it is at most ``--max_cos`` (so of two near-duplicates the lower index stays and
   no two pairs share what is, to GE2E, one voice).
4. Band: ``lo`` and ``hi`` are the ``--band`` percentiles (25th and 75th) of the cosines between all pairs of
   kept voices; only a pair whose cosine lies in [lo, hi] can be formed (intruders of typical similarity,
   neither near-duplicates nor the most distinct).
5. Matching: the in-band pairs are taken greedily, closest to the median cosine first (ties: lower target
   index, then lower intruder index), each if neither voice is in a pair already. The target is the
   lower-index voice. Pairs are written in order of target index.

Nothing in the rule looks at fine-tuning outcomes. Writes ``OUT_DIR/pairs.tsv`` (target, intruder, cosine),
``OUT_DIR/similarity.tsv`` (the kept voices' centroid cosine matrix) and ``OUT_DIR/summary.json`` (the
thresholds, the band, the dropped voices and why, and the cosine distribution). The clips are synthesised
under ``--clips_dir`` (default ``OUT_DIR/clips``; a re-run reuses them and their cached embeddings) and
embedded on the CPU, one process.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BASE_VOICES = 24        # the base model's voices: sv000-sv023
FIRST_CANDIDATE = 34    # the first voice neither the base nor the committed studies (sv024-sv033) used
MAX_COS = 0.92          # steps 2 and 3 of the rule
BAND = (25.0, 75.0)     # step 4: percentiles of the kept voices' cosines


@dataclass(frozen=True)
class PairRule:
    """The outcome of the rule: kept voices, the band, the pairs and why voices were dropped."""

    kept: list[int]                        # positions (into the candidate list) kept by steps 2-3
    dropped: dict[int, tuple[float, int]]  # position -> (cosine, kept position it is close to; -1: a base voice)
    lo: float
    hi: float
    median: float
    pairs: list[tuple[int, int, float]]    # (target position, intruder position, cosine), target < intruder


def keep_novel(sim: np.ndarray, to_base: np.ndarray,
               max_cos: float = MAX_COS) -> tuple[list[int], dict[int, tuple[float, int]]]:
    """Steps 2-3: positions kept, in index order, and why each other position was dropped (see ``PairRule``).

    ``sim`` is the candidates' [N, N] cosine matrix, ``to_base`` each candidate's highest cosine to a base voice.
    """
    kept: list[int] = []
    dropped: dict[int, tuple[float, int]] = {}
    for i in range(sim.shape[0]):
        if to_base[i] > max_cos:
            dropped[i] = (float(to_base[i]), -1)
            continue
        close = [k for k in kept if sim[i, k] > max_cos]
        if close:
            dropped[i] = (float(sim[i, close[0]]), close[0])
            continue
        kept.append(i)
    return kept, dropped


def match_in_band(sim: np.ndarray, kept: list[int], lo: float, hi: float,
                  median: float) -> list[tuple[int, int, float]]:
    """Step 5: disjoint pairs with cosine in [lo, hi], greedily closest to ``median`` first, in target order."""
    edges = [(abs(float(sim[a, b]) - median), a, b) for n, a in enumerate(kept) for b in kept[n + 1:]
             if lo <= sim[a, b] <= hi]
    used: set[int] = set()
    pairs = []
    for _, a, b in sorted(edges):
        if a in used or b in used:
            continue
        used.update((a, b))
        pairs.append((a, b, float(sim[a, b])))
    return sorted(pairs)


def form_pairs(sim: np.ndarray, to_base: np.ndarray, max_cos: float = MAX_COS,
               band: tuple[float, float] = BAND) -> PairRule:
    """The whole rule (steps 2-5) on a symmetric candidate cosine matrix in voice-index order."""
    sim = np.asarray(sim, dtype=np.float64)
    to_base = np.asarray(to_base, dtype=np.float64)
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1] or not np.allclose(sim, sim.T):
        raise ValueError(f"the similarity matrix must be square and symmetric, got shape {sim.shape}")
    if to_base.shape != (sim.shape[0],):
        raise ValueError(f"need one base cosine per candidate: {to_base.shape} for {sim.shape[0]} candidates")
    if not 0 <= band[0] < band[1] <= 100:
        raise ValueError(f"band {band}: two percentiles 0 <= lo < hi <= 100")
    kept, dropped = keep_novel(sim, to_base, max_cos)
    if len(kept) < 2:
        raise ValueError(f"only {len(kept)} candidate(s) pass the novelty rule (max_cos {max_cos}); add candidates")
    cos = sim[np.ix_(kept, kept)][np.triu_indices(len(kept), 1)]
    lo, hi = (float(x) for x in np.percentile(cos, band))
    median = float(np.median(cos))
    return PairRule(kept, dropped, lo, hi, median, match_in_band(sim, kept, lo, hi, median))


def synthesise(out: Path, first: int, n: int, clips: int, seed: int, jobs: int):
    """Build (or reuse) ``clips`` utterances of voices first..first+n-1 under ``out``; returns the data dir."""
    from data_prep.synthvox import build

    return build(out, n, clips, first_voice=first, seed=seed, jobs=jobs, progress=False)


def centroids(datadir, encoder) -> tuple[list[str], np.ndarray]:
    """Speakers (sorted) and their unit GE2E centroids [S, D]."""
    speakers = sorted(datadir.speakers)
    rows = []
    for s in speakers:
        emb = encoder.embed_files([datadir.wavs[u] for u in datadir.spk2utt[s]]).astype(np.float64)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        c = emb.mean(0)
        rows.append(c / np.linalg.norm(c))
    return speakers, np.stack(rows)


def write_outputs(out: Path, names: list[str], sim: np.ndarray, to_base: np.ndarray, rule: PairRule,
                  settings: dict) -> None:
    """pairs.tsv, similarity.tsv and summary.json (atomic writes)."""
    from gradtts.io import atomic_write_text

    atomic_write_text(out / "pairs.tsv", "target\tintruder\tcosine\n" + "".join(
        f"{names[a]}\t{names[b]}\t{c:.4f}\n" for a, b, c in rule.pairs))
    kept = [names[k] for k in rule.kept]
    atomic_write_text(out / "similarity.tsv", "voice\t" + "\t".join(kept) + "\n" + "".join(
        names[i] + "\t" + "\t".join(f"{sim[i, j]:.4f}" for j in rule.kept) + "\n" for i in rule.kept))
    cos = sim[np.ix_(rule.kept, rule.kept)][np.triu_indices(len(rule.kept), 1)]
    pc = [c for _, _, c in rule.pairs]
    summary = {
        **settings,
        "candidates": names,
        "kept": kept,
        "dropped": {names[i]: f"cosine {c:.3f} to {'a base voice' if k < 0 else names[k]}"
                    for i, (c, k) in sorted(rule.dropped.items())},
        "max_cos_to_base": {names[i]: round(float(to_base[i]), 4) for i in range(len(names))},
        "kept_cosines": {"n": int(cos.size), "min": float(cos.min()), "p25": rule.lo, "median": rule.median,
                         "p75": rule.hi, "max": float(cos.max()), "mean": float(cos.mean())},
        "band": [rule.lo, rule.hi],
        "n_pairs": len(rule.pairs),
        "pair_cosines": {"min": min(pc), "median": float(np.median(pc)), "max": max(pc)} if pc else {},
        "unpaired": [names[k] for k in rule.kept if all(k not in (a, b) for a, b, _ in rule.pairs)],
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir")
    p.add_argument("--first_voice", type=int, default=FIRST_CANDIDATE, help="first candidate voice index (34)")
    p.add_argument("--candidates", type=int, default=180, help="number of candidate voices (180)")
    p.add_argument("--clips", type=int, default=6, help="clips synthesised per voice (6)")
    p.add_argument("--sentence_seed", type=int, default=1, help="sentence seed of the clips (1)")
    p.add_argument("--max_cos", type=float, default=MAX_COS, help=f"novelty threshold ({MAX_COS})")
    p.add_argument("--band", type=float, nargs=2, default=list(BAND), help="percentiles of the band (25 75)")
    p.add_argument("--min_pairs", type=int, default=36, help="fail (exit 2) with fewer pairs than this (36)")
    p.add_argument("--clips_dir", default=None, help="where clips and embeddings go (default OUT_DIR/clips)")
    p.add_argument("--jobs", type=int, default=1, help="synthesis processes (1)")
    a = p.parse_args(argv)
    if a.first_voice < BASE_VOICES:
        p.error(f"--first_voice {a.first_voice}: candidates must not include the base voices 0-{BASE_VOICES - 1}")
    from gradtts.logs import setup_logging
    from gradtts.scoring import load_speaker_encoder

    setup_logging()
    out = Path(a.out_dir)
    clips = Path(a.clips_dir) if a.clips_dir else out / "clips"
    base_dd = synthesise(clips / "base", 0, BASE_VOICES, a.clips, a.sentence_seed, a.jobs)
    cand_dd = synthesise(clips / "candidates", a.first_voice, a.candidates, a.clips, a.sentence_seed, a.jobs)
    encoder = load_speaker_encoder("ge2e", device="cpu", cache_dir=clips / "embeddings")
    _, base_c = centroids(base_dd, encoder)
    names, cand_c = centroids(cand_dd, encoder)
    sim = cand_c @ cand_c.T
    to_base = (cand_c @ base_c.T).max(1)
    rule = form_pairs(sim, to_base, a.max_cos, tuple(a.band))
    settings = {"first_voice": a.first_voice, "n_candidates": a.candidates, "clips": a.clips,
                "sentence_seed": a.sentence_seed, "max_cos": a.max_cos, "band_percentiles": list(a.band),
                "encoder": "ge2e"}
    write_outputs(out, names, sim, to_base, rule, settings)
    print(f"{len(rule.kept)} of {len(names)} candidates kept; band [{rule.lo:.3f}, {rule.hi:.3f}]; "
          f"{len(rule.pairs)} pairs -> {out / 'pairs.tsv'}")
    if len(rule.pairs) < a.min_pairs:
        print(f"{out / 'pairs.tsv'}: {len(rule.pairs)} pairs, fewer than --min_pairs {a.min_pairs}: "
              "add candidates (--candidates)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
