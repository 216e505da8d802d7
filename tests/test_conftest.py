"""tests/conftest.py's rules, run on a small suite of their own: no-skip runs, and unmarked slow tests listed."""

import os
import re
import subprocess
import sys
from pathlib import Path

CONFTEST = Path(__file__).resolve().parent / "conftest.py"

INNER_TESTS = '''
import subprocess
import sys
import time

import pytest

BUSY = "import time\\nt = time.process_time()\\nwhile time.process_time() - t < 0.4:\\n    pass\\n"


@pytest.mark.skipif(True, reason="needs the moon")
def test_skipped_by_mark():
    pass


def test_skipped_inside():
    pytest.skip("no cheese")


@pytest.mark.xfail(reason="known bug", strict=True)
def test_expected_failure():
    assert False


def test_busy_unmarked():
    exec(BUSY)


def test_busy_child_unmarked():
    subprocess.run([sys.executable, "-c", BUSY], check=True)


@pytest.mark.slow
def test_busy_marked():
    exec(BUSY)


def test_sleeping_unmarked():
    time.sleep(0.6)
'''


def _run_inner(tmp_path, no_skip: bool):
    # The real conftest, with a threshold the busy loops above cross; its own directory and pytest.ini keep
    # the inner run away from this repository's settings.
    text = CONFTEST.read_text()
    assert text.count("SLOW_CPU_SECONDS = 10.0") == 1
    (tmp_path / "conftest.py").write_text(text.replace("SLOW_CPU_SECONDS = 10.0", "SLOW_CPU_SECONDS = 0.2"))
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    slow: slow\n")
    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    env = {k: v for k, v in os.environ.items() if k != "GRADTTS_TESTS_NO_SKIP"}
    if no_skip:
        env["GRADTTS_TESTS_NO_SKIP"] = "1"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rsfE", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout + proc.stderr


def test_skips_are_allowed_by_default_and_slow_tests_without_the_mark_are_listed(tmp_path):
    rc, out = _run_inner(tmp_path, no_skip=False)
    assert rc == 0, out
    assert "4 passed, 2 skipped, 1 xfailed" in out
    assert "tests over the slow threshold without @pytest.mark.slow" in out
    # CPU time counts, in the test process and in the child it waited for; sleeping does not.
    listed = re.findall(r"^ *[0-9.]+ s  test_inner.py::(\S+)$", out, flags=re.M)
    assert sorted(listed) == ["test_busy_child_unmarked", "test_busy_unmarked"], out


def test_no_skip_env_turns_every_skip_into_a_failure_quoting_its_reason(tmp_path):
    rc, out = _run_inner(tmp_path, no_skip=True)
    assert rc == 1, out
    # A skip decided in setup (a skipif mark) reads as an error, one inside the test as a failure.
    assert "1 failed, 4 passed, 1 xfailed, 1 error" in out
    assert "ERROR test_inner.py::test_skipped_by_mark" in out and "FAILED test_inner.py::test_skipped_inside" in out
    assert "needs the moon" in out and "no cheese" in out
    assert "GRADTTS_TESTS_NO_SKIP=1: this run requires every test to run" in out
