"""Bad input and crashes at run time: leftovers of a killed save, a full disk, command-line errors, recipe options."""

import errno
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gradtts.config import cli_errors
from gradtts.io import DiskFullError, atomic_path, atomic_write_text
from gradtts.train.state import CheckpointDir, load_training_state

REPO = Path(__file__).resolve().parents[1]

# Saves step 1, then step 2 (pruning step 1, keep_last=1), and SIGKILLs itself at one chosen point of the
# second save: a real kill at a deterministic place, between two file operations of our own code.
KILLED_SAVE = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    import torch
    from gradtts.train.state import CheckpointDir

    root, when = Path(sys.argv[1]), sys.argv[2]
    ckpts = CheckpointDir(root, keep_last=1)
    ckpts.save(1, {"step": 1, "w": torch.zeros(3)}, "step: 1\\n")
    replace, unlink = os.replace, Path.unlink

    def killing_replace(src, dst):
        if Path(dst).name == {"first_rename": "step_0000002.yaml", "between": "step_0000002.pt"}.get(when):
            os.kill(os.getpid(), signal.SIGKILL)
        replace(src, dst)

    def killing_unlink(self, missing_ok=False):
        unlink(self, missing_ok=missing_ok)
        if when == "prune" and self.name == "step_0000001.pt":
            os.kill(os.getpid(), signal.SIGKILL)

    os.replace, Path.unlink = killing_replace, killing_unlink
    ckpts.save(2, {"step": 2, "w": torch.ones(3)}, "step: 2\\n")
