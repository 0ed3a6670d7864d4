"""The Spark engine: the same aggregation plan, executed on a cluster (or in local mode).

Only the final table of sufficient statistics (a few hundred rows) leaves Spark; it has the
same columns as the polars engine's, so everything after it is shared. Hash assignment runs
inside Spark with the very same numpy hash (``mapInArrow``), so arms are identical.
Requires the optional extra ``liftlab[spark]`` (PySpark) and Java.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from liftlab.core.errors import DataError, Problem, UserError
from liftlab.data.quality import (
    EARLIEST,
    MAX_AMOUNT,
    MAX_ROWS_SHOWN,
    TS_COLUMN,
    Check,
    QualityReport,
    build_report,
    declare_checks,
)
from liftlab.data.schema import MAX_FLOAT_ID, REQUIRED, TABLES, structural_problems
from liftlab.engines.base import (
    PolarsOnlyRowWork,
    spread_caps,
    with_landing,
)
from liftlab.engines.units import (
    MISSING_SEGMENT,
    Units,
    arms_source,
    no_assignments,
    segment_warning,
)
from liftlab.spec import filters
from liftlab.spec.aggregation import (
    AggregationPlan,
    Measure,
    arm_col,
    cap_col,
    prod_col,
    sum_col,
    winsorised,
)
from liftlab.spec.models import Experiment
from liftlab.stats.quantiles import LOG_GAMMA, OFFSET, ZERO

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession


MASTER_ENV = "LIFTLAB_SPARK_MASTER"


def spark_session(cores: int = 2) -> SparkSession:
    """A Spark session with UTC as its time zone: on the cluster whose master URL is in
    ``LIFTLAB_SPARK_MASTER`` (e.g. ``spark://host:7077``), else in local mode."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise UserError("the Spark engine needs PySpark: pip install 'liftlab[spark]'") from exc
    # Python workers must run the interpreter that has liftlab installed: given to Spark
    # (its config, and the context that starts the workers), never set in the environment.
    python = os.environ.get("PYSPARK_PYTHON") or sys.executable
    master = os.environ.get(MASTER_ENV) or f"local[{cores}]"
    builder = (SparkSession.builder.master(master).appName("liftlab")
               .config("spark.pyspark.python", python)
               .config("spark.ui.enabled", "false")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.shuffle.partitions", str(max(4, 2 * cores))))
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # Spark reports a bad master or a missing Java in many ways
        raise UserError(f"cannot start Spark with master {master!r} (set by {MASTER_ENV} "
                        f"when not local): {str(exc).splitlines()[0] if str(exc) else exc!r}; "
                        "check the master URL and that Java 17 is installed") from None
    session.sparkContext.pythonExec = python  # read when mapInArrow ships the hash function
    return session


@dataclass
class SparkEngine(PolarsOnlyRowWork):
    """Contract tables as Spark DataFrames: from a folder (Parquet/CSV) or given directly."""

    spark: SparkSession
    root: Path | None = None
    tables: dict[str, DataFrame] = field(default_factory=dict)
    timezone: str = "UTC"
    _cache: dict[str, DataFrame] = field(default_factory=dict, repr=False)

    @property
    def label(self) -> str:
        return f"spark:{self.root}" if self.root else "spark:tables"

    def _raw(self, table: str) -> DataFrame | None:
        if table in self.tables:
            return self.tables[table]
        if self.root is None:
            return None
        for candidate in (self.root / f"{table}.parquet", self.root / table):
            if candidate.exists():
                return self.spark.read.parquet(str(candidate))
        csv = self.root / f"{table}.csv"
        if csv.exists():
            from liftlab.data.folder import csv_separator

            return (self.spark.read.option("header", True).option("inferSchema", True)
                    .option("sep", csv_separator(csv)).option("multiLine", True).csv(str(csv)))
        return None

    def has(self, table: str) -> bool:
        return self._raw(table) is not None

    def columns(self, table: str) -> list[str]:
        df = self._raw(table)
        return [] if df is None else list(df.columns)

    def scan(self, table: str) -> DataFrame:
        """The table normalised: timestamps as UTC instants, money as double, ids as string
        when the tables disagree on their type."""
        if table in self._cache:
            return self._cache[table]
        from pyspark.sql import functions as F
        from pyspark.sql import types as T

        df = self._raw(table)
        if df is None:
            raise DataError([Problem(f"table {table!r} not found", table=table)])
        kinds = REQUIRED.get(table, {}) | ({"margin": "number"} if table == "orders" else {})
        id_string = self._ids_disagree()
        for name, kind in kinds.items():
            if name not in df.columns:
                continue
            dtype = df.schema[name].dataType
            if kind == "datetime" and not isinstance(dtype, T.TimestampType):
                # naive values (strings, TIMESTAMP_NTZ) are wall-clock times in the data's zone
                naive = F.to_timestamp(F.col(name)) if isinstance(dtype, T.StringType) else (
                    F.col(name).cast("timestamp"))
                df = df.withColumn(name, F.to_utc_timestamp(naive, self.timezone))
            elif kind == "number" and not isinstance(dtype, T.DoubleType):
                df = df.withColumn(name, F.col(name).cast("double"))
            elif kind == "id":  # integral floats as integers; text when tables disagree
                if isinstance(dtype, T.FloatType | T.DoubleType | T.DecimalType):
                    bad = df.filter((F.col(name) != F.floor(F.col(name)))
                                    | (F.abs(F.col(name)) > MAX_FLOAT_ID)).count()
                    if bad:
                        raise DataError([Problem(
                            f"{bad} id(s) are not whole numbers within ±2^53", table=table,
                            column=name,
                            row_count=bad, hint="ids must be integers or text")])
                    df = df.withColumn(name, F.col(name).cast("long"))
                if id_string:
                    df = df.withColumn(name, F.col(name).cast("string"))
        self._cache[table] = df
        return df

    def _ids_disagree(self) -> bool:
        """Whether customer ids are compared as text: some table stores them as text."""
        from pyspark.sql import types as T

        for t in TABLES:
            df = self._raw(t)
            if df is not None and "customer_id" in df.columns and not isinstance(
                    df.schema["customer_id"].dataType, T.NumericType):
                return True
        return False

    def check(self) -> list[Problem]:
        return structural_problems(
            {t: self.columns(t) if self.has(t) else None for t in TABLES}, self.label)

    def quality(self, as_of: dt.datetime) -> QualityReport:
        from pyspark.sql import functions as F

        checks = declare_checks({t: self.columns(t) for t in TABLES if self.has(t)})
        counts: dict[int, int] = {}
        for table in dict.fromkeys(c.table for c in checks):
            mine = [(i, c) for i, c in enumerate(checks) if c.table == table]
            df = self._flagged(table, [c for _, c in mine], as_of)
            row = df.agg(*[
                (F.count(c.column) - F.countDistinct(c.column)) if c.kind == "duplicated"
                else F.sum(F.col(f"__bad{j}").cast("long"))
                for j, (_, c) in enumerate(mine)]).collect()[0]
            row = {str(j): v for j, v in enumerate(row)}
            counts.update({i: int(row[str(j)] or 0) for j, (i, _) in enumerate(mine)})

        def first_rows(c: Check) -> tuple[int, ...]:
            df = self._flagged(c.table, [c], as_of)
            rows = df.filter(F.col("__bad0")).select("__row").orderBy("__row").limit(
                MAX_ROWS_SHOWN).collect()
            return tuple(int(r["__row"]) for r in rows)

        return build_report(checks, [counts[i] for i in range(len(checks))], first_rows)

    def _flagged(self, table: str, checks: list[Check], as_of: dt.datetime) -> DataFrame:
        """The table with a row number and one boolean column per check."""
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        df = self.scan(table).withColumn("__row", F.monotonically_increasing_id() + 1)
        for j, c in enumerate(checks):
            col = F.col(c.column)
            if c.kind == "duplicated":
                cond = col.isNotNull() & (F.count(F.lit(1)).over(Window.partitionBy(c.column)) > 1)
            elif c.kind == "not_finite":
                cond = col.isNull() | F.isnan(col) | (F.abs(col) > MAX_AMOUNT)
            elif c.kind == "negative":
                cond = col < 0
            elif c.kind == "out_of_range":
                cond = (col < F.lit(EARLIEST)) | (col > F.lit(as_of + dt.timedelta(days=1)))
            else:
                cond = col.isNull()
            df = df.withColumn(f"__bad{j}", F.coalesce(cond, F.lit(False)))
        return df

    def units(self, spec: Experiment) -> Units:
        from pyspark.sql import functions as F

        unit = spec.unit
        customers = self.scan("customers")
        missing = [c for c in [unit, *spec.segments] if c not in customers.columns]
        if missing:
            raise DataError([Problem(f"column {c!r} used by the experiment is missing",
                                     table="customers", column=c) for c in missing])
        if spec.population.where:
            sql, params = filters.to_sql(filters.parse(spec.population.where),
                                         quote_ident=_backtick, placeholder="?")
            customers = self.spark.sql(f"SELECT * FROM {{c}} WHERE {sql}", args=params,
                                       c=customers)
        population = customers.select(
            unit, *[F.coalesce(F.col(s).cast("string"), F.lit(MISSING_SEGMENT)).alias(s)
                    for s in spec.segments])
        warnings: list[str] = []
        assigned_by = "hash"
        frame = None
        if arms_source(spec, self.has("assignments")) == "table":
            table = self.scan("assignments")
            if not table.filter(F.col("experiment_id") == spec.id).limit(1).count():
                raise no_assignments(spec, [r[0] for r in table.select(
                    F.col("experiment_id").cast("string")).distinct().orderBy(1).limit(11)
                    .collect()])
            long = (table.filter(F.col("experiment_id") == spec.id)
                    .filter(F.col("channel").isin(list(spec.channels))))
            if not long.limit(1).count():
                raise DataError([Problem(
                    f"experiment {spec.id!r} has assignment rows but none for its channels "
                    f"({', '.join(spec.channels)})", table="assignments", column="channel",
                    hint="the channel names must match the experiment's YAML")])
            assigned_by = "table"
            self._check_assignments(spec, long)
            wide = long.groupBy(unit).agg(*[
                F.first(F.when(F.col("channel") == ch, F.col("group")), ignorenulls=True)
                .alias(arm_col(ch)) for ch in spec.channels])
            frame = population.join(wide, on=unit, how="inner")
        if frame is None:
            frame = _hash_arms_spark(spec, population)
        frame = frame.cache()
        n = frame.count()
        if n == 0:
            raise DataError([Problem("the population is empty", table="customers")])
        keep = []
        for s in spec.segments:
            k, longest = frame.select(F.countDistinct(s), F.max(F.length(s))).collect()[0]
            warning = segment_warning(s, int(k), int(longest or 0))
            if warning:
                warnings.append(warning)
            else:
                keep.append(s)
        frame = frame.drop(*[s for s in spec.segments if s not in keep])
        return Units(frame, n, assigned_by, tuple(keep), tuple(warnings))

    def _check_assignments(self, spec: Experiment, long: DataFrame) -> None:
        from pyspark.sql import functions as F

        dupes = (long.groupBy(spec.unit, "channel").agg(F.countDistinct("group").alias("k"))
                 .filter(F.col("k") > 1))
        examples = [str(r[spec.unit]) for r in dupes.orderBy(spec.unit).limit(5).collect()]
        if examples:
            raise DataError([Problem(
                f"unit(s) are in two arms of the same channel (e.g. {spec.unit} "
                f"{', '.join(examples)})", table="assignments", column="group",
                hint="a unit may be in one arm per channel; fix the assignment export")])

    def aggregate(self, plan: AggregationPlan, units: Units,
                  experiment_id: str) -> pl.DataFrame:
        from pyspark.sql import functions as F

        plan = with_landing(plan, self)
        out, safe = self._per_unit(plan, units, experiment_id)
        keys = [F.col(f"`{k}`").alias(f"k{i}") for i, k in enumerate(plan.group_by)]
        aggs = [F.count(F.lit(1)).alias("n")]
        aggs += [F.sum(safe[m.name]).alias(f"s{i}") for i, m in enumerate(plan.measures)]
        aggs += [F.sum(F.col(safe[a]) * F.col(safe[b])).alias(f"p{i}")
                 for i, (a, b) in enumerate(plan.products)]
        aggs += [F.max(safe[m.name]).alias(f"c{i}")  # the cap (spread_caps)
                 for i, m in enumerate(winsorised(plan))]
        grouped = out.select(*keys, *[F.col(c) for c in safe.values()]).groupBy(
            *[f"k{i}" for i in range(len(keys))]).agg(*aggs)
        rows = grouped.collect()
        names = {f"k{i}": k for i, k in enumerate(plan.group_by)}
        names |= {f"s{i}": sum_col(m.name) for i, m in enumerate(plan.measures)}
        names |= {f"p{i}": prod_col(a, b) for i, (a, b) in enumerate(plan.products)}
        names |= {f"c{i}": cap_col(m.name) for i, m in enumerate(winsorised(plan))}
        names["n"] = "n"
        cols = grouped.columns
        data = {names[c]: [r[c] for r in rows] for c in cols}
        schema = {names[c]: (pl.String if c.startswith("k") else
                             pl.UInt32 if c == "n" else pl.Float64) for c in cols}
        result = spread_caps(pl.DataFrame(data, schema=schema), plan)
        key_names = list(plan.group_by)
        return result.sort(key_names, nulls_last=True) if key_names else result

    def histograms(self, plan: AggregationPlan, units: Units,
                   experiment_id: str) -> pl.DataFrame:
        from pyspark.sql import functions as F

        out, safe = self._per_unit(plan, units, experiment_id)
        keys = [F.col(f"`{k}`").cast("string").alias(f"k{i}")
                for i, k in enumerate(plan.group_by)]
        frames = []
        for m in plan.measures:
            v = F.col(safe[m.name])
            bin_ = F.when(F.abs(v) < ZERO, F.lit(0)).otherwise(
                F.signum(v) * (F.ceil(F.log(F.abs(v)) / LOG_GAMMA) + OFFSET)).cast("long")
            rows = (out.select(*keys, bin_.alias("bin")).groupBy(
                *[f"k{i}" for i in range(len(keys))], "bin").agg(F.count(F.lit(1)).alias("n"))
                .collect())
            frames.append(pl.DataFrame(
                {**{k: [r[f"k{i}"] for r in rows] for i, k in enumerate(plan.group_by)},
                 "measure": [m.name] * len(rows), "bin": [int(r["bin"]) for r in rows],
                 "n": [int(r["n"]) for r in rows]},
                schema={**{k: pl.String for k in plan.group_by}, "measure": pl.String,
                        "bin": pl.Int64, "n": pl.Int64}))
        return pl.concat(frames).sort([*plan.group_by, "measure", "bin"])

    def _per_unit(self, plan: AggregationPlan, units: Units,
                  experiment_id: str) -> tuple[DataFrame, dict[str, str]]:
        """One row per unit with the plan's measures (named ``m<i>``) and the units'
        columns, and the measures' names there."""
        from pyspark.sql import functions as F

        unit = plan.unit
        frame: DataFrame = units.frame
        ids = frame.select(unit)
        lo = plan.pre_window[0] if plan.pre_window else plan.window[0]
        hi = plan.window[1]
        safe = {m.name: f"m{i}" for i, m in enumerate(plan.measures)}
        out = frame
        for table in plan.tables:
            if table == "customers":  # covariates: one row per unit, no window
                customers = self.scan("customers")
                _check_numeric(customers, plan.measures_of(table))
                values = customers.join(ids, on=unit, how="left_semi").select(
                    unit, *[_customer_value(m, plan).alias(safe[m.name])
                            for m in plan.measures_of(table)])
                out = out.join(values, on=unit, how="left")
                continue
            ts = F.col(TS_COLUMN[table])
            rows = self.scan(table).filter((ts >= F.lit(lo)) & (ts < F.lit(hi)))
            own = table == "contacts" and "experiment_id" in rows.columns
            split = own and any(m.every_experiment for m in plan.measures_of(table))
            if own and not split:
                rows = rows.filter(F.col("experiment_id") == experiment_id)
            rows = rows.join(ids, on=unit, how="left_semi")
            per_unit = rows.groupBy(unit).agg(*[  # split: each measure keeps its own rows
                _measure(m, plan, experiment_id if split else None).alias(safe[m.name])
                for m in plan.measures_of(table)])
            out = out.join(per_unit, on=unit, how="left")
        out = out.fillna(0.0, subset=list(safe.values()))
        for m in plan.measures:
            if m.winsorize is not None:
                cap = out.select(F.percentile(safe[m.name], m.winsorize)).collect()[0][0]
                out = out.withColumn(safe[m.name], F.least(F.col(safe[m.name]), F.lit(cap)))
        return out, safe

    def distinct(self, table: str, column: str, window: tuple[dt.datetime, dt.datetime]
                 ) -> list[str]:
        from pyspark.sql import functions as F

        ts = F.col(TS_COLUMN[table])
        rows = (self.scan(table).filter((ts >= F.lit(window[0])) & (ts < F.lit(window[1])))
                .select(F.col(column).cast("string").alias("v")).distinct().collect())
        return sorted(r["v"] for r in rows if r["v"] is not None)

    def latest(self, table: str) -> dt.datetime | None:
        from pyspark.sql import functions as F

        if not self.has(table):
            return None
        return self.scan(table).agg(F.max(TS_COLUMN[table])).collect()[0][0]


def _backtick(name: str) -> str:
    """A Spark SQL identifier (double quotes are string literals there)."""
    return "`" + name.replace("`", "``") + "`"


def _measure(m: Measure, plan: AggregationPlan, own: str | None = None) -> Column:
    """``own``: the experiment whose rows the measure keeps (unless every_experiment)."""
    from pyspark.sql import functions as F

    ts = F.col(TS_COLUMN[m.table])
    lo, hi = plan.pre_window if m.period == "pre" else plan.window  # type: ignore[misc]
    cond = (ts >= F.lit(lo)) & (ts < F.lit(hi))
    if own is not None and not m.every_experiment:
        cond = cond & F.coalesce(F.col("experiment_id") == own, F.lit(False))
    if m.event is not None:
        cond = cond & (F.col("event") == m.event)
    if m.channel is not None:
        cond = cond & (F.col("channel") == m.channel)
    if m.agg == "sum":
        return F.sum(F.when(cond, F.col(m.value)).otherwise(0.0)).cast("double")
    if m.agg == "count":
        return F.sum(F.when(cond, 1.0).otherwise(0.0))
    return F.max(F.when(cond, 1.0).otherwise(0.0))


def _check_numeric(customers: DataFrame, measures: tuple[Measure, ...]) -> None:
    """Attributes must hold numbers or true/false (as on the other engines)."""
    types = dict(customers.dtypes)
    for m in measures:
        kind = types.get(m.value or "", "")
        if m.agg == "value" and kind in ("string", "date", "timestamp", "timestamp_ntz"):
            raise DataError([Problem(
                f"covariate column {m.value!r} holds {kind}, not numbers or true/false",
                table="customers", column=m.value,
                hint="name numeric customers columns in covariates.attributes")])


def _customer_value(m: Measure, plan: AggregationPlan) -> Column:
    """A customers column used as a covariate (see ``metrics.Aggregate``)."""
    from pyspark.sql import functions as F

    if m.agg == "after":
        assert plan.pre_window is not None
        return F.when(F.to_date(F.col(_backtick(m.value or ""))) >
                      F.lit(plan.pre_window[0].date()), 1.0).otherwise(0.0)
    return F.col(_backtick(m.value or "")).cast("double")


def _hash_arms_spark(spec: Experiment, population: DataFrame) -> DataFrame:
    """Arms by the same stable hash as the polars path, computed inside Spark."""
    from pyspark.sql import types as T

    schema = T.StructType(population.schema.fields + [
        T.StructField(arm_col(ch), T.StringType()) for ch in spec.channels])
    unit = spec.unit

    def assign(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        from liftlab.engines.units import hash_arms

        for batch in batches:
            if batch.num_rows == 0:
                continue
            ids = pl.from_arrow(batch.column(batch.schema.get_field_index(unit)))
            assert isinstance(ids, pl.Series)
            arms = hash_arms(spec, ids)
            columns = [*batch.columns, *(a.to_arrow().cast(pa.string()) for a in arms)]
            names = [*batch.schema.names, *(a.name for a in arms)]
            yield pa.RecordBatch.from_arrays(columns, names=names)

    return population.mapInArrow(assign, schema)

