"""Cross-channel credit: where each channel's increment was bought, what last-touch
attribution would have credited instead, and the export of lifts for marketing-mix models."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

from liftlab.data.folder import FolderSource


def last_touch_credit(source: FolderSource, window: tuple[dt.datetime, dt.datetime],
                      lookback_days: int = 7, experiment_id: str | None = None
                      ) -> pl.DataFrame:
    """Revenue and orders in the window credited to the last contact within ``lookback_days``
    before each order (by contacting channel and purchase channel); ``(none)`` when no contact.
    One as-of join, no per-row Python."""
    if not source.has("contacts"):
        return pl.DataFrame(schema={"credited_channel": pl.String, "purchase_channel": pl.String,
                                    "revenue": pl.Float64, "orders": pl.UInt32})
    orders = (source.scan("orders").filter((pl.col("ts") >= window[0]) & (pl.col("ts") <
                                                                         window[1]))
              .select("customer_id", "ts", pl.col("channel").alias("purchase_channel"),
                      "revenue").sort("ts"))
    contacts = source.scan("contacts")
    if experiment_id is not None and "experiment_id" in source.schema("contacts"):
        contacts = contacts.filter(pl.col("experiment_id") == experiment_id)
    contacts = contacts.select("customer_id", pl.col("sent_at").alias("ts"),
                               pl.col("channel").alias("credited_channel")).sort("ts")
    joined = orders.join_asof(contacts, on="ts", by="customer_id", strategy="backward",
                              check_sortedness=False,
                              tolerance=dt.timedelta(days=lookback_days))
    return (joined.group_by(pl.col("credited_channel").fill_null("(none)"), "purchase_channel")
            .agg(pl.col("revenue").sum(), pl.len().alias("orders"))
            .sort("credited_channel", "purchase_channel").collect())


def mmm_lift_tests(effects: list[dict[str, Any]], primary: str, start: str,
                   end: str) -> pl.DataFrame:
    """Experiment lifts in pymc-marketing's lift-test format (``add_lift_test_measurements``:
    columns channel, x, delta_x, delta_y, sigma): the holdout state has no spend (x = 0), the
    treatment adds the campaign's cost (delta_x) and the incremental revenue (delta_y) with
    its standard error (sigma), all in totals over the treated population."""
    rows = []
    for e in effects:
        if e["metric"] != primary or e["segment"] is not None or e.get("cost") is None:
            continue
        if e.get("incremental_total") is None:
            continue
        channel = e["channel"] + (f"_{e['variant']}" if e.get("variant") else "")
        rows.append({"channel": channel, "x": 0.0, "delta_x": float(e["cost"]),
                     "delta_y": float(e["incremental_total"]),
                     "sigma": float(e["se"] * e["n_treatment"]),
                     "date_start": start, "date_end": end})
    return pl.DataFrame(rows, schema={"channel": pl.String, "x": pl.Float64,
                                      "delta_x": pl.Float64, "delta_y": pl.Float64,
                                      "sigma": pl.Float64, "date_start": pl.String,
                                      "date_end": pl.String})
