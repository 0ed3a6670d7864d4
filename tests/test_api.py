"""The Python API (liftlab/__init__.py, api.py): the README's example runs as written,
``import liftlab`` stays fast, every workflow takes the same inputs, and in-memory frames
give the numbers of the folder they came from."""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

import liftlab
from liftlab.analysis import AnalysisResult, Sections

from tinydata import SPEC_YAML

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("polars", "numpy", "scipy", "statsmodels", "plotly", "pymc", "arviz", "numba", "pydantic")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def test_import_liftlab_is_fast_and_loads_nothing_heavy():
    """``import liftlab`` and taking every public name: under 0.3 s (median of 5 fresh
    processes, as ``-X importtime`` measures it: interpreter start-up excluded, so a busy
    machine does not decide), and none of the heavy libraries loaded."""
    code = (
        "import sys, liftlab; "
        "from liftlab import analyze, load_experiment, monitor, multichannel, open_data, "
        f"plan, report; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    seconds = []
    for _ in range(5):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", code],
            capture_output=True,
            text=True,
            env=_env(),
            check=True,
        )
        assert done.stdout.strip() == "", f"import liftlab loaded {done.stdout}"
        seconds.append(_import_seconds(done.stderr, ("liftlab", "liftlab.api")))
    assert statistics.median(seconds) < 0.3, seconds


def _import_seconds(report: str, modules: tuple[str, ...]) -> float:
    """The cumulative import time of top-level ``modules`` in a ``-X importtime`` report."""
    total = 0
    for line in report.splitlines():
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[2] in modules:
            total += int(parts[1])
    assert total > 0, report
    return total / 1e6


def test_every_public_name_resolves_and_submodules_do_not_shadow_the_api():
    import liftlab.monitor
    import liftlab.multichannel
    import liftlab.plan
    import liftlab.report.pages

    for name in liftlab.__all__:
        assert getattr(liftlab, name) is not None
    for name in ("monitor", "plan", "multichannel", "report", "analyze"):
        assert callable(getattr(liftlab, name)) and not isinstance(
            getattr(liftlab, name), type(liftlab)
        )
    assert set(liftlab.__all__) >= {
        "load_experiment",
        "open_data",
        "analyze",
        "monitor",
        "plan",
        "multichannel",
        "report",
    }
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        liftlab.nope  # noqa: B018


def _readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    [code] = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return code


