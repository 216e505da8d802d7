"""Training data: the dataset over a features manifest, a resumable (bucketed) batch sampler and the collate.

The manifest itself (``FEATS_DIR/manifest.jsonl`` + ``meta.json``) is read and checked by
:func:`gradtts.data.manifest.read_manifest`.
"""

from __future__ import annotations

import math
from typing import Iterator, Sequence

import numpy as np
import torch

from gradtts.data.manifest import ManifestEntry, ManifestError
from gradtts.model.masks import fix_len_compatibility


class MelDataset(torch.utils.data.Dataset):
    """Items as ``(index, tokens LongTensor [T_x], mel FloatTensor [80, frames], speaker id)``."""

    def __init__(self, items: Sequence[ManifestEntry], spk2id: dict[str, int], n_feats: int = 80):
        self.items = list(items)
        self.spk2id = spk2id
        self.n_feats = n_feats

    def __len__(self) -> int:
        return len(self.items)

    @property
    def lengths(self) -> list[int]:
        return [it.frames for it in self.items]

    def __getitem__(self, index: int):
        it = self.items[index]
        try:
            mel = np.load(it.mel)
        except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same clear message
            raise ManifestError(f"{it.mel}: cannot read the mel of utterance {it.utt!r} ({exc})") from exc
        if mel.ndim != 2 or mel.shape[0] != self.n_feats or mel.shape[1] != it.frames:
            raise ManifestError(f"{it.mel}: mel of utterance {it.utt!r} has shape {mel.shape}, the manifest "
                                f"says [{self.n_feats}, {it.frames}]; re-run the feature stage")
        return (index, torch.tensor(it.tokens, dtype=torch.long), torch.from_numpy(np.asarray(mel, np.float32)),
                self.spk2id[it.spk])


def collate(batch) -> dict:
    """Pad tokens with 0 and mels with 0 up to a multiple of 4 frames (the U-Net halves time twice)."""
    index, tokens, mels, spks = zip(*batch)
    x_lengths = torch.tensor([len(t) for t in tokens], dtype=torch.long)
    y_lengths = torch.tensor([m.shape[-1] for m in mels], dtype=torch.long)
    x = torch.zeros(len(batch), int(x_lengths.max()), dtype=torch.long)
    y = torch.zeros(len(batch), mels[0].shape[0], fix_len_compatibility(int(y_lengths.max())), dtype=torch.float32)
    for i, (t, m) in enumerate(zip(tokens, mels)):
        x[i, :len(t)] = t
        y[i, :, :m.shape[-1]] = m
    return {"index": torch.tensor(index, dtype=torch.long), "x": x, "x_lengths": x_lengths, "y": y,
            "y_lengths": y_lengths, "spk": torch.tensor(spks, dtype=torch.long)}


class BucketBatchSampler(torch.utils.data.Sampler):
    """Shuffled batches, length-bucketed for large sets; deterministic in (seed, epoch) and resumable mid-epoch.

    A set larger than one bucket (``batch_size * bucket_batches`` items), each epoch: a seeded
    permutation, cut into buckets, each bucket sorted by length and cut into batches, then the batch
    order shuffled (one pass over the set; the last batch of a bucket may be smaller).

    A set that fits in one bucket (a few-shot set) is not sorted: sorting would put the same longest
    clips together in every epoch, in a smaller batch that gets a large share of the updates. Its
    epoch is instead ``k`` fresh seeded permutations concatenated and cut into batches of exactly
    ``batch_size``, where ``k`` is the least number that makes the batch count a multiple of
    ``batch_size * world``; every clip is then seen exactly ``k`` times per epoch, and batch
    membership changes from epoch to epoch. Where a batch straddles two permutations, the head of the
    next permutation is reordered so that no clip appears twice in it. With ``batch_size`` at least
    the set size, the batch is the whole set, once per epoch.

    Under data-parallel training every rank takes every ``world``-th batch (the list is padded by
    repeating batches so that ranks get equally many). :meth:`set_position` picks the epoch and the
    number of this rank's batches already consumed.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0, bucket_batches: int = 32,
                 drop_last: bool = False, rank: int = 0, world: int = 1):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.lengths = np.asarray(lengths)
        self.batch_size = min(batch_size, len(self.lengths))
        self.seed = seed
        self.bucket = max(1, bucket_batches) * self.batch_size
        self.drop_last = drop_last
        self.rank, self.world = rank, world
        self.epoch, self.start = 0, 0

    @property
    def one_bucket(self) -> bool:
        """Whether the set fits in one bucket and gets equal-size, reshuffled batches."""
        return len(self.lengths) <= self.bucket

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """All batches of ``epoch`` across ranks, in order."""
        rng = np.random.default_rng([self.seed, epoch])
        if len(self.lengths) == 0:
            return []
        if self.one_bucket:
            batches = self._balanced_batches(rng)
        else:
            batches = self._bucketed_batches(rng)
        if self.world > 1 and len(batches) % self.world:
            batches += batches[:self.world - len(batches) % self.world]
        return batches

    def _bucketed_batches(self, rng: np.random.Generator) -> list[list[int]]:
        """One pass over a large set: length-sorted batches of shuffled buckets, in shuffled order."""
        perm = rng.permutation(len(self.lengths))
        batches = []
        for s in range(0, len(perm), self.bucket):
            chunk = perm[s:s + self.bucket]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches += [chunk[i:i + self.batch_size].tolist() for i in range(0, len(chunk), self.batch_size)]
        if self.drop_last and len(batches) > 1 and len(batches[-1]) < self.batch_size:
            batches.pop()
        order = rng.permutation(len(batches))
        return [batches[i] for i in order]

    def _balanced_batches(self, rng: np.random.Generator) -> list[list[int]]:
        """``k`` permutations of a small set cut into full batches, no clip twice in a batch."""
        n, b = len(self.lengths), self.batch_size  # b <= n (batch_size is capped at the set size)
        # The least k with k * n a multiple of b * world: equal counts per clip and per rank, no padding.
        k = b * self.world // math.gcd(n, b * self.world)
        seq: list[int] = []
        for _ in range(k):
            perm = rng.permutation(n).tolist()
            tail = len(seq) % b  # clips of the previous permutation in the batch that straddles
            if tail:
                # That batch takes b - tail clips from this permutation: the first ones not in its
                # tail (there are n - tail >= b - tail), the rest keep their order.
                taken = set(seq[-tail:])
                head = [i for i in perm if i not in taken][:b - tail]
                chosen = set(head)
                perm = head + [i for i in perm if i not in chosen]
            seq += perm
        return [seq[i:i + b] for i in range(0, len(seq), b)]

    def set_position(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def rank_batches(self, epoch: int) -> list[list[int]]:
        return self.epoch_batches(epoch)[self.rank::self.world]

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.rank_batches(self.epoch)[self.start:]

    def __len__(self) -> int:
        return max(0, len(self.rank_batches(self.epoch)) - self.start)
