"""Stage 7's metrics beyond speaker similarity: which ones run, and their keyed per-directory files.

    metrics = resolve_metrics(["similarity", "quality"])      # None: all four whose packages are installed
    q = score_quality(gen_dir, out_dir)                         # out_dir/quality.json
    w = score_intelligibility(gen_dir, out_dir, ASRHandle())    # out_dir/intelligibility.json
    merge_summary_means(out_dir, {**quality_means(q), **intelligibility_means(w)})

``quality.json`` (DNSMOS, :mod:`gradtts.scoring.quality`) and ``intelligibility.json`` (ASR word and character
error rates, :mod:`gradtts.scoring.intelligibility`) sit beside ``summary.json`` as ``fidelity.json`` does: one row
per utterance, the means, the settings and a cache key. The key holds the content digest of every scored file and
the settings, and for intelligibility also the reference texts and the recogniser's identity (its package version,
or a Whisper checkpoint's digest); a file whose key matches is returned as it is, so a rerun on the same audio
recomputes nothing. The means also go into ``summary.json`` (``dnsmos_ovrl``, ``dnsmos_sig``, ``dnsmos_bak``,
``dnsmos_p808``, ``wer``, ``cer``) beside its own fields; its cache key (encoder and audio digests) is not touched,
so summaries made before these metrics stay valid.

The same two files, written for the target's real recordings of the test sentences (``ref_test/``) with
``kind: real``, are the ceiling the report reads the generated speech against.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import json
import logging
import math
from pathlib import Path
from typing import Any, Sequence

from gradtts.errors import UserError
from gradtts.scoring.intelligibility import DEFAULT_ASR

log = logging.getLogger(__name__)

#: What stage 7 can compute, in the order it runs them; ``metrics`` lists a subset (similarity always).
METRICS = ("similarity", "fidelity", "quality", "intelligibility")
QUALITY_FILE = "quality.json"
INTELLIGIBILITY_FILE = "intelligibility.json"
#: The modules each metric imports (the toolkit's ``eval`` extra installs them).
REQUIRES = {"quality": ("speechmos", "onnxruntime"), "intelligibility": ("pocketsphinx", "jiwer")}
INSTALL_HINT = 'pip install -e ".[eval]"'
#: summary.json field -> (file, key of its "mean").
SUMMARY_MEANS = {"dnsmos_ovrl": ("quality", "ovrl"), "dnsmos_sig": ("quality", "sig"),
                 "dnsmos_bak": ("quality", "bak"), "dnsmos_p808": ("quality", "p808"),
                 "wer": ("intelligibility", "wer"), "cer": ("intelligibility", "cer")}


class MetricsError(UserError):
    """A metric that was asked for and cannot be computed (unknown name, package or input missing)."""


def _missing_modules(names: Sequence[str]) -> list[str]:
    return [n for n in names if importlib.util.find_spec(n) is None]


def resolve_metrics(metrics: Sequence[str] | None, asr: str = DEFAULT_ASR) -> list[str]:
    """The metrics to compute, in :data:`METRICS` order.

    ``None`` (the default) is every metric whose packages are installed; each one left out says so in one INFO
    line. An explicit list must name known metrics, include ``similarity`` (``summary.json``, which every other
    file and the report hang on, is made of it), and its packages must be installed, else :class:`MetricsError`.
    """
    if metrics is not None and isinstance(metrics, str):
        metrics = [m for m in metrics.split(",") if m.strip()]
    explicit = metrics is not None
    wanted = list(METRICS) if metrics is None else [str(m).strip() for m in metrics]
    unknown = [m for m in wanted if m not in METRICS]
    if unknown:
        raise MetricsError(f"metrics: unknown {', '.join(unknown)}; choose from {', '.join(METRICS)}")
    if "similarity" not in wanted:
        raise MetricsError(f"metrics=[{','.join(wanted)}] lacks similarity: summary.json, which the other metrics' "
                           "means and the report hang on, is made of it; add it")
    out = []
    for m in METRICS:
        if m not in wanted:
            continue
        needs = REQUIRES.get(m, ()) + (("whisper",) if m == "intelligibility" and asr == "whisper" else ())
        missing = _missing_modules(needs)
        if missing and explicit:
            raise MetricsError(f"metrics: {m} needs the package(s) {', '.join(missing)}, which are not installed: "
                               f"{INSTALL_HINT} (or leave {m} out of metrics)")
        if missing:
            log.info("%s not computed: %s not installed (%s adds it)", m, ", ".join(missing), INSTALL_HINT)
            continue
        out.append(m)
    return out


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _digests(files: Sequence[Path]) -> dict[str, str]:
    from gradtts.digest import file_digest

    return {f.name: file_digest(f) for f in files}


def _none_if_nan(v: float | None) -> float | None:
    return None if v is None or math.isnan(v) else float(v)


def _cached(file: Path, key: dict, overwrite: bool) -> dict | None:
    """The stored result in ``file`` when its key is ``key`` (and not ``overwrite``), else None."""
    if not file.is_file() or overwrite:
        return None
    try:
        old = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        old = {}
    if isinstance(old, dict) and old.get("key") == key:
        return old
    log.info("%s: stale (audio, texts or settings changed): measuring again", file)
    return None


def _write(file: Path, data: dict) -> dict:
    from gradtts.io import atomic_write_text

    file.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(file, json.dumps(data, indent=2) + "\n")
    return data


# ---- quality (DNSMOS) ---------------------------------------------------------------------------------------
def quality_settings() -> dict[str, Any]:
    """What DNSMOS numbers depend on besides the audio (part of the cache key)."""
    from gradtts.scoring import quality

    return {"model": "DNSMOS P.835 + P.808 (speechmos ONNX)", "speechmos": _version("speechmos"),
            "onnxruntime": _version("onnxruntime"), "sample_rate": quality.SAMPLE_RATE,
            "min_seconds": quality.MIN_SECONDS}


def score_quality(files: dict[str, Path], out_dir: str | Path, overwrite: bool = False,
                  extra: dict | None = None) -> dict:
    """DNSMOS of each ``utt -> audio file`` into ``out_dir/quality.json`` (reused while its key matches).

    A clip DNSMOS cannot score (shorter than :data:`gradtts.scoring.quality.MIN_SECONDS`) gets a row with its
    reason and no scores, and the means are over the others. ``extra`` (e.g. ``kind``, ``pair``) is stored too.
    """
    from gradtts.scoring import quality

    utts = sorted(files)
    key = {"audio": _digests([files[u] for u in utts]), "settings": quality_settings()}
    file = Path(out_dir) / QUALITY_FILE
    old = _cached(file, key, overwrite)
    if old is not None:
        return old
    rows, scored = [], []
    for utt in utts:
        try:
            s = quality.dnsmos_files([files[utt]])[0]
        except quality.QualityAudioError as exc:
            log.warning("DNSMOS: %s", exc)
            rows.append({"utt": utt, "file": files[utt].name, **{f: None for f in quality.FIELDS},
                         "error": str(exc).replace(str(files[utt]), files[utt].name)})
            continue
        scored.append(s)
        rows.append({"utt": utt, "file": files[utt].name, **s})
    mean = {k: _none_if_nan(v) for k, v in quality.mean_scores(scored).items()}
    return _write(file, {**(extra or {}), "mean": mean, "n_utts": len(scored), "rows": rows,
                         "settings": key["settings"], "key": key})


# ---- intelligibility (ASR) ----------------------------------------------------------------------------------
class ASRHandle:
    """A recogniser named by ``kind`` (and ``source``), whose identity is known before it is loaded (for the
    cache key) and which is loaded at most once, on first use."""

    def __init__(self, kind: str = DEFAULT_ASR, source: str | None = None, device: str = "cpu"):
        from gradtts.scoring.intelligibility import ASR_KINDS

        if kind not in ASR_KINDS:
            raise MetricsError(f"asr={kind!r}: choose one of {', '.join(ASR_KINDS)}")
        if kind == "whisper" and not source:
            raise MetricsError("asr=whisper needs asr_source=<path of an OpenAI-format Whisper .pt checkpoint>")
        if kind == "pocketsphinx" and source:
            raise MetricsError(f"asr=pocketsphinx uses the model bundled in its wheel; leave out asr_source={source}")
        if source and not Path(source).is_file():
            raise MetricsError(f"asr_source={source}: no such Whisper checkpoint file")
        self.kind, self.source, self.device = kind, source, device

    @functools.cached_property
    def identity(self) -> dict[str, Any]:
        """What the transcripts depend on: the recogniser, its version, and a checkpoint's content digest."""
        if self.kind == "pocketsphinx":
            return {"asr": "pocketsphinx", "version": _version("pocketsphinx"), "model": "bundled en-US"}
        from gradtts.digest import file_digest

        return {"asr": "whisper", "version": _version("openai-whisper"), "checkpoint": Path(self.source).name,
                "sha256": file_digest(Path(self.source)), "decoding": "greedy, temperature 0, en, fp32"}

    @functools.cached_property
    def model(self):
        from gradtts.scoring.intelligibility import load_asr

        log.info("ASR: loading %s%s", self.kind, f" from {self.source}" if self.source else "")
        return load_asr(self.kind, self.source, device=self.device)


