"""Stages 6 and 7 of the recipes over a finished fine-tuning grid: synthesis and scoring of every run.

    python -m gradtts.grid synth EXP_DIR [--steps 60 120] [--n-timesteps 10] [--temperature 1.5]
                                  [--length-scale 1.0] [--vocoder hifigan] [--device auto] [--dictionary PATH]
                                  [--jobs 1] [--overwrite]
    python -m gradtts.grid score EXP_DIR [--encoder ge2e] [--encoder-source DIR]
    python -m gradtts.grid collect EXP_DIR DEST   # the small files a report needs, e.g. to commit them

A grid run lives in ``EXP_DIR/finetune/<pair>/<loss tag>/p<frac>/seed<k>/`` (the layout stage 5 writes)
with the trainer's ``run.json`` (identity, arm, what it trained on); its few-shot set in
``EXP_DIR/fewshot/<pair>/``. Synthesis writes ``<run>/synth/step_XXXXXXX/`` (+ ``synth.json``), scoring
``<run>/score/step_XXXXXXX/summary.json`` with everything the report pairs and groups on.

Step 0 (the base model with the new speaker row, before any update) is the same model for every run
of a pair; the grid checks that the runs' ``step_0000000.pt`` weights agree and synthesises and scores
it once, under ``EXP_DIR/finetune/<pair>/step0/``. Both stages skip what exists with the same settings.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_RUN = re.compile(r"^p(?P<p>\d+(?:\.\d+)?)$")
STEP0 = "step0"


@dataclass(frozen=True)
class Run:
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
        return {"kind": "run", "pair": self.pair, "loss": str(rec.get("loss") or self.loss), "arm": self.arm,
                "arm_id": self.arm_id, "p": self.p, "seed": self.seed, "p_actual": rec.get("p_actual"),
                "n_train": rec.get("n_train"), "n_corrupt": rec.get("n_corrupt")}


def find_runs(exp: str | Path) -> list[Run]:
    """Every ``finetune/<pair>/<loss tag>/p<frac>/seed<k>`` directory holding checkpoints."""
    runs = []
    for ckpt in sorted(Path(exp, "finetune").glob("*/*/p*/seed*/ckpt")):
        run = ckpt.parent
        m = _RUN.match(run.parent.name)
        if not (m and run.name[4:].isdigit()):
            continue
        rec_file = run / "run.json"
        rec = json.loads(rec_file.read_text(encoding="utf-8")) if rec_file.is_file() else {}
        runs.append(Run(run.parent.parent.parent.name, run.parent.parent.name, float(m.group("p")),
                        int(run.name[4:]), run, rec))
    return runs  # two arms with one label (e.g. an lr sweep) are told apart by the report, on arm_id


def _weights_digest(path: Path) -> str:
    from gradtts.model.checkpoint import read_checkpoint
    from gradtts.train.identity import tensors_digest

    return tensors_digest(read_checkpoint(path)[0])


def step0_checkpoints(exp: Path, runs: list[Run]) -> dict[str, Path]:
    """One step-0 checkpoint per pair, after checking that every run's step-0 weights are equal."""
    by_pair: dict[str, list[Path]] = defaultdict(list)
    for r in runs:
        f = r.path / "ckpt" / "step_0000000.pt"
        if f.is_file():
            by_pair[r.pair].append(f)
    out = {}
    for pair, files in sorted(by_pair.items()):
        digests = {f: _weights_digest(f) for f in files}
        if len(set(digests.values())) > 1:
            groups = defaultdict(list)
            for f, d in digests.items():
                groups[d[:10]].append(str(f.relative_to(exp)))
            raise SystemExit(f"step-0 models of pair {pair} differ between runs (different base checkpoints or "
                             f"speaker set-ups?): {dict(groups)}")
        out[pair] = files[0]
    return out


