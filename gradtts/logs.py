"""The toolkit's logging set-up: one format, on stderr, for every command.

Modules log through ``logging.getLogger(__name__)``: progress and status at INFO, runtime conditions (a
clipped file, a fallback vocoder, a skipped summary) at WARNING, every occurrence. A command's *output*
(a table, a report, paths for a script) stays on stdout, printed.

- argparse entry points (``python -m data_prep.features``, ``python -m gradtts.grid`` ...) call
  :func:`setup_logging` once in their ``main``;
- the Hydra commands (``gradtts-train``, ``-synth``, ``-score``, ``-report``) get the same format from
  Hydra's job logging, configured by :func:`hydra_job_logging` (stored with each command's config by
  :func:`gradtts.config.store_command_config`, as ``hydra/job_logging=gradtts`` or ``gradtts_console``).
  Training and synthesis also write each job's records to ``<command>.log`` in the job's output directory:
  ``trainer.out_dir/train.log``, in a multirun ``<hydra.sweep.dir>/<job number>/train.log`` (stage 5:
  ``EXP/finetune/.hydra/<n>/train.log``), ``synth.out_dir/synth.log``. Scoring and reports log to the
  console only, so that their output directories hold their tables alone.

Only the toolkit's own loggers (and a module run as ``__main__``) go down to INFO; other libraries stay
at WARNING, so their chatter does not drown the messages that matter.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

#: As ESPnet's, with the recipe's ``date '+%Y-%m-%dT%H:%M:%S'`` stamp (recipes/fewshot.sh's ``log``).
FORMAT = "%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s"
DATEFMT = "%Y-%m-%dT%H:%M:%S"
#: Loggers set to the toolkit's level; ``__main__`` is a module run with ``python -m``, ``__mp_main__`` that
#: module in the processes a spawn-context pool starts (``gradtts.grid synth --jobs N``).
TOOLKIT_LOGGERS = ("gradtts", "data_prep", "__main__", "__mp_main__")


class _StderrHandler(logging.StreamHandler):
    """A handler on whatever ``sys.stderr`` is when a record is emitted.

    A plain StreamHandler keeps the stream it was given; once a test's captured stderr is closed, or a
    caller redirects stderr, it would write to a dead stream.
    """

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:  # StreamHandler.__init__ assigns it; the property ignores that
        pass


def setup_logging(level: int = logging.INFO) -> None:
    """Log the toolkit's records at ``level`` and above to stderr in :data:`FORMAT` (idempotent).

    For argparse command-line entry points; call it once at the start of ``main``. A second call (or a
    call inside a process that already has it) adds no second handler.
    """
    root = logging.getLogger()
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter(FORMAT, DATEFMT))
        root.addHandler(handler)
    for name in TOOLKIT_LOGGERS:
        logging.getLogger(name).setLevel(level)


def hydra_job_logging(file: bool) -> dict[str, Any]:
    """Hydra's ``job_logging`` settings (a ``logging.config.dictConfig``) of the toolkit's commands.

    Records go to stderr in :data:`FORMAT` and, with ``file``, also to ``<command>.log`` in the job's
    output directory (``hydra.runtime.output_dir``: the run directory, or a multirun job's sweep subdir).
    """
    handlers: dict[str, Any] = {"console": {"class": "logging.StreamHandler", "formatter": "gradtts",
                                            "stream": "ext://sys.stderr"}}
    if file:
        handlers["file"] = {"class": "logging.FileHandler", "formatter": "gradtts",
                            "filename": "${hydra.runtime.output_dir}/${hydra.job.config_name}.log"}
    return {
        "version": 1,
        "formatters": {"gradtts": {"format": FORMAT, "datefmt": DATEFMT}},
        "handlers": handlers,
        "root": {"level": "WARNING", "handlers": list(handlers)},
        "loggers": {name: {"level": "INFO"} for name in TOOLKIT_LOGGERS},
        "disable_existing_loggers": False,
    }
