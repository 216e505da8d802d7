"""Where the few-shot study keeps its files under an experiment directory ``EXP``: the one owner of that layout.

    EXP/fewshot/<T>_<C>/p0.30/[feats/]       a corrupted few-shot set (stage 4) and its features
    EXP/fewshot/<T>_<C>/ref_target/, ref_intruder/, test_texts.txt, fewshot.json
    EXP/fewshot/<T>_<C>/ref_test/            the target's real recordings of the test sentences (fidelity)
    EXP/finetune/<T>_<C>/<loss tag>/p0.30/seed<k>/   a fine-tuning run (stage 5): run.json, ckpt/, synth/, score/
    EXP/finetune/<T>_<C>/step0/              step 0 of the pair (stages 6-7 synthesise and score it once)
    EXP/finetune/.hydra/<job number>/        Hydra's records of the stage-5 multirun

Stage 4 (``data_prep.fewshot``), the stage-5 launch and stages 6-7 (``gradtts.grid``) all go through this
module, so a name is spelled once. It imports only the standard library: the bash template calls it as
``python -m gradtts.layout`` and ``data_prep`` imports it.

    python -m gradtts.layout pair T:C [T:C ...]          # the pair directory names, one a line
    python -m gradtts.layout fewshot EXP T:C             # the pair's few-shot directory
    python -m gradtts.layout sets EXP T:C P [P ...]      # its set directories for the fractions P
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Iterable, Iterator, Sequence

FEWSHOT = "fewshot"
FINETUNE = "finetune"
STEP0 = "step0"
FEATS = "feats"
SWEEP = ".hydra"
TEST_TEXTS = "test_texts.txt"
REF_TARGET = "ref_target"
REF_INTRUDER = "ref_intruder"
REF_TEST = "ref_test"
#: Beside a run's score summary: fidelity to the target's recordings (gradtts.scoring.cli.score_fidelity).
FIDELITY_FILE = "fidelity.json"
#: The synthesis record of a directory of generated wavs (settings, and each utterance's text).
SYNTH_RECORD = "synth.json"
#: Beside step 0's scores of a pair (step0/score/real/): quality and intelligibility of the target's real recordings.
REAL = "real"

_SET = re.compile(r"^p(?P<p>\d+(?:\.\d+)?)$")
SEED = "seed"
_SEED = re.compile(rf"^{SEED}(?P<seed>\d+)$")
# Speaker ids end up in directory names and in Hydra override values: letters, digits, '-', '.', '_' only.
_SPEAKER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class LayoutError(ValueError):
    """A name that cannot be placed in the layout (a malformed pair, a path Hydra overrides cannot carry)."""


# ---- names ------------------------------------------------------------------------------------------------
def parse_pair(spec: str) -> tuple[str, str]:
    """``"T:C"`` (target:intruder, as ``--pairs`` takes it) -> ``(T, C)``."""
    parts = spec.split(":")
    if len(parts) != 2 or not all(_SPEAKER.match(s) for s in parts):
        raise LayoutError(f"--pairs: {spec!r} is not TARGET:INTRUDER (two speaker ids of letters, digits, "
                          "'.', '-', '_' joined by ':'), e.g. sv024:sv025")
    if parts[0] == parts[1]:
        raise LayoutError(f"--pairs: {spec!r} names the same speaker twice; target and intruder must differ")
    return parts[0], parts[1]


def pair_name(target: str, intruder: str) -> str:
    """The directory name of a pair: ``<T>_<C>``."""
    return f"{target}_{intruder}"


def pair_name_of(spec: str) -> str:
    """The directory name of a ``T:C`` spec; a name already in directory form (no ':') is returned as is."""
    return spec if ":" not in spec else pair_name(*parse_pair(spec))


def set_name(p: float) -> str:
    """The few-shot set of corruption level ``p``: ``p0.30``."""
    return f"p{float(p):.2f}"


def parse_set_name(name: str) -> float | None:
    """``p0.30`` -> 0.3; None for a name that is not a set's."""
    m = _SET.match(name)
    return float(m.group("p")) if m else None


def is_set_name(name: str) -> bool:
    """True only for names :func:`set_name` writes (``p0.30``, not ``p0.3`` or ``p1``)."""
    p = parse_set_name(name)
    return p is not None and set_name(p) == name


