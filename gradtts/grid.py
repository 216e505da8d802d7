"""Stages 6 and 7 of the recipes over a finished fine-tuning grid: synthesis and scoring of every run.

    python -m gradtts.grid synth EXP_DIR [--steps 250 500] [--n-timesteps 10] [--vocoder auto] [--device auto]
                                  [--dictionary PATH]
    python -m gradtts.grid score EXP_DIR [--encoder ge2e] [--encoder-source DIR]

A grid run lives in ``EXP_DIR/finetune/<pair>/<loss>/p<frac>/seed<k>/`` (the layout stage 5 writes),
its few-shot set in ``EXP_DIR/fewshot/<pair>/``. Synthesis writes ``<run>/synth/step_XXXXXXX/``,
scoring ``<run>/score/step_XXXXXXX/summary.json`` with the run's loss, p, step, seed and pair.
Both skip what exists, so an interrupted stage is simply run again.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

_RUN = re.compile(r"^p(?P<p>\d+(?:\.\d+)?)$")


@dataclass(frozen=True)
class Run:
    pair: str
    loss: str
    p: float
    seed: int
    path: Path

    @property
    def meta(self) -> dict:
        return {"pair": self.pair, "loss": self.loss, "p": self.p, "seed": self.seed}


def find_runs(exp: str | Path) -> list[Run]:
    """Every ``finetune/<pair>/<loss>/p<frac>/seed<k>`` directory holding checkpoints."""
    runs = []
    for ckpt in sorted(Path(exp, "finetune").glob("*/*/p*/seed*/ckpt")):
        run = ckpt.parent
        m = _RUN.match(run.parent.name)
        if m and run.name[4:].isdigit():
            runs.append(Run(run.parent.parent.parent.name, run.parent.parent.name, float(m.group("p")),
                            int(run.name[4:]), run))
    return runs


def synth_all(exp: Path, steps: list[int] | None, n_timesteps: int, vocoder: str, device: str, batch_size: int,
              seed: int, dictionary: str | None = None) -> None:
    from gradtts.synth import SynthConfig, run_synthesis

    runs = find_runs(exp)
    if not runs:
        raise SystemExit(f"{exp}/finetune: no fine-tuning runs found (run stage 5 first)")
    for i, run in enumerate(runs, 1):
        print(f"[{i}/{len(runs)}] synthesis {run.path.relative_to(exp)}", flush=True)
        cfg = SynthConfig(texts=str(exp / "fewshot" / run.pair / "test_texts.txt"), checkpoints=[str(run.path / "ckpt")],
                          steps=steps, out_dir=str(run.path / "synth"), n_timesteps=n_timesteps, vocoder=vocoder,
                          device=device, batch_size=batch_size, seed=seed, dictionary=dictionary)
        run_synthesis(cfg)


def score_all(exp: Path, encoder: str, encoder_source: str | None, device: str) -> None:
    from gradtts.scoring.cli import ScoreConfig, score

    runs = find_runs(exp)
    todo = [(run, d) for run in runs for d in sorted((run.path / "synth").glob("step_*")) if d.is_dir()]
    if not todo:
        raise SystemExit(f"{exp}/finetune: nothing synthesised yet (run stage 6 first)")
    for i, (run, gen) in enumerate(todo, 1):
        step = int(gen.name.split("_")[1])
        print(f"[{i}/{len(todo)}] scoring {gen.relative_to(exp)}", flush=True)
        fs = exp / "fewshot" / run.pair
        score(ScoreConfig(gen_dir=str(gen), ref_target=str(fs / "ref_target"), ref_intruder=str(fs / "ref_intruder"),
                          out_dir=str(run.path / "score" / gen.name), encoder=encoder, encoder_source=encoder_source,
                          device=device, meta={**run.meta, "step": step}))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("synth")
    s.add_argument("exp")
    s.add_argument("--steps", type=int, nargs="*", default=None)
    s.add_argument("--n-timesteps", type=int, default=10)
    s.add_argument("--vocoder", default="auto")
    s.add_argument("--device", default="auto")
    s.add_argument("--batch-size", type=int, default=16)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--dictionary", default=None, help="CMUdict-format file (default: the one the checkpoints record)")
    c = sub.add_parser("score")
    c.add_argument("exp")
    c.add_argument("--encoder", default="ge2e")
    c.add_argument("--encoder-source", default=None)
    c.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    if a.cmd == "synth":
        synth_all(Path(a.exp), a.steps or None, a.n_timesteps, a.vocoder, a.device, a.batch_size, a.seed, a.dictionary)
    else:
        score_all(Path(a.exp), a.encoder, a.encoder_source, a.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
