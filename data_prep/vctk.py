"""VCTK -> Kaldi data dir.

    python -m data_prep.vctk CORPUS_ROOT DATA_DIR [--mic mic1|mic2] [--speakers p225 p226]
        [--max-utts-per-speaker N] [--seed S]

Layouts: ``txt/<spk>/<spk>_<nnn>.txt`` plus either ``wav48/<spk>/<spk>_<nnn>.wav`` (release 0.80) or
``wav48_silence_trimmed/<spk>/<spk>_<nnn>_<mic>.flac`` (0.92; ``--mic`` picks the microphone, default
mic1). When both audio folders exist, ``wav48_silence_trimmed`` is used. Utterance ids are
``<spk>_<nnn>``. Transcripts without audio, and audio without transcript (p315 in some releases), are
skipped and counted.
"""

from __future__ import annotations

from pathlib import Path

from data_prep.common import Collector, PrepError, check_root, parser, read_text, run

AUDIO_DIRS = ("wav48_silence_trimmed", "wav48")
AUDIO_EXTS = (".flac", ".wav")


def find_audio(folder: Path, utt: str, mic: str) -> Path | None:
    for name in (f"{utt}_{mic}", utt):
        for ext in AUDIO_EXTS:
            if (folder / f"{name}{ext}").is_file():
                return folder / f"{name}{ext}"
    return None


def main(argv: list[str] | None = None) -> int:
    p = parser("vctk", __doc__)
    p.add_argument("--mic", choices=("mic1", "mic2"), default="mic1",
                   help="microphone of the 0.92 release (wav48_silence_trimmed); default mic1")
    a = p.parse_args(argv)
    root = check_root(a.corpus_root, "txt/ and wav48/ or wav48_silence_trimmed/")
    txt_root = root / "txt"
    audio_root = next((root / n for n in AUDIO_DIRS if (root / n).is_dir()), None)
    if not txt_root.is_dir() or audio_root is None:
        raise PrepError(f"{root}: a VCTK root holds txt/ and wav48/ (or wav48_silence_trimmed/); "
                        f"found {', '.join(sorted(q.name for q in root.iterdir())) or 'nothing'}")
    c = Collector("vctk", a)
    other_mic = "mic2" if a.mic == "mic1" else "mic1"
    speakers = sorted({q.name for q in txt_root.iterdir() if q.is_dir()}
                      | {q.name for q in audio_root.iterdir() if q.is_dir()})
    for spk in speakers:
        if not c.wants(spk):
            continue
        texts = {t.stem: t for t in sorted((txt_root / spk).glob("*.txt"))} if (txt_root / spk).is_dir() else {}
        audio_dir = audio_root / spk
        for utt, txt in texts.items():
            audio = find_audio(audio_dir, utt, a.mic)
            if audio is None:
                c.skip("transcripts without audio", txt)
                continue
            c.add(utt, spk, audio, read_text(txt), origin=str(txt))
        if audio_dir.is_dir():
            for audio in sorted(q for q in audio_dir.iterdir() if q.suffix in AUDIO_EXTS):
                stem = audio.stem
                if stem.endswith(f"_{other_mic}"):
                    continue
                stem = stem.removesuffix(f"_{a.mic}")
                if stem not in texts:
                    c.skip("audio files without transcript", audio)
    c.finish(a.data_dir)
    return 0


if __name__ == "__main__":
    run(main)
