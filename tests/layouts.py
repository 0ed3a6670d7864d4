"""The data-variety generator: one small synthetic retailer (synth.py, known truth) written in
many layouts the contract allows, each of which must give the same answers.

A ``Layout`` says how each id column is typed, which file format holds the tables, how
timestamps are stored, and which cosmetic variations apply (extra columns, column order,
categorical text, unicode names). A few fields change what the data *means* (an optional table
or column absent); ``reference()`` is the canonical layout
with the same meaning, whose results every layout is compared with.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import shutil
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import polars as pl

from liftlab.app.synth import PURCHASE, generate

IdKind = Literal["int", "text", "uuid"]
Format = Literal["parquet", "csv", "csv_semicolon", "csv_bom", "parts"]
TsKind = Literal["utc", "naive", "offset", "zone", "date"]
Margin = Literal["present", "absent"]

ID_KINDS: tuple[IdKind, ...] = ("int", "text", "uuid")
FORMATS: tuple[Format, ...] = ("parquet", "csv", "csv_semicolon", "csv_bom", "parts")
TS_KINDS: tuple[TsKind, ...] = ("utc", "naive", "offset", "zone", "date")
OPTIONAL_TABLES = ("assignments", "contacts")

CUSTOMERS = 3000
SEED = 7
UNICODE = " ü"   # appended to segment, region and purchase-channel names (keeps their order)
ZONE = "America/New_York"
OFFSET_ZONE = "Asia/Kolkata"   # +05:30 all year: the timestamps carry a fixed offset
TS_COLUMNS = {"orders": "ts", "contacts": "sent_at", "events": "ts",
              "assignments": "assigned_at"}
UNICODE_COLUMNS = {"customers": ("segment", "region"), "orders": ("channel",)}
TEXT_COLUMNS = {"customers": ("segment", "region", "profile"), "orders": ("channel",),
                "contacts": ("channel",), "events": ("channel", "event")}


@dataclass(frozen=True)
class Layout:
    """One way of writing the same retailer."""

    customer_id: IdKind = "int"
    order_id: IdKind = "int"
    fmt: Format = "parquet"
    ts: TsKind = "utc"
    extras: bool = False        # extra columns (one with quoted newlines), columns reversed
    categorical: bool = False   # text columns as Categorical, segment as Enum (Parquet)
    unicode: bool = False       # segment, region and purchase channels with non-ASCII names
    margin: Margin = "present"
    drop: frozenset[str] = frozenset()   # optional tables left out
    # The experiments' timezone; naive timestamps are its wall-clock times. A zone without
    # daylight saving: a naive time in autumn's repeated hour cannot be told apart.
    zone: str = "UTC"

    @property
    def id(self) -> str:
        parts = [f"c{self.customer_id}", f"o{self.order_id}", self.fmt, self.ts]
        parts += [flag for flag in ("extras", "categorical", "unicode") if getattr(self, flag)]
        if self.margin != "present":
            parts.append(f"margin-{self.margin}")
        parts += [f"no-{t}" for t in sorted(self.drop)]
        if self.zone != "UTC":
            parts.append(self.zone.replace("/", "_"))
        return "-".join(parts)

    def reference(self) -> Layout:
        """The canonical layout holding the same information: Parquet, UTC, integer ids,
        the same tables, columns and experiment timezone. Without an
        assignments table arms come from a hash of the id's text, so the id kind stays."""
        hashed = "assignments" in self.drop
        return Layout(customer_id=self.customer_id if hashed else "int", margin=self.margin,
                      drop=self.drop, zone=self.zone)

    def display(self, text: str) -> str:
        """A name as the canonical layout spells it."""
        return text.replace(UNICODE, "") if self.unicode else text


CANONICAL = Layout()

# A fixed sample for CI: every id kind, format, timestamp kind and flag at least once.
CI_LAYOUTS = (
    Layout(order_id="text", fmt="csv", ts="naive", extras=True),
    Layout(customer_id="uuid", order_id="text", fmt="parts", ts="zone", categorical=True,
           unicode=True),
    Layout(customer_id="text", fmt="csv_semicolon", ts="offset", margin="absent"),
    Layout(customer_id="text", order_id="uuid", fmt="csv_bom", ts="date", unicode=True,
           extras=True),
    Layout(customer_id="text", order_id="text", fmt="parts", ts="naive",
           drop=frozenset(OPTIONAL_TABLES)),
    Layout(fmt="csv", ts="naive", zone="Asia/Tokyo"),
)


