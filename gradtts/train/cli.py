"""``gradtts-train``: its config's registration in Hydra's ConfigStore (``register_config``), the Hydra entry
point and a compose helper."""

from __future__ import annotations

import functools
import logging
import os
import sys
from typing import Sequence

from omegaconf import DictConfig

log = logging.getLogger(__name__)


def register_resolvers() -> None:
    """``${loss_tag:${loss}}``: a directory name that tells losses *and* their δ settings apart;
    ``${arm_tag:${loss},${filter},${adapt}}``: the same plus the filter and the adaptation method."""
    from omegaconf import OmegaConf

    from gradtts.train.identity import arm_tag, loss_tag

    if not OmegaConf.has_resolver("loss_tag"):
        OmegaConf.register_new_resolver("loss_tag", loss_tag)
    if not OmegaConf.has_resolver("arm_tag"):
        OmegaConf.register_new_resolver("arm_tag", arm_tag)


# Hydra settings: outputs go to the run's own directory (a multirun job's to a subdir named by its
# overrides), and relative paths keep meaning the caller's working directory (chdir false).
HYDRA_SETTINGS = {"run": {"dir": "${trainer.out_dir}"},
                  "sweep": {"dir": "${trainer.out_dir}", "subdir": "${hydra.job.override_dirname}"},
                  "job": {"chdir": False}}


@functools.cache  # once per process: the ConfigStore and the resolvers are process-wide
def register_config() -> None:
    """Register config ``train`` in Hydra's ConfigStore: the group options of :func:`train_group_options`
    (``model/small``, ``loss/huber``...), the primary config (schema ``TrainConfig``, groups at
    ``TRAIN_GROUP_DEFAULTS``) and the ``${loss_tag:...}`` resolver."""
    from hydra.core.config_store import ConfigStore

    from gradtts.config import store_command_config
    from gradtts.train.config import TRAIN_GROUP_DEFAULTS, TrainConfig, train_group_options

    register_resolvers()  # ${loss_tag:...} may appear in overrides; composition resolves it
    cs = ConfigStore.instance()
    for group, (cls, options) in train_group_options().items():
        for option, fields in options.items():
            cs.store(group=group, name=option, node=cls(**fields))
    # A training job keeps its log (train.log) beside its checkpoints.
    store_command_config("train", TrainConfig, HYDRA_SETTINGS, log_file=True, groups=TRAIN_GROUP_DEFAULTS)


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """The training config for ``overrides`` (a DictConfig, as the trainer takes) without launching a job."""
    from gradtts.config import compose_stage

    return compose_stage("train", overrides, register_config)


COMMAND = "gradtts-train"
# A run that diverged is not bad input; it keeps its own status so that scripts can tell the two apart.
NON_FINITE_EXIT = 3


def main() -> None:
    """Console entry: ``gradtts-train [experiment=...] [key=value ...]`` (torchrun-compatible).

    Bad input (missing features, a bad option value or checkpoint, another run's directory) ends with one
    ``gradtts-train: error: ...`` line and status 2; a non-finite loss with status 3.
    """
    from gradtts.config import cli_errors

    with cli_errors(COMMAND):  # errors before Hydra starts (e.g. no conf/ directory)
        from gradtts.config import hydra_entry
        from gradtts.train.loop import NonFiniteLossError, train

        @hydra_entry("train", register_config)
        def _run(cfg: DictConfig) -> None:
            with cli_errors(COMMAND):
                try:
                    summary = train(cfg)
                except NonFiniteLossError as exc:
                    print(f"{COMMAND}: error: {exc}", file=sys.stderr)
                    sys.exit(NON_FINITE_EXIT)
            if int(os.environ.get("RANK", "0")) == 0:
                log.info("done: step %d, checkpoints in %s/ckpt", summary["step"], summary["out_dir"])

    _run()


# Registered on import: Hydra's joblib/SLURM workers unpickle the task in fresh processes that never run main().
register_resolvers()

if __name__ == "__main__":
    main()
