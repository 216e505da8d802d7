"""``gradtts-score``: similarity of generated speech to the target's and the intruder's references, and its quality,
intelligibility and fidelity.

    gradtts-score gen_dir=exp/ft/.../synth/step_0000500 ref_target=exp/fewshot/T_C/ref_target \\
        ref_intruder=exp/fewshot/T_C/ref_intruder out_dir=exp/ft/.../score/step_0000500 \\
        +meta.loss=l2 +meta.p=0.3 +meta.step=500 +meta.seed=0 +meta.pair=T_C [encoder=ecapa encoder_source=DIR] \\
        [ref_same_text=exp/fewshot/T_C/ref_test] [metrics=[similarity,fidelity,quality,intelligibility]] \\
        [asr=pocketsphinx | asr=whisper asr_source=/models/base.en.pt]

References are Kaldi data dirs (their wav.scp is read) or folders of audio files. Writes
``scores.csv`` (one row per generated file: cosine to each reference centroid) and
``summary.json`` (S_T, S_C, counts, the device the embeddings were computed on (``device=auto``: CUDA
when present) and the ``meta`` fields, added with Hydra's ``+meta.KEY=VALUE``),
which ``gradtts-report`` collects. With ``ref_same_text`` (the target's real recordings of the generated
sentences: a data dir or a folder, matched to the generated ``<utt>.wav`` by utterance id) it also writes
``fidelity.json``: mel-cepstral distortion after DTW and log-F0 RMSE per utterance and their means
(:mod:`gradtts.scoring.fidelity`: numpy and librosa, on the CPU whatever ``device`` says), which the report
puts beside R and L.

``metrics`` lists what to compute, of ``similarity`` (always: ``summary.json``), ``fidelity`` (needs
``ref_same_text``), ``quality`` (DNSMOS, ``quality.json``) and ``intelligibility`` (the WER and CER of an ASR
transcript against the text each wav was made from, read from the ``synth.json`` of ``gen_dir``:
``intelligibility.json``; ``asr=pocketsphinx`` or ``asr=whisper asr_source=PATH.pt``), e.g.
``metrics=[similarity,quality]``. By default all four whose packages are installed (``pip install -e ".[eval]"``
adds quality's and intelligibility's); an explicit metric that cannot be computed is an error. Both files hold a row
per utterance, the means, the settings and a cache key (:mod:`gradtts.scoring.metrics`), and their means also go
into ``summary.json`` (``dnsmos_ovrl``, ``dnsmos_sig``, ``dnsmos_bak``, ``dnsmos_p808``, ``wer``, ``cer``).

``summary.json`` also stores its cache key: the encoder and the content digests of every generated and
reference file. An existing summary is reused only when that key matches (new ``meta`` fields are
merged in); otherwise the scores are recomputed, so re-synthesised audio or another encoder never
returns stale numbers.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradtts.config import CHOICES, DEVICES
from gradtts.layout import SYNTH_RECORD
from gradtts.scoring.encoders import ENCODERS
from gradtts.scoring.intelligibility import ASR_KINDS, DEFAULT_ASR

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")


@dataclass
class ScoreConfig:
    """``gradtts-score`` settings: generated audio vs the reference sets of the target (T) and the intruder (C).

    Built by ``gradtts.conf_store.load_stage_config("score", overrides)`` where code scores for a recipe.
    """

    gen_dir: str = "???"
    ref_target: str = "???"
    ref_intruder: str | None = None
    out_dir: str = "???"
    # ge2e (embedded) | ecapa (needs encoder_source=DIR of spkrec-ecapa-voxceleb)
    encoder: str = field(default="ge2e", metadata={CHOICES: ENCODERS})
    encoder_source: str | None = None
    # ecapa: build the model from speechbrain's hyperparams.yaml, which runs the code its tags name (only for
    # files you trust); by default only plain values are read from it (see gradtts.scoring.encoders).
    encoder_trust_yaml: bool = False
    # auto (CUDA when present, else CPU) | cpu | cuda[:N]; gradtts.device
    device: str = field(default="auto", metadata={CHOICES: DEVICES})
    cache_dir: str | None = None       # None: ~/.cache/gradtts/embeddings (or $GRADTTS_CACHE)
    overwrite: bool = False
    # The target's own recordings of the generated sentences (data dir or folder, by utterance id): adds fidelity.json.
    ref_same_text: str | None = None
    # What to compute (gradtts.scoring.metrics.METRICS), e.g. [similarity,quality]; None: all four whose packages
    # are installed (quality: speechmos + onnxruntime; intelligibility: pocketsphinx + jiwer, the eval extra).
    metrics: list[str] | None = None
    # intelligibility's recogniser: pocketsphinx (bundled model) | whisper (needs asr_source=PATH of a .pt file)
    asr: str = field(default=DEFAULT_ASR, metadata={CHOICES: ASR_KINDS})
    asr_source: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)   # copied into summary.json: loss, p, step, seed, pair


# Hydra settings: the job runs in out_dir with no .hydra/ folder beside its tables (output_subdir null), and
# relative paths keep meaning the caller's directory (chdir false).
HYDRA_SETTINGS = {"run": {"dir": "${out_dir}"}, "output_subdir": None, "job": {"chdir": False}}


@functools.cache  # once per process: the ConfigStore is process-wide
def register_config() -> None:
    """Register config ``score`` (schema :class:`ScoreConfig`) in Hydra's ConfigStore; the job logs to the console
    only, so that ``out_dir`` keeps only its tables."""
    from gradtts.config import store_command_config

    store_command_config("score", ScoreConfig, HYDRA_SETTINGS, log_file=False)


def audio_files(path: str | Path) -> list[Path]:
    """Audio of a data dir (its ``wav.scp``) or of a folder (sorted), failing when there is none."""
    path = Path(path)
    if (path / "wav.scp").is_file():
        from gradtts.data.datadir import read_datadir

        d = read_datadir(path)
        files = [Path(d.wavs[u]) for u in d.utts]
    elif path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith("."))
    else:
        raise FileNotFoundError(f"{path}: neither a data dir nor a folder of audio")
    if not files:
        raise FileNotFoundError(f"{path}: no audio files found")
    return files


def _digests(files: list[Path]) -> dict[str, str]:
    from gradtts.digest import file_digest

    return {f.name: file_digest(f) for f in files}


def recordings_by_utt(path: str | Path) -> dict[str, Path]:
    """Utterance id -> audio file of a data dir (its ``wav.scp`` ids) or of a folder (file stems)."""
    path = Path(path)
    if (path / "wav.scp").is_file():
        from gradtts.data.datadir import read_datadir

        d = read_datadir(path)
        return {u: Path(d.wavs[u]) for u in d.utts}
    return {f.stem: f for f in audio_files(path)}


def score_fidelity(gen_dir: str | Path, ref_same_text: str | Path, out_dir: str | Path, overwrite: bool = False,
                   cache: dict | None = None) -> dict:
    """MCD and log-F0 RMSE of every generated ``<utt>.wav`` against the target's recording of ``utt``.

    Writes ``out_dir/fidelity.json`` (means, per-utterance rows, settings and a cache key of every file's
    digest and the analysis settings); an existing file with the same key is returned as it is. ``cache``
    keeps reference analyses across calls (see :func:`gradtts.scoring.fidelity.fidelity`).
    """
    from gradtts.io import atomic_write_text
    from gradtts.layout import FIDELITY_FILE
    from gradtts.scoring.fidelity import analysis_settings, fidelity

    gen = audio_files(gen_dir)
    refs = recordings_by_utt(ref_same_text)
    missing = [f.name for f in gen if f.stem not in refs]
    if missing:
        raise FileNotFoundError(f"{ref_same_text}: no recording of the generated utterance(s) {missing[:3]} "
                                f"(it has {len(refs)}: {sorted(refs)[:3]}...); ref_same_text must hold the target's "
                                "recordings of the sentences that were synthesised (EXP/fewshot/<pair>/ref_test)")
    used = {f.stem: refs[f.stem] for f in gen}
    key = {"gen": _digests(gen), "ref": _digests(list(used.values())), "settings": analysis_settings()}
    file = Path(out_dir) / FIDELITY_FILE
    if file.is_file() and not overwrite:
        try:
            old = json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            old = {}
        if old.get("key") == key:
            return old
        log.info("%s: stale (generated or reference audio changed): measuring again", file)
    res = fidelity(gen_dir, used, utts=[f.stem for f in gen], cache=cache)
    # File names, not paths: the summary is committed and must not carry one machine's directories.
    rows = [{**r, "gen": Path(r["gen"]).name, "ref": Path(r["ref"]).name} for r in res["rows"]]
    out = {"mean": res["mean"], "n_utts": res["n_utts"], "rows": rows, "settings": res["settings"], "key": key}
    file.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(file, json.dumps(out, indent=2) + "\n")
    return out


def score(cfg: ScoreConfig, announce: bool = True) -> dict:
    """Run the scoring; returns the summary (also written to ``out_dir/summary.json``).

    The device (``cfg.device``) is resolved first, so that a device that cannot be had fails before anything
    is read; ``announce`` logs it (a caller scoring many directories logs it once). A new summary records the
    device its embeddings were computed on.
    """
    import numpy as np

    from gradtts.device import resolve_device
    from gradtts.io import atomic_write_text, write_csv
    from gradtts.scoring import load_speaker_encoder
    from gradtts.scoring.similarity import centroid, cosine_to

    device = resolve_device(cfg.device, setting="device", announce=announce)
    out = Path(cfg.out_dir)
    gen = audio_files(cfg.gen_dir)
    refs = {"T": cfg.ref_target, **({"C": cfg.ref_intruder} if cfg.ref_intruder else {})}
    ref_files = {role: audio_files(ref) for role, ref in refs.items()}
    key = {"encoder": cfg.encoder, "encoder_source": cfg.encoder_source, "gen": _digests(gen),
           **{f"ref_{role}": _digests(files) for role, files in ref_files.items()}}
    file = out / "summary.json"
    if file.is_file() and not cfg.overwrite:
        try:
            old = json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            old = {}
        if old.get("key") == key:
            merged = {**old, **dict(cfg.meta)}
            if merged != old:
                atomic_write_text(file, json.dumps(merged, indent=2) + "\n")
            return merged
        log.info("%s: stale (encoder, generated or reference audio changed): rescoring", file)
    enc = load_speaker_encoder(cfg.encoder, cfg.encoder_source, device, cfg.cache_dir,
                               trust_yaml=cfg.encoder_trust_yaml)
    e_gen = enc.embed_files(gen, progress=True)
    cos = {}
    for role, files in ref_files.items():
        cos[role] = cosine_to(e_gen, centroid(enc.embed_files(files, progress=True)))
    rows = [{"file": str(f), **{f"cos_{r}": float(c[i]) for r, c in cos.items()}} for i, f in enumerate(gen)]
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "scores.csv", rows)
    summary = {"S_T": float(np.mean(cos["T"])), "S_C": float(np.mean(cos["C"])) if "C" in cos else None,
               "n_gen": len(gen), "encoder": cfg.encoder, "device": str(device), "gen_dir": str(cfg.gen_dir),
               **dict(cfg.meta), "key": key}
    atomic_write_text(file, json.dumps(summary, indent=2) + "\n")
    return summary


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


def stage_metrics(cfg: ScoreConfig) -> list[str]:
    """The metrics ``cfg`` asks for (:func:`gradtts.scoring.metrics.resolve_metrics`); fidelity only with a
    ``ref_same_text`` (an error when it is asked for explicitly without one)."""
    from gradtts.scoring.metrics import MetricsError, resolve_metrics

    metrics = resolve_metrics(cfg.metrics, cfg.asr)
    if "fidelity" in metrics and not cfg.ref_same_text:
        if cfg.metrics is not None:
            raise MetricsError("metrics: fidelity needs ref_same_text=<the target's recordings of the generated "
                               "sentences> (EXP/fewshot/<pair>/ref_test); give it or leave fidelity out")
        metrics.remove("fidelity")
    if "intelligibility" in metrics and not (Path(cfg.gen_dir) / SYNTH_RECORD).is_file():
        # The texts of the wavs come from their synthesis record; wavs made elsewhere have none.
        if cfg.metrics is not None:
            raise MetricsError(f"metrics: intelligibility needs {Path(cfg.gen_dir) / SYNTH_RECORD} (the text of each "
                               "wav, written by gradtts-synth); synthesise with gradtts-synth or leave it out")
        log.info("intelligibility not computed: %s has no %s (the texts of its wavs)", cfg.gen_dir, SYNTH_RECORD)
        metrics.remove("intelligibility")
    return metrics


def score_metrics(cfg: ScoreConfig, metrics: list[str], asr: Any = None, fid_cache: dict | None = None) -> dict:
    """The metrics other than similarity for ``cfg.gen_dir`` (after :func:`score` wrote ``summary.json``).

    ``fidelity.json`` (with ``cfg.ref_same_text``), ``quality.json`` and ``intelligibility.json`` as ``metrics``
    lists, each reused while its key matches; the quality and intelligibility means go into ``summary.json``.
    ``asr``: a :class:`gradtts.scoring.metrics.ASRHandle` (one per stage: the model loads once, when needed).
    Returns ``{metric: its result}``.
    """
    from gradtts.scoring.metrics import (ASRHandle, merge_summary_means, score_intelligibility, score_quality,
                                         summary_means, synth_texts)

    out: dict[str, dict] = {}
    if "fidelity" in metrics and cfg.ref_same_text:
        out["fidelity"] = score_fidelity(cfg.gen_dir, cfg.ref_same_text, cfg.out_dir, cfg.overwrite, fid_cache)
    files = {f.stem: f for f in audio_files(cfg.gen_dir)}
    if "quality" in metrics:
        out["quality"] = score_quality(files, cfg.out_dir, cfg.overwrite)
    if "intelligibility" in metrics:
        asr = asr or ASRHandle(cfg.asr, cfg.asr_source)
        out["intelligibility"] = score_intelligibility(files, synth_texts(cfg.gen_dir), cfg.out_dir, asr,
                                                       cfg.overwrite)
    merge_summary_means(cfg.out_dir, summary_means(out.get("quality"), out.get("intelligibility")))
    return out


def main() -> None:
    """Console entry ``gradtts-score``; bad input ends with one ``gradtts-score: error: ...`` line, status 2."""
    from omegaconf import OmegaConf

    from gradtts.config import cli_errors
    from gradtts.scoring.metrics import ASRHandle

    with cli_errors("gradtts-score"):  # errors before Hydra starts (e.g. no conf/ directory)
        from gradtts.config import hydra_entry

        @hydra_entry("score", register_config)
        def _run(cfg) -> None:
            with cli_errors("gradtts-score"):
                c = ScoreConfig(**OmegaConf.to_container(cfg, resolve=True))
                metrics = stage_metrics(c)
                # Checked before anything is scored (asr=whisper without a checkpoint fails here).
                asr = ASRHandle(c.asr, c.asr_source) if "intelligibility" in metrics else None
                summary = score(c)
                if asr is not None:
                    asr.device = summary["device"]  # Whisper computes where the embeddings did
                res = score_metrics(c, metrics, asr)
            fid, q, w = res.get("fidelity"), res.get("quality"), res.get("intelligibility")
            log.info("S_T=%.4f%s over %d files -> %s", summary["S_T"],
                     f" S_C={summary['S_C']:.4f}" if summary.get("S_C") is not None else "", summary["n_gen"],
                     cfg.out_dir)
            if fid is not None:
                log.info("fidelity: MCD %.2f dB, log-F0 RMSE %.0f cents over %d utterances", fid["mean"]["mcd_db"],
                         fid["mean"]["log_f0_rmse_cents"], fid["n_utts"])
            if q is not None:
                log.info("quality: DNSMOS OVRL %s over %d utterances", _fmt(q["mean"]["ovrl"]), q["n_utts"])
            if w is not None:
                log.info("intelligibility: WER %s, CER %s over %d utterances (%s)", _fmt(w["mean"]["wer"]),
                         _fmt(w["mean"]["cer"]), w["n_utts"], w["settings"]["asr"]["asr"])

    _run()


if __name__ == "__main__":
    main()
