"""What a listening page shows, found through the study layout: reference clips, generated clips, texts, scores.

Everything is located with :mod:`gradtts.layout` and :func:`gradtts.layout.find_runs`, and the scores are the
report's own rows (:func:`gradtts.report.cli.collect`, R and L from :func:`gradtts.report.stats.resilience_rows`),
so the page shows the same labels and numbers as ``results.md``. Every problem is found before anything is
written, and each error names the missing directory or file and the stage that makes it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from gradtts import layout
from gradtts.errors import UserError

SYNTH = "synth"
SCORE = "score"
SUMMARY = "summary.json"


class ListeningError(UserError, ValueError):
    """The experiment directory lacks what the page needs; the message names it and the stage that makes it."""


def step_dir_name(step: int) -> str:
    """``step_0000120``: the directory ``gradtts.synth`` writes a step's wavs to (and scoring its summary)."""
    # Spelled here rather than imported from gradtts.synth, whose import pulls in torch.
    return f"step_{int(step):07d}"


@dataclass(frozen=True)
class Clip:
    """One source recording or generated utterance to put on the page."""

    src: Path
    utt: str
    text: str


@dataclass
class Column:
    """One run at one step: its clips of the page's sentences and its scores."""

    pair: str
    arm: str          # the report's label (unique per arm_id)
    arm_id: str
    p: float
    seed: int
    step: int
    scores: dict[str, float]
    gen: Path                                              # the run's synth/step_N directory
    clips: dict[str, Path] = field(default_factory=dict)  # utt -> generated wav
    clip_scores: dict[str, dict[str, float]] = field(default_factory=dict)  # utt -> OVRL, WER where scored


@dataclass
class PairMaterial:
    """Everything the page shows of one (target, intruder) pair."""

    pair: str
    target: str
    intruder: str
    refs_target: list[Clip]
    refs_intruder: list[Clip]
    sentences: list[tuple[str, str]]             # (utt, text) of the test sentences shown
    step0: dict[str, Path] | None                 # utt -> the base model's wav, when step 0 was synthesised
    columns: list[Column]
    step0_scores: dict[str, dict[str, float]] = field(default_factory=dict)  # utt -> OVRL, WER where scored


@dataclass
class Study:
    """The page's material: pairs in order, the arms in the report's order (reference first)."""

    exp: Path
    pairs: list[PairMaterial]
    arms: list[str]
    reference: str | None


def read_text_table(path: Path) -> list[tuple[str, str]]:
    """``[(utt, sentence)]`` of a Kaldi ``text`` table such as ``test_texts.txt``, in file order."""
    if not path.is_file():
        raise ListeningError(f"{path}: test sentences not found; build the pair's few-shot sets first "
                             "(recipe stage 4, python -m data_prep.fewshot)")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        utt, _, text = line.strip().partition(" ")
        if not utt:
            continue
        if not text.strip():
            raise ListeningError(f"{path}:{n}: utterance {utt!r} has no sentence")
        out.append((utt, " ".join(text.split())))
    return out


def reference_clips(data_dir: Path, n: int) -> list[Clip]:
    """The first ``n`` utterances (C order) of a Kaldi data dir, each checked to be a readable file."""
    from gradtts.data.datadir import read_datadir

    if not (data_dir / "wav.scp").is_file():
        raise ListeningError(f"{data_dir}/wav.scp: reference set not found; build the pair's few-shot sets "
                             "first (recipe stage 4, python -m data_prep.fewshot)")
    d = read_datadir(data_dir)
    clips = []
    for utt in d.utts[:n]:
        wav = d.wavs[utt]
        if wav.rstrip().endswith("|"):
            raise ListeningError(f"{data_dir}/wav.scp: {utt} is a command ({wav!r}); the page needs audio files")
        if not Path(wav).is_file():
            raise ListeningError(f"{data_dir}/wav.scp: audio file of {utt} not found: {wav}")
        clips.append(Clip(Path(wav), utt, d.texts.get(utt, "")))
    return clips


def _speakers(exp: Path, pair: str) -> tuple[str, str]:
    # fewshot.json names them; a pair name cannot be split safely ('_' may occur inside a speaker id).
    rec = layout.fewshot_dir(exp, pair) / "fewshot.json"
    if rec.is_file():
        d = json.loads(rec.read_text(encoding="utf-8"))
        if d.get("target") and d.get("intruder"):
            return str(d["target"]), str(d["intruder"])
    return f"{pair} target", f"{pair} intruder"