""")


def _visible(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


@pytest.mark.parametrize("when, left", [
    ("first_rename", ["step_0000001.pt", "step_0000001.yaml"]),                 # killed before either is visible
    ("between", ["step_0000001.pt", "step_0000001.yaml"]),                      # config renamed, checkpoint not yet
    ("prune", ["step_0000002.pt", "step_0000002.yaml"]),                        # old checkpoint deleted, config not
])
def test_a_kill_during_save_or_prune_leaves_config_and_checkpoint_together(tmp_path, when, left):
    root = tmp_path / "ckpt"
    r = subprocess.run([sys.executable, "-c", KILLED_SAVE, str(root), when], capture_output=True, text=True)
    assert r.returncode == -9, r.stderr[-2000:]
    reopened = CheckpointDir(root)  # what the resumed run sees
    assert _visible(root) == left
    for step in reopened.steps():
        assert load_training_state(reopened.path(step))["step"] == step
        assert (root / f"step_{step:07d}.yaml").read_text() == f"step: {step}\n"


def test_orphan_residual_tables_are_removed_but_checkpoint_companions_kept(tmp_path, caplog):
    root = tmp_path / "ckpt"
    CheckpointDir(root).save(3, {"step": 3}, "step: 3\n")
    (root / "step_0000003.residuals.tsv").write_text("utt\tr\n")
    (root / "step_0000009.residuals.tsv").write_text("utt\tr\n")  # its checkpoint was pruned by a killed run
    (root / "step_0000009.yaml").write_text("step: 9\n")
    (root / "notes.yaml").write_text("mine\n")                       # not a checkpoint companion: kept
    caplog.set_level(logging.WARNING, logger="gradtts.train.state")
    CheckpointDir(root)
    assert _visible(root) == ["notes.yaml", "step_0000003.pt", "step_0000003.residuals.tsv", "step_0000003.yaml"]
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, f"removed step_0000009.residuals.tsv, step_0000009.yaml in {root}: left without their "
                          "checkpoint by an interrupted save or prune")]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_disk_full_during_an_atomic_write_names_the_file(tmp_path, code):
    target = tmp_path / "out/step_0000005.pt"
    target.parent.mkdir()
    target.write_bytes(b"previous")
    what = "disk full" if code == errno.ENOSPC else "disk quota exceeded"
    with pytest.raises(DiskFullError, match=rf"{what} while writing .*out/step_0000005\.pt \(.* free on its disk; "
                                            rf"{os.strerror(code)}\); free some space") as err:
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise OSError(code, os.strerror(code))
    assert isinstance(err.value, OSError) and err.value.errno == code
    assert "[Errno" not in str(err.value)
    assert _visible(target.parent) == ["step_0000005.pt"] and target.read_bytes() == b"previous"
    # A writer that wraps the OSError in its own exception: the cause still tells.
    with pytest.raises(DiskFullError, match=r"writing .*out/notes\.txt"):
        with atomic_path(tmp_path / "out/notes.txt"):
            try:
                raise OSError(errno.ENOSPC, "No space left on device")
            except OSError as exc:
                raise RuntimeError("the writer failed") from exc


def test_other_write_errors_are_not_called_a_full_disk(tmp_path):
    with pytest.raises(PermissionError) as err:
        with atomic_path(tmp_path / "a.txt"):
            raise PermissionError(errno.EACCES, "Permission denied")
    assert not isinstance(err.value, DiskFullError)
    atomic_write_text(tmp_path / "b.txt", "fine\n")
    assert (tmp_path / "b.txt").read_text() == "fine\n"


def test_cli_errors_turns_expected_errors_into_one_line(capsys, monkeypatch):
    monkeypatch.delenv("GRADTTS_DEBUG", raising=False)
    for exc in (FileNotFoundError("x.txt: not found"), ValueError("synth.vocoder='nope': choose ..."),
                DiskFullError("disk full while writing y.pt")):
        with pytest.raises(SystemExit) as stop:
            with cli_errors("gradtts-test"):
                raise exc
        assert stop.value.code == 2
        assert capsys.readouterr().err == f"gradtts-test: error: {exc}\n"
    with pytest.raises(KeyError):  # a bug keeps its traceback
        with cli_errors("gradtts-test"):
            raise KeyError("internal")
    monkeypatch.setenv("GRADTTS_DEBUG", "1")
    with pytest.raises(SystemExit):
        with cli_errors("gradtts-test"):
            raise FileNotFoundError("z.txt")
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and err.endswith("gradtts-test: error: z.txt\n")


def _run(module: str, *args: str, debug: bool = False) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("GRADTTS_DEBUG", "HYDRA_FULL_ERROR")}
    if debug:
        env["GRADTTS_DEBUG"] = "1"
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, env=env, cwd=REPO)


def _one_error_line(r: subprocess.CompletedProcess, command: str) -> str:
    assert r.returncode == 2, r.stderr[-3000:]
    assert "Traceback" not in r.stderr and "Error executing job" not in r.stderr, r.stderr[-3000:]
    lines = [line for line in r.stderr.splitlines() if line.startswith(f"{command}: error: ")]
    assert len(lines) == 1, r.stderr[-3000:]
    return lines[0]


def test_synth_command_reports_a_missing_text_list(tmp_path):
    args = (f"synth.texts={tmp_path / 'absent.txt'}", f"synth.checkpoints=[{tmp_path}]",
            f"synth.out_dir={tmp_path / 'o'}")
    line = _one_error_line(_run("gradtts.synth", *args), "gradtts-synth")
    assert f"{tmp_path / 'absent.txt'}: text list not found" in line
    debug = _run("gradtts.synth", *args, debug=True)
    assert debug.returncode == 2 and "Traceback" in debug.stderr and "gradtts-synth: error: " in debug.stderr


def test_report_command_reports_missing_and_corrupt_summaries(tmp_path):
    (tmp_path / "runs").mkdir()
    line = _one_error_line(_run("gradtts.report.cli", f"root={tmp_path / 'runs'}", f"out_dir={tmp_path / 'rep'}"),
                           "gradtts-report")
    assert "no fine-tuning summary.json" in line
    (tmp_path / "runs/a").mkdir()
    (tmp_path / "runs/a/summary.json").write_text('{"S_T": 0.5,')
    line = _one_error_line(_run("gradtts.report.cli", f"root={tmp_path / 'runs'}", f"out_dir={tmp_path / 'rep'}"),
                           "gradtts-report")
    assert f"{tmp_path / 'runs/a/summary.json'}: corrupt summary.json" in line


def test_train_command_reports_missing_features(tmp_path):
    r = _run("gradtts.train", "experiment=smoke", f"data.feats_dir={tmp_path / 'nofeats'}",
             f"trainer.out_dir={tmp_path / 'run'}")
    assert "features manifest not found" in _one_error_line(r, "gradtts-train")


def test_score_command_reports_missing_audio(tmp_path):
    r = _run("gradtts.scoring.cli", f"gen_dir={tmp_path / 'gen'}", f"ref_target={tmp_path / 'ref'}",
             f"out_dir={tmp_path / 'score'}")
    assert f"{tmp_path / 'gen'}: neither a data dir nor a folder of audio" in _one_error_line(r, "gradtts-score")


TINY_RECIPE = """#!/usr/bin/env bash
set -euo pipefail
stage=0
n_shot=20   # a documented option
help_message="Usage: tiny.sh [--stage N] [--n_shot N]"
. "{parse_options}"
echo "stage=$stage n_shot=$n_shot PATH=$PATH overrides=${{hydra_overrides[*]-}}"
"""


def test_recipe_options_accept_only_declared_names(tmp_path):
    script = tmp_path / "tiny.sh"
    script.write_text(TINY_RECIPE.format(parse_options=REPO / "recipes/utils/parse_options.sh"))
    ok = subprocess.run(["bash", str(script), "--stage", "3", "--n-shot=5", "a.b=1"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("stage=3 n_shot=5 PATH=" + os.environ["PATH"]) and "overrides=a.b=1" in ok.stdout
    for name, bad in (("--PATH", ["--PATH", "/nowhere"]), ("--PATH", ["--PATH=/nowhere"]),
                      ("--IFS", ["--IFS", "x"]), ("--help_message", ["--help_message", "x"]),
                      ("--shell-opts", ["--stage", "1", "--shell-opts", "x"])):
        r = subprocess.run(["bash", str(script), *bad], capture_output=True, text=True)
        assert r.returncode == 1 and r.stdout == "", (bad, r.stdout, r.stderr)
        assert f"unknown option {name} (not one of this recipe's options; see --help)" in r.stderr
    # The shared template: refused before anything runs or is created; --help still lists the options.
    r = subprocess.run(["bash", str(REPO / "recipes/fewshot.sh"), "--PATH", "/x", "--exp", str(tmp_path / "exp")],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 1 and "unknown option --PATH" in r.stderr and not (tmp_path / "exp").exists()
    h = subprocess.run(["bash", str(REPO / "recipes/fewshot.sh"), "--help"], capture_output=True, text=True)
    assert h.returncode == 0 and "--n_shot [20]" in h.stdout
