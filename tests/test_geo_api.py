"""The Python API runs a geo experiment through the same entry points as the others:
``liftlab.analyze`` gives the results.json of ``liftlab analyze``, ``liftlab.plan`` the geo
plan; the customer-level workflows refuse it naming what applies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import liftlab
from liftlab.analyses.geo import GeoResult
from liftlab.analyses.geo_planning import GeoPlan
from liftlab.app.cli import app
from liftlab.app.geo_synth import write_geo_metrics
from liftlab.core.errors import UserError
from liftlab.spec.geo import GeoExperiment

EXAMPLE = Path(__file__).resolve().parents[1] / "experiments" / "tv-winter.yaml"


@pytest.fixture(scope="module")
def regions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("regions")
    write_geo_metrics(folder)
    return folder


def test_analyze_gives_the_clis_results(regions, tmp_path):
    spec = liftlab.load_experiment(EXAMPLE)
    assert isinstance(spec, GeoExperiment)
    for experiment in (EXAMPLE, spec):
        result = liftlab.analyze(experiment, regions)
        assert isinstance(result, GeoResult) and "geo experiment" in result.summary()
    res = CliRunner().invoke(
        app, ["analyze", str(EXAMPLE), "--data", str(regions), "--out", str(tmp_path)]
    )
    assert res.exit_code == 0, res.output
    written = json.loads((tmp_path / "results.json").read_text())
    api = json.loads(json.dumps(result.to_dict()))
    assert api["geo"]["incremental"] == written["geo"]["incremental"]
    assert api["geo"]["incremental_ci"] == written["geo"]["incremental_ci"]
    # a data source opened once serves both
    data = liftlab.open_data(regions)
    assert liftlab.analyze(EXAMPLE, data).to_dict()["geo"]["p_value"] == api["geo"]["p_value"]


def test_plan_gives_the_geo_plan_and_refuses_customer_level_lifts(regions, tmp_path):
    spec = tmp_path / "tbr.yaml"
    spec.write_text(
        EXAMPLE.read_text()
        .replace("method: synthetic_control", "method: tbr")
        .replace("demean: true ", "")
    )
    planned = liftlab.plan(spec, regions)
    assert isinstance(planned, GeoPlan) and planned.designs[0].treatment[0] == "lyon"
    with pytest.raises(UserError, match="target_mde_rel and assumed_lift_rel apply to"):
        liftlab.plan(spec, regions, target_mde_rel=0.02)


def test_monitor_refuses_a_geo_experiment_naming_what_applies(regions):
    with pytest.raises(UserError, match=r"no hourly monitor .* use liftlab.analyze\(experiment"):
        liftlab.monitor(EXAMPLE, regions)
