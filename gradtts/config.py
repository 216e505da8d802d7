"""Hydra plumbing shared by every entry point: where the presets live (``conf_dir``), how a command stores its
config in Hydra's ConfigStore (``store_command_config``), how it is launched or its config composed
(``hydra_entry``, ``compose_stage``, ``to_object``), and how its expected errors are shown (one
``gradtts-<cmd>: error: ...`` line, exit status 2).

Generic: each command registers its own config next to its schema, through ``store_command_config``, and
hands that registration function to ``hydra_entry``/``compose_stage``; :mod:`gradtts.conf_store` finds
a command's config by name (``load_stage_config``)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

if TYPE_CHECKING:
    from omegaconf import DictConfig

# Exit status of a command stopped by bad input (argparse's convention); internal errors keep Hydra's 1.
USER_ERROR_EXIT = 2
DEBUG_ENV = "GRADTTS_DEBUG"

# The presets ship inside the package (package data), so a plain `pip install` finds them; the repository's
# top-level `conf` is a symlink to this folder, for recipes and docs that name conf/experiment/....
PACKAGE_CONF_DIR = Path(__file__).resolve().parent / "conf"
CONF_DIR_ENV = "GRADTTS_CONF_DIR"
#: The commands' primary configs (registered in Hydra's ConfigStore, never YAML).
STAGE_CONFIGS = ("train", "synth", "score", "report")


def conf_dir() -> Path:
    """Hydra's config directory: ``$GRADTTS_CONF_DIR`` if set, else the package's ``gradtts/conf/``.

    It holds the YAML presets (``experiment/``, ``hydra/launcher/``); every default lives in the dataclasses
    that the commands register (:func:`store_command_config`). A directory of your own may add presets and
    group options under new names. Raises ValueError for a directory that still holds a command's whole config
    (``train.yaml``...: the layout before the defaults moved into the dataclasses), which Hydra would refuse.
    """
    env = os.environ.get(CONF_DIR_ENV)
    path = Path(env) if env else PACKAGE_CONF_DIR
    if not path.is_dir():
        where = f"{CONF_DIR_ENV}={env}" if env else "the installed package"
        raise FileNotFoundError(f"Hydra config directory {path} ({where}) not found; point {CONF_DIR_ENV} at a "
                                "directory (it may be empty) or reinstall the toolkit")
    stale = [name for name in STAGE_CONFIGS if (path / f"{name}.yaml").is_file()]
    if stale:
        raise ValueError(f"{path}: {', '.join(f'{n}.yaml' for n in stale)} would replace the built-in config of "
                         "that command, whose defaults now live in the dataclasses (gradtts.conf_store); delete "
                         "the file and keep its changes as a preset (experiment/NAME.yaml, `# @package _global_`)")
    return path


def store_command_config(name: str, schema: type, hydra: Mapping[str, Any], *, log_file: bool,
                         groups: Mapping[str, str] | None = None) -> None:
    """Store command ``name``'s primary config in Hydra's ConfigStore.

    ``schema`` (the command's dataclass, holding every default) becomes node ``<name>_schema``; the primary
    config ``name`` lists the schema, one option per group of ``groups`` (``{group: option}``, options the
    caller has stored), its own ``hydra`` settings (run directory, chdir...), an optional ``experiment``
    preset and the job logging. ``log_file``: the job also logs to ``<name>.log`` in its output directory
    (``hydra/job_logging=gradtts``), else to the console only (``gradtts_console``).
    """
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name=f"{name}_schema", node=schema)
    _store_job_logging()
    # The schema first (types, defaults), then the groups, then this node's own values (the Hydra
    # settings), then an experiment preset, which may override anything above it. The job logging is a
    # group option, so that `hydra/job_logging=default` (or disabled) on the command line still works.
    job_logging = "gradtts" if log_file else "gradtts_console"
    defaults: list[Any] = [f"{name}_schema", *({g: o} for g, o in (groups or {}).items()), "_self_",
                           {"optional experiment": None}, {"override hydra/job_logging": job_logging}]
    cs.store(name=name, node={"defaults": defaults, "hydra": dict(hydra)})


def _store_job_logging() -> None:
    from hydra.core.config_store import ConfigStore

    from gradtts.logs import hydra_job_logging

    cs = ConfigStore.instance()
    cs.store(group="hydra/job_logging", name="gradtts", node=hydra_job_logging(file=True))
    cs.store(group="hydra/job_logging", name="gradtts_console", node=hydra_job_logging(file=False))


def hydra_entry(config_name: str, register: Callable[[], None]) -> Callable:
    """Decorate ``fn(cfg)`` as the Hydra entry point of command ``config_name`` (train, synth, score, report).

    ``register()`` stores the command's configuration in Hydra's ConfigStore first (the command's own
    ``register_config``); ``conf_dir()`` is the config directory, where the presets (``experiment=...``)
    and any extra group options are found.
    """
    import hydra

    register()

    def wrap(fn: Callable) -> Callable:
        return hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name=config_name)(fn)

    return wrap


@contextlib.contextmanager
def _private_hydra() -> Iterator[None]:
    # Hydra keeps one global instance: a Hydra app (or a caller's own compose) may already hold it. Set it
    # aside for the block and put it back after, with the job name, which the next job of a running
    # multirun reads (Hydra's compose API would otherwise refuse, or rename that job "app").
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.utils import JobRuntime

    running = GlobalHydra.instance().hydra
    job_name = JobRuntime.instance().get("name")
    GlobalHydra.instance().clear()
    try:
        yield
    finally:
        GlobalHydra.instance().clear()
        if running is not None:
            GlobalHydra.instance().initialize(running)
        JobRuntime.instance().set("name", job_name)


def compose_stage(config_name: str, overrides: Sequence[str], register: Callable[[], None]) -> DictConfig:
    """The composed (unresolved) config of a command, as its Hydra app would see it, without running it.

    ``register()`` stores the command's configuration first (as for :func:`hydra_entry`); ``overrides`` are
    command-line overrides (``loss=huber``, ``synth.n_timesteps=50``, ``experiment=X``). Works inside a
    running Hydra app too. Bad overrides raise Hydra's or OmegaConf's errors.
    """
    from hydra import compose, initialize_config_dir

    register()
    with _private_hydra(), initialize_config_dir(config_dir=str(conf_dir().resolve()), version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides))


def to_object(node: DictConfig, allow_missing: bool = False) -> Any:
    """``OmegaConf.to_object``, or with ``allow_missing`` the same with missing fields left at ``???``."""
    from omegaconf import OmegaConf

    if not allow_missing:
        return OmegaConf.to_object(node)
    cls = OmegaConf.get_type(node)
    if not dataclasses.is_dataclass(cls):
        return OmegaConf.to_container(node, resolve=True, throw_on_missing=False)
    values = {}
    for f in dataclasses.fields(cls):
        if not f.init or OmegaConf.is_missing(node, f.name):
            continue  # the dataclass default of a mandatory field is "???"
        child = node[f.name]
        if OmegaConf.is_dict(child):
            values[f.name] = to_object(child, allow_missing)
        elif OmegaConf.is_list(child):
            values[f.name] = OmegaConf.to_container(child, resolve=True, throw_on_missing=False)
        else:
            values[f.name] = child
    return cls(**values)


def user_error_types() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input (a missing file, a bad option value or checkpoint), not a bug.

    Imported when an error is being handled, so that ``gradtts.config`` itself stays light.
    """
    from omegaconf.errors import OmegaConfBaseException

    from gradtts.errors import UserError

    # ValueError covers ManifestError, DataDirError, AudioError, SpeakerAudioError and the config checks;
    # UserError the toolkit's other bad-input errors (DiskFullError, CheckpointError, RunIdentityError,
    # SynthCacheError), whatever layer defines them; OmegaConf's errors are a mandatory value left at ???
    # or a value of the wrong type.
    return (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError, ValueError, UserError,
            OmegaConfBaseException)


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
