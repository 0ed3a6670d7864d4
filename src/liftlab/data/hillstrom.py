"""Importer for the MineThatData e-mail challenge (Kevin Hillstrom, 2008).

64,000 customers who bought in the last twelve months were randomized to a Mens e-mail, a
Womens e-mail or no e-mail; visits, conversions and spend were tracked for two weeks. This
writes the contract tables and an experiment definition so that the data set runs through
the normal YAML path. The CSV has one row per customer and no timestamps: every visit and
order is dated inside the two-week window, and a converter becomes one web order whose
revenue is the customer's spend.
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import polars as pl

from liftlab.core.errors import DataError, Problem, UserError
from liftlab.core.fsio import atomic_write_bytes, atomic_write_text, write_beside

SENT = dt.datetime(2008, 3, 1, tzinfo=dt.UTC)
RESPONSE_AT = SENT + dt.timedelta(days=3, hours=12)   # inside the two-week window
ARMS = {"No E-Mail": "holdout", "Mens E-Mail": "mens", "Womens E-Mail": "womens"}
COLUMNS = ("recency", "history_segment", "history", "mens", "womens", "zip_code", "newbie",
           "channel", "segment", "visit", "conversion", "spend")
EXPERIMENT_YAML = """\
# The MineThatData e-mail challenge (Hillstrom, 2008): a real randomized e-mail test.
schema_version: 1
id: hillstrom
name: Hillstrom e-mail challenge (Mens vs Womens e-mail vs no e-mail)
start: 2008-03-01
end: 2008-03-15                  # exclusive: the two weeks after the send
channels:
  email:                         # one holdout and two variants, each compared with it
    holdout: 0.3334
    variants: {mens: 0.3333, womens: 0.3333}
metrics:
  - {name: visit, kind: binary, table: events, event: visit}     # visited the site (0/1)
  - {name: conversion, kind: binary, table: orders}              # bought (0/1)
  - {name: spend, kind: mean, table: orders, value: revenue}     # $ per customer (0 if none)
primary_metric: spend
segments: [past_channel]         # Phone / Web / Multichannel purchases last year
"""


def import_hillstrom(csv_path: Path, out_dir: Path, force: bool = False) -> Path:
    """Write customers, assignments, orders and events (Parquet) and ``hillstrom.yaml`` in
    ``out_dir``; return the YAML's path. customer_id is the CSV row number (from 1).
    A folder liftlab did not write needs ``force`` (see ``fsio.write_beside``)."""
    raw = _read(csv_path)
    customers = raw.select("customer_id", pl.col("channel").alias("past_channel"), "zip_code",
                           "newbie", "history_segment", "recency", "history", "mens",
                           "womens")
    assignments = raw.select(
        pl.lit("hillstrom").alias("experiment_id"), "customer_id",
        pl.lit("email").alias("channel"), pl.col("segment").replace_strict(ARMS).alias("group"),
        pl.lit(SENT).alias("assigned_at"))
    orders = raw.filter(pl.col("conversion") == 1).select(
        pl.col("customer_id").alias("order_id"), "customer_id",
        pl.lit(RESPONSE_AT).alias("ts"), pl.lit("web").alias("channel"),
        pl.col("spend").alias("revenue"))
    events = raw.filter(pl.col("visit") == 1).select(
        "customer_id", pl.lit("web").alias("channel"), pl.lit("visit").alias("event"),
        pl.lit(RESPONSE_AT).alias("ts"))
    tables = (("customers", customers), ("assignments", assignments), ("orders", orders),
              ("events", events))

    def write(folder: Path) -> None:
        for name, frame in tables:
            buf = io.BytesIO()
            frame.write_parquet(buf)
            atomic_write_bytes(folder / f"{name}.parquet", buf.getvalue())
        atomic_write_text(folder / "hillstrom.yaml", EXPERIMENT_YAML)

    write_beside(out_dir, "hillstrom", force, write)
    return out_dir / "hillstrom.yaml"


def _read(csv_path: Path) -> pl.DataFrame:
    """The CSV with a row-number customer_id, after checking the columns and arm labels."""
    if not csv_path.is_file():
        message = (f"{csv_path}: no such file; download the MineThatData e-mail challenge "
                   "CSV (64,000 rows) and pass its path")
        raise UserError(message)
    raw = pl.read_csv(csv_path, schema_overrides={"spend": pl.Float64, "history": pl.Float64})
    missing = [c for c in COLUMNS if c not in raw.columns]
    if missing:
        problem = Problem(f"missing column(s) {', '.join(missing)}", file=str(csv_path),
                          hint=f"the Hillstrom CSV has the columns {', '.join(COLUMNS)}")
        raise DataError([problem])
    unknown = sorted(set(raw["segment"].unique().drop_nulls()) - set(ARMS))
    if unknown or raw["segment"].null_count():
        labels = ", ".join(repr(u) for u in unknown) or "empty values"
        problem = Problem(f"column segment has {labels}", file=str(csv_path),
                          hint=f"each row's segment must be one of {', '.join(ARMS)}")
        raise DataError([problem])
    return raw.with_row_index("customer_id", offset=1).with_columns(
        pl.col("customer_id").cast(pl.Int64))
