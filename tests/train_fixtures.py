"""Tiny seeded features dirs for the training and synthesis tests (not a test module)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gradtts.text import BLANK_ID


def make_feats(root: Path, speakers: dict[str, int], seed: int = 0, corrupt: set[str] = frozenset(),
               frames_per_token: tuple[int, int] = (2, 4), n_tokens: tuple[int, int] = (6, 14),
               dictionary: str = "test-dictionary") -> Path:
    """A features dir whose mels are a per-token, per-speaker pattern plus noise (learnable, seeded).

    ``speakers`` maps speaker name -> number of utterances; utterance ids are ``<spk>_<n>``.
    """
    rng = np.random.default_rng(seed)
    table = rng.normal(0, 1.5, size=(150, 80)).astype(np.float32) - 5.0
    root = Path(root)
    (root / "mels").mkdir(parents=True, exist_ok=True)
    lines = []
    for spk, n in speakers.items():
        offset = rng.normal(0, 1.0, size=(80, 1)).astype(np.float32)
        intruder = offset + rng.normal(0, 3.0, size=(80, 1)).astype(np.float32)
        for k in range(n):
            utt = f"{spk}_{k:03d}"
            ids = rng.integers(1, 148, size=int(rng.integers(*n_tokens))).tolist()
            tokens = [BLANK_ID] * (2 * len(ids) + 1)
            tokens[1::2] = ids
            durs = rng.integers(frames_per_token[0], frames_per_token[1] + 1, size=len(ids))
            mel = np.concatenate([np.repeat(table[i][:, None], d, axis=1) for i, d in zip(ids, durs)], axis=1)
            shift = intruder if utt in corrupt else offset  # a corrupt item sounds like another voice
            mel = (mel + shift + 0.1 * rng.normal(size=mel.shape)).astype(np.float32)
            np.save(root / "mels" / f"{utt}.npy", mel)
            lines.append({"utt": utt, "spk": spk, "text": "x", "tokens": tokens, "mel": f"mels/{utt}.npy",
                          "frames": int(mel.shape[1]), "corrupt": utt in corrupt})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (root / "meta.json").write_text(json.dumps({"dictionary": dictionary, "add_blank": True, "mel": {}}))
    return root


def smoke_overrides(feats: Path, out: Path, *extra: str) -> list[str]:
    return ["experiment=smoke", f"data.feats_dir={feats}", f"trainer.out_dir={out}", *extra]


def save_tiny_base(path: Path, dictionary: str = "test-dictionary", seed: int = 0) -> Path:
    """A seeded tiny multi-speaker base checkpoint (speakers a, b, c) in our format, for fine-tuning tests."""
    import torch

    from gradtts.model.checkpoint import save_checkpoint
    from gradtts.model.config import build_model
    from gradtts.train.cli import compose

    torch.manual_seed(seed)
    model = build_model(compose(["data.feats_dir=x", "model=tiny"]).model, n_spks=3)
    save_checkpoint(path, model, dictionary=dictionary, spk2id={"a": 0, "b": 1, "c": 2}, step=1000)
    return Path(path)