def test_the_readme_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The code block of README "Python API", as written, on a small demo retailer."""
    from liftlab.synth import generate

    generate(tmp_path / "demo" / "data", 2_000, 5)
    shutil.copytree(ROOT / "experiments", tmp_path / "experiments")
    monkeypatch.chdir(tmp_path)
    scope: dict[str, object] = {}
    exec(compile(_readme_example(), "README.md", "exec"), scope)
    result = scope["result"]
    assert isinstance(result, AnalysisResult) and isinstance(result.sections, Sections)
    assert scope["effects"].height == len(result.effects)
    assert type(scope["fig"]).__name__ == "Figure"
    assert scope["document"]["experiment"] == "spring-factorial"
    assert (tmp_path / "demo" / "reports" / "2026-02-24" / "index.html").exists()


@pytest.fixture(scope="module")
def tiny(tiny_data: Path, tiny_spec_path: Path) -> tuple[AnalysisResult, Path, Path]:
    return liftlab.analyze(tiny_spec_path, tiny_data), tiny_data, tiny_spec_path


def test_in_memory_frames_give_the_folders_numbers(tiny):
    result, folder, spec = tiny
    frames = {p.stem: pl.read_parquet(p) for p in folder.glob("*.parquet")}
    frames["orders"] = frames["orders"].lazy()  # a LazyFrame is a table too
    from_frames = liftlab.analyze(liftlab.load_experiment(spec), frames)
    assert from_frames.to_polars().equals(result.to_polars())
    assert from_frames.to_dict()["effects"] == result.to_dict()["effects"]


def test_frames_with_an_unknown_table_or_type_are_refused():
    with pytest.raises(liftlab.DataError, match=r"unknown table name.*'order'"):
        liftlab.open_data({"order": pl.DataFrame({"x": [1]})})
    with pytest.raises(liftlab.DataError, match="'orders' is a dict"):
        liftlab.open_data({"orders": {"x": [1]}})


def test_options_that_would_be_ignored_are_refused(tiny_data: Path):
    with pytest.raises(liftlab.UserError, match="spark= is the session of engine='spark'"):
        liftlab.open_data(tiny_data, spark=object())
    with pytest.raises(liftlab.UserError, match="frames are read by the engine of their kind"):
        liftlab.open_data({"orders": pl.DataFrame({"x": [1]})}, engine="spark")
    with pytest.raises(liftlab.UserError, match="an opened source keeps its engine"):
        liftlab.open_data(liftlab.open_data(tiny_data), engine="spark")
    with pytest.raises(liftlab.UserError, match="not a database URL"):
        liftlab.open_data("duckdb:///x.duckdb", engine="spark")


def test_to_polars_is_one_row_per_effect_with_intervals_as_columns(tiny):
    result, _, _ = tiny
    frame = result.to_polars()
    assert frame.height == len(result.effects)
    first = result.effects[0]
    row = frame.row(0, named=True)
    assert (row["lift_abs_lo"], row["lift_abs_hi"]) == pytest.approx(first.lift.abs_ci)
    assert row["metric"] == first.metric.name and row["verdict"] == first.verdict
    seg = frame.filter(pl.col("segment").is_not_null())["segment"].unique().sort().to_list()
    assert seg == ["segment=gold", "segment=silver"]


def test_plots_are_figures_and_missing_ones_say_why(tiny):
    result, _, _ = tiny
    assert type(result.plot.forest()).__name__ == "Figure"
    assert type(result.plot.segments("segment", "conversion")).__name__ == "Figure"
    assert type(result.plot.money()).__name__ == "Figure"
    with pytest.raises(ValueError, match=r"no segment dimension 'region'.*segment"):
        result.plot.segments("region")
    with pytest.raises(ValueError, match="no metric 'nope'"):
        result.plot.forest("nope")
    with pytest.raises(ValueError, match="no sequential readout"):
        result.plot.timeline()


def test_summary_names_every_primary_comparison(tiny):
    result, _, _ = tiny
    text = result.summary()
    assert "tiny-factorial" in text
    for arm in ("email/treatment", "mail/big", "mail/small"):
        assert f"{arm} revenue" in text


def test_plan_and_monitor_take_the_same_inputs(tiny, tmp_path: Path):
    _, folder, spec = tiny
    planned = liftlab.plan(spec, folder)
    assert planned.to_polars().height == len(planned.result.rows)
    assert "tiny-factorial" in planned.summary()
    seq = tmp_path / "seq.yaml"
    seq.write_text(SPEC_YAML + "monitoring: {sequential: true}\n")
    readout = liftlab.monitor(seq, liftlab.open_data(folder))
    frame = readout.to_polars()
    assert {"at", "estimate", "ci_lo", "ci_hi", "metric"} <= set(frame.columns)
    assert readout.to_json()["decision"] == readout.result.decision
    assert readout.summary().startswith("tiny-factorial as of")
    assert type(readout.plot.timeline("revenue", "big")).__name__ == "Figure"


@pytest.mark.slow
def test_spark_dataframes_and_a_spark_session_give_the_polars_numbers(tiny):
    """Spark DataFrames by table name, and a folder read by the caller's SparkSession."""
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java")
    pytest.importorskip("pyspark", reason="install the spark extra")
    from liftlab.engines.spark_engine import spark_session

    result, folder, spec = tiny
    spark = spark_session()
    frames = {p.stem: spark.read.parquet(str(p)) for p in folder.glob("*.parquet")}
    want = result.to_polars().select("lift_abs", "lift_abs_lo", "p_value").rows()
    for data in (frames, liftlab.open_data(folder, engine="spark", spark=spark)):
        got = liftlab.analyze(spec, data)
        assert got.data_source.startswith("spark:")
        rows = got.to_polars().select("lift_abs", "lift_abs_lo", "p_value").rows()
        assert rows == [pytest.approx(r, rel=1e-9, abs=1e-12) for r in want]
