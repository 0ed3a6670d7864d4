"""Contact pressure (issue 25): dose-response YAML, assignment, readout per arm, the model's
optimum, and its simulation with known truth (the long runs under LIFTLAB_SLOW=1)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats as sps

from liftlab.analyses.cells import CellTable
from liftlab.app.run import analyze_to_folder, assignments_table
from liftlab.app.synth_pressure import generate
from liftlab.core.errors import SpecError
from liftlab.spec.loader import parse_experiment
from liftlab.stats import frequentist
from liftlab.stats.dose import equal_means
from liftlab.stats.proportions import binary

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "experiments" / "dose-response" / "email-frequency.yaml"
ISSUE_YAML = """\
schema_version: 1
id: email-frequency
start: 2026-03-02
end: 2026-04-27
design: dose_response
channels:
  email:
    cost_per_contact: 0.002
    arms: {f0: {share: 0.2, frequency: 0}, f1: {share: 0.2, frequency: 1},
           f2: {share: 0.2, frequency: 2}, f3: {share: 0.2, frequency: 3},
           f5: {share: 0.2, frequency: 5}}
    frequency_unit: per_week
metrics:
  - {name: margin, kind: mean, table: orders, value: margin}
  - {name: unsubscribe, kind: binary, table: events, event: unsubscribe, guardrail: true}
