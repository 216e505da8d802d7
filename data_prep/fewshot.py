"""Corrupted few-shot sets for speaker adaptation (docs/method.md §6).

    python -m data_prep.fewshot DATA_DIR OUT_DIR --target T --intruder C [--n 20]
           [--fractions 0 0.15 0.30 0.45] [--n-ref 10] [--n-test 10] [--seed 0]
           [--selection random|dissimilar] [--encoder ge2e]

From the target T's utterances it draws N few-shot items, a held-out reference set and test texts;
for each fraction p it writes ``OUT_DIR/p{p:.2f}/``, a data dir in which ceil(p*N) of T's items are
replaced by the intruder C's items, still labelled as T (ids ``<T>-intruder-<C's utt>``), listed in
its ``corrupt`` file. Intruders are nested: a larger p keeps the smaller p's intruders and
replacements. Also writes ``ref_target/``, ``ref_intruder/``, ``test_texts.txt`` (texts of neither
speaker's few-shot items), ``ref_test/`` (the target's recordings of those texts) and ``fewshot.json``.

Texts are compared after :func:`normalise_text` (case, punctuation and spacing ignored: "Hello, world."
and "hello world" are the same sentence). On parallel-text corpora (CMU ARCTIC, VCTK's shared
paragraphs, any read speech from one prompt list), where target and intruder read the same prompts, the
test sentences are chosen as distinct texts of the target that no few-shot or intruder clip reads; when
the seeded draw has no such clash (as on corpora with speaker-specific texts) it is kept unchanged.
The choice depends only on the data and the seed.

Impossible requests (too few utterances or distinct texts, N < 1, negative counts) fail before anything is
written, with the numbers (:func:`pair_problems`, also run by ``data_prep.validate --pairs``). A re-run
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
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from gradtts.data.datadir import DataDir, read_datadir, write_datadir
from gradtts.io import atomic_write_text
from gradtts.layout import REF_INTRUDER, REF_TARGET, REF_TEST, TEST_TEXTS, is_set_name, set_name
from gradtts.logs import setup_logging

log = logging.getLogger(__name__)

DEFAULT_N = 20
DEFAULT_FRACTIONS = (0.0, 0.15, 0.30, 0.45)
DEFAULT_N_REF = 10
DEFAULT_N_TEST = 10


class FewShotError(ValueError):
    """A request that cannot be met; the message gives the numbers."""


@dataclass(frozen=True)
class Needs:
    """What one study asks of a (target, intruder) pair: the single definition that :func:`plan` and
    ``data_prep.validate --pairs`` both check."""

    n: int
    fractions: tuple[float, ...]
    n_ref: int
    n_test: int
    n_corrupt: dict[float, int]

    @property
    def target(self) -> int:
        """Target clips: few-shot + reference + test."""
        return self.n + self.n_ref + self.n_test

    @property
    def intruder_items(self) -> int:
        """Intruder clips in the largest-p set (ceil(p_max * N)); smaller p reuse a prefix of them."""
        return max(self.n_corrupt.values())

    @property
    def intruder(self) -> int:
        """Intruder clips: intruder items + reference."""
        return self.intruder_items + self.n_ref


def requirements(n: int, fractions, n_ref: int, n_test: int, n_option: str = "--n") -> Needs:
    """The clip counts a study needs; raises :class:`FewShotError` on counts or fractions no study can have.
    ``n_option`` names the few-shot count in the message (``--n`` here, ``--n-shot`` in validate)."""
    # Checked before the counts are used: a negative one would otherwise surface as a confusing shortage.
    if n < 1:
        raise FewShotError(f"{n_option} must be at least 1 (got {n}): a few-shot set needs at least one utterance")
    for name, k in (("--n-ref", n_ref), ("--n-test", n_test)):
        if k < 0:
            raise FewShotError(f"{name} must be 0 or more (got {k})")
    fractions = tuple(sorted(set(float(p) for p in fractions)))
    if not fractions or any(not 0 <= p < 1 for p in fractions):
        raise FewShotError(f"fractions must lie in [0, 1), got {list(fractions)}")
    return Needs(n, fractions, n_ref, n_test, {p: math.ceil(round(p * n, 9)) for p in fractions})


def normalise_text(text: str) -> str:
    """The form in which two transcripts are compared: NFKC, case-folded, punctuation turned into spaces,
    whitespace collapsed, so "Hello, world." and "hello  world" are the same sentence."""
    s = unicodedata.normalize("NFKC", text).casefold()
    return " ".join("".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in s).split())


def _text_kinds(d: DataDir, target: str, intruder: str) -> dict[str, tuple[int, int]]:
    """Each distinct (normalised) text of the target -> (clips of the target, clips of the intruder) reading it."""
    t = Counter(normalise_text(d.texts[u]) for u in d.spk2utt[target])
    c = Counter(normalise_text(d.texts[u]) for u in d.spk2utt[intruder])
    return {x: (k, c[x]) for x, k in t.items()}


def _choose_test_kinds(kinds: Counter, k: int, budget_t: int, budget_c: int) -> tuple[int, Counter | None]:
    """How many texts of each kind (target clips, intruder clips reading it) to take as the ``k`` test sentences
    so that at most ``budget_t`` target and ``budget_c`` intruder clips read them (the rest are needed for the
    few-shot and intruder items). Exact (a knapsack over the few kinds), preferring the fewest clips used.
    Returns the largest number of test sentences the budgets allow and, when that reaches ``k``, the counts."""
    # (texts taken, target clips used) -> (fewest intruder clips used, back pointer), one table per kind.
    states: dict[tuple[int, int], tuple[int, tuple | None]] = {(0, 0): (0, None)}
    layers = []
    for (t, c), m in sorted(kinds.items()):
        new: dict[tuple[int, int], tuple[int, tuple | None]] = {}
        for (j, st), (sc, _) in states.items():
            for r in range(min(m, k - j) + 1):
                key, used_c = (j + r, st + r * t), sc + r * c
                if key[1] > budget_t or used_c > budget_c:
                    break
                if key not in new or used_c < new[key][0]:
                    new[key] = (used_c, ((j, st), r))
        layers.append(((t, c), new))
        states = new
    best = max(j for j, _ in states)
    if best < k:
        return best, None
    key = min((s for s in states if s[0] == k), key=lambda s: (s[1] + states[s][0], s[1]))
    counts: Counter = Counter()
    for kind, table in reversed(layers):
        key, r = table[key][1]
        counts[kind] += r
    return k, +counts


def pair_problems(d: DataDir, target: str, intruder: str, needs: Needs) -> list[str]:
    """Every reason the pair cannot be studied with ``needs`` (empty when it can), each naming the speaker,
    what it has and what is needed: speakers, clip counts, and distinct texts for the test sentences."""
    spk2utt = d.spk2utt
    problems = []
    for role, spk in (("target", target), ("intruder", intruder)):
        if spk not in spk2utt:
            problems.append(f"{role} speaker {spk!r} is not in the data dir (speakers: "
                            f"{', '.join(list(spk2utt)[:10])}{' ...' if len(spk2utt) > 10 else ''})")
    if target == intruder:
        problems.append("target and intruder must be different speakers")
    if problems:
        return problems
    n_t, n_c = len(spk2utt[target]), len(spk2utt[intruder])
    if n_t < needs.target:
        problems.append(f"target {target} has {n_t} utterances; {needs.n} few-shot + {needs.n_ref} reference + "
                        f"{needs.n_test} test = {needs.target} are needed")
    if n_c < needs.intruder:
        problems.append(f"intruder {intruder} has {n_c} utterances; p={max(needs.fractions)} of N={needs.n} needs "
                        f"{needs.intruder_items} intruder items + {needs.n_ref} references = {needs.intruder}")
    if problems:
        return problems
    kinds = _text_kinds(d, target, intruder)
    most, _ = _choose_test_kinds(Counter(kinds.values()), needs.n_test, n_t - needs.n, n_c - needs.intruder_items)
    if most < needs.n_test:
        problems.append(f"target {target} has {len(kinds)} distinct texts and at most {most} of them can be test "
                        f"sentences that none of its {needs.n} few-shot clips and none of intruder {intruder}'s "
                        f"{needs.intruder_items} intruder clips reads; {needs.n_test} test sentences are needed "
                        "(lower --n-test or use more texts; texts are compared ignoring case, punctuation and "
                        "spacing)")
    return problems


def _clashes(d: DataDir, test: list[str], readers: list[str]) -> list[str]:
    """The test utterances whose (normalised) text one of ``readers`` or an earlier test utterance reads."""
    read = {normalise_text(d.texts[u]) for u in readers}
    out = []
    for u in test:
        x = normalise_text(d.texts[u])
        if x in read:
            out.append(u)
        read.add(x)
    return out


def _seeded_split(t_shuffled: list[str], c_shuffled: list[str], needs: Needs) -> tuple[list[str], ...]:
    """The plain draw: consecutive slices of the shuffled lists (fewshot, ref_t, test, ref_c, intruder pool)."""
    n, n_ref, n_test = needs.n, needs.n_ref, needs.n_test
    return (sorted(t_shuffled[:n]), sorted(t_shuffled[n:n + n_ref]), t_shuffled[n + n_ref:n + n_ref + n_test],
            sorted(c_shuffled[:n_ref]), c_shuffled[n_ref:])


def _text_safe_split(d: DataDir, target: str, intruder: str, t_shuffled: list[str], c_shuffled: list[str],
                     needs: Needs) -> tuple[list[str], ...]:
    """A draw whose test sentences no few-shot or intruder clip reads (for parallel-text corpora): the test
    texts are taken first (in the shuffled order, within the kinds :func:`_choose_test_kinds` picks), then the
    few-shot items and intruder pool among clips of other texts, the references from what is left."""
    kinds = _text_kinds(d, target, intruder)
    _, counts = _choose_test_kinds(Counter(kinds.values()), needs.n_test, len(t_shuffled) - needs.n,
                                   len(c_shuffled) - needs.intruder_items)
    assert counts is not None, "pair_problems admitted an impossible pair"
    norm = {u: normalise_text(d.texts[u]) for u in t_shuffled + c_shuffled}
    chosen: set[str] = set()
    for x in dict.fromkeys(norm[u] for u in t_shuffled):
        if counts[kinds[x]] > 0:
            chosen.add(x)
            counts[kinds[x]] -= 1
    test, seen = [], set()
    for u in t_shuffled:  # one clip per chosen text, the first in the shuffled order
        if norm[u] in chosen and norm[u] not in seen:
            test.append(u)
            seen.add(norm[u])
    fewshot = [u for u in t_shuffled if norm[u] not in chosen][:needs.n]
    taken = set(fewshot) | set(test)
    ref_t = [u for u in t_shuffled if u not in taken][:needs.n_ref]
    # References may read test texts; only as many clips of other texts go to them as the intruder items spare.
    spare = sum(norm[u] not in chosen for u in c_shuffled) - needs.intruder_items
    ref_c: list[str] = []
    for u in c_shuffled:
        if len(ref_c) == needs.n_ref:
            break
        if norm[u] in chosen or spare > 0:
            spare -= norm[u] not in chosen
            ref_c.append(u)
    in_ref = set(ref_c)
    pool = [u for u in c_shuffled if norm[u] not in chosen and u not in in_ref]
    return sorted(fewshot), sorted(ref_t), test, sorted(ref_c), pool


def _order_pool(d: DataDir, fewshot: list[str], pool: list[str], selection: str, encoder) -> list[str]:
    """The intruder pool in the order items are taken: as drawn, or least similar to the target first."""
    if selection != "dissimilar":
        return pool
    import numpy as np

    t_emb = encoder.embed_files([d.wavs[u] for u in fewshot])
    centroid = t_emb.mean(0)
    centroid /= np.linalg.norm(centroid)
    sims = encoder.embed_files([d.wavs[u] for u in pool]) @ centroid
    return [pool[i] for i in np.argsort(sims, kind="stable")]


def plan(d: DataDir, target: str, intruder: str, n: int, fractions, n_ref: int, n_test: int, seed: int,
         selection: str = "random", encoder=None) -> dict:
    """Choose every item; raises :class:`FewShotError` before anything is written.

    The items are consecutive slices of the target's and the intruder's utterances shuffled by the seed.
    When that draw puts a test sentence in a few-shot or intruder clip, or twice among the test sentences
    (texts compared by :func:`normalise_text`: case, punctuation and spacing ignored), as it will on
    parallel-text corpora (CMU ARCTIC, VCTK's shared paragraphs), the test sentences are instead chosen
    among texts no few-shot clip reads (:func:`_text_safe_split`); it is refused only when no choice exists
    (:func:`pair_problems` says how many distinct texts there are and how many are needed)."""
    needs = requirements(n, fractions, n_ref, n_test)
    problems = pair_problems(d, target, intruder, needs)
    if problems:
        raise FewShotError("; ".join(problems))
    if selection not in ("random", "dissimilar"):
        raise FewShotError(f"unknown selection {selection!r}: random or dissimilar")
    if selection == "dissimilar" and encoder is None:
        raise FewShotError("selection 'dissimilar' needs a speaker encoder")
    max_c = needs.intruder_items
    rng = random.Random(f"fewshot-{seed}-{target}-{intruder}")
    t_utts, c_utts = d.spk2utt[target], d.spk2utt[intruder]
    t_shuffled = rng.sample(t_utts, len(t_utts))
    c_shuffled = rng.sample(c_utts, len(c_utts))
    fewshot, ref_t, test, ref_c, pool = _seeded_split(t_shuffled, c_shuffled, needs)
    intruders = _order_pool(d, fewshot, pool, selection, encoder)[:max_c]
    clash = _clashes(d, test, fewshot + intruders)
    if clash:
        log.info("fewshot: the seeded draw has test sentences read by few-shot clips or twice (%s); choosing "
                 "the test sentences among texts no few-shot clip reads", ", ".join(clash[:3]))
        fewshot, ref_t, test, ref_c, pool = _text_safe_split(d, target, intruder, t_shuffled, c_shuffled, needs)
        intruders = _order_pool(d, fewshot, pool, selection, encoder)[:max_c]
        assert not _clashes(d, test, fewshot + intruders)
    replaced = rng.sample(fewshot, len(fewshot))[:max_c]  # nested: the first k replacements for every p
    return {"target": target, "intruder": intruder, "n": n, "fractions": list(needs.fractions), "seed": seed,
            "selection": selection, "fewshot": fewshot, "ref_target": ref_t, "ref_intruder": ref_c,
            "test": test, "intruders": intruders, "replaced": replaced,
            "n_corrupt": {set_name(p): k for p, k in needs.n_corrupt.items()}}


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


def make_fewshot(data_dir, out_dir, target: str, intruder: str, n: int = DEFAULT_N, fractions=DEFAULT_FRACTIONS,
                 n_ref: int = DEFAULT_N_REF, n_test: int = DEFAULT_N_TEST, seed: int = 0, selection: str = "random",
                 encoder=None) -> dict:
    """Plan and write the few-shot sets; returns the plan (also saved as ``fewshot.json``)."""
    d = read_datadir(data_dir)
    chosen = plan(d, target, intruder, n, fractions, n_ref, n_test, seed, selection, encoder)
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
    p.add_argument("--n", type=int, default=DEFAULT_N, help=f"few-shot utterances (default {DEFAULT_N})")
    p.add_argument("--fractions", type=float, nargs="+", default=list(DEFAULT_FRACTIONS))
    p.add_argument("--n-ref", type=int, default=DEFAULT_N_REF, help="held-out reference utterances per speaker")
    p.add_argument("--n-test", type=int, default=DEFAULT_N_TEST, help="test texts")
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
