"""LibriSpeech -> Kaldi data dir.

    python -m data_prep.librispeech CORPUS_ROOT DATA_DIR [--subsets train-clean-100 ...] [--speakers 19 26]
        [--max-utts-per-speaker N] [--seed S]

Layout: ``<root>/**/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac`` with ``<spk>-<chapter>.trans.txt`` whose
lines are ``UTT-ID TRANSCRIPT``. Speaker ids are LibriSpeech's (``19``); utterance ids stay as they are
(``19-198-0001``, already prefixed by the speaker). Transcript lines without audio and audio files without
a transcript line are skipped and counted in the summary.
"""

from __future__ import annotations

import re
from pathlib import Path

from data_prep.common import Collector, PrepError, check_root, parser, run

AUDIO_EXTS = (".flac", ".wav")
TRANS_RE = re.compile(r"^(\d+)-(\d+)\.trans\.txt$")


def subset_roots(root: Path, subsets: list[str] | None) -> list[Path]:
    """The folders to scan: the root, or its named sub-folders (error listing the ones present)."""
    if not subsets:
        return [root]
    out = []
    for s in subsets:
        if not (root / s).is_dir():
            present = sorted(p.name for p in root.iterdir() if p.is_dir())
            raise PrepError(f"{root / s}: subset {s} not found; sub-folders present: {', '.join(present) or 'none'}")
        out.append(root / s)
    return out


def collect(c: Collector, root: Path, subsets: list[str] | None) -> None:
    for base in subset_roots(root, subsets):
        for trans in sorted(base.rglob("*.trans.txt")):
            m = TRANS_RE.match(trans.name)
            if not m:
                c.skip("transcript files with an unexpected name", trans)
                continue
            spk = m.group(1)
            if not c.wants(spk):
                continue
            folder = trans.parent
            listed: set[str] = set()
            for lineno, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                utt, _, text = line.strip().partition(" ")
                if not utt.startswith(f"{spk}-"):
                    raise PrepError(f"{trans}:{lineno}: utterance id {utt} does not belong to speaker {spk}; "
                                    "is the transcript file corrupted?")
                listed.add(utt)
                audio = next((folder / f"{utt}{e}" for e in AUDIO_EXTS if (folder / f"{utt}{e}").is_file()), None)
                if audio is None:
                    c.skip("transcript lines without audio", f"{trans}:{lineno} ({utt})")
                    continue
                c.add(utt, spk, audio, text, origin=f"{trans}:{lineno}")
            for audio in sorted(p for p in folder.iterdir() if p.suffix in AUDIO_EXTS):
                if audio.stem not in listed:
                    c.skip("audio files without transcript", audio)


def main(argv: list[str] | None = None) -> int:
    a = parser("librispeech", __doc__, subsets=True).parse_args(argv)
    root = check_root(a.corpus_root, "LibriSpeech subsets such as train-clean-100/")
    c = Collector("librispeech", a)
    collect(c, root, a.subsets)
    c.finish(a.data_dir)
    return 0


if __name__ == "__main__":
    run(main)
