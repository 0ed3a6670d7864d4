"""Fast routes for CSV tables (issue 23): column types from a sample of rows, text
timestamps parsed with the file's usual format first. Each gives what the plain route gives."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal, assert_series_equal

import liftlab.data.folder as folder
from layouts import Layout, base_tables, write_layout
from liftlab.data.folder import FolderSource, parse_text_times, parse_timestamps, read_csv

# every format, offsets, a time Paris skips (2026-03-29 02:30), an ambiguous one, garbage
TEXTS = [
    "2026-02-02T09:00:00Z",
    "2026-02-02T09:00:00.123456+01:00",
    "2026-02-02T09:00:00",
    "2026-02-02 09:00:00.5",
    "2026-03-29T02:30",
    "2026-10-25 02:30",
    "2026-02-02",
    "02/02/2026",
    "",
    None,
    "2026-02-02T09:00:00-0530",
    "not a time",
]


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris"])
@pytest.mark.parametrize("first", range(len(TEXTS)))
def test_text_times_parsed_from_the_usual_format_equal_every_format_tried(
    first: int, zone: str
) -> None:
    """Whichever format the first value has (or none), each value reads as the instant
    that trying every format in order gives, nulls where none reads."""
    texts = pl.Series("ts", [*TEXTS[first:], *TEXTS[:first]] * 3, dtype=pl.String)
    plain = texts.to_frame().select(parse_timestamps(pl.col("ts"), zone)).to_series()
    assert_series_equal(parse_text_times(texts, zone), plain, check_exact=True)


def test_text_times_of_an_empty_or_null_column() -> None:
    for texts in (pl.Series("ts", [], dtype=pl.String), pl.Series("ts", [None] * 3, pl.String)):
        plain = texts.to_frame().select(parse_timestamps(pl.col("ts"), "UTC")).to_series()
        assert_series_equal(parse_text_times(texts, "UTC"), plain, check_exact=True)


@pytest.mark.parametrize(
    "below",
    [
        "1.5,x,",  # an integer column turns float beyond the sample
        "text,x,",  # an integer column turns text
        "4,x,7",  # a column empty in the sample has integers below
        "4,x,true",  # ... booleans
        "4,x,",  # nothing new
    ],
)
def test_a_csv_read_with_sampled_types_equals_one_with_types_from_every_row(
    below: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(folder, "CSV_SAMPLE_ROWS", 3)
    path = tmp_path / "t.csv"
    path.write_text("a,b,c\n1,x,\n2,y,\n3,z,\n" + below + "\n")
    plain = pl.read_csv(path, try_parse_dates=False, infer_schema_length=None)
    assert_frame_equal(read_csv(path, ","), plain, check_exact=True)


@pytest.mark.parametrize(
    "layout",
    [
        Layout(fmt="csv"),
        Layout(fmt="csv", ts="naive", zone="Europe/Paris", order_id="text"),
        Layout(customer_id="text", fmt="csv_semicolon", ts="offset"),
    ],
    ids=lambda layout: layout.id,
)
def test_kept_csv_tables_equal_tables_parsed_at_each_query(
    layout: Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A source that keeps its CSV tables (sampled types, timestamps parsed once) and one
    that parses them at each query with every row's types and every format (no room kept)
    read every table alike, with a small sample of rows and the default one."""
    base = dict(base_tables(tmp_path / "base"))
    data = write_layout(layout, base, tmp_path / layout.id)
    kept = {t: FolderSource(data, layout.zone).scan(t).collect() for t in ("orders", "events")}
    monkeypatch.setattr(folder, "CSV_SAMPLE_ROWS", 5)
    small = FolderSource(data, layout.zone)
    monkeypatch.setattr(folder, "CSV_KEPT_BYTES", 0)
    plain = FolderSource(data, layout.zone)
    assert kept["orders"].height > 5
    for table, frame in kept.items():
        expected = plain.scan(table).collect()
        assert_frame_equal(frame, expected, check_exact=True)
        assert_frame_equal(small.scan(table).collect(), expected, check_exact=True)
    assert not plain._parsed


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris"])
def test_unreadable_text_timestamps_are_reported_as_the_plain_check_reports_them(
    zone: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check that looks only at the rows the parsed column leaves null names the same
    table, column, rows and examples as the check of every row (a time the zone skips is
    readable)."""
    data = write_layout(Layout(fmt="csv"), base_tables(tmp_path / "base"), tmp_path / "csv")
    orders = pl.read_csv(data / "orders.csv", infer_schema_length=None)
    odd = ["yesterday", "2026-03-29T02:30:00", "2026-13-01T00:00:00Z", None, "2026-02-02"]
    ts = orders["ts"].scatter(range(3, 3 + len(odd)), odd)
    orders.with_columns(ts).write_csv(data / "orders.csv")
    fast = FolderSource(data, zone).check()
    monkeypatch.setattr(folder, "CSV_KEPT_BYTES", 0)
    plain = FolderSource(data, zone).check()
    assert fast == plain
    assert len(fast) == 1
    assert fast[0].table == "orders" and fast[0].column == "ts"
    assert fast[0].rows == (4, 6)
    assert "'yesterday'" in fast[0].message
