"""Every command's configuration, found by its name: ``train``, ``synth``, ``score`` and ``report``.

The typed dataclasses hold every default value (``TrainConfig`` and its groups in ``gradtts.train.config``,
``ModelConfig`` with its presets, ``LossConfig``, ``SynthConfig``, ``ScoreConfig``, ``ReportConfig``), and
each command registers its own config in Hydra's ConfigStore next to its schema, through
:func:`gradtts.config.store_command_config` (``register_config`` in ``gradtts.train.cli``, ``gradtts.synth``,
``gradtts.scoring.cli``, ``gradtts.report.cli``):

- training's group options ``model/{gradtts,small,tiny}``, ``loss/{l2,huber,scheduled_huber}``,
  ``optim/adam``, ``trainer/default``, ``data/manifest``: each an instance of its group's dataclass that
  differs from the class's defaults only in the fields ``gradtts.train.config.train_group_options`` lists;
- primary configs ``train``, ``synth``, ``score`` and ``report``: the schema, the group defaults, an
  optional ``experiment`` preset last, and the command's Hydra settings (run dir, no chdir, job logging:
  ``hydra/job_logging/{gradtts,gradtts_console}``, see :mod:`gradtts.logs`).

This module, in the commands layer, maps each name to that registration (:data:`REGISTER`,
:func:`register_all`) and builds a command's typed config by name (:func:`load_stage_config`), for code
that drives several stages (``gradtts.grid``).

YAML is left for presets: ``conf/experiment/*.yaml`` (``@package _global_``; ``experiment=NAME`` is accepted by
every command, and each command's ``--help`` lists those that compose for it: the shipped ones are training
presets) and the SLURM launcher. A config directory of your own (``$GRADTTS_CONF_DIR``) may add
presets and group options under new names (``loss/my_huber.yaml`` holding only the fields it changes);
Hydra refuses a YAML file named like a registered primary config (``train.yaml``...).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

#: Where each command's own settings sit in its composed config (synthesis nests them under ``synth``).
STAGE_NODES: dict[str, str | None] = {"train": None, "synth": "synth", "score": None, "report": None}


# Imported when called, so that composing one command's config (gradtts-report's, scoring's in the grid)
# does not import the others' code (the model, the trainer).
def _register_train() -> None:
    from gradtts.train.cli import register_config

    register_config()


def _register_synth() -> None:
    from gradtts.synth import register_config

    register_config()


def _register_score() -> None:
    from gradtts.scoring.cli import register_config

    register_config()


def _register_report() -> None:
    from gradtts.report.cli import register_config

    register_config()


#: ``{command: function registering its config in Hydra's ConfigStore}``; each registers once per process.
REGISTER: dict[str, Callable[[], None]] = {"train": _register_train, "synth": _register_synth,
                                           "score": _register_score, "report": _register_report}


def register_all() -> None:
    """Register every command's configuration."""
    for register in REGISTER.values():
        register()


def load_stage_config(config_name: str, overrides: Sequence[str] = (), *, allow_missing: bool = False) -> Any:
    """A command's configuration as its typed object, composed through Hydra exactly as the command does.

    ``config_name``: ``train`` (-> ``TrainConfig``), ``synth`` (-> its ``synth`` node, a ``SynthConfig``),
    ``score`` (-> ``ScoreConfig``) or ``report`` (-> ``ReportConfig``). The defaults come from the
    dataclasses registered in Hydra's ConfigStore; YAML in ``conf_dir()`` (``$GRADTTS_CONF_DIR``) and
    ``overrides`` (Hydra's command-line syntax, e.g. ``["experiment=fast", "synth.n_timesteps=50"]``) apply on
    top, so code that builds a stage's config this way sees every setting the command would.

    Interpolations are resolved. A mandatory value (``???``) left unset raises OmegaConf's
    ``MissingMandatoryValue``; with ``allow_missing=True`` it stays ``"???"`` in the returned object, for
    the caller to fill with ``dataclasses.replace`` (handy for paths, which the override grammar would need
    quoted). Safe to call per run and inside a running Hydra app (about 0.1 s per call).
    """
    from gradtts.config import check_choices, compose_stage, to_object

    if config_name not in REGISTER:
        raise ValueError(f"{config_name!r}: no such command config; use one of {', '.join(REGISTER)}")
    cfg = compose_stage(config_name, overrides, REGISTER[config_name])
    check_choices(cfg)  # as the command does: a name outside its field's choices fails here, not mid-run
    node_name = STAGE_NODES[config_name]
    node = cfg[node_name] if node_name else cfg
    return to_object(node, allow_missing)
