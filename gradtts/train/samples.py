"""TensorBoard samples during training: target vs generated mel image and the vocoded audio."""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)

_VOCODERS: dict = {}


def _vocoder(kind: str | None, device):
    if not kind or kind == "none":
        return None
    key = (kind, str(device))
    if key not in _VOCODERS:
        from gradtts.vocoder.frontend import load_vocoder

        try:
            _VOCODERS[key] = load_vocoder(kind, None, device)[0]
        except Exception as exc:  # noqa: BLE001 - samples are optional; training goes on
            log.warning("no vocoder for TensorBoard audio (%s); logging mel images only", exc)
            _VOCODERS[key] = None
    return _VOCODERS[key]


def _figure(target: torch.Tensor, generated: torch.Tensor):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(8, 5))
    for ax, mel, title in zip(axes, (target, generated), ("recording", "generated")):
        im = ax.imshow(mel.numpy(), origin="lower", aspect="auto", interpolation="none")
        ax.set_title(title)
        fig.colorbar(im, ax=ax)
    fig.tight_layout()
    return fig


@torch.no_grad()
def log_samples(writer, model, dataset, step: int, n_timesteps: int, device, vocoder: str | None) -> None:
    """Synthesise the dataset's first item in its own voice; log the mels and (if a vocoder loads) audio."""
    from gradtts.audio import SAMPLE_RATE
    from gradtts.model.inference import synthesize_mels

    _, tokens, target, spk = dataset[0]
    mel = synthesize_mels(model, [tokens.tolist()], [0], spk if model.n_spks > 1 else None, n_timesteps)[0]
    writer.add_figure("mel/sample", _figure(target, mel), step)
    voc = _vocoder(vocoder, device)
    if voc is not None:
        wav = voc(mel.unsqueeze(0))[0]
        writer.add_audio("audio/generated", wav.clamp(-1, 1).unsqueeze(0), step, sample_rate=SAMPLE_RATE)
        if step == 0 or not getattr(writer, "_gradtts_ref_logged", False):
            ref = voc(target.unsqueeze(0))[0]
            writer.add_audio("audio/recording_vocoded", ref.clamp(-1, 1).unsqueeze(0), step, sample_rate=SAMPLE_RATE)
            writer._gradtts_ref_logged = True
