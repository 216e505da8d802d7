"""LJ Speech -> Kaldi data dir (one speaker, ``ljs``).

    python -m data_prep.ljspeech CORPUS_ROOT DATA_DIR [--max-utts-per-speaker N] [--seed S]

Layout: ``<root>/metadata.csv`` with lines ``id|raw transcript|normalized transcript`` (no quoting) and
``<root>/wavs/<id>.wav``. The normalized transcript is used (the raw one when a line has only two fields).
Utterance ids are ``ljs-<id>`` (``ljs-LJ001-0001``). Lines whose wav is missing are skipped and counted.
"""

from __future__ import annotations

import csv

from data_prep.common import Collector, PrepError, check_root, parser, run

SPEAKER = "ljs"


def main(argv: list[str] | None = None) -> int:
    a = parser("ljspeech", __doc__).parse_args(argv)
    root = check_root(a.corpus_root, "metadata.csv and wavs/")
    meta = root / "metadata.csv"
    if not meta.is_file():
        raise PrepError(f"{meta}: not found; the LJ Speech root holds metadata.csv and wavs/")
    c = Collector("ljspeech", a)
    c.wants(SPEAKER)
    with open(meta, encoding="utf-8", newline="") as f:
        for lineno, row in enumerate(csv.reader(f, delimiter="|", quoting=csv.QUOTE_NONE), 1):
            if not row or not "".join(row).strip():
                continue
            if len(row) not in (2, 3):
                raise PrepError(f"{meta}:{lineno}: expected 'id|raw|normalized', got {len(row)} field(s)")
            uid = row[0].strip()
            text = row[2] if len(row) == 3 and row[2].strip() else row[1]
            wav = root / "wavs" / f"{uid}.wav"
            if not wav.is_file():
                c.skip("metadata lines without wav", f"{meta}:{lineno} ({uid})")
                continue
            c.add(f"{SPEAKER}-{uid}", SPEAKER, wav, text, origin=f"{meta}:{lineno}")
    c.finish(a.data_dir)
    return 0


if __name__ == "__main__":
    run(main)
