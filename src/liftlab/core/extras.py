"""Optional dependencies: a clear UserError naming the extra to install when one is missing
(instead of an internal ModuleNotFoundError)."""

from __future__ import annotations

import importlib.util

from liftlab.core.errors import Problem, UserError

# module -> (extra, what needs it)
EXTRAS = {"psycopg": ("sql", "a postgresql:// URL"), "duckdb": ("sql", "a duckdb:/// URL"),
          "sklearn": ("targeting", "liftlab target")}


def require(module: str) -> None:
    """Raise a UserError saying which extra to install when ``module`` is not importable."""
    if importlib.util.find_spec(module) is not None:
        return
    extra, what = EXTRAS[module]
    raise UserError([Problem(f"{what} needs the {module} package, which is not installed",
                             hint=f"pip install 'liftlab[{extra}]'")])
