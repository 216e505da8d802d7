"""Corrupted few-shot sets: counts, nesting, held-out sets and failures before writing."""

import json
import math

import pytest

from data_prep.fewshot import FewShotError, make_fewshot
from gradtts.data.datadir import DataDir, read_datadir, write_datadir


def _corpus(tmp_path, n_t=45, n_c=25):
    d = DataDir()
    for spk, n in (("T", n_t), ("C", n_c), ("X", 5)):
        for i in range(n):
            d.add(f"{spk}_{i:03d}", spk, f"/audio/{spk}_{i:03d}.wav", f"sentence {i} spoken by {spk.lower()}")
    write_datadir(tmp_path / "all", d)
    return tmp_path / "all"


def test_sets_are_nested_counted_and_labelled(tmp_path):
    src = _corpus(tmp_path)
    plan = make_fewshot(src, tmp_path / "fs", "T", "C", n=20, seed=3)
    sets = {p: read_datadir(tmp_path / "fs" / f"p{p:.2f}") for p in (0.0, 0.15, 0.30, 0.45)}
    corrupt_sets = []
    for p, d in sets.items():
        k = math.ceil(p * 20)
        assert len(d.utts) == 20 and set(d.utt2spk.values()) == {"T"}
        assert len(d.corrupt) == k == plan["n_corrupt"][f"p{p:.2f}"]
        assert all(u.startswith("T-intruder-C_") and d.wavs[u].startswith("/audio/C_") for u in d.corrupt)
        assert all(not d.wavs[u].startswith("/audio/C_") for u in set(d.utts) - d.corrupt)
        corrupt_sets.append(d.corrupt)
    assert [len(c) for c in corrupt_sets] == [0, 3, 6, 9]
    assert corrupt_sets[1] <= corrupt_sets[2] <= corrupt_sets[3]
    clean_kept = [set(d.utts) - d.corrupt for d in sets.values()]
    assert clean_kept[3] <= clean_kept[2] <= clean_kept[1] <= clean_kept[0]
    ref_t, ref_c = read_datadir(tmp_path / "fs" / "ref_target"), read_datadir(tmp_path / "fs" / "ref_intruder")
    used = set().union(*(set(d.wavs.values()) for d in sets.values()))
    assert len(ref_t.utts) == len(ref_c.utts) == 10
    assert not used & set(ref_t.wavs.values()) and not used & set(ref_c.wavs.values())
    tests = (tmp_path / "fs" / "test_texts.txt").read_text().splitlines()
    fewshot_texts = set().union(*(set(d.texts.values()) for d in sets.values()))
    assert len(tests) == 10 and not {t.split(" ", 1)[1] for t in tests} & fewshot_texts
    saved = json.loads((tmp_path / "fs" / "fewshot.json").read_text())
    assert saved["target"] == "T" and saved["n_corrupt"]["p0.45"] == 9
    # Same seed, same sets.
    make_fewshot(src, tmp_path / "fs2", "T", "C", n=20, seed=3)
    assert (tmp_path / "fs2" / "p0.30" / "text").read_text() == (tmp_path / "fs" / "p0.30" / "text").read_text()


@pytest.mark.parametrize("kwargs, message", [
    (dict(target="Q", intruder="C"), "target speaker 'Q' is not in the data dir"),
    (dict(target="T", intruder="T"), "must be different"),
    (dict(target="X", intruder="C"), "target X has 5 utterances; 20 few-shot + 10 reference + 10 test = 40"),
    (dict(target="T", intruder="X"), "intruder X has 5 utterances; p=0.45 of N=20 needs 9 intruder items + 10"),
    (dict(target="T", intruder="C", fractions=[0, 1.2]), "fractions must lie in [0, 1)"),
])
def test_impossible_requests_fail_before_writing(tmp_path, kwargs, message):
    src = _corpus(tmp_path)
    with pytest.raises(FewShotError) as err:
        make_fewshot(src, tmp_path / "out", n=20, **kwargs)
    assert message in str(err.value)
    assert not (tmp_path / "out").exists()


def test_dissimilar_selection_takes_the_least_similar_intruder_items(tmp_path):
    import numpy as np

    src = _corpus(tmp_path)

    class Toy:  # a deterministic stand-in embedding (2-D), standing for any speaker encoder's output
        def embed_files(self, paths):
            out = []
            for p in paths:
                i = int(str(p)[-7:-4])
                out.append([1.0, 0.0] if "/T_" in str(p) else [np.cos(i / 10), np.sin(i / 10)])
            return np.array(out)

    plan = make_fewshot(src, tmp_path / "fs", "T", "C", n=20, seed=0, selection="dissimilar", encoder=Toy())
    angles = [int(u[-3:]) for u in plan["intruders"]]
    assert angles == sorted(angles, reverse=True)[:len(angles)]


def test_split_is_seeded_by_the_pair_not_the_target_alone(tmp_path):
    """Each (target, intruder) pair draws its own clean set, so pairs sharing a target are not one sample."""
    d = DataDir()
    for spk, n in (("T", 45), ("C", 25), ("D", 25)):
        for i in range(n):
            d.add(f"{spk}_{i:03d}", spk, f"/audio/{spk}_{i:03d}.wav", f"sentence {i} spoken by {spk.lower()}")
    write_datadir(tmp_path / "all", d)
    a = make_fewshot(tmp_path / "all", tmp_path / "tc", "T", "C", n=20, seed=0)
    b = make_fewshot(tmp_path / "all", tmp_path / "td", "T", "D", n=20, seed=0)
    assert a["fewshot"] != b["fewshot"] and a["test"] != b["test"]
    assert make_fewshot(tmp_path / "all", tmp_path / "tc2", "T", "C", n=20, seed=0)["fewshot"] == a["fewshot"]
