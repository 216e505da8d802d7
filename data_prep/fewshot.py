"""Corrupted few-shot sets for speaker adaptation (METHOD §4-5).

    python -m data_prep.fewshot DATA_DIR OUT_DIR --target T --intruder C [--n 20]
           [--fractions 0 0.15 0.30 0.45] [--n-ref 10] [--n-test 10] [--seed 0]
           [--selection random|dissimilar] [--encoder ge2e]

From the target T's utterances it draws N few-shot items, a held-out reference set and test texts;
for each fraction p it writes ``OUT_DIR/p{p:.2f}/``, a data dir in which ceil(p*N) of T's items are
replaced by the intruder C's items, still labelled as T (ids ``<T>-intruder-<C's utt>``), listed in
its ``corrupt`` file. Intruders are nested: a larger p keeps the smaller p's intruders and
replacements. Also writes ``ref_target/``, ``ref_intruder/``, ``test_texts.txt`` (texts of neither
speaker's few-shot items), ``ref_test/`` (the target's recordings of those texts) and ``fewshot.json``.
Impossible requests (too few utterances, N < 1, negative counts) fail before anything is written. A re-run
into the same OUT_DIR leaves exactly the sets it lists: ``p*`` set dirs of an earlier run with other
fractions are removed (and named).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import shutil
import sys
from pathlib import Path

from gradtts.data.datadir import DataDir, read_datadir, write_datadir
from gradtts.io import atomic_write_text
from gradtts.layout import REF_INTRUDER, REF_TARGET, REF_TEST, TEST_TEXTS, is_set_name, set_name
from gradtts.logs import setup_logging

log = logging.getLogger(__name__)

DEFAULT_FRACTIONS = (0.0, 0.15, 0.30, 0.45)


class FewShotError(ValueError):
    """A request that cannot be met; the message gives the numbers."""


def plan(d: DataDir, target: str, intruder: str, n: int, fractions, n_ref: int, n_test: int, seed: int,
         selection: str = "random", encoder=None) -> dict:
    """Choose every item; raises :class:`FewShotError` before anything is written."""
    spk2utt = d.spk2utt
    for role, spk in (("target", target), ("intruder", intruder)):
        if spk not in spk2utt:
            raise FewShotError(f"{role} speaker {spk!r} is not in the data dir (speakers: "
                               f"{', '.join(list(spk2utt)[:10])}{' ...' if len(spk2utt) > 10 else ''})")
    if target == intruder:
        raise FewShotError("target and intruder must be different speakers")
    # Checked before the counts are used: a negative one would otherwise surface as a confusing shortage.
    if n < 1:
        raise FewShotError(f"--n must be at least 1 (got {n}): a few-shot set needs at least one utterance")
    for name, k in (("--n-ref", n_ref), ("--n-test", n_test)):
        if k < 0:
            raise FewShotError(f"{name} must be 0 or more (got {k})")
    fractions = sorted(set(float(p) for p in fractions))
    if any(not 0 <= p < 1 for p in fractions):
        raise FewShotError(f"fractions must lie in [0, 1), got {fractions}")
    n_corrupt = {p: math.ceil(round(p * n, 9)) for p in fractions}
    t_utts, c_utts = spk2utt[target], spk2utt[intruder]
    need_t = n + n_ref + n_test
    if len(t_utts) < need_t:
        raise FewShotError(f"target {target} has {len(t_utts)} utterances; {n} few-shot + {n_ref} reference + "
                           f"{n_test} test = {need_t} are needed")
    max_c = max(n_corrupt.values())
    if len(c_utts) < max_c + n_ref:
        raise FewShotError(f"intruder {intruder} has {len(c_utts)} utterances; p={max(fractions)} of N={n} needs "
                           f"{max_c} intruder items + {n_ref} references = {max_c + n_ref}")
    rng = random.Random(f"fewshot-{seed}-{target}-{intruder}")
    t_shuffled = rng.sample(t_utts, len(t_utts))
    fewshot = sorted(t_shuffled[:n])
    ref_t = sorted(t_shuffled[n:n + n_ref])
    test = t_shuffled[n + n_ref:n + n_ref + n_test]
    c_shuffled = rng.sample(c_utts, len(c_utts))
    ref_c = sorted(c_shuffled[:n_ref])
    pool = c_shuffled[n_ref:]
    if selection == "dissimilar":
        if encoder is None:
            raise FewShotError("selection 'dissimilar' needs a speaker encoder")
        import numpy as np

        t_emb = encoder.embed_files([d.wavs[u] for u in fewshot])
        centroid = t_emb.mean(0)
        centroid /= np.linalg.norm(centroid)
        sims = encoder.embed_files([d.wavs[u] for u in pool]) @ centroid
        pool = [pool[i] for i in np.argsort(sims, kind="stable")]
    elif selection != "random":
        raise FewShotError(f"unknown selection {selection!r}: random or dissimilar")
    intruders = pool[:max_c]
    replaced = rng.sample(fewshot, len(fewshot))[:max_c]  # nested: the first k replacements for every p
    return {"target": target, "intruder": intruder, "n": n, "fractions": fractions, "seed": seed,
            "selection": selection, "fewshot": fewshot, "ref_target": ref_t, "ref_intruder": ref_c,
            "test": test, "intruders": intruders, "replaced": replaced,
            "n_corrupt": {set_name(p): k for p, k in n_corrupt.items()}}


def stale_sets(out: Path, keep: set[str]) -> list[Path]:
    """Set dirs under ``out`` named as :func:`set_name` names them that are not in ``keep`` and hold a data
    dir (so a user's own folder of that name is never touched)."""
    if not out.is_dir():
        return []
    return sorted(q for q in out.iterdir() if q.is_dir() and not q.is_symlink() and is_set_name(q.name)
                  and q.name not in keep and all((q / f).is_file() for f in ("wav.scp", "text", "utt2spk")))


def write_sets(d: DataDir, out: Path, chosen: dict) -> list[Path]:
    """Write every set and file of ``chosen``; returns the stale set dirs it removed."""
    target = chosen["target"]
    for p in chosen["fractions"]:
        k = chosen["n_corrupt"][set_name(p)]
        s = d.subset(set(chosen["fewshot"]) - set(chosen["replaced"][:k]))
        s.corrupt = set()
        for c_utt in chosen["intruders"][:k]:
            utt = f"{target}-intruder-{c_utt}"
            s.add(utt, target, d.wavs[c_utt], d.texts[c_utt])
            s.corrupt.add(utt)
        write_datadir(out / set_name(p), s)
    write_datadir(out / REF_TARGET, d.subset(chosen["ref_target"]))
    write_datadir(out / REF_INTRUDER, d.subset(chosen["ref_intruder"]))
    # The target's own recordings of the test sentences: what fidelity (MCD, log-F0 RMSE) compares with.
    write_datadir(out / REF_TEST, d.subset(chosen["test"]))
    atomic_write_text(out / TEST_TEXTS, "".join(f"{u} {d.texts[u]}\n" for u in chosen["test"]))
    # Sets of an earlier run with other fractions would be picked up by globs (p*/) as if part of this one.
    removed = stale_sets(out, {set_name(p) for p in chosen["fractions"]})
    for q in removed:
        shutil.rmtree(q)
    atomic_write_text(out / "fewshot.json", json.dumps(chosen, indent=2) + "\n")
    return removed


def make_fewshot(data_dir, out_dir, target: str, intruder: str, n: int = 20, fractions=DEFAULT_FRACTIONS,
                 n_ref: int = 10, n_test: int = 10, seed: int = 0, selection: str = "random", encoder=None) -> dict:
    """Plan and write the few-shot sets; returns the plan (also saved as ``fewshot.json``)."""
    d = read_datadir(data_dir)
    chosen = plan(d, target, intruder, n, fractions, n_ref, n_test, seed, selection, encoder)
    # Test texts must not be spoken in any few-shot set, including the intruders' items.
    fewshot_texts = {d.texts[u] for u in chosen["fewshot"] + chosen["intruders"]}
    clash = [u for u in chosen["test"] if d.texts[u] in fewshot_texts]
    if clash:
        raise FewShotError(f"test texts of {clash[:3]} also occur in the few-shot items; use another seed")
    removed = write_sets(d, Path(out_dir), chosen)
    if removed:
        # A warning: without any logging set-up it still reaches stderr (logging's last-resort handler).
        log.warning("fewshot: removed %d set(s) of an earlier run that this one does not write: %s (under %s)",
                    len(removed), ", ".join(q.name for q in removed), out_dir)
    return chosen


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data_dir")
    p.add_argument("out_dir")
    p.add_argument("--target", required=True)
    p.add_argument("--intruder", required=True)
    p.add_argument("--n", type=int, default=20, help="few-shot utterances (default 20)")
    p.add_argument("--fractions", type=float, nargs="+", default=list(DEFAULT_FRACTIONS))
    p.add_argument("--n-ref", type=int, default=10, help="held-out reference utterances per speaker")
    p.add_argument("--n-test", type=int, default=10, help="test texts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--selection", choices=["random", "dissimilar"], default="random")
    p.add_argument("--encoder", default="ge2e", help="speaker encoder for --selection dissimilar")
    a = p.parse_args(argv)
    setup_logging()
    encoder = None
    if a.selection == "dissimilar":
        from gradtts.scoring import load_speaker_encoder

        encoder = load_speaker_encoder(a.encoder)
    try:
        chosen = make_fewshot(a.data_dir, a.out_dir, a.target, a.intruder, a.n, a.fractions, a.n_ref, a.n_test,
                              a.seed, a.selection, encoder)
    except FewShotError as exc:
        print(f"fewshot: {exc}", file=sys.stderr)
        return 2
    log.info("fewshot: %s <- %s: %s -> %s", a.target, a.intruder,
             ", ".join(f"{k}: {v} corrupt" for k, v in chosen["n_corrupt"].items()), a.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
