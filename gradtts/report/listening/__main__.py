"""Command line of :mod:`gradtts.report.listening` (``page``, the default, and ``prefs``)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from gradtts.report.listening.clips import FORMATS

log = logging.getLogger("gradtts.report.listening")
PROG = "python -m gradtts.report.listening"


def _page_parser() -> argparse.ArgumentParser:
    from gradtts.report import listening

    p = argparse.ArgumentParser(prog=f"{PROG} [page]", description=listening.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("exp", help="experiment directory (EXP/fewshot, EXP/finetune)")
    p.add_argument("out_dir", help="folder that gets index.html, ab.html and audio/")
    p.add_argument("--pairs", nargs="+", default=None, metavar="PAIR", help="pairs (T:C or T_C; default all)")
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="seeds (default: the lowest one)")
    p.add_argument("--steps", nargs="+", type=int, default=None,
                   help="fine-tuning steps (default: every step all selected runs synthesised)")
    p.add_argument("--fractions", nargs="+", type=float, default=None, help="corruption levels p (default all)")
    p.add_argument("--arms", nargs="+", default=None, help="arm labels or ids (default all)")
    p.add_argument("--max-sentences", type=int, default=3, help="test sentences per pair (default 3)")
    p.add_argument("--refs", type=int, default=2, help="reference clips per speaker (default 2)")
    p.add_argument("--format", default="ogg", choices=sorted(FORMATS), help="clip format (default ogg: Vorbis)")
    p.add_argument("--sample-rate", type=int, default=22050, help="clip sample rate in Hz (default 22050)")
    p.add_argument("--compression", type=float, default=0.6,
                   help="lossy formats: 0 (best quality) .. 1 (smallest), libsndfile's scale (default 0.6)")
    p.add_argument("--ab-reference", default=None,
                   help="arm every other arm is compared with in the A/B test (default: the first l2 arm)")
    p.add_argument("--ab-seed", type=int, default=0, help="seed of the A/B sides, order and sample (default 0)")
    p.add_argument("--ab-max-trials", type=int, default=None, help="at most this many A/B trials (a fixed sample)")
    p.add_argument("--max-mb", type=float, default=10.0, help="size budget of the page in MiB (default 10; 0: none)")
    p.add_argument("--title", default="Listening page")
    return p


def _prefs_parser() -> argparse.ArgumentParser:
    from gradtts.report.listening import prefs

    p = argparse.ArgumentParser(prog=f"{PROG} prefs", description=prefs.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_md", help="markdown file for the preference table")
    p.add_argument("ratings", nargs="+", help="ratings CSVs downloaded from ab.html")
    p.add_argument("--by", nargs="+", default=[], help="also split by these CSV columns (e.g. p step)")
    p.add_argument("--level", type=float, default=0.95, help="confidence level (default 0.95)")
    p.add_argument("--csv", default=None, help="also write the table as CSV here")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; bad input ends with one ``python -m gradtts.report.listening: error: ...`` line, status 2."""
    from gradtts.config import cli_errors
    from gradtts.logs import setup_logging

    argv = list(sys.argv[1:] if argv is None else argv)
    cmd = argv.pop(0) if argv and argv[0] in ("page", "prefs") else "page"
    args = (_prefs_parser() if cmd == "prefs" else _page_parser()).parse_args(argv)
    setup_logging()
    with cli_errors(PROG):
        return _prefs(args) if cmd == "prefs" else _page(args)


def _page(a: argparse.Namespace) -> int:
    from gradtts.report.listening import build_page

    res = build_page(a.exp, a.out_dir, a.pairs, a.seeds, a.steps, a.fractions, a.arms, a.max_sentences, a.refs,
                     a.format, a.sample_rate, a.compression, a.ab_reference, a.ab_seed, a.ab_max_trials,
                     a.max_mb or None, a.title)
    mib = 2 ** 20
    print(f"listening page: {res['clips']} clips ({res['converted']} converted, {res['reused']} reused, "
          f"{res['removed']} unused removed), {res['trials']} A/B trials; {res['total_bytes'] / mib:.2f} MiB "
          f"(audio {res['audio_bytes'] / mib:.2f} MiB as {res['format']}, pages {res['page_bytes'] / 1024:.1f} KiB)"
          f" -> {Path(res['out_dir']) / 'index.html'}")
    return 0


def _prefs(a: argparse.Namespace) -> int:
    from gradtts.io import atomic_write_text, write_csv
    from gradtts.report.listening.prefs import preference_markdown, preference_table

    rows = preference_table(a.ratings, a.by, a.level)
    md = preference_markdown(rows, a.by, a.level)
    atomic_write_text(a.out_md, md)
    if a.csv:
        write_csv(a.csv, rows, ("arm_x", "arm_y", *a.by))
    print(md, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
