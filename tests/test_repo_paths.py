"""Nothing in the repository points at a file outside it.

The protocol lives in ``docs/method.md``. A user's clone has nothing beside it, so a citation of the developers'
method brief ("METHOD.md §2", "METHOD §4-5") or a path into the developers' machine ("../shared/...", "/work/...")
in code, configs, docs or committed results sends the reader to a file they do not have.

The only exceptions (:data:`ALLOWED`) are developer-facing files that name the data folder beside a developer
checkout on purpose: tests that read it and skip without it, their documentation, the tool that regenerates a
bundled copy from it, and CI, which turns those skips into failures when the folder is there. A citation of the
method brief is never allowed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
THIS = Path(__file__).resolve().relative_to(REPO).as_posix()

#: A citation of the method brief: "METHOD.md §2", "METHOD §6", "(METHOD 4)". Whole word and upper case, so
#: ``ADAPT_METHODS`` and ``docs/method.md`` do not match.
METHOD_BRIEF = re.compile(r"\bMETHOD\b")
#: A path outside the checkout: the folder beside it, or the developers' absolute paths.
OUTSIDE = re.compile(r"\.\./shared\b|/work/")

#: Files that may name a path outside the checkout, and why. Keep it short: every entry must still need it
#: (``test_allow_list_is_minimal``).
ALLOWED = {
    ".ci/run": "CI sets GRADTTS_TESTS_NO_SKIP when ../shared is beside the clone",
    "tests/README.md": "the table of optional test inputs, ../shared among them",
    "tests/conftest.py": "documents which optional inputs (../shared/data among them) a test may skip without",
    "tests/test_speaker_encoders.py": "reads real speech from ../shared/data and skips without it",
    "tests/test_vocoder.py": "reads real speech from ../shared/data and skips without it",
    "tests/test_quality.py": "reads real speech from ../shared/data and skips without it",
    "tests/test_intelligibility.py": "reads real speech from ../shared/data and skips without it",
    "tests/test_text.py": "checks the whole official dictionary in ../shared/reference and skips without it",
    "tests/data/README.md": "says which folder beside the checkout each bundled copy was taken from",
    "tests/data/make_dictionary_subset.py": "developer tool: regenerates the bundled subset from ../shared/reference",
    "tests/test_listening.py": "asserts the listening page holds no absolute path ('/work/' is one it looks for)",
}


def tracked_text_files() -> dict[str, str]:
    """Path -> text of every tracked file that exists and is text (binary files, with a NUL byte, are skipped)."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: the tracked files are unknown")
    out = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True).stdout
    files = {}
    for name in out.decode("utf-8").split("\0"):
        path = REPO / name
        if not name or name == THIS or not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" not in data:
            files[name] = data.decode("utf-8", errors="replace")
    return files


def hits(files: dict[str, str], pattern: re.Pattern) -> dict[str, list[str]]:
    """Path -> the ``line: text`` of each line of that file matching ``pattern``."""
    found: dict[str, list[str]] = {}
    for name, text in files.items():
        if not pattern.search(text):
            continue
        found[name] = [f"{i}: {line.strip()[:160]}" for i, line in enumerate(text.splitlines(), 1)
                       if pattern.search(line)]
    return found


def report(found: dict[str, list[str]], many: int = 3) -> str:
    """A readable failure message: each file's first hit; a folder with more than ``many`` such files in one line."""
    groups: dict[str, list[str]] = {}
    for name in sorted(found):
        groups.setdefault("/".join(name.split("/")[:3]), []).append(name)
    lines = []
    for folder, names in groups.items():
        if len(names) > many:
            lines.append(f"  {folder}/...: {len(names)} files, e.g. {names[0]}:{found[names[0]][0]}")
            continue
        lines += [f"  {name}:{found[name][0]}" + (f"  (+{len(found[name]) - 1} more lines)" if len(found[name]) > 1
                                                 else "") for name in names]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def files() -> dict[str, str]:
    return tracked_text_files()


def test_no_file_cites_the_method_brief(files):
    found = hits(files, METHOD_BRIEF)
    if found:
        pytest.fail("these tracked files cite the method brief, which is not in the repository; cite the "
                    "section of docs/method.md instead:\n" + report(found), pytrace=False)


#: Machine-written run records (``run.json``, ``summary.json``, ...) of committed studies: they record where the run
#: that made them read its inputs, on the machine it ran on. Nothing reads those fields back to find a file (the
#: report groups on the arms and pairs they also record), so they are data about a run, not pointers for a reader.
RUN_RECORD = re.compile(r"^egs/[^/]+/(results|ablation)/.*\.json$")


def test_no_file_points_outside_the_repository(files):
    found = {name: h for name, h in hits(files, OUTSIDE).items() if name not in ALLOWED and not RUN_RECORD.match(name)}
    if found:
        pytest.fail("these tracked files name a path outside the repository (../shared or /work/), which users do "
                    "not have; use a path inside the checkout, a documented option or a public source (a "
                    "developer-only test input: add the file to ALLOWED with the reason):\n" + report(found),
                    pytrace=False)


def test_allow_list_is_minimal(files):
    # An entry whose file is gone or no longer names such a path would silently allow a future one.
    stale = sorted(name for name in ALLOWED if name not in files or not OUTSIDE.search(files[name]))
    assert not stale, f"remove from ALLOWED (the file is not tracked or no longer names ../shared or /work/): {stale}"


def test_patterns_catch_the_citation_forms_and_spare_the_lookalikes():
    cited = ["(METHOD.md §2)", "METHOD §4-5", "# Few-shot fine-tuning (METHOD 4):", "`../shared/METHOD.md`"]
    assert all(METHOD_BRIEF.search(s) for s in cited)
    assert not any(METHOD_BRIEF.search(s) for s in ("ADAPT_METHODS", "docs/method.md §2", "a method"))
    outside = ["../shared/data/librispeech-3spk", "`/work/runs/study`", '"/work/main/exp/base"']
    assert all(OUTSIDE.search(s) for s in outside)
    assert not any(OUTSIDE.search(s) for s in ("tests/data/README.md", "egs/synthvox/shared_texts", "homework/x"))
