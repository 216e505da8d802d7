"""Hydra plumbing shared by every entry point: where ``conf/`` lives, how a stage is launched, and how
its expected errors are shown (one ``gradtts-<cmd>: error: ...`` line, exit status 2)."""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, Iterator

# Exit status of a command stopped by bad input (argparse's convention); internal errors keep Hydra's 1.
USER_ERROR_EXIT = 2
DEBUG_ENV = "GRADTTS_DEBUG"

REPO_ROOT = Path(__file__).resolve().parents[1]


def conf_dir() -> Path:
    """The Hydra config tree: ``$GRADTTS_CONF_DIR`` if set, else ``conf/`` at the repository root."""
    env = os.environ.get("GRADTTS_CONF_DIR")
    path = Path(env) if env else REPO_ROOT / "conf"
    if not path.is_dir():
        raise FileNotFoundError(
            f"Hydra config directory {path} not found; install the toolkit from its repository "
            "(pip install -e .) or set GRADTTS_CONF_DIR")
    return path


def hydra_entry(config_name: str, schema_name: str | None = None, schema: Any = None) -> Callable:
    """Decorate ``fn(cfg)`` as a Hydra entry point reading ``conf/<config_name>.yaml``.

    When ``schema`` (a dataclass) is given it is registered in Hydra's ConfigStore as
    ``schema_name`` so the YAML can list it first in its defaults and be type-checked.
    """
    import hydra
    from hydra.core.config_store import ConfigStore

    if schema is not None:
        ConfigStore.instance().store(name=schema_name or f"{config_name}_schema", node=schema)

    def wrap(fn: Callable) -> Callable:
        return hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name=config_name)(fn)

    return wrap


def user_error_types() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input (a missing file, a bad option value or checkpoint), not a bug.

    Imported when an error is being handled, so that ``gradtts.config`` itself stays light.
    """
    from omegaconf.errors import OmegaConfBaseException

    from gradtts.io import DiskFullError
    from gradtts.model.checkpoint import CheckpointError
    from gradtts.synth import SynthCacheError
    from gradtts.train.identity import RunIdentityError

    # ValueError covers ManifestError, DataDirError, AudioError, SpeakerAudioError and the config checks;
    # OmegaConf's errors are a mandatory value left at ??? or a value of the wrong type.
    return (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError, DiskFullError, ValueError,
            CheckpointError, RunIdentityError, SynthCacheError, OmegaConfBaseException)


def debug_enabled() -> bool:
    """``GRADTTS_DEBUG=1``: show the traceback of expected errors too."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


@contextlib.contextmanager
def cli_errors(command: str) -> Iterator[None]:
    """Turn an expected error inside the block into ``<command>: error: <message>`` on stderr and exit 2.

    With ``GRADTTS_DEBUG=1`` the traceback is printed before that line. Anything else propagates with its
    traceback (Hydra prints it): that is a bug to report. Use it inside
    the Hydra task function, since Hydra catches (and prints a traceback for) whatever escapes it.
    """
    try:
        yield
    except Exception as exc:
        if not isinstance(exc, user_error_types()):
            raise
        if debug_enabled():
            traceback.print_exc()
        print(f"{command}: error: {exc}", file=sys.stderr, flush=True)
        sys.exit(USER_ERROR_EXIT)
