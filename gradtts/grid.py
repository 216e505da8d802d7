"""Stages 5-7 of the recipes: the fine-tuning grid, then synthesis and scoring of every run.

    python -m gradtts.grid train EXP_DIR --base CKPT --pairs T:C [T:C ...] [--losses l2,huber,scheduled_huber]
                                  [--seeds 0] [--fractions 0 0.15 0.30 0.45] [--steps 2000]
                                  [--save-steps 250,500,1000,2000] [--launcher joblib|slurm|basic|submitit_local]
                                  [--jobs 1] [--threads N] [--device auto] [--dry-run] [-- key=value ...]
    python -m gradtts.grid synth EXP_DIR [--pairs T:C ...] [--steps 0 60 120] [--jobs 1] [--overwrite]
                                  [--launcher joblib|slurm|basic|submitit_local]
                                  [-- synth.n_timesteps=10 synth.vocoder=hifigan synth.device=auto ...]
    python -m gradtts.grid score EXP_DIR [--pairs T:C ...] [--launcher joblib|slurm|basic|submitit_local]
                                  [-- encoder=ge2e encoder_source=DIR device=auto
                                      metrics=[similarity,fidelity,quality,intelligibility] asr=pocketsphinx ...]
    python -m gradtts.grid collect EXP_DIR DEST   # the small files a report needs, e.g. to commit them

``train`` launches one Hydra multirun of ``gradtts-train`` (experiment ``finetune``) over pairs x seeds x
losses x few-shot sets, pairs varying slowest, so a grid stopped part-way leaves whole pairs finished; the
key=value arguments after ``--`` are Hydra overrides of every job. Each job writes its run to
``EXP_DIR/finetune/<pair>/<loss tag>/p<frac>/seed<k>/`` with the trainer's ``run.json`` (identity, arm, what it
trained on); the paths are those of :mod:`gradtts.layout`.

``synth`` and ``score`` build their settings the way ``gradtts-synth`` and ``gradtts-score`` do (Hydra:
registered defaults, ``$GRADTTS_CONF_DIR``, then the key=value overrides), and set the per-run fields (texts,
checkpoints, output and reference dirs) themselves. Synthesis uses HiFi-GAN unless ``synth.vocoder`` is
given (a study must not fall back to Griffin-Lim unnoticed). Synthesis writes ``<run>/synth/step_0000120/``
(+ ``synth.json``), scoring ``<run>/score/step_0000120/summary.json`` with everything the report pairs and
groups on. ``--pairs`` limits a stage to those pairs (the recipe runs new pairs only).

Step 0 (the base model with the new speaker row, before any update) is the same model for every run
of a pair; the grid checks that the runs' ``step_0000000.pt`` weights agree and synthesises and scores
it once, under ``EXP_DIR/finetune/<pair>/step0/``. Both stages skip what exists with the same settings.

Where the stages run (``--launcher``): ``joblib`` and ``basic`` run synthesis and scoring in this process
(``joblib`` also runs the fine-tuning jobs side by side here, ``basic`` one after another). ``slurm`` submits
every stage to the cluster: stage 5 as Hydra's multirun through hydra-submitit-launcher
(``hydra/launcher=slurm``), stages 6 and 7 as one submitit job per pair with the same settings: the preset
``conf/hydra/launcher/slurm.yaml`` (partition, time, GPUs...) composed by Hydra as stage 5 composes it, with
the ``hydra.launcher.*`` overrides given after ``--``. The command waits for its jobs (the submitting node
must stay up) and fails naming each failed job's log. ``submitit_local`` does the same with submitit's local
executor, whose jobs are processes on this machine (Hydra's ``submitit_local`` preset at stage 5): for tests.
Job logs: ``EXP_DIR/finetune/.hydra/{synth,score}/.submitit/<job id>/`` (stage 5: ``.hydra/.submitit/``).
Every stage computes on ``auto`` by default (CUDA when the job sees a GPU, else the CPU:
:mod:`gradtts.device`), and logs the device it used.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shlex
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Collection, Sequence

from gradtts import layout
from gradtts.layout import Run, find_runs
from gradtts.logs import setup_logging

log = logging.getLogger(__name__)

STEP0 = layout.STEP0
LAUNCHERS = ("joblib", "slurm", "basic", "submitit_local")
#: The launchers that submit jobs, and the submitit executor (``cluster``) that runs stages 6-7's jobs.
SUBMITIT = {"slurm": "slurm", "submitit_local": "local"}
#: The Hydra launcher preset (conf/hydra/launcher/) whose settings every submitted stage uses.
CLUSTER_PRESET = "slurm"
LAUNCHER_KEY = "hydra.launcher."
DEFAULT_LOSSES = ("l2", "huber", "scheduled_huber")
# The grid's own defaults, applied before the caller's overrides (which win).
SYNTH_DEFAULTS = {"synth.vocoder": "hifigan"}
# Fields the grid sets per run; an override of one would be silently replaced, so it is refused.
SYNTH_PER_RUN = ("texts", "text_format", "checkpoints", "steps", "out_dir")
SCORE_PER_RUN = ("gen_dir", "ref_target", "ref_intruder", "out_dir", "meta", "ref_same_text")


# ---- stage 5: the fine-tuning multirun --------------------------------------------------------------------------
def available_cores() -> int:
    """CPU cores this process may use (its affinity mask, as ``nproc`` counts them)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def train_overrides(exp: str | Path, base: str | Path, pairs: Sequence[str], losses: Sequence[str] = DEFAULT_LOSSES,
                    seeds: Sequence[int] = (0,), fractions: Sequence[float] = (0.0, 0.15, 0.30, 0.45),
                    steps: int = 2000, save_steps: Sequence[int] = (250, 500, 1000, 2000), device: str = "auto",
                    launcher: str = "joblib", jobs: int = 1, threads: int | None = None,
                    extra: Sequence[str] = ()) -> list[str]:
    """The ``gradtts-train -m`` arguments of the grid (``pairs``: ``T:C`` specs; ``extra``: overrides, last).

    The sweep goes pairs x seeds x losses x sets in that order, the first varying slowest (Hydra's basic
    sweeper takes the product in the order given). With the joblib launcher and ``jobs`` > 1 each job gets
    ``threads`` (default: cores / jobs) torch threads.
    """
    if not pairs:
        raise ValueError("--pairs: give at least one TARGET:INTRUDER pair")
    if launcher not in LAUNCHERS:
        raise ValueError(f"--launcher {launcher!r}: one of {', '.join(LAUNCHERS)}")
    if jobs < 1:
        raise ValueError(f"--jobs {jobs}: at least 1")
    bad = [p for p in fractions if not 0 <= p < 1]
    if bad:
        raise ValueError(f"--fractions: corruption levels lie in [0, 1), got {bad}")
    names = list(dict.fromkeys(layout.pair_name(*layout.parse_pair(s)) for s in pairs))
    sets = list(dict.fromkeys(layout.set_name(p) for p in fractions))
    saves = ",".join(str(s) for s in dict.fromkeys([0, *save_steps]))  # step 0: the model before any update
    out = ["experiment=finetune", f"adapt.checkpoint={layout.hydra_path(base, what='base checkpoint')}",
           f"+{layout.PAIR_KEY}={layout.hydra_choice(names, quote=True)}",
           f"trainer.seed={layout.hydra_choice(seeds)}", f"loss={layout.hydra_choice(losses)}",
           f"+{layout.PSET_KEY}={layout.hydra_choice(sets)}",
           f"data.feats_dir={layout.hydra_feats_dir(exp)}", f"trainer.out_dir={layout.hydra_run_dir(exp)}",
           f"trainer.max_steps={steps}", f"trainer.save_steps=[{saves}]",
           f"trainer.device={device}",
           f"hydra.sweep.dir={layout.hydra_path(layout.sweep_dir(exp))}", "hydra.sweep.subdir=${hydra.job.num}"]
    if launcher == "joblib":
        out += ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={jobs}"]
        if jobs > 1:
            out.append(f"trainer.num_threads={threads or max(1, available_cores() // jobs)}")
    elif launcher == "slurm":
        out.append(f"hydra/launcher={CLUSTER_PRESET}")
    elif launcher == "submitit_local":
        out.append("hydra/launcher=submitit_local")
    return out + list(extra)


