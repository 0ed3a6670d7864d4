"""The contract tables (docs/data.md): required columns and their kinds."""

from __future__ import annotations

from typing import Literal

from liftlab.errors import Problem

MAX_FLOAT_ID = 2.0**53  # ids stored as floats: beyond it a float no longer names one integer

# "id": a unit (customer) id, made comparable across tables; "key": another table's own id
# (order ids), kept as stored.
ColumnKind = Literal["id", "key", "datetime", "number", "string", "any"]
TABLES = ("customers", "orders", "contacts", "events", "assignments")

REQUIRED: dict[str, dict[str, ColumnKind]] = {
    "customers": {"customer_id": "id"},
    "orders": {"order_id": "key", "customer_id": "id", "ts": "datetime", "channel": "string",
               "revenue": "number"},
    "contacts": {"customer_id": "id", "channel": "string", "sent_at": "datetime",
                 "cost": "number"},
    "events": {"customer_id": "id", "channel": "string", "event": "string", "ts": "datetime"},
    "assignments": {"experiment_id": "string", "customer_id": "id", "channel": "string",
                    "group": "string", "assigned_at": "datetime"},
}
OPTIONAL: dict[str, dict[str, ColumnKind]] = {
    "orders": {"margin": "number"},
    "contacts": {"experiment_id": "string"},
}
# Tables an analysis cannot do without; the others are read when present.
MANDATORY = ("customers", "orders")


def structural_problems(columns: dict[str, list[str] | None], where: str) -> list[Problem]:
    """Missing mandatory tables and missing required columns; ``columns`` maps each table to
    its column names, or None when the source (``where``) has no such table."""
    import difflib

    problems = []
    for table in TABLES:
        cols = columns.get(table)
        if cols is None:
            if table in MANDATORY:
                problems.append(Problem(f"table {table!r} not found in {where}", table=table))
            continue
        for name in REQUIRED[table]:
            if name not in cols:
                close = difflib.get_close_matches(name, cols, n=1)
                problems.append(Problem(f"required column {name!r} is missing", table=table,
                                        column=name,
                                        hint=f"did you mean {close[0]!r}?" if close else None))
    return problems