primary_metric: margin
pressure: {optin_value: 25.0}      # value of keeping a customer reachable
segments: [segment]
"""
FAST = "analysis: {draws: 100, tune: 100, chains: 2}\n"


def test_issue_yaml_validates() -> None:
    spec = parse_experiment(ISSUE_YAML)
    email = spec.channels["email"]
    assert email.control == "f0"
    assert email.treatment_arms == ["f1", "f2", "f3", "f5"]
    assert email.frequencies == {"f0": 0, "f1": 1, "f2": 2, "f3": 3, "f5": 5}
    assert email.arms == {a: 0.2 for a in ("f0", "f1", "f2", "f3", "f5")}
    assert spec.fatigue_metric is not None and spec.fatigue_metric.name == "unsubscribe"
    assert parse_experiment(EXAMPLE.read_text()).pressure is not None


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "f0: {share: 0.2, frequency: 0}",
            "f0: {share: 0.2, frequency: 4}",
            "exactly one arm must have frequency 0",
        ),
        ("f1: {share: 0.2, frequency: 1}", "f1: {share: 0.3, frequency: 1}", "add up to 1.1000"),
        (
            "f3: {share: 0.2, frequency: 3}",
            "f3: {share: 0.2, frequency: 2}",
            "each arm needs its own frequency",
        ),
        ("design: dose_response", "design: factorial", "need design: dose_response"),
        (
            "{optin_value: 25.0}",
            "{optin_value: 25.0, current_frequency: 7}",
            "beyond the highest tested frequency (5)",
        ),
        (
            "    cost_per_contact: 0.002",
            "    cost_per_contact: 0.002\n    holdout: 0.2",
            "remove holdout/variants",
        ),
        (
            "{optin_value: 25.0}",
            "{optin_value: 25.0, fatigue_metric: margin}",
            "must name a binary metric",
        ),
        ("frequency: 5}", "frequency: -5}", "arms.f5.frequency must be at least 0.0, got -5"),
    ],
)
def test_bad_dose_response_yaml(old: str, new: str, message: str) -> None:
    assert old in ISSUE_YAML
    with pytest.raises(SpecError) as exc:
        parse_experiment(ISSUE_YAML.replace(old, new), "f.yaml")
    text = str(exc.value)
    assert message in text and "f.yaml:" in text


def test_frequency_unit_needs_arms() -> None:
    text = ISSUE_YAML.replace("design: dose_response\n", "").replace(
        "pressure: {optin_value: 25.0}      # value of keeping a customer reachable\n", ""
    )
    text = text.replace(
        "    arms: {f0: {share: 0.2, frequency: 0}, f1: {share: 0.2, "
        "frequency: 1},\n           f2: {share: 0.2, frequency: 2}, f3: "
        "{share: 0.2, frequency: 3},\n           f5: {share: 0.2, "
        "frequency: 5}}\n",
        "    holdout: 0.2\n",
    )
    with pytest.raises(SpecError, match="frequency_unit is for dose-response arms"):
        parse_experiment(text)


def test_equal_means_is_the_z_test_for_two_arms() -> None:
    chi2, df, p = equal_means([1.0, 1.5], [0.2, 0.3])
    z = 0.5 / math.hypot(0.2, 0.3)
    assert df == 1 and chi2 == pytest.approx(z**2) and p == pytest.approx(2 * sps.norm.sf(z))
    # k arms: the weighted sum of squares around the inverse-variance mean (closed form)
    m, se = np.array([1.0, 1.2, 0.7, 1.4]), np.array([0.1, 0.2, 0.15, 0.3])
    w = 1 / se**2
    expected = float((w * (m - (w * m).sum() / w.sum()) ** 2).sum())
    chi2, df, p = equal_means(m, se)
    assert chi2 == pytest.approx(expected) and df == 3
    assert p == pytest.approx(sps.chi2.sf(expected, 3))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float]]:
    folder = tmp_path_factory.mktemp("pressure")
    truth = generate(folder / "data", 30_000, seed=3)
    customers = folder / "data" / "customers.parquet"  # a segment too small for a curve
    pl.read_parquet(customers).with_columns(
        segment=pl.when(pl.col("customer_id") <= 60)
        .then(pl.lit("tiny"))
        .otherwise(pl.col("segment")),
        region=pl.when(pl.col("customer_id") % 3 == 0)  # a second dimension, no effect
        .then(pl.lit("north"))
        .otherwise(pl.lit("south")),
    ).write_parquet(customers)
    yaml = folder / "email-frequency.yaml"
    text = EXAMPLE.read_text().replace("segments: [segment]", "segments: [segment, region]")
    yaml.write_text(text + FAST)
    return folder, truth


def test_assignments_are_the_arm_names(demo: tuple[Path, dict[str, float]]) -> None:
    from liftlab.engines.open import open_engine

    folder, _ = demo
    spec = parse_experiment((folder / "email-frequency.yaml").read_text())
    table = assignments_table(
        spec.model_copy(update={"assignment": "hash"}),
        open_engine(folder / "data", "UTC", "polars"),
    )
    shares = table.group_by("group").len().with_columns(pl.col("len") / table.height)
    assert set(shares["group"]) == {"f0", "f1", "f2", "f3", "f5"}
    assert shares["len"].to_list() == pytest.approx([0.2] * 5, abs=0.02)
    written = pl.read_parquet(folder / "data" / "assignments.parquet")  # the same hash
    joined = written.join(table, on="customer_id")
    assert (joined["group"] == joined["group_right"]).all()


@pytest.fixture(scope="module")
def analysed(demo: tuple[Path, dict[str, float]]) -> tuple[object, dict, dict[str, float]]:
    folder, truth = demo
    result = analyze_to_folder(
        folder / "email-frequency.yaml", folder / "data", None, folder / "out"
    )
    return result, json.loads((folder / "out" / "results.json").read_text()), truth


def test_readout_equals_the_frequentist_comparison(analysed: tuple) -> None:
    result, out, _ = analysed
    cells: CellTable = result.cells
    pressure = out["pressure"]
    effects = {(e["variant"], e["metric"], json.dumps(e["segment"])): e for e in out["effects"]}
    groups = {"overall": (pressure["overall"], None)} | {
        (d, v): (g, {d: v}) for d, values in pressure["segments"].items() for v, g in values.items()
    }
    checked = 0
    for group, segment in groups.values():
        h_rows = cells.where({"email": "f0"}, segment)
        for arm in group["arms"][1:]:
            t_rows = cells.where({"email": arm["arm"]}, segment)
            for name, got in arm["metrics"].items():
                metric = result.spec.metric(name)
                if metric.kind == "binary":
                    lift = binary(
                        cells.arm_stats(name, t_rows, True),
                        cells.arm_stats(name, h_rows, True),
                        0.05,
                        True,
                    )
                else:
                    lift = frequentist.welch(
                        cells.arm_stats(name, t_rows, True),
                        cells.arm_stats(name, h_rows, True),
                        0.05,
                        True,
                    )
                effect = effects[(arm["arm"], name, json.dumps(segment))]
                assert got["method"] == effect["method"] == lift.method
                assert got["error"] == effect["error"] == lift.error
                _same(_nan(got["lift_abs"]), lift.abs)  # results.json writes NaN as null
                _same(_nan(got["lift_abs_ci"]), list(lift.abs_ci))
                _same(_nan(got["p_value"]), lift.p_value)
                _same(_nan(got["lift_abs"]), _nan(effect["lift_abs"]))
                _same(_nan(got["p_value"]), _nan(effect["p_value"]))
                if effect["p_adjusted"] is None:
                    _same(_nan(got["lift_abs_ci"]), _nan(effect["lift_abs_ci"]))
                checked += 1
    assert checked == 7 * 4 * 4  # (overall + 4 segments + 2 regions) x 4 arms x 4 metrics


def test_value_per_unit_from_rows(demo: tuple[Path, dict[str, float]], analysed: tuple) -> None:
    """The value per unit (margin - contact cost - optin value x unsubscribed), read off the
    cross-products, equals the same value computed from the rows themselves."""
    folder, _ = demo
    _, out, _ = analysed
    data = folder / "data"
    start, end = (
        pl.datetime(2026, 3, 2, time_zone="UTC"),
        pl.datetime(2026, 4, 27, time_zone="UTC"),
    )
    margin = (
        pl.read_parquet(data / "orders.parquet")
        .filter((pl.col("ts") >= start) & (pl.col("ts") < end))
        .group_by("customer_id")
        .agg(pl.col("margin").sum())
    )
    contacts = (
        pl.read_parquet(data / "contacts.parquet")
        .filter((pl.col("sent_at") >= start) & (pl.col("sent_at") < end))
        .group_by("customer_id")
        .agg(cost=pl.col("cost").filter(pl.col("channel") == "email").sum(), touches=pl.len())
    )
    unsub = (
        pl.read_parquet(data / "events.parquet")
        .filter((pl.col("event") == "unsubscribe") & (pl.col("ts") >= start) & (pl.col("ts") < end))
        .select("customer_id")
        .unique()
        .with_columns(u=pl.lit(1.0))
    )
    units = (
        pl.read_parquet(data / "assignments.parquet")
        .select("customer_id", "group")
        .join(margin, on="customer_id", how="left")
        .join(contacts, on="customer_id", how="left")
        .join(unsub, on="customer_id", how="left")
        .fill_null(0.0)
        .with_columns(value=pl.col("margin") - pl.col("cost") - 25.0 * pl.col("u"))
    )
    by_arm = {
        r["group"]: r
        for r in units.group_by("group")
        .agg(
            pl.len().alias("n"),
            pl.col("value").mean().alias("mean"),
            pl.col("value").var().alias("var"),
            pl.col("touches").mean().alias("touches"),
            pl.col("cost").mean().alias("cost"),
        )
        .iter_rows(named=True)
    }
    control = by_arm["f0"]
    for arm in out["pressure"]["overall"]["arms"]:
        row = by_arm[arm["arm"]]
        assert arm["n"] == row["n"]
        assert arm["cost_per_unit"] == pytest.approx(row["cost"], rel=1e-9)
        assert arm["touches_per_frequency_unit"] == pytest.approx(row["touches"] / 8, rel=1e-9)
        if arm["arm"] == "f0":
            assert arm["value"]["mean"] == pytest.approx(row["mean"], rel=1e-9)
            continue
        se = math.sqrt(row["var"] / row["n"] + control["var"] / control["n"])
        assert arm["value"]["lift_abs"] == pytest.approx(row["mean"] - control["mean"], rel=1e-9)
        assert arm["value"]["lift_abs_ci"][1] - arm["value"]["lift_abs"] == pytest.approx(
            se * sps.norm.ppf(0.975), rel=0.01
        )  # Welch's t quantile at large df


def test_results_json_pressure_object(analysed: tuple) -> None:
    _, out, truth = analysed
    pressure = out["pressure"]
    assert pressure["dimensions"] == ["segment", "region"]
    assert set(pressure["segments"]["segment"]) == {"casual", "loyal", "new", "tiny"}
    assert set(pressure["segments"]["region"]) == {"north", "south"}
    tiny = pressure["segments"]["segment"].pop("tiny")
    assert tiny["optimum"] is None and tiny["curve"] is None and "fewer than 30" in tiny["note"]
    assert pressure["optin_value"] == 25.0 and pressure["cost_basis"] == "contacts.cost"
    assert pressure["cost_per_frequency"] == pytest.approx(0.002 * 0.95 * 8, rel=0.02)
    regions = pressure["segments"]["region"]
    for region in regions.values():  # no effect of the region: both see the overall optimum
        assert region["curve"] is not None
        if not region["flat"]:
            assert region["optimum_ci"][0] <= truth["overall"] <= region["optimum_ci"][1]
    assert "segment: dose-response" in pressure["method"] and "region: " in pressure["method"]
    for name, group in [("overall", pressure["overall"]), *pressure["segments"]["segment"].items()]:
        assert [a["arm"] for a in group["arms"]] == ["f0", "f1", "f2", "f3", "f5"]
        if group["flat"]:
            assert group["optimum"] is None and "do not differ" in group["note"]
            assert "next_send" not in group and "gain_over_current" not in group
            continue
        lo, hi = group["optimum_ci"]
        assert 0 <= lo <= group["optimum"] <= hi <= 5
        assert lo <= truth[name] <= hi, (name, group["optimum_ci"], truth[name])
        plan = group["planning"]  # simulated: 60,000 units per arm in all, 8 weeks
        assert plan["reps"] == 2000 and plan["weeks_now"] == pytest.approx(8)
        assert plan["prob_now"] >= 0.9 or plan["units_per_arm"] > plan["units_per_arm_now"]
        gain = group["gain_over_current"]
        assert gain["from"] == 1.0 and 0 <= gain["prob_pays"] <= 1
        assert gain["ci"][0] <= gain["mean"] <= gain["ci"][1]
    assert pressure["overall"]["flat"] is False  # 30,000 customers see the overall curve
    curve = pressure["overall"]["curve"]
    assert len(curve["frequency"]) == len(curve["value"]["mean"]) == 201
    assert pressure["diagnostics"]["chains"] == 2


def test_flat_truth_claims_no_optimum_small_sample() -> None:
    """Flat truth (no revenue or fatigue response, free contacts): the equal-value gate
    claims a difference, and so an optimum, at about alpha (200 replications: 0.05 +- 0.015)."""
    from pressure_sim import flat_rejections

    assert flat_rejections(200, 2_000, seed=7) <= 0.10


@pytest.mark.slow
def test_flat_truth_claims_no_optimum() -> None:
    from pressure_sim import flat_rejections

    rate = flat_rejections(2_000, 20_000, seed=11)
    assert rate <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 2_000)


@pytest.mark.slow
def test_flat_truth_under_the_model() -> None:
    """Flat truth fitted by the PyMC model: the gate claims an optimum in about alpha of the
    segments, and the model's own interval of the optimum spans most of the tested range (it
    cannot place an optimum). 60 replications x 3 segments."""
    from pressure_sim import flat_replicate

    reps = [flat_replicate(5000 + r, 60_000, 500, 500) for r in range(60)]
    claims = [claimed for rep in reps for claimed, _ in rep.values()]
    assert np.mean(claims) <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / len(claims))
    assert np.median([width for rep in reps for _, width in rep.values()]) >= 2.5


@pytest.mark.slow
def test_optimum_interval_covers_the_truth() -> None:
    """Known optimum per segment (3.09, 2.10, 0.75 sends a week; 1.89 overall): the 95%
    interval of the optimum covers it in at least 90% of replications, and the true margin
    and unsubscribe curves lie inside their 95% bands at the tested frequencies (README,
    Contact pressure, for the measured rates)."""
    from pressure_sim import replicate

    reps = [replicate(2000 + r, 60_000, 500, 500) for r in range(200)]
    for key in ("loyal", "casual", "new", "overall"):
        assert np.mean([r.covered[key] for r in reps]) >= 0.90, key
    assert np.mean([r.in_band for r in reps]) >= 0.90


def test_page_shows_the_pressure_section(
    demo: tuple[Path, dict[str, float]], analysed: tuple
) -> None:
    folder, _ = demo
    _, out, _ = analysed
    page = (folder / "out" / "dashboard.html").read_text()
    assert '<section id="pressure">' in page and "email-frequency-pressure" in page
    for name in ("overall", *(f"segment: {s}" for s in ("casual", "loyal", "new", "tiny"))):
        assert f"<tr><td>{name}</td>" in page
    assert "<tr><td>region: north</td>" in page and "<tr><td>region: south</td>" in page
    table = pl.read_csv(
        folder / "out" / "tables" / "email-frequency" / "email-frequency-pressure.csv"
    )
    assert table.height == 6 * 201
    assert set(table["group"]) == {
        "overall",
        *(f"segment: {s}" for s in ("casual", "loyal", "new")),
        "region: north",
        "region: south",
    }
    overall = table.filter(pl.col("group") == "overall")
    curve = out["pressure"]["overall"]["curve"]
    assert overall["value_mean"].to_list() == pytest.approx(curve["value"]["mean"])


def _arm_readout(data: Path | str, yaml: Path) -> dict:
    """The readout per arm (no model) through the engine, as analyze computes it."""
    from liftlab.analyses.pressure import arm_readout, pressure_plan
    from liftlab.engines.open import open_engine
    from liftlab.engines.units import window_bounds
    from liftlab.spec.aggregation import arm_col
    from liftlab.spec.aggregation import build_aggregation as build_plan

    spec = parse_experiment(yaml.read_text())
    engine = open_engine(data, spec.timezone, "polars")
    units = engine.units(spec)
    window = window_bounds(spec, None)
    plan = build_plan(
        spec,
        window,
        (arm_col("email"), *units.segments),
        ("revenue", "margin", "orders"),
        contact_channels=("email",),
    )
    frame = engine.aggregate(pressure_plan(spec, plan, engine), units, spec.id)
    return arm_readout(spec, CellTable(frame, ("email",), units.segments), window)[2]


def _nan(x: object) -> object:
    """results.json's null as the NaN it stands for."""
    if isinstance(x, list):
        return [_nan(v) for v in x]
    return math.nan if x is None else float(x)  # type: ignore[arg-type]