def synth_texts(gen_dir: str | Path) -> dict[str, str]:
    """``utt -> text`` of a synthesis directory, from its ``synth.json`` (the texts the wavs were made from)."""
    from gradtts.layout import SYNTH_RECORD

    file = Path(gen_dir) / SYNTH_RECORD
    if not file.is_file():
        raise MetricsError(f"{file}: missing; intelligibility needs the synthesis record (the text of each wav): "
                           "synthesise with gradtts-synth, or leave intelligibility out of metrics")
    utts = json.loads(file.read_text(encoding="utf-8")).get("utts") or {}
    return {u: str(rec["text"]) for u, rec in utts.items() if isinstance(rec, dict) and rec.get("text")}


def score_intelligibility(files: dict[str, Path], texts: dict[str, str], out_dir: str | Path, asr: ASRHandle,
                          overwrite: bool = False, extra: dict | None = None) -> dict:
    """ASR transcripts of each ``utt -> audio file`` against ``texts[utt]`` into ``out_dir/intelligibility.json``.

    Rows: text, transcript, and the utterance's WER and CER; ``mean``: the corpus-level rates (errors summed over
    sentences, over the summed reference length). Reused while the key (audio digests, texts, recogniser) matches.
    """
    from gradtts.scoring.intelligibility import transcribe_files, wer_cer

    utts = sorted(files)
    missing = [u for u in utts if u not in texts]
    if missing:
        raise MetricsError(f"no text for the utterance(s) {missing[:3]} (of {files[missing[0]].parent}); "
                           "intelligibility compares each wav's transcript with the text it was made from")
    key = {"audio": _digests([files[u] for u in utts]), "texts": {u: texts[u] for u in utts},
           "asr": asr.identity, "jiwer": _version("jiwer")}
    file = Path(out_dir) / INTELLIGIBILITY_FILE
    old = _cached(file, key, overwrite)
    if old is not None:
        return old
    hyps = transcribe_files([files[u] for u in utts], asr.model, progress=True)
    refs = [texts[u] for u in utts]
    rows = [{"utt": u, "file": files[u].name, "text": t, "transcript": h, **wer_cer([t], [h])}
            for u, t, h in zip(utts, refs, hyps)]
    mean = wer_cer(refs, hyps)
    return _write(file, {**(extra or {}), "mean": mean, "n_utts": len(rows), "rows": rows,
                         "settings": {"asr": asr.identity, "normalizer": "gradtts english_cleaners, punctuation "
                                      "removed (gradtts.scoring.intelligibility.normalize_text)"}, "key": key})


