"""Voice identification: does a multi-speaker base model speak in its own training voices?

    python -m gradtts.scoring.voiceid CKPT DATA_DIR OUT_DIR [--n-ref 6] [--n-texts 3] [--voices sv000,sv001]
                                      [--n-timesteps 10] [--temperature 1.5] [--vocoder hifigan] [--device cpu]

DATA_DIR is a Kaldi data dir with recordings of the checkpoint's voices, ideally sentences the model was
not trained on. For synthvox bases (trained on ``--seed 0`` sentences) a held-out set of the same voices is

    python -m data_prep.synthvox DATA_DIR --voices 24 --utts-per-voice 10 --seed 1

(voice k's recipe depends only on k; ``--seed`` only changes the sentences, which are a prefix of a
per-voice sequence, so ``--seed 0`` would repeat the training sentences).

For each voice (default: every speaker of the checkpoint's ``spk2id`` found in DATA_DIR), in sorted
utterance order, the first ``n_ref`` utterances are its references and the texts of the next ``n_texts``
are synthesised in that voice (probability-flow ODE, batch 1, noise seeded by utterance id as in
``gradtts.synth``, then HiFi-GAN). Everything is embedded with the GE2E encoder. With M[v, u] the mean over
v's generated utterances of the cosine to the centroid of u's references:

    S_own = mean_v M[v, v]      S_other = mean_v mean_{u != v} M[v, u]      margin = S_own - S_other

top-1 accuracy per voice (argmax_u M[v, u] == v) and per utterance (its nearest centroid is its voice's);
chance is 1 / n_voices. The same numbers for the real recordings of the synthesised texts are the
ceiling ("generated X vs real Y").

Writes ``OUT_DIR/voiceid.json`` (settings, numbers, matrices, per-voice and per-utterance rows),
``OUT_DIR/voiceid.tsv`` (one row per voice) and prints a markdown summary. Generated wavs stay in
``OUT_DIR/wav/<voice>/<utt>.wav`` with ``OUT_DIR/wav/synth.json``; a rerun with the same settings and
checkpoint digest reuses them, any difference regenerates them.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from gradtts.logs import setup_logging
from gradtts.scoring.similarity import centroid, cosine_to

log = logging.getLogger(__name__)

SEED = 0              # noise seed of every generated utterance (with its id): reruns are identical
RECORD = "synth.json"
VOCODERS = ("hifigan", "griffinlim")  # no "auto": a silent Griffin-Lim fallback would ruin the numbers


# ---- arithmetic -----------------------------------------------------------------------------------------

def voice_id_scores(voices: Sequence[str], gen: Mapping[str, np.ndarray], refs: Mapping[str, np.ndarray]
                    ) -> dict[str, Any]:
    """Similarity matrix, S_own / S_other / margin and top-1 accuracies of embeddings ``gen[v]`` ``[n_v, D]``.

    ``refs[v]`` ``[m_v, D]`` are voice v's reference embeddings (their normalised mean is its centroid).
    Returns the summary numbers, ``matrix`` (rows: generated voice, columns: reference voice), one row
    per voice and, per voice, each utterance's cosine to its own centroid and its nearest voice.
    """
    voices = list(voices)
    n = len(voices)
    if n < 2:
        raise ValueError(f"voice identification needs at least two voices, got {voices}")
    cents = np.stack([centroid(refs[v]) for v in voices])
    # cos[v][i, u]: utterance i of voice v against the centroid of voice u.
    cos = {v: np.stack([cosine_to(gen[v], c) for c in cents], axis=1) for v in voices}
    matrix = np.stack([cos[v].mean(0) for v in voices])
    own = np.diag(matrix)
    other = (matrix.sum(1) - own) / (n - 1)
    hits = [cos[v].argmax(1) == i for i, v in enumerate(voices)]
    rows, utts = [], {}
    for i, v in enumerate(voices):
        others = matrix[i].copy()
        others[i] = -np.inf
        j = int(others.argmax())
        rows.append({"voice": v, "own": float(own[i]), "other_mean": float(other[i]),
                     "best_other_voice": voices[j], "best_other": float(matrix[i, j]),
                     # ties count in the voice's favour: only strictly closer voices rank above it
                     "rank": 1 + int((matrix[i] > own[i]).sum()), "top1": bool(matrix[i].argmax() == i),
                     "n_utts": int(len(hits[i])), "utt_top1": int(hits[i].sum())})
        utts[v] = [{"own": float(cos[v][k, i]), "nearest_voice": voices[int(cos[v][k].argmax())]}
                   for k in range(len(cos[v]))]
    all_hits = np.concatenate(hits)
    return {"S_own": float(own.mean()), "S_other": float(other.mean()), "margin": float(own.mean() - other.mean()),
            "top1_voice": float(np.mean([r["top1"] for r in rows])), "top1_utt": float(all_hits.mean()),
            "n_voices": n, "n_utts": int(len(all_hits)), "chance": 1.0 / n,
            "matrix": matrix.tolist(), "rows": rows, "utts": utts}


# ---- selection ------------------------------------------------------------------------------------------

def select_voices(spk2id: Mapping[str, int], spk2utt: Mapping[str, list[str]], voices: Sequence[str] | None,
                  n_ref: int, n_texts: int, ckpt: str | Path, data_dir: str | Path
                  ) -> dict[str, tuple[list[str], list[str]]]:
    """``voice -> (reference utts, utts whose texts are synthesised)``, after checking every voice at once."""
    if n_ref < 1 or n_texts < 1:
        raise ValueError(f"--n-ref {n_ref} --n-texts {n_texts}: both must be at least 1")
    if voices is None:
        voices = sorted(v for v in spk2id if v in spk2utt)
        if not voices:
            raise ValueError(f"{data_dir}: none of the checkpoint's voices {sorted(spk2id)[:24]} has recordings "
                             f"here (speakers: {sorted(spk2utt)[:24]})")
    unknown = [v for v in voices if v not in spk2id]
    if unknown:
        raise ValueError(f"{ckpt}: voice(s) {', '.join(unknown)} not in the checkpoint's spk2id "
                         f"({', '.join(sorted(spk2id)[:24])}{' ...' if len(spk2id) > 24 else ''})")
    need = n_ref + n_texts
    short = [f"{v} has {len(spk2utt.get(v, []))}" + ("" if v in spk2utt else " (not a speaker there)")
             for v in voices if len(spk2utt.get(v, [])) < need]
    if short:
        raise ValueError(f"{data_dir}: each voice needs n_ref + n_texts = {n_ref} + {n_texts} = {need} utterances; "
                         + ", ".join(short))
    if len(set(voices)) < 2:
        raise ValueError(f"voice identification needs at least two voices, got {list(voices)}")
    return {v: (spk2utt[v][:n_ref], spk2utt[v][n_ref:need]) for v in dict.fromkeys(voices)}


# ---- synthesis ------------------------------------------------------------------------------------------

def _load_record(wav_dir: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """Per-utterance entries of the wav cache when made with ``settings``; otherwise clear it."""
    from gradtts.digest import differences

    file = wav_dir / RECORD
    if not file.is_file():
        return {}
    try:
        old = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        old = {}
    if old.get("settings") == settings:
        return dict(old.get("utts") or {})
    diff = differences(old.get("settings") or {}, settings)
    log.warning("%s: made with other settings, regenerating (%s)", wav_dir, "; ".join(diff[:4]) or "unreadable record")
    for key in old.get("utts") or {}:  # the old wavs are not ours to reuse; do not leave them looking current
        (wav_dir / f"{key}.wav").unlink(missing_ok=True)
    file.unlink()
    return {}


def synthesize_voices(model, info, plan: Mapping[str, list[tuple[str, str]]], out: Path, settings: dict[str, Any],
                      dictionary, vocoder) -> tuple[dict[str, list[Path]], int]:
    """Generated wavs ``OUT/wav/<voice>/<utt>.wav`` for ``plan[voice] = [(utt, text)]``; (paths, n written).

    Reuses wavs whose record entry matches (same settings, voice, row and text); the record is rewritten
    after each voice, so a killed run resumes where it stopped.
    """
    from gradtts.audio import write_wav
    from gradtts.io import atomic_write_text
    from gradtts.model.inference import synthesize_mels
    from gradtts.synth import HOP, SAMPLE_RATE, join_pieces, piece_seeds, resolve_speaker, split_text
    from gradtts.text import BLANK_ID, intersperse, text_to_sequence

    wav_dir = out / "wav"
    utts = _load_record(wav_dir, settings)
    gap = np.zeros(int(round(settings["pause"] * SAMPLE_RATE / HOP)) * HOP, np.float32)
    paths: dict[str, list[Path]] = {}
    written = 0
    for voice, items in plan.items():
        spk = resolve_speaker(voice, info, int(model.n_spks))
        paths[voice] = []
        for utt, text in items:
            key = f"{voice}/{utt}"
            path = wav_dir / f"{key}.wav"
            paths[voice].append(path)
            rec = utts.get(key) or {}
            if path.is_file() and rec.get("text") == text and rec.get("speaker_row") == spk:
                continue
            pieces = split_text(text, settings["max_chars"])
            try:
                tokens = [intersperse(text_to_sequence(p, dictionary), BLANK_ID) for p in pieces]
            except ValueError as exc:
                raise ValueError(f"text of {utt} ({voice}): {exc}") from exc
            seeds = piece_seeds(SEED, utt, len(pieces))
            # batch 1: the official single-utterance computation (batches see each other's padding)
            mels = synthesize_mels(model, tokens, seeds, spk, settings["n_timesteps"], settings["temperature"],
                                   batch_size=1)
            wavs = [vocoder(m.unsqueeze(0))[0, :m.shape[-1] * HOP].numpy() for m in mels]
            write_wav(path, join_pieces(wavs, gap), SAMPLE_RATE)
            utts[key] = {"voice": voice, "speaker_row": spk, "text": text,
                         "frames": int(sum(m.shape[-1] for m in mels)),  # of the pieces, without pauses
                         "noise_seed": seeds if len(seeds) > 1 else seeds[0]}
            written += 1
        atomic_write_text(wav_dir / RECORD, json.dumps({"settings": settings, "utts": utts}, indent=1) + "\n")
    return paths, written


# ---- the tool -------------------------------------------------------------------------------------------

def _n_spks(info, sd) -> int:
    from gradtts.model.checkpoint import infer_config

    cfg = info.config if info.kind != "official" else infer_config(sd)
    return int(cfg.get("n_spks") or 1)


def run_voiceid(ckpt: str | Path, data_dir: str | Path, out_dir: str | Path, n_ref: int = 6, n_texts: int = 3,
                voices: Sequence[str] | None = None, n_timesteps: int = 10, temperature: float = 1.5,
                vocoder: str = "hifigan", device: str = "cpu") -> dict[str, Any]:
    """Synthesise, embed and score (see the module docstring); returns what ``voiceid.json`` holds."""
    from gradtts.data.datadir import read_datadir
    from gradtts.io import atomic_write_text
    from gradtts.model.checkpoint import load_checkpoint, read_checkpoint
    from gradtts.scoring import load_speaker_encoder
    from gradtts.synth import SynthConfig, resolve_dictionary
    from gradtts.digest import file_digest
    from gradtts.vocoder.frontend import load_vocoder

    t0 = time.perf_counter()
    ckpt, data_dir, out = Path(ckpt), Path(data_dir), Path(out_dir)
    if vocoder not in VOCODERS:
        raise ValueError(f"--vocoder {vocoder}: choose {' or '.join(VOCODERS)}")
    sd, info = read_checkpoint(ckpt)
    n_spks = _n_spks(info, sd)
    del sd
    if n_spks <= 1:
        raise ValueError(f"{ckpt}: a single-speaker checkpoint (n_spks={n_spks}); voice identification needs a "
                         "multi-speaker base model")
    if not info.spk2id:
        raise ValueError(f"{ckpt}: has {n_spks} speaker rows but no speaker names (spk2id), so its voices cannot "
                         "be matched to the speakers of a data dir")
    data = read_datadir(data_dir)
    split = select_voices(info.spk2id, data.spk2utt, voices, n_ref, n_texts, ckpt, data_dir)
    dictionary = resolve_dictionary(None, info)
    voc, _, voc_record = load_vocoder(vocoder, None, device)
    settings = {"checkpoint": ckpt.name, "checkpoint_sha256": file_digest(ckpt), "step": info.step,
                "n_timesteps": n_timesteps, "temperature": temperature, "stoc": False, "length_scale": 1.0,
                "batch_size": 1, "seed": SEED, "max_chars": SynthConfig.max_chars, "pause": SynthConfig.pause,
                "dictionary": dictionary.source_id, "vocoder": voc_record}
    model, info = load_checkpoint(ckpt, device=device)
    plan = {v: [(u, data.texts[u]) for u in texts] for v, (_, texts) in split.items()}
    gen_paths, written = synthesize_voices(model, info, plan, out, settings, dictionary, voc)
    del model
    t_synth = time.perf_counter()

    enc = load_speaker_encoder("ge2e", device=device)
    vs = list(split)
    # One call for every file: the encoder batches them and caches by content.
    files = ([Path(data.wavs[u]) for v in vs for u in split[v][0]] + [p for v in vs for p in gen_paths[v]]
             + [Path(data.wavs[u]) for v in vs for u in split[v][1]])
    emb = enc.embed_files(files)
    k = 0
    parts: list[dict[str, np.ndarray]] = []
    for sizes in ({v: n_ref for v in vs}, {v: n_texts for v in vs}, {v: n_texts for v in vs}):
        part = {}
        for v in vs:
            part[v] = emb[k:k + sizes[v]]
            k += sizes[v]
        parts.append(part)
    refs, gen, real = parts
    scores = {"generated": voice_id_scores(vs, gen, refs), "real": voice_id_scores(vs, real, refs)}
    t_end = time.perf_counter()

    summary_keys = ("S_own", "S_other", "margin", "top1_voice", "top1_utt", "n_voices", "n_utts", "chance")
    real_rows = {r["voice"]: r for r in scores["real"]["rows"]}
    result = {
        "settings": {**settings, "checkpoint_path": str(ckpt), "data_dir": str(data_dir), "n_ref": n_ref,
                     "n_texts": n_texts, "voices": vs, "encoder": "ge2e", "encoder_key": enc.cache_key,
                     "device": device},
        **{kind: {k: s[k] for k in summary_keys} for kind, s in scores.items()},
        "voices": [{**row, "references": split[row["voice"]][0], "texts": split[row["voice"]][1],
                    "real": {k: v for k, v in real_rows[row["voice"]].items() if k != "voice"}}
                   for row in scores["generated"]["rows"]],
        "utterances": [{"voice": v, "utt": u, "text": data.texts[u], "wav": str(p.relative_to(out)),
                        "generated": scores["generated"]["utts"][v][i], "real": scores["real"]["utts"][v][i]}
                       for v in vs for i, (u, p) in enumerate(zip(split[v][1], gen_paths[v]))],
        "matrix": {"voices": vs, "generated": scores["generated"]["matrix"], "real": scores["real"]["matrix"]},
        "wavs": {"written": written, "reused": sum(len(p) for p in gen_paths.values()) - written},
        "timing_s": {"synthesis": round(t_synth - t0, 1), "embedding_and_scoring": round(t_end - t_synth, 1),
                     "total": round(t_end - t0, 1)},
    }
    atomic_write_text(out / "voiceid.json", json.dumps(result, indent=1) + "\n")
    cols = ("voice", "own", "best_other_voice", "best_other", "rank", "utt_top1", "real_own", "real_best_other_voice",
            "real_best_other", "real_rank")
    lines = ["\t".join(cols)]
    for row in result["voices"]:
        r = row["real"]
        lines.append("\t".join([row["voice"], f"{row['own']:.4f}", row["best_other_voice"], f"{row['best_other']:.4f}",
                                str(row["rank"]), f"{row['utt_top1']}/{row['n_utts']}", f"{r['own']:.4f}",
                                r["best_other_voice"], f"{r['best_other']:.4f}", str(r["rank"])]))
    atomic_write_text(out / "voiceid.tsv", "\n".join(lines) + "\n")
    return result


def markdown(result: Mapping[str, Any]) -> str:
    """A short markdown summary: generated vs real, S_own / S_other / margin / top-1."""
    st = result["settings"]
    head = (f"Voice identification of {st['checkpoint']} ({len(st['voices'])} voices, {st['n_ref']} references + "
            f"{st['n_texts']} texts each; GE2E; {st['vocoder']['name']}, {st['n_timesteps']} steps, "
            f"temperature {st['temperature']})")
    lines = [head, "", "| speech | S_own | S_other | margin | top-1 voices | top-1 utterances |",
             "|---|---|---|---|---|---|"]
    for kind, label in (("generated", "generated"), ("real", "real (ceiling)")):
        s = result[kind]
        n_top = round(s["top1_voice"] * s["n_voices"])
        n_utt = round(s["top1_utt"] * s["n_utts"])
        lines.append(f"| {label} | {s['S_own']:.3f} | {s['S_other']:.3f} | {s['margin']:.3f} | "
                     f"{n_top}/{s['n_voices']} ({100 * s['top1_voice']:.0f} %) | "
                     f"{n_utt}/{s['n_utts']} ({100 * s['top1_utt']:.0f} %) |")
    lines += ["", f"Chance: {100 * result['generated']['chance']:.0f} %. Per voice: voiceid.tsv."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gradtts.scoring.voiceid", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ckpt", help="multi-speaker checkpoint with speaker names (spk2id)")
    p.add_argument("data_dir", help="Kaldi data dir with recordings of the checkpoint's voices")
    p.add_argument("out_dir")
    p.add_argument("--n-ref", type=int, default=6, help="reference utterances per voice (default 6)")
    p.add_argument("--n-texts", type=int, default=3, help="texts synthesised per voice (default 3)")
    p.add_argument("--voices", default=None, help="comma-separated speaker names (default: every one in both)")
    p.add_argument("--n-timesteps", type=int, default=10)
    p.add_argument("--temperature", type=float, default=1.5)
    p.add_argument("--vocoder", default="hifigan", choices=VOCODERS)
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    setup_logging()
    from gradtts.config import cli_errors

    with cli_errors("gradtts.scoring.voiceid"):
        voices = [v for v in a.voices.split(",") if v] if a.voices else None
        result = run_voiceid(a.ckpt, a.data_dir, a.out_dir, a.n_ref, a.n_texts, voices, a.n_timesteps,
                             a.temperature, a.vocoder, a.device)
    print(markdown(result))
    t = result["timing_s"]
    log.info("%d wavs generated, %d reused; %s s -> %s", result["wavs"]["written"], result["wavs"]["reused"],
             t["total"], Path(a.out_dir) / "voiceid.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
