"""Import layers: a module may import its own layer and the layers below it, never one above.

From the bottom up:

0. foundation: the package itself, ``errors``, ``io``, ``digest``, ``device``, ``logs``, ``config`` (Hydra
   plumbing), ``envcheck``, ``layout``, ``audio``, ``features``, ``text``.
1. component: ``data`` (data dirs, manifests), ``model``, ``vocoder``, ``losses`` and the speaker encoders
   (``scoring`` itself, ``scoring.encoders``, ``scoring.ge2e``, ``scoring.similarity``).
2. prep: ``data_prep``, the corpus preparation. It builds data dirs, features and few-shot sets from the
   foundation and the components (the few-shot builder may embed with a speaker encoder), and uses
   nothing that trains, synthesises, scores or reports.
3. training: ``train``.
4. tools: ``synth`` and the scoring tools (``scoring.cli``, ``scoring.voiceid``, ``scoring.roundtrip``).
5. report: ``report`` (the statistics live here).
6. commands: ``grid``, which drives every stage, and ``conf_store``, which registers every command's config.

Every import counts, also one inside a function or under ``TYPE_CHECKING``: a lazy import still makes
the lower layer depend on the higher one. A new module must be given a layer in :data:`LAYERS`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gradtts", "data_prep")

#: Layers from the bottom up: each is (name, modules); a module belongs to the longest listed prefix.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation", ("gradtts", "gradtts.errors", "gradtts.io", "gradtts.digest", "gradtts.device", "gradtts.logs",
                    "gradtts.config", "gradtts.envcheck", "gradtts.layout", "gradtts.audio", "gradtts.features",
                    "gradtts.text")),
    ("component", ("gradtts.data", "gradtts.model", "gradtts.vocoder", "gradtts.losses", "gradtts.scoring")),
    ("prep", ("data_prep",)),
    ("training", ("gradtts.train",)),
    ("tools", ("gradtts.synth", "gradtts.scoring.cli", "gradtts.scoring.voiceid", "gradtts.scoring.roundtrip")),
    ("report", ("gradtts.report", "gradtts.toy")),
    ("commands", ("gradtts.grid", "gradtts.conf_store")),
)
# The package's own name stands for its __init__ only; its submodules each need their own entry.
_EXACT_ONLY = {"gradtts"}


def layer_of(module: str) -> int:
    """Rank (0 = lowest) of the layer holding ``module``; KeyError for a module no entry covers."""
    best: tuple[int, int] | None = None  # (prefix length, rank)
    for rank, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            covers = module == p or (p not in _EXACT_ONLY and module.startswith(p + "."))
            if covers and (best is None or len(p) > best[0]):
                best = (len(p), rank)
    if best is None:
        raise KeyError(f"{module}: in no layer; give it one in LAYERS of tests/test_layers.py")
    return best[1]


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported_modules(source: str, module: str, is_package: bool = False) -> list[str]:
    """Our modules (``gradtts``, ``data_prep``) that ``source``, the text of ``module``, imports anywhere in it.

    ``from pkg import name`` counts as ``pkg.name`` when that is a module, else as ``pkg``.
    """
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, one level up per extra dot
                parts = package.split(".")
                parts = parts[:len(parts) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            names = [f"{base}.{a.name}" if _is_module(f"{base}.{a.name}") else base for a in node.names]
        else:
            continue
        found += [n for n in names if n.split(".")[0] in PACKAGES]
    return found


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """``importer -> imported (layer -> higher layer)`` for each import of ``source`` into a higher layer."""
    own = layer_of(module)
    out = []
    for target in imported_modules(source, module, is_package):
        rank = layer_of(target)
        if rank > own:
            out.append(f"{module} -> {target} ({LAYERS[own][0]} -> {LAYERS[rank][0]})")
    return out


def _modules() -> list[tuple[str, Path]]:
    out = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out.append((name, path))
    return out


def test_no_module_imports_a_higher_layer():
    modules = _modules()
    assert len(modules) > 60 and {"gradtts.synth", "gradtts.model.gradtts", "data_prep.fewshot"} <= dict(modules).keys()
    problems: list[str] = []
    for name, path in modules:
        try:
            problems += violations(path.read_text(encoding="utf-8"), name, path.name == "__init__.py")
        except KeyError as exc:
            problems.append(str(exc.args[0]))
    problems = list(dict.fromkeys(problems))
    assert not problems, "imports against the layers:\n  " + "\n  ".join(problems)


def test_the_checker_catches_upward_imports_in_functions_and_relative_ones():
    lazy = "import torch\n\ndef f():\n    from gradtts.synth import SAMPLE_RATE\n    return SAMPLE_RATE\n"
    assert violations(lazy, "gradtts.model.extra") == [
        "gradtts.model.extra -> gradtts.synth (component -> tools)"]
    # `from gradtts import report` names the module gradtts.report, not the package's __init__
    assert violations("from gradtts import report\n", "data_prep.extra") == [
        "data_prep.extra -> gradtts.report (prep -> report)"]
    assert violations("from ..train import loop\n", "gradtts.model.extra") == [
        "gradtts.model.extra -> gradtts.train.loop (component -> training)"]
    # downward and same-layer imports pass; the speaker encoders sit below the scoring tools
    assert violations("from gradtts.io import write_csv\nfrom gradtts.scoring import load_speaker_encoder\n",
                      "data_prep.extra") == []
    assert violations("from gradtts.model.inference import synthesize_mels\n", "gradtts.scoring.voiceid") == []
    assert violations("from gradtts.scoring.cli import score\n", "gradtts.scoring.encoders") == [
        "gradtts.scoring.encoders -> gradtts.scoring.cli (component -> tools)"]


def test_every_module_needs_a_layer():
    assert layer_of("gradtts") == 0 and layer_of("gradtts.text.cleaners") == 0
    with pytest.raises(KeyError, match="gradtts.newthing: in no layer"):
        layer_of("gradtts.newthing")
