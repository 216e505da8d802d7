"""``data_prep.validate --pairs``: study feasibility known up front, by the few-shot builder's own requirements."""

import itertools
import math
import random

import numpy as np
import pytest
import soundfile as sf

from data_prep import validate
from data_prep.fewshot import FewShotError, make_fewshot, normalise_text, pair_problems, plan, requirements
from data_prep.sentences import generate_sentences
from gradtts.data.datadir import DataDir, write_datadir

STUDY = ["--n-shot", "20", "--fractions", "0", "0.15", "0.30", "0.45", "--n-ref", "10", "--n-test", "10"]


def _tone(path, sr: int = 16000, seconds: float = 0.05):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.1 * np.sin(2 * np.pi * 220 * np.arange(int(sr * seconds)) / sr)).astype(np.float32), sr)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """T (45 clips) and C (25) read texts of their own; X has 5 clips; R and S read one 12-prompt list,
    R 4 times over (48 clips), S 3 times (36). Real (tiny) wavs, so the audio check passes."""
    root = tmp_path_factory.mktemp("feas")
    prompts = generate_sentences(12, "prompt-list")
    d = DataDir()
    for spk, n in (("T", 45), ("C", 25), ("X", 5), ("R", 48), ("S", 36)):
        for i in range(n):
            text = prompts[i % 12] if spk in "RS" else f"sentence {i} spoken by {spk.lower()}"
            d.add(f"{spk}_{i:03d}", spk, _tone(root / "wav" / f"{spk}_{i:03d}.wav"), text)
    write_datadir(root / "data", d)
    return root / "data"


def test_every_problem_of_every_pair_in_one_report(corpus, capsys):
    rc = validate.main([str(corpus), "--pairs", "T:C X:C T:X R:S T:Q", *STUDY])
    out = capsys.readouterr().out
    assert rc == 2
    assert f"{corpus}: ok, 159 utterances, 5 speakers" in out
    assert "4 problem(s) for the study (n_shot=20 fractions=0 0.15 0.3 0.45 n_ref=10 n_test=10):" in out
    assert "X:C: target X has 5 utterances; 20 few-shot + 10 reference + 10 test = 40 are needed" in out
    assert "T:X: intruder X has 5 utterances; p=0.45 of N=20 needs 9 intruder items + 10 references = 19" in out
    assert ("R:S: target R has 12 distinct texts and at most 7 of them can be test sentences that none of its 20 "
            "few-shot clips and none of intruder S's 9 intruder clips reads; 10 test sentences are needed") in out
    assert "T:Q: intruder speaker 'Q' is not in the data dir" in out
    assert "T:C:" not in out


def test_feasible_pairs_pass_and_without_pairs_it_checks_the_dir_only(corpus, capsys):
    assert validate.main([str(corpus), "--pairs", "T:C R:S", "--n-shot", "20", "--fractions", "0", "0.3",
                          "--n-ref", "10", "--n-test", "7"]) == 0
    assert "pairs T:C, R:S can be studied (n_shot=20 fractions=0 0.3 n_ref=10 n_test=7)" in capsys.readouterr().out
    assert validate.main([str(corpus), *STUDY]) == 0  # no --pairs: as before, the counts are not checked
    assert capsys.readouterr().out == f"{corpus}: ok, 159 utterances, 5 speakers\n"


@pytest.mark.parametrize("args, message", [
    (["--pairs", "T-C"], "--pairs: 'T-C' is not TARGET:INTRUDER"),
    (["--pairs", "  "], "--pairs: no pair given"),
    (["--pairs", "T:C", "--n-shot", "0"], "--n-shot must be at least 1 (got 0)"),
    (["--pairs", "T:C", "--fractions", "0", "1.5"], "fractions must lie in [0, 1)"),
])
def test_bad_study_options_are_user_errors(corpus, capsys, args, message):
    assert validate.main([str(corpus), "--no-audio", *args]) == 2
    assert message in capsys.readouterr().err


def test_validate_and_the_builder_agree(corpus, tmp_path, capsys):
    """For every count, validate passes exactly when the few-shot builder succeeds, and names the same shortage."""
    for pair, n_test in itertools.product(("R:S", "T:C", "X:C"), range(0, 13, 3)):
        rc = validate.main([str(corpus), "--no-audio", "--pairs", pair, "--n-shot", "20", "--n-test", str(n_test)])
        out = capsys.readouterr().out
        t, c = pair.split(":")
        try:
            make_fewshot(corpus, tmp_path / f"{t}{c}{n_test}", t, c, n=20, n_test=n_test)
        except FewShotError as exc:
            assert rc == 2 and f"{pair}: {exc}" in out, (pair, n_test)
        else:
            assert rc == 0, (pair, n_test)


