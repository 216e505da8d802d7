"""Suite-wide rules: which tests are marked slow, and runs in which a skip counts as a failure.

Slow: a test is marked ``@pytest.mark.slow`` when it takes more than ``SLOW_CPU_SECONDS`` (10) CPU-seconds:
setup + call + teardown, in the pytest process and in the subprocesses it runs and waits for, under
``OMP_NUM_THREADS=1`` (so about 10 s on one idle core of the 2-core development machine). CPU time, not wall
time, because the machine is shared: load stretches wall time several-fold but hardly moves CPU time. The mark
is a decorator on each such test with a comment giving what it does and its measured time; a module whose tests
all pay for one expensive module-scoped fixture is marked as a whole (``pytestmark = pytest.mark.slow``), since
leaving one of its tests out would not leave the cost out. Slow tests are still part of CI (``make test``);
``make test-fast`` (``-m "not slow"``) leaves them out. So that the marks stay consistent, the end of every run
lists the tests over the threshold that are not marked (CPU time of worker pools that outlive a test, such as
joblib's, is not seen; such tests are judged by hand).

No skips: with ``GRADTTS_TESTS_NO_SKIP=1`` in the environment, every test that would skip fails instead,
quoting its skip reason. Tests skip only for what a user's machine may lack: the real speech of
``../shared/data`` and the whole official dictionary (developer checkouts), espeak-ng, flite, chromium and
chromedriver (Debian packages), resemblyzer, selenium. CI has all of them, so CI sets the variable, and a
dependency that went missing there fails the run instead of passing with fewer tests.
"""

from __future__ import annotations

import os
import resource
import time

import pytest

SLOW_CPU_SECONDS = 10.0
NO_SKIP_ENV = "GRADTTS_TESTS_NO_SKIP"

# (CPU-seconds, nodeid) of the tests over the threshold without the slow mark
_UNMARKED_SLOW: list[tuple[float, str]] = []


def _cpu_seconds() -> float:
    """CPU time of this process (all threads) and of its terminated, waited-for children."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    start = _cpu_seconds()
    try:
        return (yield)
    finally:
        used = _cpu_seconds() - start
        if used > SLOW_CPU_SECONDS and item.get_closest_marker("slow") is None:
            _UNMARKED_SLOW.append((used, item.nodeid))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.skipped and not hasattr(report, "wasxfail") and os.environ.get(NO_SKIP_ENV) == "1":
        # longrepr of a skip is (file, line, "Skipped: <reason>").
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = (f"{reason}\n{NO_SKIP_ENV}=1: this run requires every test to run; install what the "
                           "reason names, or unset the variable to allow skips")
    return report


def pytest_terminal_summary(terminalreporter):
    if _UNMARKED_SLOW:
        terminalreporter.section("tests over the slow threshold without @pytest.mark.slow")
        terminalreporter.write_line(f"more than {SLOW_CPU_SECONDS:g} CPU-seconds each (tests/conftest.py): mark "
                                    "them slow, or make them faster")
        for used, nodeid in sorted(_UNMARKED_SLOW, reverse=True):
            terminalreporter.write_line(f"{used:7.1f} s  {nodeid}")
