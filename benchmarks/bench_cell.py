"""Grid cells (fine-tuning, synthesis + HiFi-GAN, GE2E scoring) run the old and the new way in one run;
prints the ratio.

- ``old``: how the CPU preset ran a cell before the study: one cell at a time with torch's default threads
  (every core), fp32, the three-op Mish (``x * tanh(softplus(x))``), and synthesis + scoring of every saved
  step (60 and 120: 12 sentences).
- ``new``: what the ``cpu`` and ``study`` presets do now: ``J`` cells side by side, each process with
  ``cores / J`` threads (numba's pool too), bf16 autocast of the U-Net in training, the fused Mish
  kernel, and synthesis + scoring of the step the report uses (the last one: 6 sentences).

Both ways fine-tune the same cells from the same base model with the CPU preset's data settings (batch 8,
out_size 128, 10 ODE steps, temperature 1.5). The script also prints how far the new way's S_T and S_C at
the last step are from the old way's (bf16 and the fused kernel change rounding, so the numbers move a
little; the study's own bf16-vs-fp32 check is in egs/synthvox/RESULTS.md).

    egs/synthvox/run.sh --stop_stage 4          # the few-shot sets and their features (about 20 s)
    python benchmarks/bench_cell.py --exp exp/synthvox --steps 120 --jobs 2
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

print = functools.partial(print, flush=True)  # noqa: A001 - progress visible when piped

ROOT = Path(__file__).resolve().parents[1]


def _old_mish() -> None:
    """Put back the activation as the U-Net computed it before (three separate ops)."""
    import torch

    from gradtts.model import unet

    unet.Mish.forward = lambda self, x: x * torch.tanh(torch.nn.functional.softplus(x))


def cell(a: argparse.Namespace) -> dict:
    """Child process: train one cell, synthesise and score the requested steps; times per phase and scores."""
    import torch

    from gradtts.layout import fewshot_dir
    from gradtts.scoring.cli import ScoreConfig, score
    from gradtts.synth import SynthConfig, run_synthesis
    from gradtts.train import train
    from gradtts.train.cli import compose

    if a.old:
        _old_mish()
    if a.threads:
        torch.set_num_threads(a.threads)
    fs = fewshot_dir(a.exp, a.pair)
    out = Path(a.out)
    eval_steps = [int(s) for s in a.eval_steps.split(",")]
    t0 = time.perf_counter()
    train(compose(["experiment=finetune", f"adapt.checkpoint={a.base}", f"loss={a.loss}",
                   f"data.feats_dir={fs / a.pset / 'feats'}", f"trainer.out_dir={out}", f"trainer.max_steps={a.steps}",
                   f"trainer.save_steps=[0,{a.eval_steps}]", "trainer.save_every=0", "trainer.device=cpu",
                   "trainer.progress=false", "trainer.tensorboard=false", "trainer.sample_every=0",
                   "data.batch_size=8", "data.out_size=128", f"optim.lr={a.lr}", "trainer.seed=0",
                   f"trainer.precision={a.precision}", *([f"trainer.num_threads={a.threads}"] if a.threads else [])]))
    t1 = time.perf_counter()
    run_synthesis(SynthConfig(texts=str(fs), text_format="kaldi", checkpoints=[str(out / "ckpt")], steps=eval_steps,
                              out_dir=str(out / "synth"), vocoder="hifigan", device="cpu"))
    t2 = time.perf_counter()
    scores = {}
    for s in eval_steps:
        r = score(ScoreConfig(gen_dir=str(out / "synth" / f"step_{s:07d}"), ref_target=str(fs / "ref_target"),
                              ref_intruder=str(fs / "ref_intruder"), out_dir=str(out / "score" / str(s)),
                              cache_dir=str(out / "emb_cache")))
        scores[s] = (r["S_T"], r["S_C"])
    t3 = time.perf_counter()
    last = scores[max(eval_steps)]
    return {"train_s": round(t1 - t0, 1), "synth_s": round(t2 - t1, 1), "score_s": round(t3 - t2, 1),
            "S_T": last[0], "S_C": last[1], "threads": torch.get_num_threads()}


def _command(a: argparse.Namespace, loss: str, pset: str, out: Path, new: bool, threads: int | None) -> list[str]:
    cmd = [sys.executable, __file__, "--child", "--exp", a.exp, "--pair", a.pair, "--base", a.base, "--loss", loss,
           "--pset", pset, "--out", str(out), "--steps", str(a.steps), "--lr", str(a.lr)]
    if new:
        cmd += ["--precision", "bf16", "--eval-steps", str(a.steps)]
    else:
        cmd += ["--old", "--precision", "fp32", "--eval-steps", f"{a.steps // 2},{a.steps}"]
    return cmd + (["--threads", str(threads)] if threads else [])


def _env(threads: int | None) -> dict[str, str]:
    env = dict(os.environ)
    if threads:  # every thread pool of the child follows from the start; numba's (the alignment's parallel
        # kernel) must be limited before import: numba.set_num_threads later still left the jobs 3x slower
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = env["NUMBA_NUM_THREADS"] = str(threads)
    return env


def _result(proc: subprocess.CompletedProcess | subprocess.Popen, out: str) -> dict:
    if proc.returncode != 0:
        raise SystemExit(f"a cell failed:\n{out[-3000:]}")
    return json.loads(next(line for line in out.splitlines()[::-1] if line.startswith("{")))


def _run_batch(a, cells, tmp: str, tag: str, new: bool, jobs: int, threads: int | None) -> tuple[list[dict], float]:
    results, t = [], time.perf_counter()
    pending = list(enumerate(cells))
    while pending:
        batch, pending = pending[:jobs], pending[jobs:]
        procs = []
        for k, (loss, pset) in batch:
            log = open(Path(tmp, f"{tag}{k}.log"), "w+")  # a file, not a pipe: a full pipe would stall a job
            procs.append((loss, pset, log, subprocess.Popen(
                _command(a, loss, pset, Path(tmp, f"{tag}{k}"), new, threads), stdout=subprocess.PIPE, stderr=log,
                text=True, env=_env(threads))))
        for loss, pset, log, p in procs:
            out, _ = p.communicate()
            log.seek(0)
            results.append(_result(p, out + log.read()))
            log.close()
            print(f"  {tag}  {loss}/{pset}: {results[-1]}")
    return results, time.perf_counter() - t


def parent(a: argparse.Namespace) -> None:
    cells = [(loss, pset) for loss in a.losses.split(",") for pset in a.psets.split(",")][:a.cells]
    cores = os.cpu_count() or 1
    threads = max(1, cores // a.jobs)
    print(f"{len(cells)} cells {cells}, {a.steps} fine-tuning steps each, lr {a.lr}; {cores} cores; "
          f"new way: {a.jobs} jobs x {threads} thread(s)")
    with tempfile.TemporaryDirectory(prefix="bench_cell_") as tmp:
        old, old_wall = _run_batch(a, cells, tmp, "old", False, 1, None)
        new, new_wall = _run_batch(a, cells, tmp, "new", True, a.jobs, threads)
    d_t = max(abs(x["S_T"] - y["S_T"]) for x, y in zip(old, new))
    d_c = max(abs(x["S_C"] - y["S_C"]) for x, y in zip(old, new))
    n = len(cells)
    print("\n| way | cells | wall s | s per cell | train s | synth s | score s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, res, wall in ((f"old: 1 job x {old[0]['threads']} threads, fp32, steps {a.steps // 2}+{a.steps} "
                             "synthesised", old, old_wall),
                            (f"new: {a.jobs} jobs x {threads} thread(s), bf16 U-Net, fused Mish, step {a.steps} "
                             "synthesised", new, new_wall)):
        mean = {k: sum(r[k] for r in res) / n for k in ("train_s", "synth_s", "score_s")}
        print(f"| {name} | {n} | {wall:.1f} | {wall / n:.1f} | {mean['train_s']:.1f} | {mean['synth_s']:.1f} | "
              f"{mean['score_s']:.1f} |")
    print(f"\nspeed-up (old / new wall): {old_wall / new_wall:.2f}x; at step {a.steps}: max |S_T old - new| = "
          f"{d_t:.4f}, max |S_C old - new| = {d_c:.4f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp", default=str(ROOT / "exp/synthvox"), help="experiment dir after stage 4")
    p.add_argument("--pair", default="sv024_sv025")
    p.add_argument("--base", default=str(ROOT / "egs/synthvox/base/base_small.pt"))
    p.add_argument("--losses", default="l2,scheduled_huber")
    p.add_argument("--psets", default="p0.00,p0.30")
    p.add_argument("--cells", type=int, default=2, help="how many (loss, set) cells each way runs")
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--lr", type=float, default=4e-4)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--old", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    p.add_argument("--eval-steps", default="", help=argparse.SUPPRESS)
    p.add_argument("--loss", default="l2", help=argparse.SUPPRESS)
    p.add_argument("--pset", default="p0.00", help=argparse.SUPPRESS)
    p.add_argument("--out", default="", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(cell(a)))
    else:
        parent(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