def _feasible_by_enumeration(d: DataDir, target: str, intruder: str, n, fractions, n_ref, n_test) -> bool:
    """Independent of the builder: try every set of n_test distinct target texts as the test sentences."""
    t = [normalise_text(d.texts[u]) for u in d.spk2utt[target]]
    c = [normalise_text(d.texts[u]) for u in d.spk2utt[intruder]]
    max_c = max(math.ceil(round(p * n, 9)) for p in fractions)
    if len(t) < n + n_ref + n_test or len(c) < max_c + n_ref:
        return False
    return any(sum(x not in s for x in t) >= n and sum(x not in s for x in c) >= max_c
               for s in map(set, itertools.combinations(sorted(set(t)), n_test)))


def test_only_impossible_pairs_are_refused():
    """Random small corpora drawing on few texts: the requirement check refuses exactly the pairs no choice of
    test sentences can satisfy, and the builder then finds a valid choice (its own check asserts it)."""
    rng = random.Random(7)
    verdicts = []
    for _ in range(300):
        vocab = [f"Text {i}." for i in range(rng.randint(2, 8))]
        # Each speaker reads a slice of the list (they overlap), some transcripts in lower case.
        own = {"T": vocab[:rng.randint(1, len(vocab))], "C": vocab[rng.randint(0, len(vocab) - 1):]}
        d = DataDir()
        for spk, m in (("T", rng.randint(3, 16)), ("C", rng.randint(1, 12))):
            for i in range(m):
                text = rng.choice(own[spk])
                d.add(f"{spk}_{i:02d}", spk, f"/a/{spk}_{i:02d}.wav", text.lower() if rng.random() < 0.3 else text)
        n, n_ref, n_test = rng.randint(1, 6), rng.randint(0, 2), rng.randint(0, 5)
        fractions = rng.choice([(0.0,), (0.0, 0.5), (0.0, 0.3, 0.8)])
        possible = _feasible_by_enumeration(d, "T", "C", n, fractions, n_ref, n_test)
        problems = pair_problems(d, "T", "C", requirements(n, fractions, n_ref, n_test))
        assert (not problems) == possible, (d.texts, n, fractions, n_ref, n_test, problems)
        if possible:
            chosen = plan(d, "T", "C", n, fractions, n_ref, n_test, seed=rng.randint(0, 9))
            test_texts = [normalise_text(d.texts[u]) for u in chosen["test"]]
            read = {normalise_text(d.texts[u]) for u in chosen["fewshot"] + chosen["intruders"]}
            assert len(set(test_texts)) == len(chosen["test"]) == n_test and not set(test_texts) & read
        verdicts.append(possible)
    assert 60 < sum(verdicts) < 240  # both outcomes well represented


def test_test_sentences_may_need_texts_of_several_kinds():
    """Texts a, b are read once by T and twice by C; c, d twice by T and never by C. With 3 of T's 6 clips
    for the few-shot set and 2 of C's 4 for intruder items, neither {a, b} (4 intruder clips) nor {c, d}
    (4 target clips) can be the 2 test sentences, but one of each can."""
    d = DataDir()
    for i, text in enumerate(["A.", "B.", "C.", "c", "D.", "d!"]):
        d.add(f"T_{i}", "T", f"/a/T_{i}.wav", text)
    for i, text in enumerate(["a", "A", "b", "B"]):
        d.add(f"C_{i}", "C", f"/a/C_{i}.wav", text)
    assert pair_problems(d, "T", "C", requirements(3, (0.0, 0.5), 1, 2)) == []
    for seed in range(5):
        chosen = plan(d, "T", "C", 3, (0.0, 0.5), 1, 2, seed=seed)
        tests = {normalise_text(d.texts[u]) for u in chosen["test"]}
        assert len(tests & {"a", "b"}) == 1 and len(tests & {"c", "d"}) == 1, seed
        assert not tests & {normalise_text(d.texts[u]) for u in chosen["fewshot"] + chosen["intruders"]}
        assert len(chosen["fewshot"]) == 3 and len(chosen["intruders"]) == 2 and len(chosen["ref_intruder"]) == 1
