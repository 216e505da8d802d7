"""Hydra plumbing shared by every entry point: where the presets live (``conf_dir``), how a command stores its
config in Hydra's ConfigStore (``store_command_config``), how it is launched or its config composed
(``hydra_entry``, ``compose_stage``, ``to_object``), and how its expected errors are shown (one
``gradtts-<cmd>: error: ...`` line, exit status 2).

Generic: each command registers its own config next to its schema, through ``store_command_config``, and
hands that registration function to ``hydra_entry``/``compose_stage``; :mod:`gradtts.conf_store` finds
a command's config by name (``load_stage_config``).

Enumerated fields declare their choices next to the field (``field(metadata={"choices": REGISTRY})``, see
:data:`CHOICES`); ``check_choices`` checks a composed config against them, which every command does at
composition (also for ``--cfg job``) and ``load_stage_config`` too. Each command's ``--help`` is its own
(``hydra.help``, :func:`help_settings`): what it does, examples, the presets that compose for it, its groups and
every field with its default and choices."""

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
#: Field metadata keys: ``field(metadata={CHOICES: REGISTRY})`` names the values a string field (or each element
#: of a list field) may take, REGISTRY being the tuple or dict the runtime code looks names up in;
#: ``{NESTED_CHOICES: {name: REGISTRY}}`` on a field holding a dataclass declared elsewhere does the same for
#: that dataclass's fields (``TrainConfig.loss``: ``LossConfig`` lives beside the losses). A choice ending in
#: ``:N`` stands for that prefix and any index (``cuda:N``: ``cuda:0``, ``cuda:1``...).
CHOICES = "choices"
NESTED_CHOICES = "nested_choices"
#: The devices a stage accepts (resolved by ``gradtts.device.resolve_device``).
DEVICES = ("auto", "cpu", "cuda", "cuda:N")
#: The commands' help lists the presets found in this group of the config directory.
PRESET_GROUP = "experiment"
_HELP_RESOLVER = "gradtts_help"


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
                           {f"optional {PRESET_GROUP}": None}, {"override hydra/job_logging": job_logging}]
    cs.store(name=name, node={"defaults": defaults, "hydra": {**dict(hydra), "help": help_settings(name, schema)}})


# ---- help -------------------------------------------------------------------------------------------------


def _summary(schema: type) -> str:
    # The schema's first docstring paragraph, without reST markup; a schema that only wraps one node
    # (synthesis: its settings sit under ``synth``) is described by that node's class.
    import inspect
    import typing

    fields = dataclasses.fields(schema)
    if len(fields) == 1:
        inner = typing.get_type_hints(schema).get(fields[0].name)
        if dataclasses.is_dataclass(inner):
            schema = inner
    paragraph = (inspect.getdoc(schema) or "").split("\n\n")[0]
    return " ".join(paragraph.replace("``", "").split())


def help_settings(config_name: str, schema: type) -> dict[str, str]:
    """Command ``config_name``'s ``hydra.help`` node: its name, what it does (``schema``'s docstring), and a
    template whose body (:func:`help_body`) lists its presets, groups and fields when ``--help`` asks."""
    command = command_name(config_name)
    summary = _summary(schema)
    if not summary.startswith(command):
        summary = f"{command}: {summary}"
    footer = (f"Bad values stop {command} with one line '{command}: error: ...' and exit status 2.\n"
              f"Hydra's own options (multirun -m, --cfg job|hydra|all, --info, launchers, completion): "
              f"{command} --hydra-help\n")
    _register_help_resolver()
    # string.Template reads the resolved template: a "$" of the text is written "$$".
    return {"app_name": command, "header": summary.replace("$", "$$") + "\n",
            "footer": footer.replace("$", "$$"),
            "template": "${hydra.help.header}\n${%s:%s}\n${hydra.help.footer}" % (_HELP_RESOLVER, config_name)}


def _register_help_resolver() -> None:
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver(_HELP_RESOLVER):
        OmegaConf.register_new_resolver(_HELP_RESOLVER, _help_resolver)


def _help_resolver(config_name: str, *, _root_: DictConfig) -> str:
    # Called only when Hydra reads the help template (``--help``); _root_ is the composed config.
    return help_body(config_name, _root_).replace("$", "$$")


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    return str(value) if value != "" else "''"