def seed_name(seed: int) -> str:
    return f"{SEED}{int(seed)}"


def parse_seed_name(name: str) -> int | None:
    m = _SEED.match(name)
    return int(m.group("seed")) if m else None


# ---- paths ------------------------------------------------------------------------------------------------
def fewshot_dir(exp: str | Path, pair: str) -> Path:
    return Path(exp, FEWSHOT, pair)


def set_dir(exp: str | Path, pair: str, p: float) -> Path:
    return fewshot_dir(exp, pair) / set_name(p)


def test_texts(exp: str | Path, pair: str) -> Path:
    return fewshot_dir(exp, pair) / TEST_TEXTS


def ref_dirs(exp: str | Path, pair: str) -> tuple[Path, Path]:
    """The held-out reference sets of the target and of the intruder."""
    fs = fewshot_dir(exp, pair)
    return fs / REF_TARGET, fs / REF_INTRUDER


def ref_test_dir(exp: str | Path, pair: str) -> Path:
    """The target's real recordings of the test sentences (a data dir keyed by the test texts' utterance ids)."""
    return fewshot_dir(exp, pair) / REF_TEST


def finetune_root(exp: str | Path) -> Path:
    return Path(exp, FINETUNE)


def run_dir(exp: str | Path, pair: str, loss_tag: str, p: float, seed: int) -> Path:
    return finetune_root(exp) / pair / loss_tag / set_name(p) / seed_name(seed)


def step0_dir(exp: str | Path, pair: str) -> Path:
    return finetune_root(exp) / pair / STEP0


def real_score_dir(exp: str | Path, pair: str) -> Path:
    """Where stage 7 scores the pair's real recordings of the test sentences (the ceiling of quality and WER)."""
    return step0_dir(exp, pair) / "score" / REAL


def sweep_dir(exp: str | Path) -> Path:
    return finetune_root(exp) / SWEEP


_CHECKPOINT = re.compile(r"^step_\d+\.pt$")


def checkpoint_files(ckpt_dir: str | Path) -> list[Path]:
    """The ``step_N.pt`` checkpoints of a ``ckpt/`` directory, sorted; not their companions (``step_N.voice.pt``)."""
    return sorted(p for p in Path(ckpt_dir).glob("step_*.pt") if _CHECKPOINT.match(p.name))


@dataclass(frozen=True)
class RunKey:
    """What a run directory's path says: pair, loss tag, corruption level, seed."""

    pair: str
    loss_tag: str
    p: float
    seed: int


def parse_run_dir(path: str | Path) -> RunKey | None:
    """``.../<pair>/<loss tag>/p<p>/seed<k>`` -> its :class:`RunKey`; None when the path is not a run's."""
    path = Path(path)
    p, seed = parse_set_name(path.parent.name), parse_seed_name(path.name)
    if p is None or seed is None:
        return None
    return RunKey(path.parent.parent.parent.name, path.parent.parent.name, p, seed)


def run_dirs(exp: str | Path) -> Iterator[tuple[Path, RunKey]]:
    """Every run directory under ``EXP/finetune`` that holds a ``ckpt/`` directory, sorted by path."""
    for ckpt in sorted(finetune_root(exp).glob(f"*/*/p*/{SEED}*/ckpt")):
        key = parse_run_dir(ckpt.parent)
        if key is not None and ckpt.is_dir():
            yield ckpt.parent, key


# ---- the stage-5 sweep: Hydra values that resolve, job by job, to the paths above ----------------------------
PAIR_KEY = "study.pair"
PSET_KEY = "study.pset"
# Characters that Hydra's override grammar cannot carry inside our (quoted or interpolated) path values.
_UNSAFE = ("'", "\\", "$")
_PLAIN = re.compile(r"^[A-Za-z0-9_./@~+:-]+$")


#: ``run.json`` records that the score summaries carry on to the report when a run has them.
ARM_DETAILS = ("filter", "adaptive", "lora")