def _synth(texts: Path, ckpts: list[str], steps: list[int] | None, out_dir: Path, opts: dict[str, Any]) -> None:
    from gradtts.synth import SynthConfig, run_synthesis

    run_synthesis(SynthConfig(texts=str(texts), text_format="kaldi", checkpoints=ckpts, steps=steps,
                              out_dir=str(out_dir), **opts))


def _synth_task(label: str, texts: Path, ckpts: list[str], out_dir: Path, opts: dict[str, Any]) -> None:
    print(f"{label} synthesis {out_dir.parent}", flush=True)
    _synth(texts, ckpts, None, out_dir, opts)


def _limit_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def synth_all(exp: Path, steps: list[int] | None, jobs: int = 1, **opts: Any) -> None:
    """Synthesise the test texts at ``steps`` for every run (step 0 once per pair); ``opts`` go to SynthConfig.

    ``jobs`` > 1 spreads the runs over that many processes with ``cores / jobs`` threads each (on a small
    CPU, one-thread processes side by side beat one process with every thread).
    """
    runs = find_runs(exp)
    if not runs:
        raise SystemExit(f"{exp}/finetune: no fine-tuning runs found (run stage 5 first)")
    later = [s for s in steps if s != 0] if steps else None
    tasks = []
    if steps is None or 0 in steps:
        for pair, ckpt in step0_checkpoints(exp, runs).items():
            tasks.append(("[step 0]", exp / "fewshot" / pair / "test_texts.txt", [str(ckpt)],
                          exp / "finetune" / pair / STEP0 / "synth"))
    if later != []:
        for i, run in enumerate(runs, 1):
            ckpts = [str(p) for p in sorted((run.path / "ckpt").glob("step_*.pt")) if p.name != "step_0000000.pt"]
            if later is not None:
                ckpts = [c for c in ckpts if int(Path(c).stem[5:]) in later]
            if ckpts:
                tasks.append((f"[{i}/{len(runs)}]", exp / "fewshot" / run.pair / "test_texts.txt", ckpts,
                              run.path / "synth"))
    if jobs <= 1:
        for task in tasks:
            _synth_task(*task, opts)
        return
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    threads = max(1, (os.cpu_count() or 1) // jobs)
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_limit_threads,
                             initargs=(threads,)) as pool:
        for fut in [pool.submit(_synth_task, *task, opts) for task in tasks]:
            fut.result()  # the first failure ends the stage, as in the sequential loop


def _synth_meta(gen: Path) -> dict[str, Any]:
    """What the synthesis record says ran: the vocoder and the sampler settings."""
    rec_file = gen / "synth.json"
    if not rec_file.is_file():
        return {"vocoder": None, "synth": None}
    st = json.loads(rec_file.read_text(encoding="utf-8"))["settings"]
    keys = ("n_timesteps", "temperature", "length_scale", "stoc", "batch_size", "seed", "dictionary")
    return {"vocoder": (st.get("vocoder") or {}).get("name"), "synth": {k: st.get(k) for k in keys}}


def score_all(exp: Path, encoder: str, encoder_source: str | None, device: str) -> None:
    from gradtts.scoring.cli import ScoreConfig, score

    runs = find_runs(exp)
    todo: list[tuple[str, Path, Path, dict[str, Any]]] = []
    for pair in sorted({r.pair for r in runs}):
        gen = exp / "finetune" / pair / STEP0 / "synth" / "step_0000000"
        if gen.is_dir():
            todo.append((pair, gen, gen.parent.parent / "score" / gen.name,
                         {"kind": "step0", "pair": pair, "step": 0, "seed": None, "loss": None, "arm": None,
                          "arm_id": None, "p": 0.0}))
    for run in runs:
        for gen in sorted((run.path / "synth").glob("step_*")):
            if gen.is_dir():
                todo.append((run.pair, gen, run.path / "score" / gen.name, {**run.meta, "step": int(gen.name[5:])}))
    if not todo:
        raise SystemExit(f"{exp}/finetune: nothing synthesised yet (run stage 6 first)")
    for i, (pair, gen, out, meta) in enumerate(todo, 1):
        print(f"[{i}/{len(todo)}] scoring {gen.relative_to(exp)}", flush=True)
        fs = exp / "fewshot" / pair
        score(ScoreConfig(gen_dir=str(gen), ref_target=str(fs / "ref_target"), ref_intruder=str(fs / "ref_intruder"),
                          out_dir=str(out), encoder=encoder, encoder_source=encoder_source, device=device,
                          meta={**meta, **_synth_meta(gen)}))


