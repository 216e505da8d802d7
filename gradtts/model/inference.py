"""Batched inference with per-utterance seeded noise: token lists in, one mel per list out.

Each utterance's noise (the prior sample and, for the reverse SDE, every step's noise) is drawn from its
own CPU generator at its own length, so a mel depends on its seed and text, not on which other texts
share its batch, on the padding, or on the device's RNG. The model does the computation
(:meth:`GradTTS.synthesize`); this module only batches, seeds and cuts.
"""

from __future__ import annotations

from typing import Sequence

import torch

from gradtts.model.gradtts import GradTTS


class SeededNoise:
    """A noise source (:data:`gradtts.model.diffusion.NoiseSource`) with one seeded generator per utterance.

    Utterance i's draws are ``torch.randn(n_feats, frames_i)`` from ``Generator().manual_seed(seeds[i])``,
    in order (prior sample first, then one per SDE step); frames past its end are zero.
    """

    def __init__(self, seeds: Sequence[int]):
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]

    def __call__(self, shape: torch.Size, mask: torch.Tensor) -> torch.Tensor:
        if shape[0] != len(self.generators):
            raise ValueError(f"noise for a batch of {shape[0]} utterances, but {len(self.generators)} seeds")
        # Count the frames rather than sum the mask: a bf16 mask cannot sum to every length exactly.
        lengths = (mask != 0).reshape(shape[0], -1).sum(1).tolist()
        out = torch.zeros(shape[0], shape[1], shape[2])
        for i, (g, n) in enumerate(zip(self.generators, lengths)):
            out[i, :, :n] = torch.randn(shape[1], n, generator=g)
        return out


@torch.no_grad()
def synthesize_mels(model: GradTTS, token_lists: Sequence[Sequence[int]], seeds: Sequence[int],
                    spk: int | None = None, n_timesteps: int = 10, temperature: float = 1.5, stoc: bool = False,
                    length_scale: float = 1.0, batch_size: int = 16) -> list[torch.Tensor]:
    """Mels ``[n_feats, frames]`` (CPU float32) for interspersed token lists, in input order.

    Texts are batched longest first, ``batch_size`` at a time; utterance i's noise comes from
    ``seeds[i]`` (:class:`SeededNoise`). ``spk`` is the speaker row of a multi-speaker model (ignored by
    a single-speaker one).
    """
    if model.n_spks > 1 and spk is None:
        raise ValueError(f"the model has {model.n_spks} speakers: give a speaker")
    order = sorted(range(len(token_lists)), key=lambda i: -len(token_lists[i]))
    out: list[torch.Tensor | None] = [None] * len(token_lists)
    for s in range(0, len(order), max(1, batch_size)):
        idx = order[s:s + batch_size]
        x_lengths = torch.tensor([len(token_lists[i]) for i in idx], dtype=torch.long)
        x = torch.zeros(len(idx), int(x_lengths.max()), dtype=torch.long)
        for j, i in enumerate(idx):
            x[j, :len(token_lists[i])] = torch.as_tensor(token_lists[i], dtype=torch.long)
        spks = torch.full((len(idx),), int(spk), dtype=torch.long) if model.n_spks > 1 else None
        result = model.synthesize(x, x_lengths, n_timesteps, temperature, stoc, spks, length_scale,
                                  noise=SeededNoise([seeds[i] for i in idx]))
        for j, (i, n) in enumerate(zip(idx, result.lengths.tolist())):
            out[i] = result.mel[j, :, :n].float().cpu()
    return out  # type: ignore[return-value]
