"""Training data: manifest checks, bucketed sampler (deterministic, resumable, sharded), collate."""

import json
from collections import Counter

import numpy as np
import pytest
import torch

from gradtts.data.manifest import ManifestError, read_manifest
from gradtts.train.data import BucketBatchSampler, MelDataset, collate
from train_fixtures import make_feats


def test_manifest_reads_items_and_meta(tmp_path):
    feats = make_feats(tmp_path / "f", {"a": 3, "b": 2}, corrupt={"b_001"})
    man = read_manifest(feats)
    assert [it.utt for it in man.items] == ["a_000", "a_001", "a_002", "b_000", "b_001"]
    assert man.speakers == ["a", "b"] and man.dictionary == "test-dictionary"
    assert [it.corrupt for it in man.items] == [False, False, False, False, True]
    assert read_manifest(feats / "manifest.jsonl").items[0].mel == feats / "mels/a_000.npy"


def test_manifest_errors_name_file_and_line(tmp_path):
    feats = make_feats(tmp_path / "f", {"a": 3})
    lines = (feats / "manifest.jsonl").read_text().splitlines()
    bad = json.loads(lines[1])
    bad["mel"] = "mels/missing.npy"
    lines[1] = json.dumps(bad)
    lines.append("{not json")
    lines.append(json.dumps({"utt": "a_000", "spk": "a", "tokens": [1], "mel": "mels/a_000.npy", "frames": 3}))
    (feats / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError) as err:
        read_manifest(feats)
    msg = str(err.value)
    assert "3 bad line(s)" in msg
    assert "manifest.jsonl:2: mel file" in msg and "missing.npy" in msg and "'a_001'" in msg
    assert "manifest.jsonl:4: not JSON" in msg
    assert "manifest.jsonl:5: utterance 'a_000' repeats line 1" in msg
    with pytest.raises(ManifestError, match="features manifest not found"):
        read_manifest(tmp_path / "nowhere")


def test_dataset_checks_mel_shape(tmp_path):
    feats = make_feats(tmp_path / "f", {"a": 2})
    man = read_manifest(feats)
    np.save(feats / "mels/a_001.npy", np.zeros((80, 3), np.float32))
    ds = MelDataset(man.items, {"a": 0})
    idx, tokens, mel, spk = ds[0]
    assert idx == 0 and mel.shape == (80, man.items[0].frames) and spk == 0 and tokens[0].item() == 148
    with pytest.raises(ManifestError, match=r"a_001.npy: mel of utterance 'a_001' has shape \(80, 3\)"):
        ds[1]


def test_collate_pads_to_multiple_of_four(tmp_path):
    feats = make_feats(tmp_path / "f", {"a": 3})
    man = read_manifest(feats)
    ds = MelDataset(man.items, {"a": 0})
    b = collate([ds[0], ds[1], ds[2]])
    frames = [it.frames for it in man.items]
    assert b["y"].shape[-1] % 4 == 0 and b["y"].shape[-1] - max(frames) in range(4)
    assert b["y_lengths"].tolist() == frames and b["index"].tolist() == [0, 1, 2]
    for i, it in enumerate(man.items):
        assert torch.equal(b["y"][i, :, :it.frames], torch.from_numpy(np.load(it.mel)))
        assert (b["y"][i, :, it.frames:] == 0).all() and (b["x"][i, b["x_lengths"][i]:] == 0).all()


def test_bucket_sampler_is_deterministic_bucketed_and_resumable():
    rng = np.random.default_rng(0)
    lengths = rng.integers(20, 400, size=103).tolist()
    s = BucketBatchSampler(lengths, batch_size=8, seed=5, bucket_batches=4)
    e0 = s.epoch_batches(0)
    assert e0 == BucketBatchSampler(lengths, 8, seed=5, bucket_batches=4).epoch_batches(0)
    assert e0 != s.epoch_batches(1)
    assert sorted(i for b in e0 for i in b) == list(range(103))           # every item once per epoch
    assert sorted(len(b) for b in e0)[0] == 103 % 8 and sum(len(b) == 8 for b in e0) == 103 // 8
    # Bucketing: batches are length-sorted runs of a bucket, so their spread is far below random batches'.
    spread = np.mean([np.ptp([lengths[i] for i in b]) for b in e0 if len(b) == 8])
    assert spread < 0.5 * np.mean([np.ptp(rng.choice(lengths, 8)) for _ in range(200)])
    s.set_position(1, 5)
    assert list(s) == s.epoch_batches(1)[5:] and len(s) == len(e0) - 5
    assert len(BucketBatchSampler(lengths, 8, bucket_batches=4, drop_last=True).epoch_batches(0)) == 103 // 8