def _score_rows(exp: Path) -> dict[tuple, dict]:
    """The report's fine-tuning rows (labels made unique, R and L added), keyed by checkpoint."""
    from gradtts.report.cli import collect
    from gradtts.report.stats import resilience_rows

    root = layout.finetune_root(exp)
    try:
        rows = collect(root)
    except FileNotFoundError as exc:
        raise ListeningError(f"{exc}; score the runs first (python -m gradtts.grid score {exp})") from exc
    runs = resilience_rows(r for r in rows if r["kind"] == "run")
    return {(r["arm_id"], r["pair"], round(r["p"], 6), r["seed"], r["step"]): r for r in runs}


#: Per-clip scores the page shows: name -> (file beside the summary, key of its rows).
CLIP_SCORES = {"OVRL": ("quality.json", "ovrl"), "WER": ("intelligibility.json", "wer")}


def clip_scores(score_dir: Path) -> dict[str, dict[str, float]]:
    """``utt -> {OVRL, WER}`` from the per-utterance rows of stage 7's files in ``score_dir`` (those it has)."""
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for name, (file, key) in CLIP_SCORES.items():
        f = score_dir / file
        if not f.is_file():
            continue
        try:
            rows = json.loads(f.read_text(encoding="utf-8"))["rows"]
            for r in rows:
                if r.get(key) is not None:
                    out[str(r["utt"])][name] = float(r[key])
        except (ValueError, KeyError, TypeError) as exc:
            raise ListeningError(f"{f}: corrupt ({exc}); delete it and re-run the scoring "
                                 "(python -m gradtts.grid score)") from exc
    return dict(out)


def _wanted(values: Sequence | None, have: set, what: str, option: str) -> list:
    if values is None:
        return sorted(have)
    missing = [v for v in values if v not in have]
    if missing:
        raise ListeningError(f"{option}: no run has {what} {', '.join(map(str, missing))} (found: "
                             f"{', '.join(map(str, sorted(have))) or 'none'})")
    return list(dict.fromkeys(values))


