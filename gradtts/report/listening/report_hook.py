"""The listening page and the A/B preferences inside ``gradtts-report`` (``listening.*`` and ``ratings=[...]``).

    gradtts-report root=EXP/finetune out_dir=EXP/report listening.exp=EXP [listening.max_sentences=3 ...]
                   [ratings=[ratings_L1.csv,ratings_L2.csv]] [ratings_by=[p]]

With ``listening.exp`` the report writes the page of that experiment to ``out_dir/<listening.out_subdir>/``
(:func:`gradtts.report.listening.build_page`, the same options and defaults as
``python -m gradtts.report.listening``) and its markdown links it. With ``ratings`` (CSVs downloaded from
``ab.html``) the markdown gets the preference table and ``out_dir/preferences.csv`` holds it. Both are
checked before the report writes anything, so a bad path stops the report with one line naming it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from gradtts.report.listening.study import ListeningError

PREFERENCES_CSV = "preferences.csv"


@dataclass
class ListeningOptions:
    """``listening.*`` of ``gradtts-report``: which study's page to write and what it shows (None: the default
    of ``python -m gradtts.report.listening``, given in brackets there)."""

    exp: Optional[str] = None            # experiment directory whose audio the page shows (None: no page)
    out_subdir: str = "listening"        # the page's folder inside out_dir
    pairs: Optional[list[str]] = None    # T:C or T_C (None: every pair with runs)
    seeds: Optional[list[int]] = None    # None: the lowest seed
    steps: Optional[list[int]] = None    # None: every step all selected runs synthesised
    fractions: Optional[list[float]] = None  # corruption levels p (None: all)
    arms: Optional[list[str]] = None     # arm labels or ids (None: all)
    max_sentences: int = 3               # test sentences per pair
    refs: int = 2                        # reference clips per speaker
    format: str = "ogg"                  # ogg | mp3 | flac | wav
    sample_rate: int = 22050             # clip sample rate in Hz
    compression: float = 0.6             # lossy formats: 0 (best quality) .. 1 (smallest)
    ab_reference: Optional[str] = None   # arm the others are compared with (None: the first l2 arm)
    ab_seed: int = 0                     # seed of the A/B sides, order and sample
    ab_max_trials: Optional[int] = None  # at most this many A/B trials (None: all)
    max_mb: Optional[float] = 10.0       # size budget of the page in MiB (None or 0: none)
    title: str = "Listening page"


@dataclass
class ListeningReport:
    """What the report hook did: the page's build result and the preference rows, ready to be rendered."""

    page: Optional[dict] = None          # build_page's result; None without listening.exp
    prefs: Optional[list[dict]] = None   # preference_table's rows; None without ratings
    by: tuple[str, ...] = ()
    level: float = 0.95
    files: list[str] = field(default_factory=list)  # files written to out_dir (to copy beside RESULTS.md)

    def markdown(self, depth: int, base: str | Path) -> str:
        """The listening sections at heading level ``depth`` + 1, links relative to the folder ``base``;
        empty when there is neither a page nor ratings."""
        from gradtts.report.listening.prefs import preference_markdown

        h = "#" * (depth + 1)
        md = []
        if self.page is not None:
            link = Path(os.path.relpath(Path(self.page["out_dir"]).resolve(), Path(base).resolve())).as_posix()
            n = self.page["trials"]
            ab = (f"a blind A/B test of {n} trials (each arm against {self.page['reference']} on the same sentence, "
                  "pair, seed, p and step; labels hidden, order shuffled per listener), whose ratings download as a "
                  "CSV that `gradtts-report ... ratings=[...]` turns into a preference table" if n else
                  "no A/B trials (a single arm, or no partner run of the reference arm)")
            md += [f"\n{h} Listening page\n\n",
                   f"- [index.html]({link}/index.html): the target's and the intruder's reference clips, the step-0 "
                   "model's sentences, and the test sentences of every arm × p × step side by side with each run's "
                   "S_T, S_C, R and L.\n",
                   f"- [ab.html]({link}/ab.html): {ab}.\n",
                   f"- {self.page['clips']} clips ({self.page['format']}), {self.page['total_bytes'] / 2 ** 20:.2f} "
                   "MiB in all; open index.html from disk (no server needed).\n"]
        if self.prefs is not None:
            md += [f"\n{h} Listening test: preferences\n\n",
                   f"A/B ratings from `ab.html` (`{PREFERENCES_CSV}`); each arm against the reference on the same "
                   "sentence, pair, seed, p and step.\n\n", preference_markdown(self.prefs, self.by, self.level)]
        return "".join(md)


def listening_report(opts: ListeningOptions, ratings: Sequence[str], out_dir: str | Path, by: Sequence[str] = (),
                     level: float = 0.95) -> ListeningReport:
    """Write the page (``opts.exp`` set) and ``preferences.csv`` (``ratings`` given) into ``out_dir``.

    Raises :class:`ListeningError` naming the path and what to do for a missing experiment directory, a
    missing or unreadable ratings CSV, or anything :func:`build_page` refuses.
    """
    from gradtts.io import write_csv
    from gradtts.report.listening import build_page
    from gradtts.report.listening.prefs import preference_table

    res = ListeningReport(by=tuple(by), level=level)
    # The ratings first: reading them is quick, so a bad file stops the report before the page is built.
    if ratings:
        res.prefs = preference_table([_ratings_path(r) for r in ratings], by, level)
    if opts.exp is not None:
        exp = Path(opts.exp)
        if not exp.is_dir():
            raise ListeningError(f"listening.exp={exp}: experiment directory not found; give the recipe's --exp "
                                 "folder (the one holding fewshot/ and finetune/), or leave listening.exp unset "
                                 "for no listening page")
        sub = Path(opts.out_subdir)
        if sub.is_absolute() or ".." in sub.parts or not sub.parts:
            raise ListeningError(f"listening.out_subdir={opts.out_subdir!r}: a folder name inside out_dir, such as "
                                 "listening")
        res.page = build_page(exp, Path(out_dir) / sub, opts.pairs, opts.seeds, opts.steps, opts.fractions,
                              opts.arms, opts.max_sentences, opts.refs, opts.format, opts.sample_rate,
                              opts.compression, opts.ab_reference, opts.ab_seed, opts.ab_max_trials,
                              opts.max_mb or None, opts.title)
    if res.prefs is not None:
        write_csv(Path(out_dir) / PREFERENCES_CSV, res.prefs, ("arm_x", "arm_y", *by))
        res.files.append(PREFERENCES_CSV)
    return res


def _ratings_path(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ListeningError(f"ratings: {path}: file not found; give the CSV files downloaded from ab.html, e.g. "
                             "ratings=[ratings_L1.csv,ratings_L2.csv]")
    return path
