"""Bounds on everything a user controls: YAML size, alias expansion, nesting, text lengths,
list sizes, sampler settings, the monitor's horizon, segment values. Each is refused (or
clipped) with a message, quickly, and never exits 2."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from liftlab.app.cli import app
from liftlab.core.errors import SpecError
from liftlab.spec.loader import MAX_FILE_BYTES, MAX_QUOTED_CHARS, load_experiments, parse_experiment

from tinydata import SPEC_YAML

runner = CliRunner()

BOMB = "\n".join(
    ["lol: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"l{n}: &{chr(98 + n)} [" + ", ".join([f"*{chr(97 + n)}"] * 9) + "]" for n in range(8)])


def _invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output and "internal error" not in result.output
    return result


def _refused(text: str, label: str = "x.yaml") -> str:
    with pytest.raises(SpecError) as err:
        parse_experiment(text, label)
    return str(err.value)


def test_an_alias_bomb_is_refused_quickly(tmp_path: Path):
    path = tmp_path / "bomb.yaml"
    path.write_text(SPEC_YAML + BOMB + "\n")
    assert len(BOMB) < 600
    began = time.perf_counter()  # the loader only: the CLI's imports vary with the load
    with pytest.raises(SpecError, match="aliases"):
        load_experiments([path])
    assert time.perf_counter() - began < 2
    result = _invoke("validate", path)
    assert result.exit_code == 1
    assert "bomb.yaml:" in result.output and "aliases (*name) are expanded" in result.output
    assert len(result.output) < 2000


def test_a_bomb_in_the_experiments_folder_keeps_the_daily_report_small(tiny_data: Path,
                                                                      tmp_path: Path):
    specs = tmp_path / "experiments"
    specs.mkdir()
    (specs / "tiny-factorial.yaml").write_text(SPEC_YAML)
    (specs / "bomb.yaml").write_text(SPEC_YAML.replace("tiny-factorial", "bomb") + BOMB)
    began = time.perf_counter()
    result = _invoke("report", "--experiments", specs, "--data", tiny_data,
                     "--date", "2026-02-24", "--out", tmp_path / "reports")
    assert result.exit_code == 0, result.output
    assert time.perf_counter() - began < 120
    folder = tmp_path / "reports" / "2026-02-24"
    sizes = {p.name: p.stat().st_size for p in folder.iterdir() if p.is_file()}
    assert sizes["index.html"] < 200_000 and "aliases" in (folder / "index.html").read_text()
    assert max(sizes.values()) < 2_000_000


def test_a_recursive_alias_is_a_spec_error():
    message = _refused(SPEC_YAML + "tags: &t [a, *t]\n")
    assert f"x.yaml:{SPEC_YAML.count(chr(10)) + 1}:14: the alias *t is inside its own" in message


def test_deep_nesting_is_refused_at_its_line():
    message = _refused(SPEC_YAML + "description: " + "[" * 3000 + "]" * 3000 + "\n")
    assert "nested more than 32 levels" in message
    assert f"x.yaml:{SPEC_YAML.count(chr(10)) + 1}:" in message


def test_a_large_file_is_refused_before_reading(tmp_path: Path):
    path = tmp_path / "big.yaml"
    path.write_text(SPEC_YAML.replace("name: Tiny factorial", "name: " + "x" * 50_000_000))
    began = time.perf_counter()
    with pytest.raises(SpecError, match="bytes"):
        load_experiments([path])
    assert time.perf_counter() - began < 2
    result = _invoke("validate", path)
    assert result.exit_code == 1
    assert f"at most {MAX_FILE_BYTES:,}" in result.output and len(result.output) < 1000


@pytest.mark.parametrize(("change", "expected"), [
    (("name: Tiny factorial", "name: " + "x" * 5000), ":3:7: a value of 5,000 characters"),
    (("name: Tiny factorial", "name: " + "x" * 300), "name must be at most 200 characters"),
    (("segments: [segment]", "segments: [" + "s" * 90 + "]"), "at most 64 characters"),
    (("segments: [segment]", "segments: [segment, segment]"),
     "segments must be unique; repeated: segment"),
    (("segments: [segment]", "segments: [" + ", ".join(f"s{i}" for i in range(11)) + "]"),
     "segments may hold at most 10 entries, got 11"),
    (("primary_metric: revenue", "primary_metric: " + "r" * 3000),
     "primary_metric must be at most 64 characters"),
    (("segments: [segment]", "segments: [segment]\nanalysis: {draws: 100000000}"),
     "analysis.draws must be at most 20000, got 100000000"),
    (("segments: [segment]", "segments: [segment]\nanalysis: {chains: 64}"),
     "analysis.chains must be at most 8"),
    (("segments: [segment]", "segments: [segment]\nanalysis: {seed: -1}"),
     "analysis.seed must be at least 0"),
    (("segments: [segment]", "segments: [segment]\nmonitoring: {response_window_hours: 100000}"),
     "monitoring.response_window_hours must be at most 2160"),
    (("segments: [segment]", "segments: [segment]\n" + "x" * 150 + ": 1"),
     "a key of 150 characters; at most 100"),
])
def test_lengths_counts_and_sampler_settings_are_bounded(change: tuple[str, str],
                                                          expected: str):
    assert change[0] in SPEC_YAML
    message = _refused(SPEC_YAML.replace(*change))
    assert expected in message, message
    assert len(message) < 1000


def test_too_many_metrics_and_channels():
    metrics = "".join(f"  - {{name: m{i}, kind: count, table: orders}}\n" for i in range(51))
    text = SPEC_YAML.replace("metrics:\n", "metrics:\n" + metrics)
    assert "metrics may hold at most 50 entries, got 56" in _refused(text)
    channels = "".join(f"  c{i}: {{holdout: 0.1}}\n" for i in range(8))
    assert "channels may hold at most 8 entries, got 10" in _refused(
        SPEC_YAML.replace("channels:\n", "channels:\n" + channels))


def test_quoted_input_is_cut_short():
    message = _refused(SPEC_YAML.replace("holdout: 0.3", "holdout: " + "y" * 3000))
    assert "channels.email.holdout: expected a number, got 'yyy" in message
    assert "(3,000 characters)" in message and len(message) < 2 * MAX_QUOTED_CHARS + 200
    nested = _refused(SPEC_YAML.replace("holdout: 0.3", "holdout: " + "[[[1, 2, 3, 4, 5]]]"))
    assert "expected a number" in nested and len(nested) < 400


def test_many_problems_are_counted_not_all_listed():
    keys = "".join(f"unknown_{i}: 1\n" for i in range(300))
    message = _refused(SPEC_YAML + keys)
    assert message.count("unknown key") == 50 and "and 250 more problems" in message


def test_a_huge_segment_value_is_not_broken_down(tiny_data: Path, tiny_spec_path: Path,
                                                 tmp_path: Path):
    """A 1 MB segment value once went into every table, chart and page of the run."""
    import shutil

    import polars as pl

    data = Path(shutil.copytree(tiny_data, tmp_path / "data"))
    customers = pl.read_parquet(data / "customers.parquet")
    long = "v" * 1_000_000
    customers.with_columns(pl.when(pl.int_range(pl.len()) < 3).then(pl.lit(long))
                           .otherwise(pl.col("segment")).alias("segment")
                           ).write_parquet(data / "customers.parquet")
    result = _invoke("analyze", tiny_spec_path, "--data", data, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    written = {p.name: p.read_text() for p in (tmp_path / "out").iterdir() if p.is_file()}
    assert all(long[:1000] not in text for text in written.values())
    assert "segment 'segment' has a value of 1,000,000 characters (limit 100; table " \
           "customers, column segment); it is not broken down" in written["results.json"]


@pytest.mark.parametrize(("args", "expected"), [
    (("--outcome-days", "100000000"), "--outcome-days: expected 1 to 365"),
    (("--lookback-start", "9999-01-01", "--lookback-end", "9999-12-31"),
     "look-back 9999-01-01 to 9999-12-31: the start must come before the end"),
    (("--lookback-start", "2026-02-10", "--lookback-end", "2026-01-01"),
     "the start must come before the end"),
])
def test_multichannel_periods_are_bounded(args: tuple[str, ...], expected: str,
                                          tiny_data: Path):
    result = _invoke("multichannel", "--data", tiny_data, *args)
    assert result.exit_code == 1 and expected in result.output, result.output


def test_the_demo_size_is_bounded(tmp_path: Path):
    result = _invoke("demo", "--out", tmp_path, "--customers", "10000000000")
    assert result.exit_code == 1
    assert "at most 20,000,000 customers, got 10,000,000,000" in result.output


def test_multichannel_without_an_experiment_prints_its_summary(tiny_data: Path):
    """The text output read result['iv'] when the JSON held "iv": null (exit 2)."""
    result = _invoke("multichannel", "--data", tiny_data)
    assert result.exit_code == 0 and "adjusted (aipw)" in result.output, result.output


@pytest.mark.parametrize("moment", ["9999-12-31T23:59-14:00", "0001-01-01T00:00+01:00"])
def test_an_as_of_beyond_the_calendar_is_a_user_error(moment: str, tiny_spec_path: Path,
                                                     tiny_data: Path, tmp_path: Path):
    result = _invoke("analyze", tiny_spec_path, "--data", tiny_data, "--as-of", moment,
                     "--out", tmp_path / "out")
    assert result.exit_code == 1 and "outside the years 1 to 9999 in UTC" in result.output


@pytest.mark.parametrize(("change", "expected"), [
    (("cost_per_contact: 0.01", "cost_per_contact: .inf"),
     "channels.email.cost_per_contact must be a finite number, got inf"),
    (("segments: [segment]", "segments: [segment]\nanalysis: {prior: {mean: .nan}}"),
     "analysis.prior.mean must be a finite number, got nan"),
    (("segments: [segment]", "segments: [segment]\nmonitoring: {expected_lift: 1e999}"),
     "monitoring.expected_lift must be a finite number, got '1e999'"),
])
def test_numbers_in_the_yaml_are_finite(change: tuple[str, str], expected: str):
    assert change[0] in SPEC_YAML
    assert expected in _refused(SPEC_YAML.replace(*change))
