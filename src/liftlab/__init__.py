"""liftlab: marketing channel lift from randomised holdouts.

The Python API (see README.md, "Python API"): ``load_experiment``, ``open_data``,
``analyze``, ``monitor``, ``plan``, ``multichannel``, ``report``. Importing liftlab is fast:
each name is loaded on first use, and the heavy libraries (scipy, statsmodels, plotly, PyMC,
numba) when a computation needs them.
"""

from __future__ import annotations

import sys
import types

TYPE_CHECKING = False  # typing itself is not imported: it costs more than the rest

__version__ = "0.1.0"

# name -> module that defines it
_API = {
    "load_experiment": "liftlab.api",
    "open_data": "liftlab.api",
    "analyze": "liftlab.api",
    "monitor": "liftlab.api",
    "plan": "liftlab.api",
    "multichannel": "liftlab.api",
    "report": "liftlab.api",
    "DataSource": "liftlab.api",
    "MonitorReadout": "liftlab.api",
    "PlanReadout": "liftlab.api",
    "MultichannelReadout": "liftlab.api",
    "AnalysisResult": "liftlab.analysis",
    "Experiment": "liftlab.spec",
    "LiftlabError": "liftlab.errors",
    "SpecError": "liftlab.errors",
    "DataError": "liftlab.errors",
    "UserError": "liftlab.errors",
}
__all__ = [
    "AnalysisResult",
    "DataError",
    "DataSource",
    "Experiment",
    "LiftlabError",
    "MonitorReadout",
    "MultichannelReadout",
    "PlanReadout",
    "SpecError",
    "UserError",
    "__version__",
    "analyze",
    "load_experiment",
    "monitor",
    "multichannel",
    "open_data",
    "plan",
    "report",
]

if TYPE_CHECKING:
    from typing import Any

    from liftlab.analysis import AnalysisResult
    from liftlab.api import (
        DataSource,
        MonitorReadout,
        MultichannelReadout,
        PlanReadout,
        analyze,
        load_experiment,
        monitor,
        multichannel,
        open_data,
        plan,
        report,
    )
    from liftlab.errors import DataError, LiftlabError, SpecError, UserError
    from liftlab.spec import Experiment


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'liftlab' has no attribute {name!r}")
    value = getattr(__import__(_API[name], fromlist=[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})


class _Package(types.ModuleType):
    """The import system binds each imported submodule on its package: ``liftlab.monitor``,
    ``liftlab.plan``, ``liftlab.multichannel`` and ``liftlab.report`` stay the API's
    functions (their modules remain importable by name: ``from liftlab.plan import ...``)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _API and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