def gather(exp: str | Path, pairs: Sequence[str] | None = None, seeds: Sequence[int] | None = None,
           steps: Sequence[int] | None = None, fractions: Sequence[float] | None = None,
           arms: Sequence[str] | None = None, max_sentences: int = 3, n_refs: int = 2,
           reference: str | None = None) -> Study:
    """Find the page's clips and scores under ``exp``; raises :class:`ListeningError` naming what is missing.

    ``pairs``: ``T:C`` or ``T_C`` (default every pair with runs); ``seeds``: default the lowest seed;
    ``steps``: default every step that all selected runs synthesised; ``fractions``, ``arms`` (labels or
    arm ids): default all. ``reference``: the arm the A/B trials compare against (label or arm id; default
    the report's reference, the first l2 arm).
    """
    from gradtts.report.stats import arm_order

    exp = Path(exp)
    if max_sentences < 1 or n_refs < 0:
        raise ListeningError(f"--max-sentences {max_sentences} / --refs {n_refs}: at least 1 sentence and 0 "
                             "or more reference clips")
    names = None if pairs is None else [layout.pair_name_of(p) for p in pairs]
    runs = layout.find_runs(exp, names)
    if not runs:
        raise ListeningError(f"{layout.finetune_root(exp)}: no fine-tuning runs (with ckpt/)"
                             f"{' of pairs ' + ', '.join(names) if names else ''}; train them first "
                             "(python -m gradtts.grid train)")
    found_pairs = {r.pair for r in runs}
    if names is not None:
        _wanted(names, found_pairs, "pair", "--pairs")
    seeds = _wanted(seeds, {r.seed for r in runs}, "seed", "--seeds") if seeds is not None \
        else [min(r.seed for r in runs)]
    runs = [r for r in runs if r.seed in seeds]
    if fractions is not None:
        keys = {round(float(q), 6) for q in _wanted(fractions, {r.p for r in runs}, "fraction p", "--fractions")}
        runs = [r for r in runs if round(r.p, 6) in keys]

    scores = _score_rows(exp)
    label = {k[0]: row["arm"] for k, row in scores.items()}
    if arms is not None:
        known = {label.get(r.arm_id, r.arm) for r in runs} | {r.arm_id for r in runs}
        _wanted(arms, known, "arm", "--arms")
        runs = [r for r in runs if r.arm_id in arms or label.get(r.arm_id, r.arm) in arms]

    synth_steps = {}
    for r in runs:
        d = r.path / SYNTH
        synth_steps[r] = {int(s.name[5:]) for s in d.glob("step_*") if s.is_dir() and s.name[5:].isdigit()}
    if steps is None:
        common = set.intersection(*synth_steps.values()) if synth_steps else set()
        if not common:
            bare = [str(r.path) for r, s in synth_steps.items() if not s]
            raise ListeningError("no step is synthesised by every selected run"
                                 + (f" ({bare[0]}/{SYNTH} is missing or empty)" if bare else "")
                                 + f"; synthesise them (python -m gradtts.grid synth {exp}) or pass --steps")
        steps = sorted(common)
    steps = list(dict.fromkeys(int(s) for s in steps))

    columns: dict[str, list[Column]] = defaultdict(list)
    for r in runs:
        for step in steps:
            gen = r.path / SYNTH / step_dir_name(step)
            if not gen.is_dir():
                raise ListeningError(f"{gen}: no synthesis of step {step}; run python -m gradtts.grid synth {exp} "
                                     f"--steps {step} (or leave step {step} out of --steps)")
            row = scores.get((r.arm_id, r.pair, round(r.p, 6), r.seed, step))
            if row is None:
                raise ListeningError(f"{r.path / SCORE / step_dir_name(step) / SUMMARY}: no usable score summary; "
                                     f"run python -m gradtts.grid score {exp}")
            columns[r.pair].append(Column(r.pair, row["arm"], r.arm_id, r.p, r.seed, step,
                                          {k: float(row[k]) for k in ("S_T", "S_C", "R", "L")}, gen))

    all_rows = [scores[k] for k in scores if k[0] in {c.arm_id for cs in columns.values() for c in cs}]
    try:
        order = arm_order(all_rows, reference)
    except ValueError as exc:
        raise ListeningError(f"--ab-reference: {exc}") from exc
    rank = {arm_id: i for i, (arm_id, _) in enumerate(order)}

    materials = []
    for pair in sorted(columns):
        sentences = read_text_table(layout.test_texts(exp, pair))[:max_sentences]
        if not sentences:
            raise ListeningError(f"{layout.test_texts(exp, pair)}: no test sentence")
        cols = sorted(columns[pair], key=lambda c: (c.seed, c.step, rank[c.arm_id], c.p))
        for c in cols:
            c.clips = {utt: _generated(c.gen, utt, exp, c.step) for utt, _ in sentences}
            c.clip_scores = clip_scores(c.gen.parent.parent / SCORE / c.gen.name)
        ref_t, ref_c = layout.ref_dirs(exp, pair)
        s0 = layout.step0_dir(exp, pair) / SYNTH / step_dir_name(0)
        step0 = {utt: _generated(s0, utt, exp, 0) for utt, _ in sentences} if s0.is_dir() else None
        target, intruder = _speakers(exp, pair)
        s0_scores = clip_scores(layout.step0_dir(exp, pair) / SCORE / step_dir_name(0)) if step0 else {}
        materials.append(PairMaterial(pair, target, intruder, reference_clips(ref_t, n_refs),
                                      reference_clips(ref_c, n_refs), sentences, step0, cols, s0_scores))
    present = {c.arm_id for m in materials for c in m.columns}
    arms_in_order = [label for arm_id, label in order if arm_id in present]
    return Study(exp, materials, arms_in_order, order[0][1] if len(order) > 1 else None)


def _generated(gen: Path, utt: str, exp: Path, step: int) -> Path:
    wav = gen / f"{utt}.wav"
    if not wav.is_file():
        raise ListeningError(f"{wav}: missing generated wav of test sentence {utt}; re-run the synthesis "
                             f"(python -m gradtts.grid synth {exp} --steps {step}), which fills gaps, or lower "
                             "--max-sentences")
    return wav
