"""The logging set-up: argparse commands log to stderr in one format; Hydra commands' log files go where expected."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))


def test_setup_logging_sends_the_toolkits_records_to_stderr_once():
    probe = ("import logging; from gradtts.logs import setup_logging\n"
             "setup_logging(); setup_logging()\n"  # a second call adds no second handler
             "logging.getLogger('gradtts.x').info('progress %d', 3)\n"
             "logging.getLogger('gradtts.x').debug('not at INFO')\n"
             "logging.getLogger('some_library').info('library chatter stays out')\n"
             "logging.getLogger('some_library').warning('library warning %s', 'kept')\n")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=ENV, cwd=REPO)
    assert r.returncode == 0 and r.stdout == "", r.stderr
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"
    lines = r.stderr.splitlines()
    assert len(lines) == 2, r.stderr
    assert re.fullmatch(stamp + r" \(<string>:3\) INFO: progress 3", lines[0]), lines[0]
    assert re.fullmatch(stamp + r" \(<string>:6\) WARNING: library warning kept", lines[1]), lines[1]


def test_report_and_score_write_no_log_file_beside_their_tables(tmp_path):
    root, out = tmp_path / "runs", tmp_path / "report"
    (root / "x").mkdir(parents=True)
    (root / "x" / "summary.json").write_text(json.dumps({"kind": "step0", "pair": "A_B"}))
    r = subprocess.run([sys.executable, "-m", "gradtts.report.cli", f"root={root}", f"out_dir={out}"],
                       capture_output=True, text=True, env=ENV, cwd=tmp_path)
    # The skipped summary is logged on the console; the run ends with the usual one-line error.
    assert r.returncode == 2 and "gradtts-report: error: " in r.stderr
    assert " WARNING: " in r.stderr and "step-0 summary skipped, it lacks ['S_T', 'S_C']" in r.stderr
    score = tmp_path / "score"
    r = subprocess.run([sys.executable, "-m", "gradtts.scoring.cli", f"gen_dir={tmp_path / 'none'}",
                        f"ref_target={tmp_path / 'none'}", f"out_dir={score}"],
                       capture_output=True, text=True, env=ENV, cwd=tmp_path)
    assert r.returncode == 2 and "gradtts-score: error: " in r.stderr
    # Hydra made the run directories, but wrote neither a log file nor .hydra/ into them.
    assert out.is_dir() and score.is_dir() and not list(out.iterdir()) and not list(score.iterdir())
    assert not list(tmp_path.glob("*.log"))
