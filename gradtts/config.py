"""Hydra plumbing shared by every entry point: where ``conf/`` lives and how a stage is launched."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

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
