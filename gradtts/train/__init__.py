"""Training engine: base training and few-shot fine-tuning of Grad-TTS (``gradtts-train``).

Modules: ``config`` (schema), ``data`` (manifest, dataset, bucketed sampler), ``adapt`` (speaker rows,
trainable parts), ``state`` (RNG, checkpoint dir), ``tracker`` (per-utterance residuals), ``ddp``,
``speed`` (bf16 autocast, compile), ``samples`` (TensorBoard), ``loop`` (the run), ``cli``.
"""

from gradtts.train.loop import NonFiniteLossError, Trainer, state_digest, train

__all__ = ["train", "Trainer", "NonFiniteLossError", "state_digest"]