def all_layouts(sample: int = 40, seed: int = 18) -> list[Layout]:
    """Every single-factor variation of the canonical layout, then a seeded sample of the
    full product of the factors."""
    singles = [dataclasses.replace(CANONICAL, **{name: value})
               for name, values in (("customer_id", ID_KINDS), ("order_id", ID_KINDS),
                                    ("fmt", FORMATS), ("ts", TS_KINDS),
                                    ("extras", (True,)), ("categorical", (True,)),
                                    ("unicode", (True,)), ("margin", ("absent",)))
               for value in values]
    singles += [Layout(fmt="csv", drop=frozenset({t})) for t in OPTIONAL_TABLES]
    singles += [Layout(ts="naive", zone="Asia/Tokyo"),
                Layout(fmt="csv", ts="offset", zone="Asia/Tokyo")]
    rng = random.Random(seed)
    drops = [frozenset(), frozenset({"assignments"}), frozenset({"contacts"})]
    product = [Layout(rng.choice(ID_KINDS), rng.choice(ID_KINDS), rng.choice(FORMATS),
                      rng.choice(TS_KINDS), rng.random() < 0.5, rng.random() < 0.5,
                      rng.random() < 0.5, rng.choice(("present", "absent")),
                      rng.choice(drops)) for _ in range(sample)]
    out: dict[str, Layout] = {}
    for layout in [*singles, *product]:
        if layout != CANONICAL:
            out.setdefault(layout.id, layout)
    return list(out.values())


@cache
def base_tables(folder: Path) -> dict[str, pl.DataFrame]:
    """The synthetic retailer (small), generated once into ``folder``."""
    if not (folder / "orders.parquet").exists():
        generate(folder, CUSTOMERS, SEED)
    return {p.stem: pl.read_parquet(p) for p in sorted(folder.glob("*.parquet"))}


def id_text(kind: IdKind, prefix: str, values: pl.Expr) -> pl.Expr:
    """Integer ids rewritten as ``kind``: text ``c000123`` or a UUID derived from the id."""
    if kind == "int":
        return values
    if kind == "text":
        return pl.format(prefix + "{}", values.cast(pl.String).str.zfill(9))
    return values.map_elements(lambda v: str(uuid.uuid5(uuid.NAMESPACE_OID, f"{prefix}{v}")),
                               return_dtype=pl.String)


def customer_id_map(layout: Layout, ids: pl.Series) -> dict[object, int]:
    """The layout's customer id of each integer id, reversed (layout id -> canonical id)."""
    written = pl.DataFrame({"id": ids}).select(id_text(layout.customer_id, "c", pl.col("id")))
    return dict(zip(written.to_series().to_list(), ids.to_list(), strict=True))


