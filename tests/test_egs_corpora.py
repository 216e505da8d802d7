"""The corpus recipes' options and stage 1 (egs/libritts, egs/vctk on tiny layouts the tests write), and the
template's per-pair .done markers."""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from gradtts.data.datadir import read_datadir

ROOT = Path(__file__).resolve().parents[1]


def _tone(path: Path, sr: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(0.4 * sr)) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32), sr)


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


# Study counts the tiny corpora below can serve (stage 1 checks that each pair has the clips stage 4 draws):
# a target needs 1 few-shot + 1 reference + 1 test clip, an intruder ceil(0.5 * 1) item + 1 reference.
COUNTS = ("--n_shot", "1", "--n_ref", "1", "--n_test", "1", "--fractions", "0 0.5")


def test_libritts_recipe_stage1(tmp_path):
    corpus = tmp_path / "LibriTTS"
    for subset, spks in (("train-clean-100", ("19", "84")), ("test-clean", ("121", "1089", "237"))):
        for spk in spks:
            for i in range(2 if subset == "train-clean-100" else 3):
                stem = f"{spk}_10_000000_{i:06d}"
                _tone(corpus / subset / spk / "10" / f"{stem}.wav", 24000)
                (corpus / subset / spk / "10" / f"{stem}.normalized.txt").write_text(f"Line {i} of {spk}.")
    exp = tmp_path / "exp"
    r = _run("egs/libritts/run.sh", "--corpus_root", str(corpus), "--pairs", "121:1089", "--exp", str(exp),
             "--stage", "1", "--stop_stage", "1", *COUNTS)
    assert r.returncode == 0, r.stderr
    base, study = read_datadir(exp / "data/base"), read_datadir(exp / "data/study")
    assert base.speakers == ["19", "84"] and len(base.utts) == 4
    assert study.speakers == ["1089", "121"] and len(study.utts) == 6  # 237 is not in a pair
    assert "pairs 121:1089 can be studied (n_shot=1 fractions=0 0.5 n_ref=1 n_test=1)" in r.stdout
    assert (exp / ".done/stage1").is_file()

    r = _run("egs/libritts/run.sh", "--pairs", "121:1089")
    assert r.returncode != 0 and "--corpus_root PATH" in r.stderr


def test_vctk_recipe_stage1(tmp_path):
    corpus = tmp_path / "VCTK-Corpus-0.92"
    for spk in ("p225", "p226", "p227", "p228"):
        for i in (1, 2, 3):
            (corpus / "txt" / spk).mkdir(parents=True, exist_ok=True)
            (corpus / "txt" / spk / f"{spk}_{i:03d}.txt").write_text(f"Please call Stella {i}.")
            _tone(corpus / "wav48_silence_trimmed" / spk / f"{spk}_{i:03d}_mic1.flac", 48000)
    exp = tmp_path / "exp"
    r = _run("egs/vctk/run.sh", "--corpus_root", str(corpus), "--pairs", "p225:p226", "--exp", str(exp),
             "--stage", "1", "--stop_stage", "1", *COUNTS)
    assert r.returncode == 0, r.stderr
    assert read_datadir(exp / "data/study").speakers == ["p225", "p226"]
    assert read_datadir(exp / "data/base").speakers == ["p227", "p228"]  # every speaker outside the pairs


# ---- options: the corpus scripts parse theirs and pass the template's on ----------------------------------------
PASS_THROUGH_RECIPE = """#!/usr/bin/env bash
set -euo pipefail
corpus_root=
{opt_in}
. "{parse_options}"
echo "corpus_root=$corpus_root"
printf 'pass:%s\\n' ${{pass_through_args[@]+"${{pass_through_args[@]}}"}}
printf 'hydra:%s\\n' ${{hydra_overrides[@]+"${{hydra_overrides[@]}}"}}
"""


def _script(tmp_path: Path, opt_in: str) -> Path:
    script = tmp_path / "front.sh"
    script.write_text(PASS_THROUGH_RECIPE.format(opt_in=opt_in, parse_options=ROOT / "recipes/utils/parse_options.sh"))
    return script


