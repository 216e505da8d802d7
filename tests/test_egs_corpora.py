"""Stage 1 of the real-corpus recipes (egs/libritts, egs/vctk) on tiny layouts the tests write."""

import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

from gradtts.data.datadir import read_datadir

ROOT = Path(__file__).resolve().parents[1]


def _tone(path: Path, sr: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(0.4 * sr)) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32), sr)


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_libritts_recipe_stage1(tmp_path):
    corpus = tmp_path / "LibriTTS"
    for subset, spks in (("train-clean-100", ("19", "84")), ("test-clean", ("121", "1089", "237"))):
        for spk in spks:
            for i in range(2):
                stem = f"{spk}_10_000000_{i:06d}"
                _tone(corpus / subset / spk / "10" / f"{stem}.wav", 24000)
                (corpus / subset / spk / "10" / f"{stem}.normalized.txt").write_text(f"Line {i} of {spk}.")
    exp = tmp_path / "exp"
    r = _run("egs/libritts/run.sh", "--corpus_root", str(corpus), "--pairs", "121:1089", "--exp", str(exp),
             "--stage", "1", "--stop_stage", "1")
    assert r.returncode == 0, r.stderr
    base, study = read_datadir(exp / "data/base"), read_datadir(exp / "data/study")
    assert base.speakers == ["19", "84"] and len(base.utts) == 4
    assert study.speakers == ["1089", "121"] and len(study.utts) == 4  # 237 is not in a pair
    assert (exp / ".done/stage1").is_file()

    r = _run("egs/libritts/run.sh", "--pairs", "121:1089")
    assert r.returncode != 0 and "--corpus_root PATH" in r.stderr


def test_vctk_recipe_stage1(tmp_path):
    corpus = tmp_path / "VCTK-Corpus-0.92"
    for spk in ("p225", "p226", "p227", "p228"):
        for i in (1, 2):
            (corpus / "txt" / spk).mkdir(parents=True, exist_ok=True)
            (corpus / "txt" / spk / f"{spk}_{i:03d}.txt").write_text(f"Please call Stella {i}.")
            _tone(corpus / "wav48_silence_trimmed" / spk / f"{spk}_{i:03d}_mic1.flac", 48000)
    exp = tmp_path / "exp"
    r = _run("egs/vctk/run.sh", "--corpus_root", str(corpus), "--pairs", "p225:p226", "--exp", str(exp),
             "--stage", "1", "--stop_stage", "1")
    assert r.returncode == 0, r.stderr
    assert read_datadir(exp / "data/study").speakers == ["p225", "p226"]
    assert read_datadir(exp / "data/base").speakers == ["p227", "p228"]  # every speaker outside the pairs