def tables_for(layout: Layout, base: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """The contract tables of ``layout`` as frames (before the file format is applied)."""
    out: dict[str, pl.DataFrame] = {}
    for name, frame in base.items():
        if name in layout.drop:
            continue
        if name == "geo_metrics":  # regions: no customers; its dates stored as the layout's
            out[name] = _geo_layout(layout, frame)
            continue
        exprs = [id_text(layout.customer_id, "c", pl.col("customer_id"))]
        if name == "orders":
            exprs.append(id_text(layout.order_id, "o", pl.col("order_id")))
        if layout.unicode:
            exprs += [pl.col(c) + UNICODE for c in UNICODE_COLUMNS.get(name, ())]
            if name == "events":  # usage events on a purchase channel (web visits)
                exprs.append(pl.when(pl.col("channel").is_in(PURCHASE))
                             .then(pl.col("channel") + UNICODE).otherwise(pl.col("channel")))
        frame = frame.with_columns(exprs)
        if name == "orders" and layout.margin == "absent":
            frame = frame.drop("margin")
        if name in TS_COLUMNS:
            frame = frame.with_columns(_timestamps(pl.col(TS_COLUMNS[name]), layout, frame,
                                                   TS_COLUMNS[name]))
        if layout.extras:
            frame = _with_extras(frame, name)
        if layout.categorical and layout.fmt not in ("csv", "csv_semicolon", "csv_bom"):
            frame = _categorical(frame, name)
        out[name] = frame
    return out


def _geo_layout(layout: Layout, frame: pl.DataFrame) -> pl.DataFrame:
    """geo_metrics as the layout stores things: its dates as dates, naive or zoned
    midnights, or text with an offset; extra and reversed columns; categorical geo names."""
    day = pl.col("date").cast(pl.Datetime("us"))
    stored = {"utc": pl.col("date"), "date": pl.col("date"), "naive": day,
              "zone": day.dt.replace_time_zone(ZONE),
              "offset": day.dt.replace_time_zone(OFFSET_ZONE).dt.to_string(
                  "%Y-%m-%dT%H:%M:%S%:z")}[layout.ts]
    frame = frame.with_columns(stored.alias("date"))
    if layout.extras:
        frame = _with_extras(frame, "geo_metrics")
    if layout.categorical and layout.fmt not in ("csv", "csv_semicolon", "csv_bom"):
        frame = frame.with_columns(pl.col("geo").cast(pl.Categorical))
    return frame


def _timestamps(col: pl.Expr, layout: Layout, frame: pl.DataFrame, name: str) -> pl.Expr:
    """UTC instants stored as the layout says: as instants in UTC or another zone, as naive
    wall-clock times of the experiments' zone, as text with an offset, or as dates where
    every value is a midnight."""
    kind = layout.ts
    if kind == "date" and (frame[name].dt.time() == dt.time(0)).all():
        return col.dt.date()
    if kind == "naive":
        return col.dt.convert_time_zone(layout.zone).dt.replace_time_zone(None)
    if kind == "zone":
        return col.dt.convert_time_zone(ZONE)
    if kind == "offset":
        return col.dt.convert_time_zone(OFFSET_ZONE).dt.to_string("%Y-%m-%dT%H:%M:%S%.f%:z")
    return col


def _with_extras(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    """Extra columns (text with commas, semicolons, quotes and newlines; nullable integers),
    and the columns in reverse order."""
    n = frame.height
    note = pl.Series("note", [f'line {i};\n"said", ok' if i % 7 == 0 else None
                              for i in range(n)], dtype=pl.String)
    extra = pl.Series(f"{name}_score", [i % 5 if i % 3 else None for i in range(n)],
                      dtype=pl.Int64)
    frame = frame.with_columns(note, extra)
    return frame.select(list(reversed(frame.columns)))


def _categorical(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    cols = [c for c in TEXT_COLUMNS.get(name, ()) if c in frame.columns]
    exprs = [pl.col(c).cast(pl.Categorical) for c in cols if c != "segment"]
    if "segment" in cols:
        exprs.append(pl.col("segment").cast(pl.Enum(sorted(frame["segment"].unique()))))
    return frame.with_columns(exprs)


def write_layout(layout: Layout, base: dict[str, pl.DataFrame], dest: Path) -> Path:
    """Write the retailer in ``layout`` into the folder ``dest`` (replaced)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name, frame in tables_for(layout, base).items():
        _write(layout, frame, dest, name)
    return dest


def _write(layout: Layout, frame: pl.DataFrame, dest: Path, name: str) -> None:
    if layout.fmt == "parquet":
        frame.write_parquet(dest / f"{name}.parquet")
    elif layout.fmt == "parts":
        (dest / name).mkdir()
        step = max(1, frame.height // 3 + 1)
        for i, start in enumerate(range(0, max(frame.height, 1), step)):
            frame.slice(start, step).write_parquet(dest / name / f"part-{i:03d}.parquet")
    else:
        text = _csv_ready(frame).write_csv(
            separator=";" if layout.fmt == "csv_semicolon" else ",")
        bom = b"\xef\xbb\xbf" if layout.fmt == "csv_bom" else b""
        (dest / f"{name}.csv").write_bytes(bom + text.encode())


def _csv_ready(frame: pl.DataFrame) -> pl.DataFrame:
    """Timestamps as ISO text: with ``Z`` in UTC, the zone's offset otherwise, none when naive
    (CSV has no types; every float is written so that it reads back exactly)."""
    exprs = []
    for name, dtype in frame.schema.items():
        if isinstance(dtype, pl.Datetime):
            fmt = "%Y-%m-%dT%H:%M:%S%.f" + ("" if dtype.time_zone is None else
                                             "Z" if dtype.time_zone == "UTC" else "%:z")
            exprs.append(pl.col(name).dt.to_string(fmt))
    return frame.with_columns(exprs)


def experiments_for(layout: Layout, source: Path, dest: Path) -> Path:
    """The example experiments, with purchase-channel filters spelt as the layout's names
    and the layout's timezone."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.glob("*.yaml")):
        text = path.read_text()
        if layout.zone != "UTC":
            text = text.replace("\nschema_version: 1", f"\ntimezone: {layout.zone}\n"
                                "schema_version: 1", 1)
        if layout.unicode:
            text = text.replace("purchase_channel: web", f'purchase_channel: "web{UNICODE}"')
        (dest / path.name).write_text(text)
    return dest