def test_pass_through_collects_the_options_a_script_does_not_declare(tmp_path):
    script = _script(tmp_path, "parse_options_pass_through=true   # the rest goes on")
    r = _run(str(script), "--n_shot", "5", "--corpus-root", "/c", "a.b=1", "--pairs=x:y z:w", "--exp", "/e", "c=2")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["corpus_root=/c", "pass:--n_shot", "pass:5", "pass:--pairs=x:y z:w",
                                     "pass:--exp", "pass:/e", "hydra:a.b=1", "hydra:c=2"]
    # Opting in is part of the script's text: an exported variable does not switch it on for a script without it.
    strict = _script(tmp_path, "")
    r = subprocess.run(["bash", str(strict), "--n_shot", "5"], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "parse_options_pass_through": "true"})
    assert r.returncode == 1 and "unknown option --n_shot" in r.stderr and r.stdout == ""


def test_corpus_scripts_hand_on_the_template_options_and_refuse_typos(tmp_path):
    exp = tmp_path / "exp"
    r = _run("egs/vctk/run.sh", "--corpus_root", str(tmp_path), "--exp", str(exp), "--n_shott", "5")
    assert r.returncode == 1 and "fewshot.sh: unknown option --n_shott" in r.stderr and not exp.exists()
    r = _run("egs/synthvox/run.sh", "--preset", "smoke", "--exp", str(exp), "--stage", "9", "--pairs", "a:a")
    assert r.returncode == 1 and "names the same speaker twice" in r.stderr and not exp.exists()
    for script, own in (("egs/synthvox/run.sh", "--preset cpu|study|decisive|gpu|smoke"),
                        ("egs/vctk/run.sh", "--mic [mic1]"),
                        ("egs/libritts/run.sh", "--study_subsets [test-clean]"),
                        ("egs/librispeech_mini/run.sh", "reader 19")):
        h = _run(script, "--help")
        assert h.returncode == 0 and own in h.stdout and "--n_shot [20]" in h.stdout, (script, h.stderr)


# ---- .done markers: stages 4-7 per pair --------------------------------------------------------------------------
def _study(data: Path) -> None:
    from gradtts.data.datadir import DataDir, write_datadir

    d = DataDir()
    for spk, n in (("A", 4), ("B", 2), ("C", 4), ("D", 2)):
        for i in range(n):
            wav = data.parent / "wavs" / f"{spk}_{i}.wav"
            _tone(wav, 22050)
            d.add(f"{spk}_{i}", spk, str(wav), f"speaker {spk.lower()} reads line number {i} today")
    write_datadir(data, d)


def _stage4(exp: Path, pairs: str, *extra: str) -> subprocess.CompletedProcess:
    return _run("recipes/fewshot.sh", "--exp", str(exp), "--stage", "4", "--stop_stage", "4", "--pairs", pairs,
                "--n_shot", "2", "--n_ref", "1", "--n_test", "1", "--fractions", "0.5", "--jobs", "1", *extra)


