"""``gradtts-train``: the Hydra entry point (``conf/train.yaml``) and a compose helper for scripts/tests."""

from __future__ import annotations

import os
import sys
from typing import Sequence

from omegaconf import DictConfig

SCHEMA_NAME = "train_schema"


def register_resolvers() -> None:
    """``${loss_tag:${loss}}``: a directory name that tells losses *and* their δ settings apart."""
    from omegaconf import OmegaConf

    from gradtts.train.identity import loss_tag

    if not OmegaConf.has_resolver("loss_tag"):
        OmegaConf.register_new_resolver("loss_tag", loss_tag)


def register_schema() -> None:
    """Put the typed schema into Hydra's ConfigStore (``train.yaml`` lists it first in its defaults)."""
    from hydra.core.config_store import ConfigStore

    from gradtts.train.config import TrainConfig

    register_resolvers()
    ConfigStore.instance().store(name=SCHEMA_NAME, node=TrainConfig)


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """The resolved training config for ``overrides`` without launching Hydra's job machinery."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from gradtts.config import conf_dir

    register_schema()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return hydra_compose(config_name="train", overrides=list(overrides))


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
        from gradtts.train.config import TrainConfig
        from gradtts.train.loop import NonFiniteLossError, train

        @hydra_entry("train", SCHEMA_NAME, TrainConfig)
        def _run(cfg: DictConfig) -> None:
            with cli_errors(COMMAND):
                try:
                    summary = train(cfg)
                except NonFiniteLossError as exc:
                    print(f"{COMMAND}: error: {exc}", file=sys.stderr)
                    sys.exit(NON_FINITE_EXIT)
            if int(os.environ.get("RANK", "0")) == 0:
                print(f"done: step {summary['step']}, checkpoints in {summary['out_dir']}/ckpt")

    _run()


# Registered on import: Hydra's joblib/SLURM workers unpickle the task in fresh processes that never run main().
register_resolvers()

if __name__ == "__main__":
    main()
