"""Corrupted few-shot sets: counts, nesting, held-out sets and failures before writing."""

import json
import math

import pytest

from data_prep.fewshot import DEFAULT_FRACTIONS, FewShotError, make_fewshot
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


# ---------------------------------------------------------------- texts shared by target and intruder

def _fewshot_json_digest(out) -> str:
    import hashlib

    return hashlib.sha256((out / "fewshot.json").read_bytes()).hexdigest()


class _Toy:  # the deterministic 2-D embedding of the dissimilar-selection test above
    def embed_files(self, paths):
        import numpy as np

        return np.array([[1.0, 0.0] if "/T_" in str(p) else [np.cos(int(str(p)[-7:-4]) / 10),
                                                             np.sin(int(str(p)[-7:-4]) / 10)] for p in paths])


def test_clash_free_corpora_keep_the_draw_of_the_committed_studies(tmp_path):
    """Where no test sentence is read by a few-shot clip, the items are exactly those drawn before parallel-text
    support existed (the digests were computed with that code), so committed studies keep their manifests."""
    from data_prep.sentences import generate_sentences
    from data_prep.synthvox import voice_table

    src = _corpus(tmp_path)
    plan = make_fewshot(src, tmp_path / "seed3", "T", "C", n=20, seed=3)
    assert plan["test"] == ["T_004", "T_025", "T_012", "T_014", "T_043", "T_033", "T_020", "T_001", "T_042", "T_032"]
    assert plan["intruders"] == ["C_020", "C_005", "C_019", "C_008", "C_009", "C_002", "C_013", "C_007", "C_004"]
    assert _fewshot_json_digest(tmp_path / "seed3") == \
        "5dea77c3eb94f9aa779c6d510c0d559aef0b4f021f43199ef4268aba773abd3f"
    make_fewshot(src, tmp_path / "study", "T", "C", n=20, fractions=(0, .3), n_test=6, seed=0)
    assert _fewshot_json_digest(tmp_path / "study") == \
        "045d915162fff396573f30f687ffa7810c7fcec072f34348c44e8f2d1bc69231"
    make_fewshot(src, tmp_path / "dissim", "T", "C", n=20, seed=0, selection="dissimilar", encoder=_Toy())
    assert _fewshot_json_digest(tmp_path / "dissim") == \
        "0a08a80cfa91bcbefeb880df3e13eb6a66eba72d320f72a9c7f61fab5df4628e"
    # The synthvox study corpus (egs/synthvox --preset study: voices 24-33, 45 sentences each, seed 0), texts
    # only: the few-shot stage reads no audio.
    d = DataDir()
    for v in voice_table()[24:34]:
        for i, text in enumerate(generate_sentences(45, f"0-{v.index}")):
            d.add(f"{v.speaker}_{i:04d}", v.speaker, f"/wav/{v.speaker}/{v.speaker}_{i:04d}.wav", text)
    write_datadir(tmp_path / "sv", d)
    for pair, digest in (("sv028:sv029", "4be77d69a003e9c0a1d4a960d35af5e22da3b39dee89287e0d2f01bf738299e8"),
                         ("sv024:sv025", "ee7aeb9bfa15028e1102d9372883a4cc07b7fc94b98cdb720f792f989ef3b229")):
        t, c = pair.split(":")
        make_fewshot(tmp_path / "sv", tmp_path / pair, t, c, n=20, fractions=(0, .3), n_ref=10, n_test=6, seed=0)
        assert _fewshot_json_digest(tmp_path / pair) == digest, pair


def _tone(path, seconds: float = 0.05, sr: int = 16000):
    import numpy as np
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.1 * np.sin(2 * np.pi * 220 * np.arange(int(sr * seconds)) / sr)).astype(np.float32), sr)


def _prompts(n: int) -> list[str]:
    from data_prep.sentences import generate_sentences

    return generate_sentences(n, "parallel-prompts")


def _arctic(tmp_path, voices: dict[str, list[str]]):
    """A CMU ARCTIC layout (``cmu_us_<v>_arctic/etc/txt.done.data`` + ``wav/``) prepared by data_prep.arctic."""
    from data_prep import arctic

    root = tmp_path / "arctic"
    for name, texts in voices.items():
        voice = root / f"cmu_us_{name}_arctic"
        (voice / "etc").mkdir(parents=True)
        (voice / "etc" / "txt.done.data").write_text(
            "".join(f'( arctic_a{i:04d} "{t}" )\n' for i, t in enumerate(texts, 1)), encoding="utf-8")
        for i in range(1, len(texts) + 1):
            _tone(voice / "wav" / f"arctic_a{i:04d}.wav")
    assert arctic.main([str(root), str(tmp_path / "data")]) == 0
    return tmp_path / "data"


def _spoken_in_sets(out, fractions) -> set[str]:
    from data_prep.fewshot import normalise_text

    return {normalise_text(t) for p in fractions for t in read_datadir(out / f"p{p:.2f}").texts.values()}