@pytest.mark.slow  # stage 4 (a few-shot set + its features) three times: 29 CPU-s (tests/conftest.py)
def test_adding_a_pair_runs_stage4_for_that_pair_only(tmp_path):
    exp = tmp_path / "exp"
    _study(exp / "data/study")
    r = _stage4(exp, "A:B")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert sorted(p.name for p in (exp / ".done/stage4").iterdir()) == ["A_B"]
    assert len((exp / "fewshot/A_B/p0.50/feats/manifest.jsonl").read_text().splitlines()) == 2
    plan_ab = (exp / "fewshot/A_B/fewshot.json").stat().st_mtime_ns

    r = _stage4(exp, "A:B C:D")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "stage 4: already done for A_B; running it for C:D" in r.stdout
    assert sorted(p.name for p in (exp / ".done/stage4").iterdir()) == ["A_B", "C_D"]
    assert (exp / "fewshot/C_D/p0.50/feats/manifest.jsonl").is_file()
    assert (exp / "fewshot/A_B/fewshot.json").stat().st_mtime_ns == plan_ab  # not redone

    r = _stage4(exp, "C:D A:B")
    assert r.returncode == 0 and "stage 4: done before for every pair" in r.stdout and r.stdout.count("skipping") == 1
    # Other settings for one pair: that pair's sets are made again, with the settings recorded.
    r = _stage4(exp, "A:B", "--fewshot_seed", "1")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "stage 4: A_B ran with other settings" in r.stdout and "stage 4: finished for A:B" in r.stdout
    assert (exp / "fewshot/A_B/fewshot.json").stat().st_mtime_ns != plan_ab
    assert "seed=1" in (exp / ".done/stage4/A_B").read_text()


def test_a_marker_from_before_per_pair_markers_still_counts(tmp_path):
    exp = tmp_path / "exp"
    (exp / ".done").mkdir(parents=True)
    (exp / ".done/stage4").touch()  # what the recipe wrote before stages 4-7 kept one marker per pair
    r = _stage4(exp, "A:B")
    assert r.returncode == 0, r.stderr
    assert "one marker for all pairs; delete it to redo the stage per pair), skipping" in r.stdout
    assert not (exp / "fewshot").exists()


# ---- a base checkpoint: stage 1 prepares the study speakers only ------------------------------------------------
def _libritts_test_clean(root: Path) -> Path:
    """A LibriTTS root holding test-clean alone (121, 1089: the pair; 237: outside it), 2 utterances each."""
    for spk in ("121", "1089", "237"):
        for i in range(3):
            stem = f"{spk}_10_000000_{i:06d}"
            _tone(root / "test-clean" / spk / "10" / f"{stem}.wav", 24000)
            (root / "test-clean" / spk / "10" / f"{stem}.normalized.txt").write_text(f"Line {i} of {spk}.")
    return root


def test_libritts_with_a_base_checkpoint_prepares_the_study_only(tmp_path):
    corpus = _libritts_test_clean(tmp_path / "LibriTTS")  # no train-clean-100 on disk
    ckpt = tmp_path / "grad-tts-libri-tts.pt"
    ckpt.write_bytes(b"stage 1 does not read it")
    exp = tmp_path / "exp"
    r = _run("egs/libritts/run.sh", "--corpus_root", str(corpus), "--base_ckpt", str(ckpt), "--pairs", "121:1089",
             "--exp", str(exp), "--stage", "1", "--stop_stage", "2", *COUNTS)
    assert r.returncode == 0, r.stderr
    assert not (exp / "data/base").exists()
    study = read_datadir(exp / "data/study")
    assert study.speakers == ["1089", "121"] and len(study.utts) == 6
    # The record says the base data was left out, so a later run without the checkpoint is told stage 1 differed.
    assert "--base_subsets none" in (exp / ".done/stage1").read_text()
    assert "stage 2: nothing to do (a base checkpoint is given)" in r.stdout

    r = _run("egs/libritts/run.sh", "--corpus_root", str(corpus), "--base_ckpt", str(tmp_path / "nope.pt"),
             "--exp", str(tmp_path / "exp2"))
    assert r.returncode == 2 and f"--base_ckpt {tmp_path / 'nope.pt'}: file not found" in r.stderr
    assert not (tmp_path / "exp2").exists()


