"""Voice files: a few-shot voice as LoRA adapters plus its new speaker rows, on top of a named base checkpoint.

A voice file is a dict saved with ``torch.save`` (loadable with ``weights_only=True``)::

    {"format": "gradtts-voice", "version": 1,
     "lora": {key: tensor},                 # adapter tensors, keys of GradTTS.state_dict()
     "lora_config": {"rank", "alpha", "targets", "modules"},
     "speakers": [new speaker ids in row order], "spk_rows": Tensor[k, spk_emb_dim],
     "spk2id": {speaker: id in the adapted model},
     "base": {"path", "sha256", "n_spks"}, "dictionary", "step", "config"}

Everything else of the adapted model is the base checkpoint's, which :func:`save_voice` checks, and
which :func:`load_voice` finds by its path and verifies by its sha256. ``python -m gradtts.train.voice
info VOICE`` describes a file; ``merge VOICE --out MERGED.pt`` writes a plain checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from gradtts.digest import file_digest
from gradtts.io import atomic_torch_save
from gradtts.model.checkpoint import (CheckpointError, CheckpointInfo, load_checkpoint, load_torch_file,
                                     read_checkpoint, save_checkpoint)
from gradtts.model.gradtts import GradTTS
from gradtts.model.lora import inject_lora, load_lora_state_dict, lora_info, lora_state_dict, merge_lora
from gradtts.model.lora import plain_state_dict
from gradtts.train.adapt import add_speaker_rows

FORMAT = "gradtts-voice"
VERSION = 1
#: What to pass when the base recorded in a voice file has moved.
BASE_HINT = "pass the base checkpoint's path: load_voice(..., base_path=PATH), or --base PATH on the command line"


class VoiceError(CheckpointError):
    """A voice file that cannot be written or loaded; the message says why and what to do."""


def _new_speakers(spk2id: dict[str, int], n_base: int, n_spks: int) -> list[str]:
    """Names of rows ``n_base .. n_spks - 1``, one per row, in row order."""
    by_row: dict[int, list[str]] = {}
    for spk, i in spk2id.items():
        if i >= n_base:
            by_row.setdefault(int(i), []).append(spk)
    rows = range(n_base, n_spks) if n_spks > 1 else range(0)
    bad = [f"row {i}: {by_row.get(i, [])}" for i in rows if len(by_row.get(i, [])) != 1]
    bad += [f"row {i} (the model has {n_spks})" for i in by_row if i not in rows]
    if bad:
        raise VoiceError(f"spk2id must name each new speaker row {n_base}..{n_spks - 1} exactly once: "
                         + "; ".join(bad))
    return [by_row[i][0] for i in rows]


def _check_rest_is_base(model: GradTTS, base_sd: dict[str, torch.Tensor], n_base: int, base_path: Path) -> None:
    """The model must equal its base outside the adapters and the new rows, or the voice would lose that."""
    own = {k: v.detach().cpu() for k, v in plain_state_dict(model, merged=False).items()}
    if set(own) != set(base_sd):
        extra, missing = sorted(set(own) - set(base_sd)), sorted(set(base_sd) - set(own))
        raise VoiceError(f"{base_path} is not this model's base: keys only in the model {extra[:5]}, only in the "
                         f"base {missing[:5]}; {BASE_HINT}")
    changed = []
    for k, v in own.items():
        b = base_sd[k]
        if k == "spk_emb.weight":
            v = v[:n_base]
        if v.shape != b.shape or not torch.equal(v, b.to(v.dtype)):
            changed.append(k)
    if changed:
        raise VoiceError(f"the model differs from its base {base_path} outside the LoRA adapters and new speaker "
                         f"rows ({len(changed)} tensors: {', '.join(changed[:6])}{' ...' if len(changed) > 6 else ''})"
                         "; a voice file keeps only adapters and new rows, so freeze those parts or save a full "
                         "checkpoint instead")


def save_voice(path: str | os.PathLike, model: GradTTS, *, base_path: str | os.PathLike, n_base_spks: int,
               spk2id: dict[str, int], dictionary: str | None = None, step: int | None = None) -> Path:
    """Write the voice of a LoRA-injected, speaker-extended ``model`` fine-tuned from ``base_path``; returns the path.

    ``spk2id`` is the adapted model's speaker map (base and new speakers); rows ``>= n_base_spks`` are
    the new ones and each must be named once. Raises :class:`VoiceError` if the model has no adapters
    or differs from the base anywhere else (a trained encoder, say), which the file could not hold.
    """
    base_path = Path(base_path)
    info = lora_info(model.decoder.estimator)
    if not info["modules"]:
        raise VoiceError("the model has no LoRA adapters (inject_lora(model.decoder.estimator, rank) before "
                         "training); save a full checkpoint instead")
    n_spks = model.n_spks
    if not (1 <= n_base_spks <= n_spks) or (n_spks == 1) != (n_base_spks == 1):
        raise VoiceError(f"n_base_spks={n_base_spks} does not fit a model with {n_spks} speaker rows")
    speakers = _new_speakers(dict(spk2id), n_base_spks, n_spks)
    base_sd, _ = read_checkpoint(base_path)
    _check_rest_is_base(model, base_sd, n_base_spks, base_path)
    if n_spks > 1:
        rows = model.spk_emb.weight[n_base_spks:].detach().cpu().clone()
    else:
        rows = torch.zeros(0, model.spk_emb_dim)
    payload = {
        "format": FORMAT, "version": VERSION,
        "lora": {k: v.detach().cpu().clone() for k, v in lora_state_dict(model).items()},
        "lora_config": {k: info[k] for k in ("rank", "alpha", "targets", "modules")},
        "speakers": speakers, "spk_rows": rows, "spk2id": {str(k): int(v) for k, v in spk2id.items()},
        "base": {"path": str(base_path.resolve()), "sha256": file_digest(base_path), "n_spks": int(n_base_spks)},
        "dictionary": dictionary, "step": None if step is None else int(step), "config": dict(model.config)}
    atomic_torch_save(payload, path)
    return Path(path)


def read_voice(path: str | os.PathLike) -> dict[str, Any]:
    """The payload of a voice file, checked for its format and version."""
    path = Path(path)
    obj = load_torch_file(path, "voice file", VoiceError)
    if not (isinstance(obj, dict) and obj.get("format") == FORMAT):
        raise VoiceError(f"{path}: not a voice file (no format '{FORMAT}'); a full checkpoint loads with "
                         "gradtts.model.checkpoint.load_checkpoint")
    if obj.get("version") != VERSION:
        raise VoiceError(f"{path}: voice file version {obj.get('version')!r}, this code reads version {VERSION}")
    return obj


def is_voice_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a voice file; reads only the pickle (tensors are memory-mapped, not loaded)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return False  # missing, unreadable, or an old non-zip torch file: not one of ours
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def load_voice(voice_path: str | os.PathLike, base_path: str | os.PathLike | None = None, *, merge: bool = True,
               device: str | torch.device = "cpu") -> tuple[GradTTS, CheckpointInfo]:
    """The adapted model of a voice file: its base, plus the new speaker rows and the adapters.

    ``base_path`` overrides the base path recorded in the file (its sha256 must still match). With
    ``merge`` (default) the adapters are folded in and the model is a plain ``GradTTS``; without, they
    stay as :class:`~gradtts.model.lora.LoRAConv2d` wrappers. Returns ``(model in eval mode, info)``
    with ``info.kind == "gradtts-voice"`` and ``info.extra`` holding ``n_base_spks``, ``new_speakers``,
    ``base`` (the path used) and ``lora_config``. The global RNG is left as it was.
    """
    voice_path = Path(voice_path)
    v = read_voice(voice_path)
    rec = v["base"]
    if base_path is None:
        base_path = Path(rec["path"])
        if not base_path.is_file():
            raise VoiceError(f"{voice_path}: its base checkpoint {base_path} is missing; {BASE_HINT}")
    base_path = Path(base_path)
    if not base_path.is_file():
        raise VoiceError(f"{voice_path}: base checkpoint {base_path} not found; {BASE_HINT}")
    digest = file_digest(base_path)
    if digest != rec["sha256"]:
        raise VoiceError(f"{voice_path}: {base_path} is not the base this voice was trained on (sha256 "
                         f"{digest[:12]}..., the voice records {rec['sha256'][:12]}... of {rec['path']}); {BASE_HINT}")
    cfg = dict(v["config"])
    n_base = int(rec["n_spks"])
    # The recorded config also carries what a base file does not store (pe_scale of an official checkpoint).
    base, binfo = load_checkpoint(base_path, **dict(cfg, n_spks=n_base))
    model = add_speaker_rows(base, len(v["speakers"]))
    if v["speakers"]:
        with torch.no_grad():
            model.spk_emb.weight[n_base:] = v["spk_rows"].to(model.spk_emb.weight)
    lc = v["lora_config"]
    with torch.random.fork_rng(devices=[]):  # the adapters' random init is overwritten: keep the caller's RNG
        names = inject_lora(model.decoder.estimator, int(lc["rank"]), float(lc["alpha"]), lc["targets"])
    if names != list(lc["modules"]):
        raise VoiceError(f"{voice_path}: its adapters sit on other modules than this code's LoRA targets "
                         f"{lc['targets']} give (a different version of gradtts.model.lora made it)")
    try:
        load_lora_state_dict(model, v["lora"])
    except ValueError as exc:
        raise VoiceError(f"{voice_path}: {exc}") from None
    if merge:
        merge_lora(model)
    spk2id = {**binfo.spk2id, **v["spk2id"]}
    info = CheckpointInfo(voice_path, FORMAT, dict(model.config), v["dictionary"] or binfo.dictionary, spk2id,
                          v["step"], {"n_base_spks": n_base, "new_speakers": list(v["speakers"]),
                                      "base": dict(rec, path=str(base_path)), "lora_config": dict(lc),
                                      "merged": merge})
    return model.to(device).eval(), info


def merge_voice(voice_path: str | os.PathLike, out_path: str | os.PathLike,
                base_path: str | os.PathLike | None = None) -> Path:
    """Write a plain ``gradtts-adapt`` checkpoint (base + new speakers, adapters folded in); returns its path."""
    model, info = load_voice(voice_path, base_path, merge=True)
    save_checkpoint(out_path, model, dictionary=info.dictionary, spk2id=info.spk2id, step=info.step,
                    n_base_spks=info.extra["n_base_spks"], new_speakers=info.extra["new_speakers"],
                    merged_from=Path(voice_path).name, lora=info.extra["lora_config"])
    return Path(out_path)


def describe_voice(path: str | os.PathLike) -> str:
    """A few lines on a voice file: size, adapters, speakers, base."""
    v = read_voice(path)
    size = Path(path).stat().st_size
    lc, base = v["lora_config"], v["base"]
    n = sum(t.numel() for t in v["lora"].values())
    return (f"{path}: {size:,} bytes ({size / 1024:.1f} KiB), step {v['step']}, dictionary {v['dictionary']!r}\n"
            f"  LoRA rank {lc['rank']}, alpha {lc['alpha']:g}, targets {'+'.join(lc['targets'])}: "
            f"{len(lc['modules'])} convs, {n:,} adapter parameters\n"
            f"  new speakers ({len(v['speakers'])}): {', '.join(v['speakers']) or '-'}\n"
            f"  base: {base['path']} (sha256 {base['sha256'][:12]}..., {base['n_spks']} speakers)")


def main(argv: list[str] | None = None) -> int:
    """``python -m gradtts.train.voice info VOICE`` or ``merge VOICE [--base BASE] --out MERGED.pt``."""
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="python -m gradtts.train.voice",
                                description="Inspect a LoRA voice file or merge it into a plain checkpoint.")
    sub = p.add_subparsers(dest="cmd", required=True)
    i = sub.add_parser("info", help="print what a voice file holds")
    i.add_argument("voice")
    m = sub.add_parser("merge", help="voice + base -> a checkpoint that load_checkpoint opens")
    m.add_argument("voice")
    m.add_argument("--base", default=None, help="base checkpoint (default: the path recorded in the voice)")
    m.add_argument("--out", required=True, help="the merged checkpoint to write")
    a = p.parse_args(argv)
    try:
        if a.cmd == "info":
            print(describe_voice(a.voice))
        else:
            out = merge_voice(a.voice, a.out, a.base)
            print(f"{out}: {out.stat().st_size / 2 ** 20:.1f} MiB")
    except (CheckpointError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)  # stdout holds the command's output only
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