def train_command(overrides: Sequence[str]) -> list[str]:
    """The command that runs the multirun: this interpreter's ``gradtts-train -m``."""
    return [sys.executable, "-m", "gradtts.train", "-m", *overrides]


def missing_sets(exp: str | Path, pairs: Sequence[str], fractions: Sequence[float]) -> list[Path]:
    """Feature directories of the few-shot sets the grid would train on that do not exist yet."""
    out = []
    for spec in pairs:
        pair = layout.pair_name(*layout.parse_pair(spec))
        sets = {layout.set_name(p): layout.set_dir(exp, pair, p) for p in fractions}
        out += [d / layout.FEATS for d in sets.values() if not (d / layout.FEATS).is_dir()]
    return out


def run_training(exp: Path, base: Path, pairs: Sequence[str], losses: Sequence[str] = DEFAULT_LOSSES,
                 seeds: Sequence[int] = (0,), fractions: Sequence[float] = (0.0, 0.15, 0.30, 0.45),
                 steps: int = 2000, save_steps: Sequence[int] = (250, 500, 1000, 2000), device: str = "auto",
                 launcher: str = "joblib", jobs: int = 1, threads: int | None = None, extra: Sequence[str] = (),
                 dry_run: bool = False) -> int:
    """Check the inputs, then run the grid's multirun (arguments as :func:`train_overrides`); its exit status."""
    if not base.is_file():
        raise FileNotFoundError(f"--base {base}: no such checkpoint (train the base model at stage 3, or give one)")
    missing = missing_sets(exp, pairs, fractions)
    if missing:
        raise FileNotFoundError("few-shot features missing (run stage 4 for these pairs first): "
                                + ", ".join(str(m) for m in missing[:4]) + (" ..." if len(missing) > 4 else ""))
    threads = threads or max(1, available_cores() // jobs)
    overrides = train_overrides(exp, base, pairs, losses, seeds, fractions, steps, save_steps, device, launcher,
                                jobs, threads, extra)
    cmd = train_command(overrides)
    log.info("fine-tuning grid: losses {%s} x sets {%s} x seeds {%s} x pairs {%s} from %s", ",".join(losses),
             ",".join(dict.fromkeys(layout.set_name(p) for p in fractions)), ",".join(str(s) for s in seeds),
             ",".join(layout.pair_name_of(s) for s in pairs), base)
    if dry_run:
        print(shlex.join(cmd))  # the dry run's output: the command, ready to paste
        return 0
    log.info("%s", shlex.join(cmd))
    env = dict(os.environ)
    if launcher == "joblib" and jobs > 1:
        # Each job gets its share of the cores, numba's pool included (its parallel alignment kernel otherwise
        # starts a spinning worker per core in every job: 3x slower).
        env.update(NUMBA_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
        # The jobs all align on their first step: compile the kernel here once, so that they only read its cache.
        from gradtts.model.alignment import compile_kernels

        compile_kernels()
    return subprocess.run(cmd, env=env).returncode


# ---- stage 6: synthesis -----------------------------------------------------------------------------------------
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
        out[pair] = _recorded_step0(exp, pair, files) or files[0]
    return out


def _recorded_step0(exp: Path, pair: str, files: list[Path]) -> Path | None:
    """The file step 0 of the pair was synthesised from before, when it is still one of ``files``.

    Every run of a pair holds the same step-0 weights in files that differ (each records its own run), so a run
    added later (a new arm) must not replace the file the existing step-0 wavs are recorded against.
    """
    from gradtts.digest import file_digest

    record = layout.step0_dir(exp, pair) / "synth" / "step_0000000" / "synth.json"
    try:
        wanted = json.loads(record.read_text(encoding="utf-8"))["settings"]["checkpoint_sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return next((f for f in files if file_digest(f) == wanted), None)


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _check_not_per_run(overrides: Sequence[str], prefix: str, per_run: Sequence[str]) -> None:
    keys = [prefix + k for k in per_run]
    owned = [o for o in overrides if any(_override_key(o) == k or _override_key(o).startswith(k + ".") for k in keys)]
    if owned:
        raise ValueError(f"{', '.join(owned)}: the grid sets {', '.join(prefix + k for k in per_run)} for each run; "
                         "leave them out")


def synth_config(overrides: Sequence[str] = ()) -> Any:
    """The grid's synthesis settings: ``gradtts-synth``'s config for ``overrides`` (HiFi-GAN by default),
    with the per-run fields still unset (``???``)."""
    from gradtts.conf_store import load_stage_config

    _check_not_per_run(overrides, "synth.", SYNTH_PER_RUN)
    given = {_override_key(o) for o in overrides}
    defaults = [f"{k}={v}" for k, v in SYNTH_DEFAULTS.items() if k not in given]
    return load_stage_config("synth", [*defaults, *overrides], allow_missing=True)


def _synth_task(label: str, cfg: Any) -> None:
    from gradtts.synth import run_synthesis

    log.info("%s synthesis %s", label, Path(cfg.out_dir).parent)
    run_synthesis(cfg)


def _worker_init(threads: int) -> None:
    import torch

    setup_logging()  # a spawned process starts without the parent's logging set-up
    torch.set_num_threads(threads)


def synth_all(exp: Path, steps: list[int] | None, jobs: int = 1, overrides: Sequence[str] = (),
              pairs: Collection[str] | None = None) -> None:
    """Synthesise the test texts at ``steps`` for every run (step 0 once per pair).

    ``overrides``: Hydra overrides of ``gradtts-synth``'s settings (``synth.n_timesteps=10``, ...); ``pairs``:
    only these pairs (dir names). ``jobs`` > 1 spreads the runs over that many processes with ``cores / jobs``
    threads each (on a small CPU, one-thread processes side by side beat one process with every thread).
    """
    base = synth_config(overrides)
    runs = find_runs(exp, pairs)
    if not runs:
        raise SystemExit(f"{exp}/finetune: no fine-tuning runs found{_of(pairs)} (run stage 5 first)")
    later = [s for s in steps if s != 0] if steps else None
    tasks = []

    def task(label: str, pair: str, ckpts: list[str], out_dir: Path, task_steps: list[int] | None) -> None:
        cfg = dataclasses.replace(base, texts=str(layout.test_texts(exp, pair)), text_format="kaldi",
                                  checkpoints=ckpts, steps=task_steps, out_dir=str(out_dir))
        tasks.append((label, cfg))

    if steps is None or 0 in steps:
        for pair, ckpt in step0_checkpoints(exp, runs).items():
            task("[step 0]", pair, [str(ckpt)], layout.step0_dir(exp, pair) / "synth", None)
    if later != []:
        for i, run in enumerate(runs, 1):
            ckpts = [str(p) for p in layout.checkpoint_files(run.path / "ckpt") if p.name != "step_0000000.pt"]
            if later is not None:
                ckpts = [c for c in ckpts if int(Path(c).stem[5:]) in later]
            if ckpts:
                task(f"[{i}/{len(runs)}]", run.pair, ckpts, run.path / "synth", None)
    if jobs <= 1:
        for t in tasks:
            _synth_task(*t)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    threads = max(1, available_cores() // jobs)  # a cluster job's cores, not the node's
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init,
                             initargs=(threads,)) as pool:
        for fut in [pool.submit(_synth_task, *t) for t in tasks]:
            fut.result()  # the first failure ends the stage, as in the sequential loop


# ---- stage 7: scoring -------------------------------------------------------------------------------------------
def _synth_meta(gen: Path) -> dict[str, Any]:
    """What the synthesis record says ran: the vocoder and the sampler settings."""
    rec_file = gen / "synth.json"
    if not rec_file.is_file():
        return {"vocoder": None, "synth": None}
    st = json.loads(rec_file.read_text(encoding="utf-8"))["settings"]
    keys = ("n_timesteps", "temperature", "length_scale", "stoc", "batch_size", "seed", "dictionary")
    return {"vocoder": (st.get("vocoder") or {}).get("name"), "synth": {k: st.get(k) for k in keys}}


def score_config(overrides: Sequence[str] = ()) -> Any:
    """The grid's scoring settings: ``gradtts-score``'s config for ``overrides``, per-run fields unset."""
    from gradtts.conf_store import load_stage_config

    _check_not_per_run(overrides, "", SCORE_PER_RUN)
    return load_stage_config("score", overrides, allow_missing=True)


def score_all(exp: Path, overrides: Sequence[str] = (), pairs: Collection[str] | None = None) -> None:
    """Score every synthesised step of every run (and step 0 of each pair) against the pair's references.

    Speaker similarity goes to ``summary.json``; fidelity to the target's recordings of the same sentences
    (``ref_test/``) to ``fidelity.json`` beside it, DNSMOS to ``quality.json`` and the ASR's WER and CER to
    ``intelligibility.json`` (their means into ``summary.json`` too), as the ``metrics`` override lists (default:
    all four whose packages are installed). With step 0 of each pair, the pair's real recordings of the test
    sentences are scored for quality and intelligibility once, into ``step0/score/real/``: the ceiling.

    ``overrides``: Hydra overrides of ``gradtts-score``'s settings (``encoder=ecapa``, ``device=cuda``...).
    The device is resolved and logged once for the stage.
    """
    from gradtts.device import resolve_device
    from gradtts.scoring.cli import score, score_metrics
    from gradtts.scoring.metrics import ASRHandle, resolve_metrics, score_real

    base = score_config(overrides)
    # Which metrics, and the recogniser's settings, are checked before anything is scored.
    metrics = resolve_metrics(base.metrics, base.asr)
    asr = ASRHandle(base.asr, base.asr_source) if "intelligibility" in metrics else None
    # Resolved (and logged) once for the stage: a device that cannot be had fails before anything is read.
    base = dataclasses.replace(base, device=str(resolve_device(base.device, setting="device")))
    if asr is not None:
        asr.device = base.device
    runs = find_runs(exp, pairs)
    todo: list[tuple[str, Path, Path, dict[str, Any]]] = []
    for pair in sorted({r.pair for r in runs}):
        gen = layout.step0_dir(exp, pair) / "synth" / "step_0000000"
        if gen.is_dir():
            todo.append((pair, gen, gen.parent.parent / "score" / gen.name,
                         {"kind": "step0", "pair": pair, "step": 0, "seed": None, "loss": None, "arm": None,
                          "arm_id": None, "p": 0.0}))
    for run in runs:
        for gen in sorted((run.path / "synth").glob("step_*")):
            if gen.is_dir():
                todo.append((run.pair, gen, run.path / "score" / gen.name, {**run.meta, "step": int(gen.name[5:])}))
    if not todo:
        raise SystemExit(f"{exp}/finetune: nothing synthesised yet{_of(pairs)} (run stage 6 first)")
    no_ref_test = sorted({pair for pair, *_ in todo if not layout.ref_test_dir(exp, pair).is_dir()})
    if no_ref_test and metrics != ["similarity"]:
        log.warning("pairs %s have no %s (few-shot sets made before it existed): their fidelity (MCD, log-F0 RMSE) and "
                    "the ceiling of quality and WER (the real recordings) are not measured; re-run stage 4 for them "
                    "(--force_stage 4, the sets stay the same) to add them", no_ref_test, layout.REF_TEST)
    log.info("stage 7 metrics: %s", ", ".join(metrics))
    ref_cache: dict = {}  # each pair's reference recordings are analysed once, not once per run
    for i, (pair, gen, out, meta) in enumerate(todo, 1):
        log.info("[%d/%d] scoring %s", i, len(todo), gen.relative_to(exp))
        ref_t, ref_c = layout.ref_dirs(exp, pair)
        ref_test = None if pair in no_ref_test else str(layout.ref_test_dir(exp, pair))
        cfg = dataclasses.replace(base, gen_dir=str(gen), ref_target=str(ref_t), ref_intruder=str(ref_c),
                                  out_dir=str(out), meta={**meta, **_synth_meta(gen)}, ref_same_text=ref_test)
        score(cfg, announce=False)
        score_metrics(cfg, metrics, asr, ref_cache)
        if meta["kind"] == "step0" and ref_test is not None and {"quality", "intelligibility"} & set(metrics):
            # The ceiling, once per pair (where its step 0 is scored): the target's own recordings.
            score_real(ref_test, layout.real_score_dir(exp, pair), metrics, asr, base.overwrite, pair)


def _of(pairs: Collection[str] | None) -> str:
    return f" for pairs {', '.join(sorted(pairs))}" if pairs is not None else ""


# ---- stages 6-7 on a cluster: one submitit job per pair ---------------------------------------------------------
class StageJobError(RuntimeError):
    """A submitted stage-6/7 job ended with the stage's own refusal (a SystemExit inside the job)."""


def split_launcher_overrides(overrides: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(launcher overrides, stage overrides)``: ``hydra.launcher.*`` set the submitted jobs, the rest the stage."""
    launcher = [o for o in overrides if _override_key(o).startswith(LAUNCHER_KEY)]
    return launcher, [o for o in overrides if o not in launcher]


def launcher_settings(exp: str | Path, stage: str, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The settings of stage ``stage``'s jobs: the cluster preset (``hydra/launcher=slurm``) composed by Hydra
    exactly as for the stage-5 multirun, plus ``hydra.launcher.*`` ``overrides``.

    Their ``submitit_folder`` (``${hydra.sweep.dir}/.submitit/%j`` in the preset) lies under
    ``EXP/finetune/.hydra/<stage>/`` and the job name is the stage's.
    """
    import importlib.util

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from gradtts.config import _private_hydra, conf_dir
    from gradtts.errors import UserError

    if importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None:
        raise UserError("--launcher slurm and submitit_local need hydra-submitit-launcher: "
                        "pip install -c constraints.txt hydra-submitit-launcher (the toolkit's slurm extra)")
    args = [f"hydra/launcher={CLUSTER_PRESET}", f"hydra.sweep.dir={layout.hydra_path(layout.sweep_dir(exp) / stage)}",
            f"hydra.job.name={stage}", *overrides]
    with _private_hydra(), initialize_config_dir(config_dir=str(conf_dir().resolve()), version_base="1.3"):
        cfg = compose(config_name=None, overrides=args, return_hydra_config=True)
    return OmegaConf.to_container(cfg.hydra.launcher, resolve=True)


def stage_executor(settings: dict[str, Any], cluster: str) -> Any:
    """A ``submitit.AutoExecutor`` for ``cluster`` (``slurm`` or ``local``) with the launcher ``settings``.

    The settings map to submitit's parameters as hydra-submitit-launcher maps them (its shared ones as they
    are, the SLURM ones prefixed ``slurm_``, which the local executor ignores); unset ones keep submitit's
    defaults. A job is one process (one node, one task): the stage inside it is not distributed.
    """
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    from gradtts.errors import UserError

    shared = {f.name for f in dataclasses.fields(BaseQueueConf)}
    given = {k: v for k, v in settings.items() if k != "_target_" and v is not None}
    folder = given.pop("submitit_folder")
    init = {f"{cluster}_max_num_timeout": given.pop("max_num_timeout")} if "max_num_timeout" in given else {}
    try:
        executor = submitit.AutoExecutor(folder=folder, cluster=cluster, **init)
    except RuntimeError as exc:  # no srun: not a SLURM node
        raise UserError(f"submitit {cluster} executor: {exc} (submit from a machine that has SLURM's commands, or "
                        "use --launcher joblib to run here)") from None
    given.update(nodes=1, tasks_per_node=1)
    executor.update_parameters(**{k if k in shared else f"slurm_{k}": v for k, v in given.items()})
    return executor


def _stage_job(stage: str, exp: str, pair: str, kwargs: dict[str, Any]) -> None:
    """One submitted job: stage ``stage`` (synth or score) of one pair, in its own process (a cluster node)."""
    setup_logging()
    try:
        (synth_all if stage == "synth" else score_all)(Path(exp), pairs={pair}, **kwargs)
    except SystemExit as exc:  # the stage's own refusals end the process; a job must raise to report them
        raise StageJobError(f"{stage} of pair {pair}: {exc.code}") from None


def _job_failure(stage: str, pair: str, job: Any, exc: BaseException) -> str:
    """One line for a failed job: which, what it raised (the last line of the traceback submitit quotes between
    dashed rules; else submitit's message, e.g. a job killed without output), and the log to read."""
    text = str(exc)
    parts = text.split("-" * 22 + "\n")
    quoted = parts[1] if len(parts) > 2 else text
    lines = [ln.strip() for ln in quoted.splitlines() if ln.strip()]
    what = (lines[-1] if len(parts) > 2 else " ".join(lines)) if lines else type(exc).__name__
    return f"{stage} job {job.job_id} (pair {pair}) failed: {what}; log: {job.paths.stderr}"


def submit_stage(stage: str, exp: Path, launcher: str, kwargs: dict[str, Any], pairs: Collection[str] | None = None,
                 launcher_overrides: Sequence[str] = ()) -> None:
    """Run stage ``stage`` (``synth``: :func:`synth_all`, ``score``: :func:`score_all`, with ``kwargs``) as one
    submitit job per pair, wait for them all, and exit naming the log of every job that failed.

    The stage's settings are checked here first (a bad override fails before anything is submitted); the device
    is resolved in each job, on the node that computes.
    """
    import importlib

    (synth_config if stage == "synth" else score_config)(kwargs.get("overrides", ()))
    runs = find_runs(exp, pairs)
    if not runs:
        raise SystemExit(f"{exp}/finetune: no fine-tuning runs found{_of(pairs)} (run stage 5 first)")
    todo = sorted({r.pair for r in runs})
    settings = launcher_settings(exp, stage, launcher_overrides)
    executor = stage_executor(settings, SUBMITIT[launcher])
    log.info("%s: %d job(s), one per pair, by submitit's %s executor: partition %s, %s min, %s GPU(s) and %s CPUs "
             "a job", stage, len(todo), SUBMITIT[launcher], settings.get("partition") or "(default)",
             settings.get("timeout_min"), settings.get("gpus_per_node"), settings.get("cpus_per_task"))
    # By reference to the importable module (also when this one runs as __main__), so a job imports it.
    job_fn = importlib.import_module("gradtts.grid")._stage_job
    n = len(todo)
    jobs = executor.map_array(job_fn, [stage] * n, [str(exp)] * n, todo, [kwargs] * n)
    for pair, job in zip(todo, jobs):
        log.info("%s of pair %s: %s job %s, log %s", stage, pair, SUBMITIT[launcher], job.job_id, job.paths.stderr)
    failed = []
    for pair, job in zip(todo, jobs):
        try:
            job.result()
        except Exception as exc:  # submitit's FailedJobError / UncompletedJobError: the log says the rest
            failed.append(_job_failure(stage, pair, job, exc))
    if failed:
        raise SystemExit("\n".join(failed))
    log.info("%s: %d job(s) finished", stage, n)


# ---- results ----------------------------------------------------------------------------------------------------
#: The small per-run files a report is made from (no checkpoints, no audio).
SMALL_FILES = ("run.json", "train_log.tsv", "ckpt/step_*.residuals.tsv", "synth/step_*/synth.json",
               "score/step_*/summary.json", "score/step_*/scores.csv", "score/step_*/fidelity.json",
               "score/step_*/quality.json", "score/step_*/intelligibility.json", f"score/{layout.REAL}/*.json",
               "filter.json")


def collect_small(exp: Path, dest: Path) -> int:
    """Copy every run's (and step 0's) small result files into ``dest`` with the ``finetune/`` layout kept.

    ``gradtts-report root=DEST`` then regenerates the report without checkpoints or audio. Returns the
    number of files copied; files already there with the same bytes are left alone.
    """
    import shutil

    src_root = layout.finetune_root(exp)
    runs = find_runs(exp)
    if not runs:
        raise SystemExit(f"{src_root}: no fine-tuning runs found")
    dirs = [r.path for r in runs] + sorted(d for d in {layout.step0_dir(exp, r.pair) for r in runs} if d.is_dir())
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


# ---- command line -----------------------------------------------------------------------------------------------
def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: comma-separated integers, e.g. 60,120") from None


def _name_list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m gradtts.grid", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="run the fine-tuning grid (a Hydra multirun of gradtts-train)")
    t.add_argument("exp")
    t.add_argument("--base", required=True, help="base checkpoint every run starts from")
    t.add_argument("--pairs", nargs="+", required=True, metavar="T:C", help="target:intruder speaker pairs")
    t.add_argument("--losses", type=_name_list, default=list(DEFAULT_LOSSES),
                   help="comma-separated loss configs (default l2,huber,scheduled_huber)")
    t.add_argument("--seeds", type=_int_list, default=[0], help="comma-separated fine-tuning seeds (default 0)")
    t.add_argument("--fractions", type=float, nargs="+", default=[0.0, 0.15, 0.30, 0.45],
                   help="corruption levels p of the few-shot sets (default 0 0.15 0.30 0.45)")
    t.add_argument("--steps", type=int, default=2000, help="fine-tuning steps (default 2000)")
    t.add_argument("--save-steps", type=_int_list, default=[250, 500, 1000, 2000],
                   help="checkpoints kept, comma-separated; step 0 is added (default 250,500,1000,2000)")
    t.add_argument("--launcher", choices=LAUNCHERS, default="joblib",
                   help="Hydra launcher: joblib (here, --jobs side by side), basic (here, one by one), slurm "
                   "(conf/hydra/launcher/slurm.yaml), submitit_local (submitit's jobs here: tests)")
    t.add_argument("--jobs", type=int, default=1, help="parallel jobs of the joblib launcher")
    t.add_argument("--threads", type=int, default=None, help="torch threads per job when --jobs > 1 "
                   "(default: cores / jobs)")
    t.add_argument("--device", default="auto")
    t.add_argument("--dry-run", action="store_true", help="print the command, run nothing")
    s = sub.add_parser("synth", help="synthesise the test texts with every run's checkpoints")
    s.add_argument("exp")
    s.add_argument("--pairs", nargs="+", default=None, metavar="PAIR", help="only these pairs (T:C or T_C)")
    s.add_argument("--steps", type=int, nargs="*", default=None, help="steps to synthesise (0: the step-0 model)")
    s.add_argument("--jobs", type=int, default=1, help="parallel synthesis processes (cores / jobs threads each)")
    s.add_argument("--overwrite", action="store_true", help="regenerate outputs made with other settings")
    c = sub.add_parser("score", help="speaker similarity, fidelity, quality and WER of every synthesised step")
    c.add_argument("exp")
    c.add_argument("--pairs", nargs="+", default=None, metavar="PAIR", help="only these pairs (T:C or T_C)")
    for stage in (s, c):
        stage.add_argument("--launcher", choices=LAUNCHERS, default="joblib",
                           help="joblib, basic: run here; slurm: one job per pair on the cluster (the settings of "
                           "conf/hydra/launcher/slurm.yaml, hydra.launcher.* overrides after --); submitit_local: "
                           "those jobs as processes here (tests)")
    k = sub.add_parser("collect", help="copy the small result files (summaries, run records, residual tables)")
    k.add_argument("exp")
    k.add_argument("dest", help="directory that gets the finetune/ layout, e.g. egs/synthvox/results/study/finetune")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Hydra overrides follow `--`, so that option lists (--pairs, --steps) cannot swallow them.
    overrides: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, overrides = argv[:cut], argv[cut + 1:]
    a = _parser().parse_args(argv)
    if overrides and a.cmd == "collect":
        _parser().error("collect takes no Hydra overrides")
    setup_logging()
    from gradtts.config import cli_errors

    with cli_errors(f"gradtts.grid {a.cmd}"):
        return _dispatch(a, overrides)


def _dispatch(a: argparse.Namespace, overrides: list[str]) -> int:
    exp = Path(a.exp)
    pairs = None if getattr(a, "pairs", None) is None else [layout.pair_name_of(x) for x in a.pairs]
    if a.cmd == "train":
        # Absolute (symlinks kept, as the recipe's `cd && pwd`): the jobs' paths must not depend on a cwd.
        return run_training(Path(os.path.abspath(exp)), Path(a.base), a.pairs, a.losses, a.seeds, a.fractions,
                            a.steps, a.save_steps, a.device, a.launcher, a.jobs, a.threads, overrides, a.dry_run)
    if a.cmd == "collect":
        log.info("%d file(s) copied to %s", collect_small(exp, Path(a.dest)), a.dest)
        return 0
    launcher, overrides = split_launcher_overrides(overrides)
    if launcher and a.launcher not in SUBMITIT:
        raise ValueError(f"{' '.join(launcher)}: launcher settings apply to --launcher "
                         f"{' or '.join(SUBMITIT)} only (this is --launcher {a.launcher})")
    if a.cmd == "synth":
        kwargs = dict(steps=a.steps or None, jobs=a.jobs,
                      overrides=[*overrides, *(["synth.overwrite=true"] if a.overwrite else [])])
    else:
        kwargs = dict(overrides=overrides)
    if a.launcher in SUBMITIT:
        # Absolute: a job may start in another directory (a cluster node's).
        submit_stage(a.cmd, Path(os.path.abspath(exp)), a.launcher, kwargs, pairs, launcher)
    else:
        (synth_all if a.cmd == "synth" else score_all)(exp, pairs=pairs, **kwargs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
