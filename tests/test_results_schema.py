"""docs/results.schema.json describes results.json: the results of every example experiment
(as ``liftlab analyze`` and the daily report write them), of a factorial with variants and
segments and of a global holdout validate; broken documents do not; and no key of the
committed results (tests/fixtures) has gone."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from liftlab.analysis import analyze
from liftlab.data.open import open_engine
from liftlab.fsio import dumps_json
from liftlab.run import analyze_to_folder, run_report
from liftlab.spec import Experiment
from liftlab.synth import generate

from tinydata import SPEC_YAML

jsonschema = pytest.importorskip("jsonschema", reason="install the test extra")

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
EXAMPLES = sorted(p.stem for p in EXPERIMENTS.glob("*.yaml"))
DATE = "2026-02-24"


@pytest.fixture(scope="module")
def validator() -> Any:
    schema = json.loads((ROOT / "docs" / "results.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo retailer and its daily report (every example experiment)."""
    import datetime as dt

    root = tmp_path_factory.mktemp("demo")
    generate(root / "data", 2_000, 4)
    run_report(EXPERIMENTS, root / "data", dt.date.fromisoformat(DATE), root / "reports")
    return root


def _errors(validator: Any, document: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


@pytest.mark.parametrize("experiment", EXAMPLES)
def test_the_daily_reports_results_validate(validator, demo: Path, experiment: str):
    path = demo / "reports" / DATE / "experiments" / experiment / "results.json"
    document = json.loads(path.read_text())
    assert "plan" in document
    assert _errors(validator, document) == []


def test_analyze_results_validate(validator, demo: Path, tmp_path: Path):
    """``liftlab analyze --out`` writes the daily report's document without the plan."""
    analyze_to_folder(EXPERIMENTS / "email-flash.yaml", demo / "data", None, tmp_path / "out")
    document = json.loads((tmp_path / "out" / "results.json").read_text())
    assert _errors(validator, document) == []


def _written(spec: Experiment, data: Path) -> dict[str, Any]:
    """results.json as written to disk (non-finite numbers as null)."""
    return json.loads(dumps_json(analyze(spec, open_engine(data)).to_dict()))


def test_variants_segments_and_a_global_holdout_validate(validator, tiny_data: Path):
    factorial = Experiment.model_validate(yaml.safe_load(SPEC_YAML))
    document = _written(factorial, tiny_data)
    assert any(e["variant"] for e in document["effects"])
    assert any(e["segment"] for e in document["effects"])
    assert _errors(validator, document) == []
    blind = (
        SPEC_YAML.replace("id: tiny-factorial", "id: blind-zone\nassignment: hash")
        .replace("start: 2026-02-02", "start: 2026-02-02\ndesign: global_holdout")
        .replace("email: {holdout: 0.3,", "email: {holdout: 0.4,")
    )
    document = _written(Experiment.model_validate(yaml.safe_load(blind)), tiny_data)
    [programme] = document["contribution"]
    assert programme["programme"] is True and document["interactions"] is None
    assert _errors(validator, document) == []


@pytest.mark.slow
def test_a_hierarchical_fit_validates(validator, tiny_data: Path):
    text = SPEC_YAML + "analysis: {bayes: hierarchical, draws: 200, tune: 200, chains: 2}\n"
    document = _written(Experiment.model_validate(yaml.safe_load(text)), tiny_data)
    assert document["bayes"]["effects"]
    assert _errors(validator, document) == []


@pytest.mark.parametrize(
    ("label", "breaks"),
    [
        ("a required key removed", lambda d: d.pop("effects")),
        ("an effect without its interval", lambda d: d["effects"][0].pop("lift_abs_ci")),
        ("a verdict not in the list", lambda d: d["effects"][0].update(verdict="maybe")),
        ("an interval of three numbers", lambda d: d["effects"][0].update(lift_rel_ci=[1, 2, 3])),
        ("a local timestamp", lambda d: d.update(as_of="2026-02-23 00:00")),
        (
            "a cost without its ROI fields",
            lambda d: next(e for e in d["effects"] if "roi" in e).pop("roas"),
        ),
        (
            "a sequential decision not in the list",
            lambda d: d["sequential"].update(decision="maybe"),
        ),
    ],
)
def test_broken_documents_do_not_validate(validator, demo: Path, label: str, breaks: Any):
    path = demo / "reports" / DATE / "experiments" / "spring-factorial" / "results.json"
    document = copy.deepcopy(json.loads(path.read_text()))
    breaks(document)
    assert _errors(validator, document), label


def _keys(value: Any, prefix: str = "") -> set[str]:
    if isinstance(value, dict):
        return {
            k for key, v in value.items() for k in (f"{prefix}.{key}", *_keys(v, f"{prefix}.{key}"))
        }
    if isinstance(value, list):
        return {k for v in value for k in _keys(v, f"{prefix}[]")}
    return set()


@pytest.mark.parametrize("experiment", EXAMPLES)
def test_no_key_of_the_committed_results_is_lost(demo: Path, experiment: str):
    """Keys may be added to results.json, never removed (a section that is null here, such
    as a hierarchical fit the example no longer asks for, is not compared)."""
    old = json.loads((ROOT / "tests" / "fixtures" / f"{experiment}.json").read_text())
    new = json.loads(
        (demo / "reports" / DATE / "experiments" / experiment / "results.json").read_text()
    )
    lost = {
        k for k in _keys(old) - _keys(new) if new.get(k.split(".")[1].split("[")[0]) is not None
    }
    assert lost == set()