def test_bucket_sampler_shards_ranks_equally_and_small_sets_are_one_batch():
    lengths = list(range(10, 33))  # 23 items, buckets of 8, batch 4 -> 6 batches -> 2 per rank for 3 ranks
    ranks = [BucketBatchSampler(lengths, 4, seed=1, bucket_batches=2, rank=r, world=3) for r in range(3)]
    per = [r.rank_batches(0) for r in ranks]
    assert [len(p) for p in per] == [2, 2, 2]
    assert sorted(i for p in per for b in p for i in b) == list(range(23))
    small = BucketBatchSampler([5, 6, 7], batch_size=16, seed=0)
    assert [sorted(b) for b in small.epoch_batches(0)] == [[0, 1, 2]]


def test_few_shot_sampler_reshuffles_equal_full_batches():
    # 20 clips sorted by length, batch 8: one bucket (32 * 8 >= 20). Sorting it would make the 4
    # longest clips a batch of their own in every epoch; instead each epoch is 2 permutations = 5 batches.
    lengths = list(range(100, 2100, 100))
    s = BucketBatchSampler(lengths, batch_size=8, seed=3)
    epochs = [s.epoch_batches(e) for e in range(6)]
    assert all(len(e) == 5 for e in epochs)
    assert all(len(b) == 8 and len(set(b)) == 8 for e in epochs for b in e)      # full, no clip twice
    for e in epochs:                                                             # each clip twice per epoch
        assert Counter(i for b in e for i in b) == {i: 2 for i in range(20)}
    assert {frozenset(b) for b in epochs[0]} != {frozenset(b) for b in epochs[1]}
    longest = set(range(16, 20))
    together = [any(longest <= set(b) for b in e) for e in epochs]
    assert not all(together) and sum(together) <= 2
    # Deterministic in (seed, epoch), different for another seed.
    assert epochs[2] == BucketBatchSampler(lengths, 8, seed=3).epoch_batches(2)
    assert epochs[2] != BucketBatchSampler(lengths, 8, seed=4).epoch_batches(2)
    # Mid-epoch resume yields the remaining batches of that epoch.
    s.set_position(3, 2)
    assert list(s) == epochs[3][2:] and len(s) == 3
    s.set_position(4)
    assert list(s) == epochs[4]


def test_few_shot_sampler_balances_awkward_sizes_and_ranks():
    # (clips, batch, ranks): permutation boundaries inside batches; batch = whole set; sharded.
    for n, batch, world in [(9, 8, 1), (10, 8, 1), (13, 5, 1), (8, 8, 1), (20, 8, 2), (23, 4, 3), (6, 16, 2)]:
        ranks = [BucketBatchSampler(list(range(n, 0, -1)), batch, seed=7, rank=r, world=world) for r in range(world)]
        size = min(batch, n)
        for epoch in range(3):
            per = [r.rank_batches(epoch) for r in ranks]
            assert len({len(p) for p in per}) == 1                               # ranks take equally many
            batches = [b for p in per for b in p]
            assert all(len(b) == size and len(set(b)) == size for b in batches), (n, batch, world)
            counts = Counter(i for b in batches for i in b)
            assert sorted(counts) == list(range(n)) and len(set(counts.values())) == 1, (n, batch, world)
    assert [sorted(b) for b in BucketBatchSampler([3, 1, 2], 8, seed=0).epoch_batches(5)] == [[0, 1, 2]]