@dataclass(frozen=True)
class Run:
    """A fine-tuning run directory: its pair, loss tag, p and seed (from the path) and its ``run.json``."""

    pair: str
    loss: str
    p: float
    seed: int
    path: Path
    record: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def arm(self) -> str:
        return str(self.record.get("arm") or self.loss)

    @property
    def arm_id(self) -> str:
        return str(self.record.get("arm_id") or self.loss)

    @property
    def meta(self) -> dict:
        rec = self.record
        meta = {"kind": "run", "pair": self.pair, "loss": str(rec.get("loss") or self.loss), "arm": self.arm,
                "arm_id": self.arm_id, "p": self.p, "seed": self.seed, "p_actual": rec.get("p_actual"),
                "n_train": rec.get("n_train"), "n_corrupt": rec.get("n_corrupt")}
        # What the beyond-the-paper arms chose per run (clips kept, measured δ, adapter size), when they ran.
        return {**meta, **{k: rec[k] for k in ARM_DETAILS if rec.get(k)}}


def find_runs(exp: str | Path, pairs: Collection[str] | None = None) -> list[Run]:
    """Every run directory (:func:`gradtts.layout.run_dirs`) holding checkpoints, of ``pairs`` (dir names) if given."""
    runs = []
    for path, key in run_dirs(exp):
        if pairs is not None and key.pair not in pairs:
            continue
        rec_file = path / "run.json"
        rec = json.loads(rec_file.read_text(encoding="utf-8")) if rec_file.is_file() else {}
        runs.append(Run(key.pair, key.loss_tag, key.p, key.seed, path, rec))
    return runs  # two arms with one label (e.g. an lr sweep) are told apart by the report, on arm_id


def check_hydra_path(path: str | Path, what: str) -> str:
    """``path`` as a string, after checking Hydra overrides can carry it."""
    s = str(path)
    bad = [c for c in _UNSAFE if c in s]
    if bad:
        raise LayoutError(f"{what} {s!r} contains {' '.join(bad)}, which Hydra overrides cannot carry; "
                          "use a directory without them")
    return s


def hydra_path(path: str | Path, rest: str = "", what: str = "experiment directory") -> str:
    """``path[/rest]`` as an override value: as is when ``path`` is plain, else single-quoted (commas, spaces)."""
    base = check_hydra_path(path, what)
    value = f"{base}/{rest}" if rest else base
    return value if _PLAIN.match(base) else f"'{value}'"


def hydra_feats_dir(exp: str | Path) -> str:
    """``data.feats_dir`` of a stage-5 job: its pair's set's features (a ``${study.*}`` interpolation)."""
    return hydra_path(exp, f"{FEWSHOT}/${{{PAIR_KEY}}}/${{{PSET_KEY}}}/{FEATS}")


def hydra_run_dir(exp: str | Path) -> str:
    """``trainer.out_dir`` of a stage-5 job: :func:`run_dir` spelled with the job's interpolations.

    Always quoted: unquoted, Hydra's override grammar cannot parse the nested ``${arm_tag:...}`` (the
    trainer's resolver of the arm tag: the loss tag, plus the filter and LoRA when a run uses them).
    """
    e = check_hydra_path(exp, "experiment directory")
    tag = "${arm_tag:${loss},${filter},${adapt}}"
    return f"'{e}/{FINETUNE}/${{{PAIR_KEY}}}/{tag}/${{{PSET_KEY}}}/{SEED}${{trainer.seed}}'"


def hydra_choice(values: Iterable[str], quote: bool = False) -> str:
    """A sweep value list: ``a,b,c``; quoted items stay strings (an unquoted ``19_26`` would be the int 1926)."""
    return ",".join(f"'{v}'" if quote else str(v) for v in values)


# ---- command line (for the bash template) --------------------------------------------------------------------
def _main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gradtts.layout", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pair", help="the directory names of T:C pairs")
    a.add_argument("specs", nargs="+")
    f = sub.add_parser("fewshot", help="a pair's few-shot directory")
    f.add_argument("exp")
    f.add_argument("spec")
    s = sub.add_parser("sets", help="a pair's few-shot set directories")
    s.add_argument("exp")
    s.add_argument("spec")
    s.add_argument("fractions", type=float, nargs="+")
    args = p.parse_args(argv)
    try:
        if args.cmd == "pair":
            lines = [pair_name_of(x) for x in args.specs]
        elif args.cmd == "fewshot":
            lines = [str(fewshot_dir(args.exp, pair_name_of(args.spec)))]
        else:
            pair = pair_name_of(args.spec)
            lines = [str(set_dir(args.exp, pair, q)) for q in dict.fromkeys(args.fractions)]
    except LayoutError as exc:
        print(f"gradtts.layout: error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