def test_libritts_empty_base_subsets(tmp_path):
    """--base_subsets "" means no base-training data: stage 1 prepares the study, stage 2 says what is missing."""
    corpus = _libritts_test_clean(tmp_path / "LibriTTS")
    exp = tmp_path / "exp"
    r = _run("egs/libritts/run.sh", "--corpus_root", str(corpus), "--base_subsets", "", "--pairs", "121:1089",
             "--exp", str(exp), "--stage", "1", "--stop_stage", "2", *COUNTS)
    assert (exp / ".done/stage1").is_file() and not (exp / "data/base").exists(), r.stderr
    assert read_datadir(exp / "data/study").speakers == ["1089", "121"]
    errors = [line for line in r.stderr.splitlines() if " INFO: " not in line and line.strip()]
    assert r.returncode == 2 and len(errors) == 1, r.stderr
    assert errors[0].endswith(f"stage 2: no base-training data ({exp / 'data/base'}: stage 1 prepared none); "
                              "give --base_ckpt PATH, or base-training data and --force_stage 1"), errors[0]
    assert not (exp / ".done/stage2").exists()
    # The corpus script's data.sh takes the same spelling (an empty value is a value, not a missing one).
    data = tmp_path / "data"
    r = _run("egs/libritts/local/data.sh", str(data), "--corpus_root", str(corpus), "--base_subsets=",
             "--speakers", "121,237")
    assert r.returncode == 0, r.stderr
    assert not (data / "base").exists() and read_datadir(data / "study").speakers == ["121", "237"]



def test_stage1_stops_when_a_pair_is_short_of_clips(tmp_path):
    """The template's default counts (20 few-shot + 10 reference + 10 test clips) on 3 clips a speaker."""
    corpus = _libritts_test_clean(tmp_path / "LibriTTS")
    ckpt = tmp_path / "base.pt"
    ckpt.write_bytes(b"stage 1 does not read it")
    exp = tmp_path / "exp"
    r = _run("egs/libritts/run.sh", "--corpus_root", str(corpus), "--base_ckpt", str(ckpt), "--pairs", "121:1089",
             "--exp", str(exp), "--stage", "1", "--stop_stage", "1", "--fractions", "0 0.30")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "121:1089: target 121 has 3 utterances; 20 few-shot + 10 reference + 10 test = 40 are needed" in r.stdout
    assert not (exp / ".done/stage1").exists()

def _vctk(root: Path, speakers: tuple[str, ...]) -> Path:
    for spk in speakers:
        for i in (1, 2, 3):
            (root / "txt" / spk).mkdir(parents=True, exist_ok=True)
            (root / "txt" / spk / f"{spk}_{i:03d}.txt").write_text(f"Please call Stella {i}.")
            _tone(root / "wav48_silence_trimmed" / spk / f"{spk}_{i:03d}_mic1.flac", 48000)
    return root


def test_vctk_with_a_base_checkpoint_prepares_the_study_only(tmp_path):
    ckpt = tmp_path / "base.pt"
    ckpt.write_bytes(b"stage 1 does not read it")
    for name, speakers in (("all", ("p225", "p226", "p227")), ("pairs_only", ("p225", "p226"))):
        corpus, exp = _vctk(tmp_path / name / "VCTK", speakers), tmp_path / name / "exp"
        r = _run("egs/vctk/run.sh", "--corpus_root", str(corpus), "--base_ckpt", str(ckpt), "--pairs", "p225:p226",
                 "--exp", str(exp), "--stage", "1", "--stop_stage", "1", *COUNTS)
        assert r.returncode == 0, (name, r.stderr)
        assert read_datadir(exp / "data/study").speakers == ["p225", "p226"]
        assert not (exp / "data/base").exists(), name
        assert "--base false" in (exp / ".done/stage1").read_text()
    # Without a checkpoint, a corpus with no speaker outside the pairs has nothing to train a base model on.
    exp = tmp_path / "exp"
    r = _run("egs/vctk/run.sh", "--corpus_root", str(tmp_path / "pairs_only/VCTK"), "--pairs", "p225:p226",
             "--exp", str(exp), "--stage", "1", "--stop_stage", "1", *COUNTS)
    assert r.returncode == 2 and not (exp / ".done/stage1").exists()
    assert (f"{tmp_path / 'pairs_only/VCTK'}/txt has no speaker outside --speakers p225 p226 for the base-training "
            "data; give the run a base checkpoint (egs/vctk/run.sh --base_ckpt PATH)") in r.stderr


