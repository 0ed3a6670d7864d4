"""The Hillstrom importer round-trips: per-arm counts, visit and conversion rates and mean
spend computed from the written contract tables (polars) equal those computed directly from
the CSV (pandas); the written YAML is a valid experiment; bad CSVs are refused clearly."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import polars as pl
import pytest
import yaml

from liftlab.core.errors import DataError, UserError
from liftlab.data.hillstrom import COLUMNS, import_hillstrom
from liftlab.spec.models import Experiment

CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "hillstrom.csv"
ARMS = {"No E-Mail": "holdout", "Mens E-Mail": "mens", "Womens E-Mail": "womens"}
real_data = pytest.mark.skipif(
    not CSV.exists(), reason=f"Hillstrom CSV not found at {CSV}: round-trip test skipped")


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hillstrom")
    import_hillstrom(CSV, out)
    return out


def _from_tables(out: Path) -> pd.DataFrame:
    """Per-arm n, visit rate, conversion rate and mean spend from the written tables."""
    units = pl.read_parquet(out / "assignments.parquet").select("customer_id", "group")
    visits = pl.read_parquet(out / "events.parquet").filter(event="visit").select(
        "customer_id").unique().with_columns(visit=pl.lit(1.0))
    orders = pl.read_parquet(out / "orders.parquet").group_by("customer_id").agg(
        spend=pl.col("revenue").sum(), conversion=pl.lit(1.0))
    per = (units.join(visits, on="customer_id", how="left")
           .join(orders, on="customer_id", how="left")
           .with_columns(pl.col("visit", "conversion", "spend").fill_null(0.0)))
    return (per.group_by("group").agg(n=pl.len(), visit=pl.col("visit").mean(),
                                      conversion=pl.col("conversion").mean(),
                                      spend=pl.col("spend").mean())
            .to_pandas().set_index("group").sort_index())


@real_data
def test_per_arm_statistics_round_trip(imported: Path):
    raw = pd.read_csv(CSV)
    direct = (raw.assign(group=raw["segment"].map(ARMS)).groupby("group")
              .agg(n=("visit", "size"), visit=("visit", "mean"),
                   conversion=("conversion", "mean"), spend=("spend", "mean")).sort_index())
    tables = _from_tables(imported)
    assert list(tables.index) == ["holdout", "mens", "womens"]
    assert tables["n"].tolist() == direct["n"].tolist()
    for column in ("visit", "conversion", "spend"):
        assert tables[column].to_numpy() == pytest.approx(direct[column].to_numpy(), rel=1e-12)
    # Hillstrom's published headline: Mens e-mail visits 18.3% vs 10.6% without e-mail.
    assert tables.loc["mens", "visit"] == pytest.approx(0.1828, abs=5e-4)
    assert tables.loc["holdout", "visit"] == pytest.approx(0.1062, abs=5e-4)


@real_data
def test_customers_and_timestamps(imported: Path):
    raw = pd.read_csv(CSV)
    customers = pl.read_parquet(imported / "customers.parquet")
    assert customers["customer_id"].to_list() == list(range(1, len(raw) + 1))
    assert customers["past_channel"].to_list() == raw["channel"].tolist()
    assert customers["history"].to_numpy() == pytest.approx(raw["history"].to_numpy())
    spec = Experiment.model_validate(yaml.safe_load((imported / "hillstrom.yaml").read_text()))
    start = dt.datetime.combine(spec.start, dt.time(), dt.UTC)
    end = dt.datetime.combine(spec.end, dt.time(), dt.UTC)
    for table in ("orders", "events"):
        ts = pl.read_parquet(imported / f"{table}.parquet")["ts"]
        assert start <= ts.min() and ts.max() < end, table
    orders = pl.read_parquet(imported / "orders.parquet")
    assert orders["order_id"].is_unique().all() and set(orders["channel"]) == {"web"}
    assert (orders["revenue"] > 0).all()


def _tiny_csv(path: Path, rows: list[str], header: tuple[str, ...] = COLUMNS) -> Path:
    path.write_text(",".join(header) + "\n" + "\n".join(rows) + "\n")
    return path


ROW_MENS = "10,2) $100 - $200,142.44,1,0,Surburban,0,Phone,Mens E-Mail,1,1,29.99"
ROW_NONE = "6,3) $200 - $350,329.08,1,1,Rural,1,Web,No E-Mail,0,0,0"


def test_tiny_csv_gives_the_expected_tables(tmp_path: Path):
    """Two hand-written rows: one converter with a visit, one non-visitor."""
    out = tmp_path / "data"
    spec = import_hillstrom(_tiny_csv(tmp_path / "h.csv", [ROW_MENS, ROW_NONE]), out)
    assert spec == out / "hillstrom.yaml"
    groups = pl.read_parquet(out / "assignments.parquet")["group"].to_list()
    assert groups == ["mens", "holdout"]
    orders = pl.read_parquet(out / "orders.parquet")
    assert orders.select("customer_id", "revenue").rows() == [(1, 29.99)]
    assert pl.read_parquet(out / "events.parquet")["customer_id"].to_list() == [1]


def test_import_never_overwrites_tables_it_did_not_write(tmp_path: Path):
    csv = _tiny_csv(tmp_path / "h.csv", [ROW_MENS, ROW_NONE])
    (tmp_path / "orders.parquet").write_bytes(b"the user's orders")
    with pytest.raises(UserError, match="not written by liftlab"):
        import_hillstrom(csv, tmp_path)
    with pytest.raises(UserError, match=r"orders\.parquet that liftlab did not write"):
        import_hillstrom(csv, tmp_path, force=True)
    assert (tmp_path / "orders.parquet").read_bytes() == b"the user's orders"
    (tmp_path / "orders.parquet").unlink()
    import_hillstrom(csv, tmp_path, force=True)
    import_hillstrom(csv, tmp_path, force=True)  # its own tables: replaced
    assert pl.read_parquet(tmp_path / "orders.parquet").height == 1


def test_missing_file_and_missing_columns_are_user_errors(tmp_path: Path):
    with pytest.raises(UserError, match="no such file"):
        import_hillstrom(tmp_path / "absent.csv", tmp_path)
    header = tuple(c for c in COLUMNS if c != "spend")
    bad = _tiny_csv(tmp_path / "bad.csv", [ROW_NONE.rsplit(",", 1)[0]], header)
    with pytest.raises(DataError, match=r"missing column\(s\) spend"):
        import_hillstrom(bad, tmp_path)


def test_unknown_arm_label_is_a_data_error(tmp_path: Path):
    bad = _tiny_csv(tmp_path / "bad.csv", [ROW_MENS.replace("Mens E-Mail", "Kids E-Mail")])
    with pytest.raises(DataError, match=r"'Kids E-Mail'.*one of No E-Mail"):
        import_hillstrom(bad, tmp_path)
