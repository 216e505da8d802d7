"""LibriTTS (or LibriTTS-R) -> Kaldi data dir.

    python -m data_prep.libritts CORPUS_ROOT DATA_DIR [--subsets train-clean-100 ...] [--speakers 19 26]
        [--max-utts-per-speaker N] [--seed S]

Layout: ``<root>/<subset>/<spk>/<chapter>/<spk>_<chapter>_<...>.wav`` with ``<same stem>.normalized.txt``
beside each wav. Audio is 24 kHz; the feature stage resamples. Utterance ids are the file stems
(``19_198_000000_000000``, already prefixed by the speaker). Wavs without a ``.normalized.txt`` are skipped
and counted.
"""

from __future__ import annotations

from pathlib import Path

from data_prep.common import Collector, PrepError, check_root, parser, read_text, run
from data_prep.librispeech import subset_roots


def collect(c: Collector, root: Path, subsets: list[str] | None) -> None:
    for base in subset_roots(root, subsets):
        for wav in sorted(base.rglob("*.wav")):
            if len(wav.relative_to(base).parts) < 3:
                c.skip("wavs outside <spk>/<chapter>/", wav)
                continue
            spk = wav.parent.parent.name
            if not c.wants(spk):
                continue
            if not wav.stem.startswith(f"{spk}_"):
                raise PrepError(f"{wav}: file name does not start with its speaker folder's id {spk}_; "
                                "expected <root>/<subset>/<spk>/<chapter>/<spk>_<chapter>_....wav")
            txt = wav.with_name(f"{wav.stem}.normalized.txt")
            if not txt.is_file():
                c.skip("wavs without .normalized.txt", wav)
                continue
            # "<spk>-<rest>": with "_" after the speaker, ids of speakers 19 and 198 would sort against their speakers.
            c.add(f"{spk}-{wav.stem[len(spk) + 1:]}", spk, wav, read_text(txt), origin=str(txt))


def main(argv: list[str] | None = None) -> int:
    a = parser("libritts", __doc__, subsets=True).parse_args(argv)
    root = check_root(a.corpus_root, "LibriTTS subsets such as train-clean-100/")
    c = Collector("libritts", a)
    collect(c, root, a.subsets)
    c.finish(a.data_dir)
    return 0


if __name__ == "__main__":
    run(main)
