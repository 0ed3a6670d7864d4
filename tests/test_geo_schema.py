"""docs/results.schema.json describes a geo experiment's results.json: the demo's TV test
(synthetic control, as ``liftlab analyze`` writes it), a TBR holdback and a ridge-augmented
fit validate; a geo document without its ``geo`` object, or with a broken one, does not."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from liftlab.app.cli import app
from liftlab.app.geo_synth import write_geo_metrics

jsonschema = pytest.importorskip("jsonschema", reason="install the test extra")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "experiments" / "tv-winter.yaml"


@pytest.fixture(scope="module")
def validator() -> Any:
    schema = json.loads((ROOT / "docs" / "results.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


@pytest.fixture(scope="module")
def regions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("regions")
    write_geo_metrics(folder)
    return folder


def _analysed(regions: Path, tmp: Path, text: str) -> dict[str, Any]:
    spec = tmp / "tv.yaml"
    spec.write_text(text)
    res = CliRunner().invoke(
        app, ["analyze", str(spec), "--data", str(regions), "--out", str(tmp / "out")]
    )
    assert res.exit_code == 0, res.output
    return json.loads((tmp / "out" / "results.json").read_text())


def _errors(validator: Any, document: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


@pytest.mark.parametrize(
    "change",
    [
        ("", ""),
        ("method: synthetic_control", "method: tbr"),
        ("demean: true ", "demean: true\naugment: ridge "),
    ],
    ids=["synthetic_control", "tbr_holdback", "ridge"],
)
def test_geo_results_validate(validator, regions, tmp_path, change):
    text = EXAMPLE.read_text().replace(*change)
    if "method: tbr" in text:
        text = text.replace("demean: true ", "").replace(
            "test_type: heavy_up", "test_type: holdback"
        )
    document = _analysed(regions, tmp_path, text)
    assert document["design"] == "geo" and "n_units" not in document
    assert _errors(validator, document) == []


def test_broken_geo_documents_do_not_validate(validator, regions, tmp_path):
    document = _analysed(regions, tmp_path, EXAMPLE.read_text())
    without = {k: v for k, v in document.items() if k != "geo"}
    assert any("'geo' is a required property" in e for e in _errors(validator, without))
    broken = copy.deepcopy(document)
    del broken["geo"]["incremental_ci"]
    broken["geo"]["method"] = "lasso"
    errors = _errors(validator, broken)
    assert any("incremental_ci" in e for e in errors) and any("lasso" in e for e in errors)
    # a customer-level document still needs its own keys
    customer = {**document, "design": "holdout"}
    assert any("'n_units' is a required property" in e for e in _errors(validator, customer))


def test_the_daily_reports_geo_results_validate(validator, regions, tmp_path):
    experiments = tmp_path / "experiments"
    experiments.mkdir()
    (experiments / "tv-winter.yaml").write_text(EXAMPLE.read_text())
    res = CliRunner().invoke(
        app,
        [
            "report",
            "--experiments",
            str(experiments),
            "--data",
            str(regions),
            "--date",
            "2026-02-20",
            "--out",
            str(tmp_path / "reports"),
        ],
    )
    assert res.exit_code == 0, res.output
    path = tmp_path / "reports" / "2026-02-20" / "experiments" / "tv-winter" / "results.json"
    document = json.loads(path.read_text())
    assert document["geo"]["per_geo"] and _errors(validator, document) == []