#: The small per-run files a report is made from (no checkpoints, no audio).
SMALL_FILES = ("run.json", "train_log.tsv", "ckpt/step_*.residuals.tsv", "synth/step_*/synth.json",
               "score/step_*/summary.json")


def collect_small(exp: Path, dest: Path) -> int:
    """Copy every run's (and step 0's) small result files into ``dest`` with the ``finetune/`` layout kept.

    ``gradtts-report root=DEST`` then regenerates the report without checkpoints or audio. Returns the
    number of files copied; files already there with the same bytes are left alone.
    """
    import shutil

    src_root = exp / "finetune"
    runs = find_runs(exp)
    if not runs:
        raise SystemExit(f"{src_root}: no fine-tuning runs found")
    dirs = [r.path for r in runs] + sorted(p for p in src_root.glob(f"*/{STEP0}") if p.is_dir())
    n = 0
    for d in dirs:
        for pattern in SMALL_FILES:
            for f in sorted(d.glob(pattern)):
                out = dest / f.relative_to(src_root)
                if out.is_file() and out.read_bytes() == f.read_bytes():
                    continue
                out.parent.mkdir(parents=True, exist_ok=True)
                tmp = out.with_name(out.name + ".tmp")
                shutil.copyfile(f, tmp)
                tmp.replace(out)
                n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("synth")
    s.add_argument("exp")
    s.add_argument("--steps", type=int, nargs="*", default=None, help="steps to synthesise (0: the step-0 model)")
    s.add_argument("--n-timesteps", type=int, default=10)
    s.add_argument("--temperature", type=float, default=1.5)
    s.add_argument("--length-scale", type=float, default=1.0)
    s.add_argument("--vocoder", default="hifigan", help="hifigan (default; never falls back) | griffinlim | auto")
    s.add_argument("--device", default="auto")
    s.add_argument("--batch-size", type=int, default=16)
    s.add_argument("--jobs", type=int, default=1, help="parallel synthesis processes (cores / jobs threads each)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--dictionary", default=None, help="CMUdict-format file (default: the one the checkpoints record)")
    s.add_argument("--overwrite", action="store_true", help="regenerate outputs made with other settings")
    c = sub.add_parser("score")
    c.add_argument("exp")
    c.add_argument("--encoder", default="ge2e")
    c.add_argument("--encoder-source", default=None)
    c.add_argument("--device", default="cpu")
    k = sub.add_parser("collect", help="copy the small result files (summaries, run records, residual tables)")
    k.add_argument("exp")
    k.add_argument("dest", help="directory that gets the finetune/ layout, e.g. egs/synthvox/results/study/finetune")
    a = p.parse_args(argv)
    from gradtts.config import cli_errors

    with cli_errors(f"gradtts.grid {a.cmd}"):
        _dispatch(a)
    return 0


def _dispatch(a: argparse.Namespace) -> None:
    if a.cmd == "collect":
        print(f"{collect_small(Path(a.exp), Path(a.dest))} file(s) copied to {a.dest}")
    elif a.cmd == "synth":
        synth_all(Path(a.exp), a.steps or None, jobs=a.jobs, n_timesteps=a.n_timesteps, temperature=a.temperature,
                  length_scale=a.length_scale, vocoder=a.vocoder, device=a.device, batch_size=a.batch_size,
                  seed=a.seed, dictionary=a.dictionary, overwrite=a.overwrite)
    else:
        score_all(Path(a.exp), a.encoder, a.encoder_source, a.device)


if __name__ == "__main__":
    sys.exit(main())
