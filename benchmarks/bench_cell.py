"""One grid cell (fine-tuning, synthesis + HiFi-GAN, GE2E scoring) run two ways side by side; prints ratios.

- ``old``: cells one after another, each process with torch's default thread count (every core): how the
  CPU preset runs stage 5 (``--grid_jobs 1``) and stages 6-7 today.
- ``new``: ``J`` cells at once, each process with ``cores / J`` threads (``trainer.num_threads``): what
  ``--grid_jobs J trainer.num_threads=1`` does for stage 5.

Both ways run the same cells with the CPU preset's settings (batch 8, out_size 128, lr 4e-4, 10 ODE steps,
temperature 1.5, HiFi-GAN, GE2E), so the script also prints the largest difference of S_T and S_C between
the two ways: the thread count changes float rounding, not what is measured.

    egs/synthvox/run.sh --stop_stage 4          # the few-shot sets and their features (about 20 s)
    python benchmarks/bench_cell.py --exp exp/synthvox --steps 60 --jobs 2
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


def cell(a: argparse.Namespace) -> dict:
    """Child process: train one cell, synthesise its last step, score it; times per phase and the scores."""
    import torch

    from gradtts.scoring.cli import ScoreConfig, score
    from gradtts.synth import SynthConfig, run_synthesis
    from gradtts.train import train
    from gradtts.train.cli import compose

    if a.threads:
        torch.set_num_threads(a.threads)
    fs = Path(a.exp) / "fewshot" / a.pair
    out = Path(a.out)
    t0 = time.perf_counter()
    train(compose(["experiment=finetune", f"adapt.checkpoint={a.base}", f"loss={a.loss}",
                   f"data.feats_dir={fs / a.pset / 'feats'}", f"trainer.out_dir={out}", f"trainer.max_steps={a.steps}",
                   f"trainer.save_steps=[{a.steps}]", "trainer.save_every=0", "trainer.device=cpu",
                   "trainer.progress=false", "trainer.tensorboard=false", "trainer.sample_every=0",
                   "data.batch_size=8", "data.out_size=128", "optim.lr=4e-4", "trainer.seed=0",
                   *([f"trainer.num_threads={a.threads}"] if a.threads else [])]))
    t1 = time.perf_counter()
    run_synthesis(SynthConfig(texts=str(fs), text_format="kaldi", checkpoints=[str(out / "ckpt")], steps=[a.steps],
                              out_dir=str(out / "synth"), vocoder="hifigan", device="cpu"))
    t2 = time.perf_counter()
    s = score(ScoreConfig(gen_dir=str(out / "synth" / f"step_{a.steps:07d}"), ref_target=str(fs / "ref_target"),
                          ref_intruder=str(fs / "ref_intruder"), out_dir=str(out / "score"),
                          cache_dir=str(out / "emb_cache")))
    t3 = time.perf_counter()
    return {"train_s": t1 - t0, "synth_s": t2 - t1, "score_s": t3 - t2, "S_T": s["S_T"], "S_C": s["S_C"],
            "threads": torch.get_num_threads()}


def _command(a: argparse.Namespace, loss: str, pset: str, out: Path, threads: int | None) -> list[str]:
    cmd = [sys.executable, __file__, "--child", "--exp", a.exp, "--pair", a.pair, "--base", a.base, "--loss", loss,
           "--pset", pset, "--out", str(out), "--steps", str(a.steps)]
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


def parent(a: argparse.Namespace) -> None:
    cells = [(loss, pset) for loss in a.losses.split(",") for pset in a.psets.split(",")][:a.cells]
    cores = os.cpu_count() or 1
    threads = max(1, cores // a.jobs)
    print(f"{len(cells)} cells {cells}, {a.steps} fine-tuning steps each; {cores} cores; new way: {a.jobs} jobs x "
          f"{threads} thread(s)")
    with tempfile.TemporaryDirectory(prefix="bench_cell_") as tmp:
        old, t = [], time.perf_counter()
        for k, (loss, pset) in enumerate(cells):
            r = subprocess.run(_command(a, loss, pset, Path(tmp, f"old{k}"), None), capture_output=True, text=True,
                               env=_env(None))
            old.append(_result(r, r.stdout + r.stderr))
            print(f"  old  {loss}/{pset}: {old[-1]}")
        old_wall = time.perf_counter() - t
        new, t = [], time.perf_counter()
        pending = list(enumerate(cells))
        while pending:
            batch, pending = pending[:a.jobs], pending[a.jobs:]
            procs = []
            for k, (loss, pset) in batch:
                log = open(Path(tmp, f"new{k}.log"), "w+")  # a file, not a pipe: a full pipe would stall a job
                procs.append((loss, pset, log, subprocess.Popen(
                    _command(a, loss, pset, Path(tmp, f"new{k}"), threads), stdout=subprocess.PIPE, stderr=log,
                    text=True, env=_env(threads))))
            for loss, pset, log, p in procs:
                out, _ = p.communicate()
                log.seek(0)
                new.append(_result(p, out + log.read()))
                log.close()
                print(f"  new  {loss}/{pset}: {new[-1]}")
        new_wall = time.perf_counter() - t
    d_t = max(abs(x["S_T"] - y["S_T"]) for x, y in zip(old, new))
    d_c = max(abs(x["S_C"] - y["S_C"]) for x, y in zip(old, new))
    print("\n| way | cells | wall s | s per cell | cost vs old |")
    print("|---|---:|---:|---:|---:|")
    print(f"| old: 1 job x {old[0]['threads']} threads | {len(cells)} | {old_wall:.1f} | {old_wall / len(cells):.1f} | 1.00 |")
    print(f"| new: {a.jobs} jobs x {threads} thread(s) | {len(cells)} | {new_wall:.1f} | {new_wall / len(cells):.1f} | "
          f"{new_wall / old_wall:.2f} |")
    print(f"\nspeed-up (old / new wall): {old_wall / new_wall:.2f}x; max |S_T old - new| = {d_t:.2e}, "
          f"max |S_C old - new| = {d_c:.2e}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp", default=str(ROOT / "exp/synthvox"), help="experiment dir after stage 4")
    p.add_argument("--pair", default="sv024_sv025")
    p.add_argument("--base", default=str(ROOT / "egs/synthvox/base/base_small.pt"))
    p.add_argument("--losses", default="l2,scheduled_huber")
    p.add_argument("--psets", default="p0.00,p0.30")
    p.add_argument("--cells", type=int, default=2, help="how many (loss, set) cells each way runs")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
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