# ---- summary.json -------------------------------------------------------------------------------------------
def summary_means(quality: dict | None = None, intelligibility: dict | None = None) -> dict[str, float | None]:
    """The ``summary.json`` fields of the given results (see :data:`SUMMARY_MEANS`)."""
    have = {"quality": quality, "intelligibility": intelligibility}
    return {field: _none_if_nan((have[src].get("mean") or {}).get(k))
            for field, (src, k) in SUMMARY_MEANS.items() if have[src] is not None}


def merge_summary_means(out_dir: str | Path, means: dict[str, float | None]) -> None:
    """Add ``means`` to ``out_dir/summary.json`` (rewritten only when they change; its key is kept as it is)."""
    from gradtts.io import atomic_write_text

    if not means:
        return
    file = Path(out_dir) / "summary.json"
    old = json.loads(file.read_text(encoding="utf-8"))
    merged = {k: v for k, v in old.items() if k != "key"} | means | {"key": old.get("key")}
    if merged != old:
        atomic_write_text(file, json.dumps(merged, indent=2) + "\n")


def recordings(path: str | Path) -> tuple[dict[str, Path], dict[str, str]]:
    """``(utt -> audio, utt -> text)`` of a Kaldi data dir (the pair's ``ref_test``)."""
    from gradtts.data.datadir import read_datadir

    d = read_datadir(path)
    return {u: Path(d.wavs[u]) for u in d.utts}, {u: d.texts[u] for u in d.utts if u in d.texts}


def score_real(ref_test: str | Path, out_dir: str | Path, metrics: Sequence[str], asr: ASRHandle | None = None,
               overwrite: bool = False, pair: str | None = None) -> dict:
    """The ceiling: quality and intelligibility (as ``metrics`` lists) of the target's real recordings of the test
    sentences (``ref_test``: a data dir whose ``text`` gives the sentences), written to ``out_dir`` with ``kind:
    real``. Returns ``{metric: its result}``."""
    files, texts = recordings(ref_test)
    extra = {"kind": "real", "pair": pair}
    out = {}
    if "quality" in metrics:
        out["quality"] = score_quality(files, out_dir, overwrite, extra)
    if "intelligibility" in metrics:
        out["intelligibility"] = score_intelligibility(files, texts, out_dir, asr or ASRHandle(), overwrite, extra)
    return out
