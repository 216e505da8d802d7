"""A static listening page for a study: reference clips, generated clips side by side, a blind A/B test.

    python -m gradtts.report.listening EXP OUT_DIR [--pairs T_C ...] [--seeds 0] [--steps 120]
           [--fractions 0 0.3] [--arms l2 huber] [--max-sentences 3] [--refs 2] [--format ogg]
           [--sample-rate 22050] [--compression 0.6] [--ab-reference l2] [--ab-seed 0] [--ab-max-trials N]
           [--max-mb 10] [--title TEXT]
    python -m gradtts.report.listening prefs OUT.md ratings.csv [ratings.csv ...] [--by p] [--csv OUT.csv]

``OUT_DIR`` gets ``index.html`` (per pair the target's and the intruder's reference clips and the step-0
model's sentences; then per pair × seed × step a table of the test sentences by arm × p, with each run's
S_T, S_C, R, L), ``ab.html`` (blind A/B trials: each arm against the reference arm on the same sentence,
pair, seed, p and step; sides and order drawn with a fixed seed, order shuffled per listener; choices
downloadable as a CSV) and ``audio/`` (compact copies of the clips, named by content). No server and no
network: open ``index.html`` from disk. A re-run converts only new clips, rewrites only changed pages and
removes copies no longer used. ``prefs`` turns downloaded ratings into a preference table
(:mod:`gradtts.report.listening.prefs`).

The A/B page holds the true arm of each side in its script (the CSV must name them): blind to a listener
who listens, not to one who reads the page's source.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from gradtts.report.listening.clips import AUDIO_DIR, convert, remove_unused, resolve_format
from gradtts.report.listening.page import CSV_COLUMNS, ab_trials, page_id, render_ab, render_index
from gradtts.report.listening.prefs import preference_markdown, preference_table, read_ratings, wilson_interval
from gradtts.report.listening.study import ListeningError, Study, gather

__all__ = ["build_page", "preference_table", "preference_markdown", "read_ratings", "wilson_interval", "gather",
           "ListeningError", "Study", "CSV_COLUMNS"]

log = logging.getLogger(__name__)

PAGES = ("index.html", "ab.html")


def _write_if_changed(path: Path, text: str) -> bool:
    from gradtts.io import atomic_write_bytes

    data = text.encode("utf-8")
    if path.is_file() and path.read_bytes() == data:
        return False
    atomic_write_bytes(path, data)
    return True


def build_page(exp: str | Path, out_dir: str | Path, pairs: Sequence[str] | None = None,
               seeds: Sequence[int] | None = None, steps: Sequence[int] | None = None,
               fractions: Sequence[float] | None = None, arms: Sequence[str] | None = None,
               max_sentences: int = 3, n_refs: int = 2, audio_format: str = "ogg", sample_rate: int = 22050,
               compression: float = 0.6, ab_reference: str | None = None, ab_seed: int = 0,
               ab_max_trials: int | None = None, max_mb: float | None = 10.0,
               title: str = "Listening page") -> dict:
    """Write the listening page of the study in ``exp`` to ``out_dir``; returns what it did and the sizes.

    The selection arguments are those of :func:`gradtts.report.listening.study.gather`. ``max_mb``: the
    page (pages + clips) must fit this many MiB, else :class:`ListeningError` before the pages are written
    (None: no limit). Returned keys: ``clips, converted, reused, removed, trials, reference`` (the A/B
    test's reference arm, None with one arm), ``page_id, format, audio_bytes, page_bytes, total_bytes,
    pages_written, out_dir``.
    """
    fmt = resolve_format(audio_format, sample_rate, compression)
    study = gather(exp, pairs, seeds, steps, fractions, arms, max_sentences, n_refs, ab_reference)
    out = Path(out_dir)
    audio = out / AUDIO_DIR
    audio.mkdir(parents=True, exist_ok=True)
    sources = []
    for m in study.pairs:
        sources += [c.src for c in m.refs_target + m.refs_intruder]
        sources += list((m.step0 or {}).values())
        sources += [w for c in m.columns for w in c.clips.values()]
    names: dict[Path, str] = {}
    converted = 0
    for src in dict.fromkeys(sources):
        names[src], new = convert(src, audio, fmt)
        converted += new
    used = set(names.values())
    audio_bytes = sum((audio / n).stat().st_size for n in used)
    trials = ab_trials(study, ab_seed, ab_max_trials)
    pid = page_id(trials, names)
    pages = {"index.html": render_index(study, names, fmt, title, len(trials)),
             "ab.html": render_ab(trials, names, pid, title, study.reference)}
    page_bytes = sum(len(t.encode("utf-8")) for t in pages.values())
    total = audio_bytes + page_bytes
    if max_mb is not None and total > max_mb * 2 ** 20:
        raise ListeningError(f"{out}: the page would take {total / 2 ** 20:.2f} MiB, over --max-mb {max_mb:g}; "
                             "show fewer sentences (--max-sentences), pairs, steps or arms, lower --sample-rate or "
                             "raise --compression, or raise --max-mb (pages not written)")
    written = [name for name, text in pages.items() if _write_if_changed(out / name, text)]
    removed = remove_unused(audio, used)
    return {"clips": len(used), "converted": converted, "reused": len(used) - converted, "removed": removed,
            "trials": len(trials), "reference": study.reference, "page_id": pid, "format": fmt.name,
            "audio_bytes": audio_bytes, "page_bytes": page_bytes, "total_bytes": total, "pages_written": written,
            "out_dir": str(out)}
