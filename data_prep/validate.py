"""Check a Kaldi data dir and report every problem at once.

    python -m data_prep.validate DATA_DIR [--no-audio]

Checks the tables (ids, sorting, speakers, transcripts, UTF-8), that the dir holds utterances and that
every audio file exists, opens, is not cut short and lasts a plausible time. The audio check reads
headers only (and the last frames of compressed files), so it is fast even on a large corpus.
Exit status 0 when valid, 1 otherwise (every problem is listed).
"""

from __future__ import annotations

import argparse
import sys

from gradtts.data.datadir import read_datadir, validate_datadir


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data_dir")
    p.add_argument("--no-audio", action="store_true",
                   help="do not check the audio files (existence, headers, truncation)")
    a = p.parse_args(argv)
    problems = validate_datadir(a.data_dir, check_audio=not a.no_audio)
    if problems:
        print(f"{a.data_dir}: {len(problems)} problem(s):")
        for msg in problems:
            print(f"  {msg}")
        return 1
    d = read_datadir(a.data_dir)
    print(f"{a.data_dir}: ok, {len(d.utts)} utterances, {len(d.speakers)} speakers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
