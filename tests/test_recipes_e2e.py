"""The real-corpus recipes end to end, as a researcher runs them (docs/researcher-path.md), at tiny sizes.

Each corpus is written in its own layout and sample rate (LibriTTS test-clean at 24 kHz, VCTK 0.92 at 48 kHz
FLAC, a folder of one's own at 16 kHz), with target and intruder reading the same prompts (parallel text);
the base is an official-format checkpoint (a plain state dict of a seeded tiny model) with a CMUdict-format
dictionary file; speaker similarity is ECAPA from a seeded model in speechbrain's directory layout. Stages 0-8
run with the recipe's own command; only the sizes are overridden.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
from pathlib import Path

import pytest
from recipe_corpora import HAVE_SYNTH, SYNTH_SKIP, prompts, save_official_tiny, write_corpus
from test_speaker_encoders import _save_random_ecapa

ROOT = Path(__file__).resolve().parents[1]
DICTIONARY = ROOT / "tests/data/cmu_dictionary-gradtts-subset.txt"

#: corpus recipe -> (layout written by the test, target, intruder)
RECIPES = {
    "libritts": ("libritts", "121", "1089"),
    "vctk": ("vctk", "p225", "p226"),
    "own_corpus": ("folder", "alice", "bob"),
}
#: Sizes only: the study design of the recipe otherwise stands (the docs' commands modulo these).
TINY = ["--n_shot", "6", "--n_ref", "3", "--n_test", "2", "--fractions", "0 0.30", "--seeds", "0",
        "--losses", "l2,scheduled_huber", "--ft_steps", "2", "--save_steps", "2", "--vocoder", "griffinlim",
        "--listening", "false", "data.batch_size=4", "data.out_size=32", "trainer.tensorboard=false",
        "trainer.progress=false", "trainer.sample_every=0"]


def _git_status() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], capture_output=True,
                          text=True, cwd=ROOT).stdout


@pytest.mark.slow  # stages 0-8 of one corpus recipe with a tiny model: ~60 CPU-s each (tests/conftest.py)
@pytest.mark.skipif(not HAVE_SYNTH, reason=SYNTH_SKIP)
@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_corpus_recipe_end_to_end(tmp_path, recipe):
    layout, target, intruder = RECIPES[recipe]
    corpus = write_corpus(tmp_path / "corpus", layout, {target: 24, intruder: 25}, prompts(12))
    ckpt = save_official_tiny(tmp_path / "ckpt" / "grad-tts-libri-tts.pt")
    _save_random_ecapa(tmp_path / "spkrec-ecapa-voxceleb")
    exp = tmp_path / "exp"
    before = _git_status()
    cmd = ["bash", str(ROOT / f"egs/{recipe}/run.sh"), "--corpus_root", str(corpus), "--pairs", f"{target}:{intruder}",
           "--base_ckpt", str(ckpt), "--dictionary", str(DICTIONARY), "--encoder", "ecapa",
           "--encoder_source", str(tmp_path / "spkrec-ecapa-voxceleb"), "--exp", str(exp), *TINY]
    if recipe != "own_corpus":  # DNSMOS and ASR are covered once (own_corpus, and tests/test_eval_stage.py)
        cmd += ["--metrics", "similarity,fidelity"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert _git_status() == before  # a run writes under its exp dir only

    # Stage 1 prepared the study speakers only: the base checkpoint makes base-training data useless.
    assert not (exp / "data/base").exists()
    spk2utt = {line.split()[0]: line.split()[1:] for line in (exp / "data/study/spk2utt").read_text().splitlines()}
    assert {k: len(v) for k, v in spk2utt.items()} == {target: 12, intruder: 12}
    # Parallel text: the test sentences are read by no few-shot clip, target's or intruder's.
    plan = json.loads((exp / f"fewshot/{target}_{intruder}/fewshot.json").read_text())
    texts = dict(line.split(" ", 1) for line in (exp / "data/study/text").read_text().splitlines())
    assert not {texts[u] for u in plan["test"]} & {texts[u] for u in plan["fewshot"] + plan["intruders"]}

    summaries = sorted(exp.glob(f"finetune/{target}_{intruder}/*/p*/seed0/score/step_0000002/summary.json"))
    assert len(summaries) == 2 * 2  # losses x p
    for s in map(json.loads, (p.read_text() for p in summaries)):
        assert s["encoder"] == "ecapa" and s["n_gen"] == 2 and s["device"] == "cpu"
        assert all(math.isfinite(s[k]) for k in ("S_T", "S_C"))
        # Quality and intelligibility where stage 7 computed them (the default), not where --metrics left them out.
        assert ("dnsmos_ovrl" in s and "wer" in s) == (recipe == "own_corpus")
    with open(exp / "report/results.csv") as f:
        rows = list(csv.DictReader(f))
    assert {(r["loss"], r["p"]) for r in rows} == {(loss, p) for loss in ("l2", "scheduled_huber")
                                                   for p in ("0.0", "0.3")}
    assert all(r["R"] != "" and r["L"] != "" for r in rows)
    with open(exp / "report/paired.csv") as f:
        paired = list(csv.DictReader(f))
    assert any(r["p"] == "0.3" and r["dR"] != "" for r in paired)


def _doc_commands() -> dict[str, str]:
    """``egs/<recipe>/run.sh ...`` commands of docs/researcher-path.md, continuation lines joined."""
    text = (ROOT / "docs/researcher-path.md").read_text().replace("\\\n", " ")
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = " ".join(line.strip().strip("`").split())
        for recipe in RECIPES:
            if line.startswith(f"egs/{recipe}/run.sh ") and recipe not in out:
                out[recipe] = line
    return out


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_the_docs_give_the_command_the_end_to_end_test_runs(recipe):
    """The researcher's-path page shows each recipe with every option the test passes but the sizes."""
    doc = _doc_commands().get(recipe)
    assert doc, f"docs/researcher-path.md has no egs/{recipe}/run.sh command"
    for option in ("--corpus_root", "--base_ckpt", "--dictionary", "--encoder ecapa", "--encoder_source"):
        assert option in doc, f"egs/{recipe}/run.sh in docs/researcher-path.md lacks {option}: {doc}"
    if recipe == "own_corpus":  # no default pair: the docs must name one
        assert "--pairs" in doc