def _same(a: object, b: object, where: str = "") -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-9), where
    else:
        assert a == b, where


def test_readout_is_the_same_on_text_ids_csv_and_naive_timestamps(
    demo: tuple[Path, dict[str, float]],
) -> None:
    """tests/layouts.py's variations that matter here: the same retailer with text customer
    ids, CSV files and naive timestamps gives the same readout per arm."""
    folder, _ = demo
    src, dest = folder / "data", folder / "text-csv"
    dest.mkdir()
    for table in ("customers", "orders", "contacts", "events", "assignments"):
        frame = pl.read_parquet(src / f"{table}.parquet").with_columns(
            pl.format("c-{}", pl.col("customer_id")).alias("customer_id")
        )
        frame = frame.with_columns(pl.col(pl.Datetime("us", "UTC")).dt.replace_time_zone(None))
        frame.write_csv(dest / f"{table}.csv")
    yaml = folder / "email-frequency.yaml"
    _same(_arm_readout(dest, yaml), _arm_readout(src, yaml))


def test_cli_validate_assign_and_plan(demo: tuple[Path, dict[str, float]], tmp_path: Path) -> None:
    from metamorphic import cli

    folder, _ = demo
    yaml, data = folder / "email-frequency.yaml", folder / "data"
    code, out, _ = cli("validate", EXAMPLE, "--data", data)
    assert code == 0 and "email-frequency" in out
    code, _, _ = cli("assign", yaml, "--data", data, "--out", tmp_path / "a.parquet")
    assert code == 0
    groups = set(pl.read_parquet(tmp_path / "a.parquet")["group"])
    assert groups == {"f0", "f1", "f2", "f3", "f5"}
    code, _, err = cli("plan", yaml, "--data", data)
    assert code == 1 and "dose-response experiment" in err and "pressure.overall.planning" in err


def test_readout_is_the_same_on_duckdb(demo: tuple[Path, dict[str, float]]) -> None:
    """The aggregation plan with the pressure measures, compiled to SQL, gives the same
    readout per arm as the polars engine."""
    duckdb = pytest.importorskip("duckdb")
    folder, _ = demo
    db = folder / "data.duckdb"
    con = duckdb.connect(str(db))
    for table in ("customers", "orders", "contacts", "events", "assignments"):
        con.execute(
            f"CREATE TABLE {table} AS SELECT * FROM "
            f"read_parquet('{folder / 'data' / table}.parquet')"
        )
    con.close()
    yaml = folder / "email-frequency.yaml"
    _same(_arm_readout(f"duckdb:///{db}", yaml), _arm_readout(folder / "data", yaml))


def test_results_json_follows_the_schema(analysed: tuple) -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="install the test extra")
    _, out, _ = analysed
    schema = json.loads((ROOT / "docs" / "results.schema.json").read_text())
    errors = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(out)]
    assert not errors