# ---- --help shows the values each corpus recipe passes to the template ------------------------------------------
@pytest.mark.parametrize("script, shown", [
    ("egs/libritts/run.sh", ["--exp [exp/libritts]", "--seeds [0,1,2]", "--base_experiment [base]",
                             "--fractions [0 0.15 0.30 0.45]", "--pairs [121:1089 237:260 1284:1320]"]),
    ("egs/vctk/run.sh", ["--exp [exp/vctk]", "--seeds [0,1,2]", "--base_experiment [base]",
                         "--pairs [p225:p226 p228:p227 p229:p232]"]),
    ("egs/librispeech_mini/run.sh", ["--exp [exp/librispeech_mini]", "--seeds [0]", "--fractions [0 0.30]",
                                     "--ft_steps [120]", "--device [cpu]", "--pairs [19:26]",
                                     "--base_ckpt [egs/synthvox/base/base_small.pt]",
                                     "Hydra overrides: data.batch_size=8 data.out_size=128 optim.lr=4e-4"]),
    ("egs/synthvox/run.sh", ["--exp [exp/synthvox]", "--seeds [0]", "--base_experiment [base_cpu]",
                             "--fractions [0 0.30]", "--grid_jobs [2]", "--need_synth [true]"]),
])
def test_corpus_help_shows_the_values_the_recipe_passes(script, shown):
    h = _run(script, "--help")
    assert h.returncode == 0, h.stderr
    missing = [s for s in shown if s not in h.stdout]
    assert not missing, (script, missing)
    assert "--exp [exp/fewshot]" not in h.stdout and "--n_shot [" in h.stdout


def test_synthvox_help_shows_the_chosen_preset_and_the_template_its_own_defaults():
    h = _run("egs/synthvox/run.sh", "--preset", "gpu", "--help")
    assert h.returncode == 0, h.stderr
    for s in ("--exp [exp/synthvox_gpu]", "--seeds [0,1,2]", "--base_experiment [base]", "--ft_steps [2000]"):
        assert s in h.stdout, s
    h = _run("recipes/fewshot.sh", "--help")
    assert h.returncode == 0 and "--exp [exp/fewshot]" in h.stdout and "--base_experiment [base_small]" in h.stdout


def test_parse_options_arrays_and_empty_values(tmp_path):
    """An array a script defines above the parser is no option; an empty value (--x "" or --x=) is a value."""
    script = tmp_path / "arr.sh"
    script.write_text(f"""#!/usr/bin/env bash
set -euo pipefail
name=default
opts=(--exp exp/a --seeds 0,1)
. "{ROOT / 'recipes/utils/parse_options.sh'}"
echo "name=[$name] opts=[${{opts[*]}}] hydra=[${{hydra_overrides[*]-}}]"
""")
    for args, out in ((["--name", ""], "name=[] opts=[--exp exp/a --seeds 0,1] hydra=[]"),
                      (["--name=", "k=v"], "name=[] opts=[--exp exp/a --seeds 0,1] hydra=[k=v]")):
        r = _run(str(script), *args)
        assert r.returncode == 0 and r.stdout.strip() == out, (args, r.stdout, r.stderr)
    r = _run(str(script), "--opts", "x")
    assert r.returncode == 1 and "unknown option --opts" in r.stderr


def test_template_refuses_counts_that_are_not_whole_numbers(tmp_path):
    exp = tmp_path / "exp"
    for opt, value, message in (("--n_shot", "twenty", "--n_shot twenty: a whole number, e.g. --n_shot 2"),
                                ("--grid_jobs", "0", "--jobs and --grid_jobs must be at least 1"),
                                ("--force_stage", "x", "--force_stage x: a stage number (or -1: none)")):
        r = _run("recipes/fewshot.sh", "--pairs", "A:B", "--exp", str(exp), opt, value)
        assert r.returncode == 2 and message in r.stderr, (opt, r.stderr)
        assert not exp.exists()
