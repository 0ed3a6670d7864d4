"""The contract tables (CONTRACT.md section 1): required columns and their kinds."""

from __future__ import annotations

from typing import Literal

ColumnKind = Literal["id", "datetime", "number", "string", "any"]
TABLES = ("customers", "orders", "contacts", "events", "assignments")

REQUIRED: dict[str, dict[str, ColumnKind]] = {
    "customers": {"customer_id": "id"},
    "orders": {"order_id": "id", "customer_id": "id", "ts": "datetime", "channel": "string",
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
