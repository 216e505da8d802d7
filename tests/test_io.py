"""Atomic writes: temporary names no output glob matches, correct files through every writer, stale-temp cleanup."""

import fnmatch
import logging
import os
import stat
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from gradtts.audio import write_wav
from gradtts.io import (atomic_np_save, atomic_path, atomic_torch_save, atomic_write_text, is_temp_name,
                        remove_stale_temps)
from gradtts.train.state import CheckpointDir

OUTPUT_GLOBS = ("*.npy", "*.pt", "*.wav", "*.png", "*.yaml", "*.json")


@pytest.mark.parametrize("name", ["sv002_170001.npy", "step_0000100.pt", "u1.wav", "R.png", "a.b.yaml", "noext"])
def test_temp_name_matches_no_output_glob(tmp_path, name):
    with atomic_path(tmp_path / name) as tmp:
        assert tmp.parent == tmp_path and tmp.exists() and tmp.name.startswith(f".{name}.")
        assert is_temp_name(tmp.name)
        assert not any(fnmatch.fnmatch(tmp.name, g) for g in OUTPUT_GLOBS)
        assert not any(p.name == tmp.name for g in OUTPUT_GLOBS for p in tmp_path.rglob(g))
        tmp.write_bytes(b"x")
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_writers_produce_complete_files_under_the_final_name(tmp_path):
    mel = np.arange(80 * 7, dtype=np.float32).reshape(80, 7)
    atomic_np_save(tmp_path / "m.npy", mel)
    assert np.array_equal(np.load(tmp_path / "m.npy"), mel)  # not "m.npy.npy" or a temp name + .npy

    wav = 0.5 * np.sin(np.linspace(0, 200, 4410)).astype(np.float32)
    write_wav(tmp_path / "a.wav", wav, 22050)
    info = sf.info(tmp_path / "a.wav")
    assert info.format == "WAV" and info.subtype == "PCM_16" and info.samplerate == 22050 and info.frames == 4410
    back, _ = sf.read(tmp_path / "a.wav", dtype="float32")
    assert np.abs(back - wav).max() < 1e-4

    payload = {"w": torch.arange(6.0).reshape(2, 3), "step": 3}
    atomic_torch_save(payload, tmp_path / "c.pt")
    loaded = torch.load(tmp_path / "c.pt", weights_only=True)
    assert loaded["step"] == 3 and torch.equal(loaded["w"], payload["w"])

    atomic_write_text(tmp_path / "t.yaml", "a: 1\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "c.pt", "m.npy", "t.yaml"]
    # Permissions as a plain open() gives them (the umask applies), not a private temp file's 0600.
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "m.npy").stat().st_mode) == 0o666 & ~mask


def test_failure_inside_the_block_leaves_no_file(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "x.npy") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("writer died")

    class Unconvertible:  # np.save fails inside atomic_np_save, after the temp file exists
        def __array__(self, *args, **kwargs):
            raise ValueError("cannot convert")

    with pytest.raises(ValueError):
        atomic_np_save(tmp_path / "y.npy", Unconvertible())
    (tmp_path / "old.pt").write_bytes(b"previous")
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "old.pt") as tmp:
            tmp.write_bytes(b"new but incomplete")
            raise RuntimeError
    assert [p.name for p in tmp_path.iterdir()] == ["old.pt"] and (tmp_path / "old.pt").read_bytes() == b"previous"


def _killed_writes(root, rels) -> list:
    """The temp files that a process killed (SIGKILL) in the middle of writing ``rels`` under ``root`` leaves."""
    code = ("import os, signal, sys\nfrom contextlib import ExitStack\nfrom gradtts.io import atomic_path\n"
            "stack = ExitStack()\n"
            "for rel in sys.argv[2:]:\n"
            "    tmp = stack.enter_context(atomic_path(os.path.join(sys.argv[1], rel)))\n"
            "    tmp.write_bytes(b'half')\n"
            "    print(tmp, flush=True)\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    r = subprocess.run([sys.executable, "-c", code, str(root), *rels], capture_output=True, text=True)
    assert r.returncode == -9, r.stderr
    return [type(root)(line) for line in r.stdout.splitlines()]


def test_remove_stale_temps_removes_only_this_writers_temps(tmp_path):
    stale = _killed_writes(tmp_path, ["mels/sv002/sv002_0001.npy", "mels/sv003/sv003_0002.npy",
                                      "ckpt/step_0000100.pt", "top.wav"])
    keep = ["mels/sv002/sv002_0000.npy", "mels/sv002/.hidden.npy", "mels/.stale.tmp.npy", "ckpt/.notes.tmp",
            "ckpt/.x.20240101.tmp", "ckpt/step_0000050.pt", "notes.tmp", ".sv002.npy.atomic-XYZ.tmp"]
    for rel in keep:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"user data")
    assert len(stale) == 4 and all(p.exists() and is_temp_name(p.name) for p in stale)
    assert remove_stale_temps(tmp_path / "ckpt", recursive=False) == 1 and not stale[2].exists()
    assert remove_stale_temps(tmp_path / "mels", recursive=False) == 0
    assert remove_stale_temps(tmp_path) == 3
    assert not any(p.exists() for p in stale)
    assert all((tmp_path / rel).read_bytes() == b"user data" for rel in keep)
    assert remove_stale_temps(tmp_path) == 0 and remove_stale_temps(tmp_path / "absent") == 0


def test_checkpoint_dir_removes_a_killed_saves_temp(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="gradtts.train.state")
    ckpt = CheckpointDir(tmp_path / "ckpt")
    ckpt.save(1, {"step": torch.tensor(1)}, config_yaml="a: 1\n")
    partial, = _killed_writes(tmp_path, ["ckpt/step_0000002.pt"])  # the save of step 2 is killed mid-write
    assert ckpt.steps() == [1]
    CheckpointDir(tmp_path / "ckpt", remove_temps=False)
    assert partial.exists() and not caplog.records
    reopened = CheckpointDir(tmp_path / "ckpt")
    assert not partial.exists() and [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, f"removed 1 partial checkpoint file(s) left by an interrupted save in {tmp_path / 'ckpt'}")]
    assert reopened.steps() == [1] and sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "step_0000001.pt", "step_0000001.yaml"]