def _test_sentences(out) -> list[str]:
    from data_prep.fewshot import normalise_text

    return [normalise_text(line.split(" ", 1)[1]) for line in (out / "test_texts.txt").read_text().splitlines()]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_parallel_text_corpus_gets_test_sentences_no_fewshot_clip_reads(tmp_path, seed):
    """CMU ARCTIC: both voices read the same prompt list (the old code refused every seed here)."""
    prompts = _prompts(45)
    src = _arctic(tmp_path, {"slt": prompts, "bdl": prompts})
    fractions = (0.0, 0.15, 0.30, 0.45)
    plan = make_fewshot(src, tmp_path / "fs", "slt", "bdl", n=20, fractions=fractions, n_ref=10, n_test=10, seed=seed)
    tests = _test_sentences(tmp_path / "fs")
    assert len(tests) == len(set(tests)) == 10
    assert not set(tests) & _spoken_in_sets(tmp_path / "fs", fractions)  # intruder clips included
    assert len(plan["fewshot"]) == 20 and len(plan["intruders"]) == 9 and len(plan["ref_intruder"]) == 10
    assert len(set(plan["fewshot"]) | set(plan["ref_target"]) | set(plan["test"])) == 40  # disjoint target roles
    assert not set(plan["intruders"]) & set(plan["ref_intruder"])
    assert [len(read_datadir(tmp_path / "fs" / f"p{p:.2f}").corrupt) for p in fractions] == [0, 3, 6, 9]
    ref_test = read_datadir(tmp_path / "fs" / "ref_test")
    assert sorted(ref_test.utts) == sorted(plan["test"]) and set(ref_test.utt2spk.values()) == {"slt"}
    # Deterministic from the seed; another seed draws other items.
    again = make_fewshot(src, tmp_path / "fs2", "slt", "bdl", n=20, fractions=fractions, n_ref=10, n_test=10,
                         seed=seed)
    assert again == plan
    other = make_fewshot(src, tmp_path / "fs3", "slt", "bdl", n=20, fractions=fractions, n_ref=10, n_test=10,
                         seed=seed + 10)
    assert other["test"] != plan["test"]


def test_vctk_texts_differing_in_case_and_punctuation_are_one_sentence(tmp_path):
    """VCTK 0.80 layout: both speakers read a shared passage, transcribed with other case and punctuation by
    one of them; those are the same sentence, so none of them may be both a test sentence and a few-shot clip."""
    from data_prep import vctk
    from data_prep.fewshot import normalise_text

    prompts = _prompts(75)
    shared = prompts[60:]
    root = tmp_path / "vctk"
    for spk, texts in (("p225", prompts[:30] + shared),
                       ("p226", prompts[30:60] + [s.lower().rstrip(".?!").replace(",", "") for s in shared])):
        for i, text in enumerate(texts, 1):
            (root / "txt" / spk).mkdir(parents=True, exist_ok=True)
            (root / "txt" / spk / f"{spk}_{i:03d}.txt").write_text(text + "\n", encoding="utf-8")
            _tone(root / "wav48" / spk / f"{spk}_{i:03d}.wav")
    assert vctk.main([str(root), str(tmp_path / "data")]) == 0
    assert normalise_text("Hello, world.") == normalise_text("hello   world") == "hello world"
    for seed in range(4):
        out = tmp_path / f"fs{seed}"
        make_fewshot(tmp_path / "data", out, "p225", "p226", n=20, fractions=(0.0, 0.45), n_ref=10, n_test=10,
                     seed=seed)
        assert not set(_test_sentences(out)) & _spoken_in_sets(out, (0.0, 0.45)), seed


def test_too_few_distinct_texts_is_refused_with_the_numbers(tmp_path):
    """One prompt list read over and over: 12 texts, each read 4 times by the target and 3 by the intruder.
    10 test sentences would take 40 of the target's 48 clips, leaving fewer than the 20 few-shot clips."""
    prompts = _prompts(12)
    d = DataDir()
    for spk, times in (("T", 4), ("C", 3)):
        for i in range(12 * times):
            d.add(f"{spk}_{i:03d}", spk, f"/audio/{spk}_{i:03d}.wav", prompts[i % 12])
    write_datadir(tmp_path / "all", d)
    with pytest.raises(FewShotError) as err:
        make_fewshot(tmp_path / "all", tmp_path / "out", "T", "C", n=20, n_ref=10, n_test=10, seed=0)
    assert ("target T has 12 distinct texts and at most 7 of them can be test sentences that none of its 20 "
            "few-shot clips and none of intruder C's 9 intruder clips reads; 10 test sentences are needed"
            in str(err.value))
    assert not (tmp_path / "out").exists()
    # 7 is indeed possible: 7 texts x 4 readings leave 20 target clips for the few-shot set.
    plan = make_fewshot(tmp_path / "all", tmp_path / "out7", "T", "C", n=20, n_ref=10, n_test=7, seed=0)
    assert len(set(_test_sentences(tmp_path / "out7"))) == 7 and len(plan["fewshot"]) == 20
    assert not set(_test_sentences(tmp_path / "out7")) & _spoken_in_sets(tmp_path / "out7", DEFAULT_FRACTIONS)