def _leaves(node: DictConfig, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted key, value as written)`` of every field, nested dataclass nodes walked, interpolations kept."""
    from omegaconf import OmegaConf

    raw = OmegaConf.to_container(node, resolve=False, throw_on_missing=False)
    for key, value in raw.items():
        child = node._get_node(key)
        if OmegaConf.is_dict(child) and dataclasses.is_dataclass(OmegaConf.get_type(child)):
            yield from _leaves(node[key], f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _is_list_field(cfg: DictConfig, key: str) -> bool:
    from omegaconf import ListConfig, OmegaConf

    parent, _, name = key.rpartition(".")
    return isinstance((OmegaConf.select(cfg, parent) if parent else cfg)._get_node(name), ListConfig)


def _group_options(group: str) -> list[str]:
    from hydra.core.global_hydra import GlobalHydra

    if not GlobalHydra.instance().is_initialized():
        return []
    return GlobalHydra.instance().config_loader().get_group_options(group)


def composing_presets(config_name: str, names: Sequence[str] | None = None) -> list[str]:
    """The presets (``experiment=NAME``) that compose for command ``config_name`` with valid choices; ``names``
    defaults to every ``experiment/*.yaml`` of :func:`conf_dir`. Its config must be registered already."""
    if names is None:
        names = sorted(p.stem for p in (conf_dir() / PRESET_GROUP).glob("*.yaml"))
    found = []
    for name in names:
        try:
            cfg = compose_stage(config_name, [f"{PRESET_GROUP}={name}"], lambda: None)
        except Exception:  # noqa: BLE001 - it does not compose for this command (e.g. a training preset)
            continue
        if not choice_errors(cfg):
            found.append(name)
    return found


def _example(command: str, required: Sequence[tuple[str, bool]], extra: str = "") -> str:
    def placeholder(key: str, is_list: bool) -> str:
        name = key.rsplit(".", 1)[-1].upper()
        return f"{key}=[{name}]" if is_list else f"{key}={name}"

    return " ".join([command, *([extra] if extra else []), *(placeholder(k, is_list) for k, is_list in required)])


def help_body(config_name: str, cfg: DictConfig) -> str:
    """The ``--help`` body of command ``config_name`` for its composed config ``cfg`` (with or without its
    ``hydra`` node): usage, examples, the presets that compose for it, its groups and every field with its
    value (the schema's defaults plus the overrides given) and its choices."""
    from omegaconf import OmegaConf

    command = command_name(config_name)
    job = {k: v for k, v in _leaves(cfg) if k != "hydra" and not k.startswith("hydra.")}
    choices = field_choices(cfg)
    required = [(k, _is_list_field(cfg, k)) for k, v in job.items() if v == "???"]
    runtime = OmegaConf.select(cfg, "hydra.runtime.choices", default=None)
    known = OmegaConf.to_container(runtime) if runtime is not None else {}
    # The groups in the order their fields come (model, data, loss...).
    chosen = {g: known[g] for g in dict.fromkeys(k.split(".")[0] for k in job) if g in known and known[g]}
    presets = composing_presets(config_name, _group_options(PRESET_GROUP) or None)
    usage = [command, *([f"[{PRESET_GROUP}=NAME]"] if presets else []), *(["[GROUP=OPTION ...]"] if chosen else []),
             "[KEY=VALUE ...] [+KEY=VALUE ...] [--cfg job] [-m]"]
    lines = ["Usage: " + " ".join(usage), "", "Examples:", f"  {_example(command, required)}"]
    if presets:
        lines.append(f"  {_example(command, required, f'{PRESET_GROUP}={presets[0]}')}")
    lines += [f"  {_example(command, required)} --cfg job    # print the composed config, run nothing", ""]
    lines.append(f"Presets ({PRESET_GROUP}=NAME, applied last): {', '.join(presets) if presets else 'none'}")
    if chosen:
        lines += ["", "Groups (GROUP=OPTION; * the default):"]
        for group, option in chosen.items():
            options = _group_options(group) or [option]
            lines.append(f"  {group}: " + ", ".join(f"{o}*" if o == option else o for o in options))
    lines += ["", "Fields (KEY=VALUE; the defaults with the overrides given; ??? is required):"]
    for key, value in job.items():
        note = f"    one of {', '.join(choices[key])}" if key in choices else ""
        lines.append(f"  {key}={_show(value)}{note}")
    return "\n".join(lines) + "\n"


def _store_job_logging() -> None:
    from hydra.core.config_store import ConfigStore

    from gradtts.logs import hydra_job_logging

    cs = ConfigStore.instance()
    cs.store(group="hydra/job_logging", name="gradtts", node=hydra_job_logging(file=True))
    cs.store(group="hydra/job_logging", name="gradtts_console", node=hydra_job_logging(file=False))


def command_name(config_name: str) -> str:
    """The console command of a config: ``train`` -> ``gradtts-train``."""
    return f"gradtts-{config_name}"


def hydra_entry(config_name: str, register: Callable[[], None]) -> Callable:
    """Decorate ``fn(cfg)`` as the Hydra entry point of command ``config_name`` (train, synth, score, report).

    ``register()`` stores the command's configuration in Hydra's ConfigStore first (the command's own
    ``register_config``); ``conf_dir()`` is the config directory, where the presets (``experiment=...``)
    and any extra group options are found.

    A value outside its field's choices (:data:`CHOICES`) stops the command at composition, before Hydra
    makes a run directory and also for ``--cfg job``: one ``gradtts-<cmd>: error: ...`` line, status 2
    (:func:`check_command_line`). Each job of a multirun checks its own config again before ``fn`` runs.
    """
    import functools

    import hydra

    register()
    command = command_name(config_name)

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)  # Hydra names the job after the wrapped function's module or file
        def checked(cfg: DictConfig) -> Any:
            with cli_errors(command):
                check_choices(cfg)
            return fn(cfg)

        app = hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name=config_name)(checked)

        @functools.wraps(app)
        def launch() -> Any:
            with cli_errors(command):
                check_command_line(config_name, register)
            return app()

        return launch

    return wrap


class _ArgsError(Exception):
    pass


def _raise_args_error(message: str) -> None:
    raise _ArgsError(message)


def _command_line_jobs(argv: Sequence[str]) -> list[list[str]] | None:
    """The overrides of each config the command line ``argv`` would compose, or None where it composes none
    that this check can mirror (help, a config of its own, a sweeper's ranges, bad arguments: Hydra says why).

    A multirun sweep gives one override list per value of each swept key (the others at their first value),
    so that every value is composed once without composing the whole product."""
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = get_args_parser()
    parser.error = _raise_args_error  # type: ignore[method-assign]  # Hydra reports bad arguments itself
    try:
        args = parser.parse_args(list(argv))
        parsed = OverridesParser.create().parse_overrides(args.overrides)
        if (args.help or args.hydra_help or args.info or args.shell_completion or args.experimental_rerun
                or args.config_path or args.config_name or args.config_dir):
            return None
        values = [[f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()] if o.is_sweep_override()
                  else [o.input_line] for o in parsed]  # as typed: ``~key`` must stay a deletion
    except Exception:  # noqa: BLE001 - whatever Hydra will refuse, it refuses with its own message
        return None
    if not args.multirun and any(len(v) != 1 for v in values):
        return None
    if any(not v for v in values):
        return None
    first = [v[0] for v in values]
    jobs = [first]
    for i, options in enumerate(values):
        jobs += [first[:i] + [value] + first[i + 1:] for value in options[1:]]
    return jobs


def check_command_line(config_name: str, register: Callable[[], None], argv: Sequence[str] | None = None) -> None:
    """Compose the config(s) the command line ``argv`` (default ``sys.argv[1:]``) asks for and check their
    choices: ValueError naming every value outside them, in every job of a multirun.

    A config that does not compose is left to Hydra, which then reports it in its own words."""
    errors: dict[str, None] = {}  # every job's, each once, in order
    for overrides in _command_line_jobs(sys.argv[1:] if argv is None else argv) or ():
        try:
            cfg = compose_stage(config_name, overrides, register)
        except Exception:  # noqa: BLE001 - Hydra's or OmegaConf's error, reported by Hydra itself
            return
        errors |= dict.fromkeys(choice_errors(cfg))
    if errors:
        raise ValueError("; ".join(errors))


# ---- choices ------------------------------------------------------------------------------------------------


def _matches(value: str, choice: str) -> bool:
    if choice.endswith(":N"):
        prefix = choice[:-1]
        if value.startswith(prefix) and value[len(prefix):].isdigit():
            return True
    return value == choice


def field_choices(node: DictConfig, prefix: str = "", nested: Mapping[str, Any] | None = None
                  ) -> dict[str, tuple[str, ...]]:
    """``{dotted key: choices}`` of every field of ``node`` (a structured config) that declares them.

    Walks nested dataclass nodes (training's groups); ``nested`` is the :data:`NESTED_CHOICES` declared on the
    field that holds ``node``."""
    from omegaconf import OmegaConf

    cls = OmegaConf.get_type(node)
    if not dataclasses.is_dataclass(cls):
        return {}
    out: dict[str, tuple[str, ...]] = {}
    for f in dataclasses.fields(cls):
        if f.name not in node:
            continue
        choices = f.metadata.get(CHOICES, (nested or {}).get(f.name))
        if choices is not None:
            out[f"{prefix}{f.name}"] = tuple(choices)
        elif not OmegaConf.is_missing(node, f.name) and OmegaConf.is_dict(node._get_node(f.name)):
            out |= field_choices(node[f.name], f"{prefix}{f.name}.", f.metadata.get(NESTED_CHOICES))
    return out


def _value_errors(cfg: DictConfig, path: str, choices: tuple[str, ...]) -> list[str]:
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    parent_path, _, key = path.rpartition(".")
    node = OmegaConf.select(cfg, parent_path) if parent_path else cfg
    if OmegaConf.is_missing(node, key):
        return []
    try:
        value = node[key]
    except OmegaConfBaseException:
        return []  # an interpolation only the running job can resolve: the runtime checks it
    if value is None:
        return []
    items = list(enumerate(value)) if OmegaConf.is_list(value) else [(None, value)]
    return [f"{path if i is None else f'{path}[{i}]'}={v!r}: expected one of {', '.join(choices)}"
            for i, v in items if not any(_matches(str(v), c) for c in choices)]


def choice_errors(cfg: DictConfig) -> list[str]:
    """One message per value of the composed config ``cfg`` outside its field's declared choices; missing
    values (``???``), None and interpolations that only the running job can resolve pass."""
    return [e for path, choices in field_choices(cfg).items() for e in _value_errors(cfg, path, choices)]


def check_choices(cfg: DictConfig) -> None:
    """Raise ValueError (``loss.schedule='cosine': expected one of exponential, linear, ...``) for every value
    of the composed config ``cfg`` outside its declared choices."""
    errors = choice_errors(cfg)
    if errors:
        raise ValueError("; ".join(errors))


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
