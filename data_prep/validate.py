"""Check a Kaldi data dir and report every problem at once.

    python -m data_prep.validate DATA_DIR [--no-audio]
           [--pairs "T:C T2:C2" [--n-shot 20] [--fractions 0 0.15 0.30 0.45] [--n-ref 10] [--n-test 10]]

Checks the tables (ids, sorting, speakers, transcripts, UTF-8), that the dir holds utterances and that
every audio file exists, opens, is not cut short and lasts a plausible time. The audio check reads
headers only (and the last frames of compressed files), so it is fast even on a large corpus.
Exit status 0 when valid, 1 otherwise (every problem is listed).

With ``--pairs`` it also checks, once the dir is valid, that every (target, intruder) pair can be studied
with the given counts, by the same requirements the few-shot builder applies
(:func:`data_prep.fewshot.pair_problems`): the target has N few-shot + reference + test clips, the intruder
ceil(p_max * N) intruder items + references, and the target enough distinct texts for test sentences no
few-shot clip reads. Every problem of every pair is listed; exit status 2 when one is short.
"""

from __future__ import annotations

import argparse
import sys

from data_prep.fewshot import (DEFAULT_FRACTIONS, DEFAULT_N, DEFAULT_N_REF, DEFAULT_N_TEST, FewShotError,
                               pair_problems, requirements)
from gradtts.data.datadir import DataDir, read_datadir, validate_datadir


def parse_pairs(spec: str) -> list[tuple[str, str]]:
    """``"T:C T2:C2"`` -> [(T, C), (T2, C2)]; raises :class:`FewShotError` on a malformed entry."""
    pairs = []
    for item in spec.split():
        target, sep, intruder = item.partition(":")
        if not sep or not target or not intruder or ":" in intruder:
            raise FewShotError(f"--pairs: {item!r} is not TARGET:INTRUDER (give e.g. --pairs \"slt:bdl rms:clb\")")
        pairs.append((target, intruder))
    if not pairs:
        raise FewShotError("--pairs: no pair given (give e.g. --pairs \"slt:bdl rms:clb\")")
    return pairs


def study_problems(d: DataDir, pairs: list[tuple[str, str]], n: int, fractions, n_ref: int,
                   n_test: int) -> list[str]:
    """Every problem of every pair, each prefixed with its ``T:C``."""
    needs = requirements(n, fractions, n_ref, n_test, n_option="--n-shot")
    return [f"{t}:{c}: {msg}" for t, c in pairs for msg in pair_problems(d, t, c, needs)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data_dir")
    p.add_argument("--no-audio", action="store_true",
                   help="do not check the audio files (existence, headers, truncation)")
    g = p.add_argument_group("study feasibility (only with --pairs)")
    g.add_argument("--pairs", default=None, metavar='"T:C ..."',
                   help="space-separated TARGET:INTRUDER pairs to check the counts below for")
    g.add_argument("--n-shot", type=int, default=DEFAULT_N, help=f"few-shot items (default {DEFAULT_N})")
    g.add_argument("--fractions", type=float, nargs="+", default=list(DEFAULT_FRACTIONS), metavar="P",
                   help="corruption fractions (the largest sets the intruder items needed)")
    g.add_argument("--n-ref", type=int, default=DEFAULT_N_REF, help="reference clips per speaker")
    g.add_argument("--n-test", type=int, default=DEFAULT_N_TEST, help="test sentences")
    a = p.parse_args(argv)
    try:
        pairs = parse_pairs(a.pairs) if a.pairs is not None else []
    except FewShotError as exc:
        print(f"validate: {exc}", file=sys.stderr)
        return 2
    problems = validate_datadir(a.data_dir, check_audio=not a.no_audio)
    if problems:
        print(f"{a.data_dir}: {len(problems)} problem(s):")
        for msg in problems:
            print(f"  {msg}")
        if pairs:
            print("  (the pairs are checked once these are fixed)")
        return 1
    d = read_datadir(a.data_dir)
    print(f"{a.data_dir}: ok, {len(d.utts)} utterances, {len(d.speakers)} speakers")
    if not pairs:
        return 0
    try:
        short = study_problems(d, pairs, a.n_shot, a.fractions, a.n_ref, a.n_test)
    except FewShotError as exc:
        print(f"validate: {exc}", file=sys.stderr)
        return 2
    counts = f"n_shot={a.n_shot} fractions={' '.join(f'{x:g}' for x in a.fractions)} n_ref={a.n_ref} n_test={a.n_test}"
    if short:
        print(f"{a.data_dir}: {len(short)} problem(s) for the study ({counts}):")
        for msg in short:
            print(f"  {msg}")
        return 2
    print(f"{a.data_dir}: pairs {', '.join(f'{t}:{c}' for t, c in pairs)} can be studied ({counts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
