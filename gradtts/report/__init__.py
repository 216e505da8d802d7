"""Result tables (CSV, markdown), statistics and plots of resilience, leakage and adaptation.

``report(ReportConfig(root=..., out_dir=...))`` (also the ``gradtts-report`` command) is the entry point;
``gradtts.report.stats`` holds the arithmetic (R, L, A, ΔR, ΔL and their pair-level t-intervals).
"""

from __future__ import annotations

__all__ = ["ReportConfig", "report"]


def __getattr__(name: str):
    # Lazy, so that ``python -m gradtts.report.cli`` does not find its module imported by the package first.
    if name in __all__:
        from gradtts.report import cli

        return getattr(cli, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
