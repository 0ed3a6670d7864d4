"""Importer for the MineThatData e-mail challenge (Kevin Hillstrom, 2008).

64,000 customers who bought in the last twelve months were randomized to a Mens e-mail, a
Womens e-mail or no e-mail; visits, conversions and spend were tracked for two weeks. This
writes the contract tables and an experiment definition so that the data set runs through
the normal YAML path.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from liftlab.fsio import atomic_write_text

SENT = dt.datetime(2008, 3, 1, tzinfo=dt.UTC)
ARMS = {"No E-Mail": "holdout", "Mens E-Mail": "mens", "Womens E-Mail": "womens"}
EXPERIMENT_YAML = """\
# The MineThatData e-mail challenge (Hillstrom, 2008): a real randomized e-mail test.
schema_version: 1
id: hillstrom
name: Hillstrom e-mail challenge (Mens vs Womens e-mail vs no e-mail)
start: 2008-03-01
end: 2008-03-15
channels:
  email:
    holdout: 0.3334
    variants: {mens: 0.3333, womens: 0.3333}
metrics:
  - {name: visit, kind: binary, table: events, event: visit}
  - {name: conversion, kind: binary, table: orders}
  - {name: spend, kind: mean, table: orders, value: revenue}
primary_metric: spend
segments: [past_channel]
"""


def import_hillstrom(csv_path: Path, out_dir: Path) -> Path:
    """Write customers, assignments, orders and events (Parquet) and hillstrom.yaml."""
    raw = pl.read_csv(csv_path, schema_overrides={"spend": pl.Float64, "history": pl.Float64}
                      ).with_row_index("customer_id", offset=1).with_columns(
        pl.col("customer_id").cast(pl.Int64))
    out_dir.mkdir(parents=True, exist_ok=True)
    raw.select("customer_id", pl.col("channel").alias("past_channel"), "zip_code", "newbie",
               "history_segment", "recency", "history", "mens", "womens"
               ).write_parquet(out_dir / "customers.parquet")
    raw.select(pl.lit("hillstrom").alias("experiment_id"), "customer_id",
               pl.lit("email").alias("channel"),
               pl.col("segment").replace_strict(ARMS).alias("group"),
               pl.lit(SENT).alias("assigned_at")).write_parquet(out_dir / "assignments.parquet")
    noon = pl.lit(SENT + dt.timedelta(days=3, hours=12))
    buyers = raw.filter(pl.col("conversion") == 1)
    buyers.select(pl.col("customer_id").alias("order_id"), "customer_id",
                  noon.alias("ts"), pl.lit("web").alias("channel"),
                  pl.col("spend").cast(pl.Float64).alias("revenue")
                  ).write_parquet(out_dir / "orders.parquet")
    raw.filter(pl.col("visit") == 1).select(
        "customer_id", pl.lit("web").alias("channel"), pl.lit("visit").alias("event"),
        noon.alias("ts")).write_parquet(out_dir / "events.parquet")
    spec = out_dir / "hillstrom.yaml"
    atomic_write_text(spec, EXPERIMENT_YAML)
    return spec
