"""The columns an experiment definition names, checked against the data before any work.

A misspelt column (``value: revenu``) is reported at its line in the YAML with the table it
was looked for in, by ``validate --data`` and by every command that analyses.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

import yaml

from liftlab.core.errors import Problem
from liftlab.spec import filters
from liftlab.spec.models import BUILTIN_QUANTITIES, DERIVED_SEGMENTS, Experiment

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class ColumnUse:
    """``column`` of ``table``, named by the YAML at ``loc`` (pydantic-style path)."""

    table: str
    column: str
    loc: Loc


def column_uses(spec: Experiment) -> list[ColumnUse]:
    """Every data column the definition names: the unit, metric values, built-in quantities
    of ratio metrics, segments and the population filter's columns."""
    uses = [ColumnUse("customers", spec.unit, ("unit",))]
    declared = {m.name for m in spec.metrics}
    for i, m in enumerate(spec.metrics):
        if m.value is not None and m.table is not None:
            uses.append(ColumnUse(m.table, m.value, ("metrics", i, "value")))
        elif m.table is not None:  # the table itself must exist
            uses.append(ColumnUse(m.table, "customer_id", ("metrics", i, "table")))
        for part in ("numerator", "denominator"):
            name = getattr(m, part)
            if name in BUILTIN_QUANTITIES and name not in declared and name != "orders":
                uses.append(ColumnUse("orders", name, ("metrics", i, part)))
    for j, a in enumerate(spec.covariates.attributes):
        uses.append(ColumnUse("customers", a, ("covariates", "attributes", j)))
    if spec.covariates.joined:
        uses.append(ColumnUse("customers", spec.covariates.joined, ("covariates", "joined")))
    for j, s in enumerate(spec.segments):
        if s not in DERIVED_SEGMENTS:
            uses.append(ColumnUse("customers", s, ("segments", j)))
    if spec.population.where:
        for c in sorted(filters.columns(filters.parse(spec.population.where))):
            uses.append(ColumnUse("customers", c, ("population", "where")))
    return uses


def column_problems(spec: Experiment, columns: Callable[[str], list[str] | None],
                    label: str | None = None, text: str | None = None) -> list[Problem]:
    """The named columns (and their tables) missing from the data; ``columns(table)`` gives
    a table's columns, None when the data has no such table. With the YAML ``text``, each
    problem points at its line in ``label``."""
    root = _compose(text)
    problems = []
    for use in column_uses(spec):
        present = columns(use.table)
        line, col = _position(root, use.loc)
        if present is None:
            message = f"{_dotted(use.loc)} reads table {use.table!r}, which the data lacks"
            hint = f"add {use.table}.parquet or .csv, or remove this metric"
        elif use.column in present:
            continue
        else:
            close = difflib.get_close_matches(use.column, present, n=1)
            message = (f"{_dotted(use.loc)} names column {use.column!r}, which table "
                       f"{use.table!r} lacks")
            hint = f"did you mean {close[0]!r}?" if close else (
                f"columns of {use.table}: {', '.join(present)}")
        problems.append(Problem(message, file=label if line else None, line=line, col=col,
                                table=use.table, column=use.column, hint=hint))
    return list(dict.fromkeys(problems))


def _compose(text: str | None) -> yaml.Node | None:
    if text is None:
        return None
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None


def _position(root: yaml.Node | None, loc: Loc) -> tuple[int | None, int | None]:
    node = root
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and \
                part < len(node.value):
            node = node.value[part]
        else:
            node = None
    if node is None:
        return None, None
    return node.start_mark.line + 1, node.start_mark.column + 1


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + part
    return out
