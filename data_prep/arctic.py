"""CMU ARCTIC -> Kaldi data dir.

    python -m data_prep.arctic CORPUS_ROOT DATA_DIR [--speakers slt bdl] [--max-utts-per-speaker N] [--seed S]

``CORPUS_ROOT`` is one voice folder ``cmu_us_<name>_arctic`` or a folder holding several. Each voice has
``etc/txt.done.data`` with lines ``( arctic_a0001 "Author of the danger trail." )`` and ``wav/<id>.wav``.
The speaker id is ``<name>`` (``slt``), utterance ids ``<name>-<id>`` (``slt-arctic_a0001``). Prompts
whose wav is missing are skipped and counted.
"""

from __future__ import annotations

import re
from pathlib import Path

from data_prep.common import Collector, PrepError, check_root, parser, run, sanitise_id

VOICE_RE = re.compile(r"^cmu_us_(.+?)_arctic")
LINE_RE = re.compile(r'^\(\s*(\S+)\s+"(.*)"\s*\)$')


def voice_dirs(root: Path) -> list[tuple[str, Path]]:
    """(speaker id, voice folder) for every ``etc/txt.done.data`` at the root or up to two levels below."""
    found = []
    for depth in ("", "*/", "*/*/"):
        for prompts in sorted(root.glob(f"{depth}etc/txt.done.data")):
            voice = prompts.parent.parent
            m = VOICE_RE.match(voice.name)
            found.append((sanitise_id(m.group(1) if m else voice.name), voice))
    names = [n for n, _ in found]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise PrepError(f"{root}: voice {dup[0]} found in several folders: "
                        + ", ".join(str(v) for n, v in found if n == dup[0]) + "; keep one copy")
    return found


def main(argv: list[str] | None = None) -> int:
    a = parser("arctic", __doc__).parse_args(argv)
    root = check_root(a.corpus_root, "cmu_us_<name>_arctic/ voice folders")
    voices = voice_dirs(root)
    if not voices:
        raise PrepError(f"{root}: no etc/txt.done.data found; pass a cmu_us_<name>_arctic folder or the folder "
                        "holding them")
    c = Collector("arctic", a)
    for spk, voice in voices:
        if not c.wants(spk):
            continue
        prompts = voice / "etc" / "txt.done.data"
        for lineno, line in enumerate(prompts.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            m = LINE_RE.match(line.strip())
            if not m:
                raise PrepError(f'{prompts}:{lineno}: cannot parse {line.strip()!r}; expected ( id "text" )')
            uid, text = m.groups()
            wav = voice / "wav" / f"{uid}.wav"
            if not wav.is_file():
                c.skip("prompts without wav", f"{prompts}:{lineno} ({uid})")
                continue
            c.add(f"{spk}-{uid}", spk, wav, text, origin=f"{prompts}:{lineno}")
    c.finish(a.data_dir)
    return 0


if __name__ == "__main__":
    run(main)
