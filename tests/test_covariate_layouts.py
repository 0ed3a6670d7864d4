"""Regression adjustment, quantile effects and non-inferiority on the data-variety generator:
every layout (ids int/text/UUID, CSV/Parquet/parts, naive/zoned timestamps, categorical and
unicode text) gives the canonical layout's numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from layouts import CANONICAL, CI_LAYOUTS, Layout, all_layouts, base_tables, write_layout
from liftlab.analyses.experiment import analyze
from liftlab.data.folder import FolderSource
from liftlab.engines.polars_engine import PolarsEngine
from liftlab.spec.loader import load_experiment

EXPERIMENT = Path(__file__).parent.parent / "experiments" / "spring-factorial.yaml"


def _yaml(folder: Path, layout: Layout) -> Path:
    """The spring factorial with covariates (a boolean customers column, the signup date's
    missing indicator over a 60-day pre-period), median and p90 effects on revenue and a
    margin on the unsubscribe guardrail; no sequential readout (another file tests it)."""
    text = EXPERIMENT.read_text()
    for old, new in (
        (
            "covariates: {pre_period_days: 28}",
            "covariates: {pre_period_days: 60, attributes: [optin_sms], joined: signup_date}",
        ),
        (
            "{name: revenue, kind: mean, table: orders, value: revenue}",
            "{name: revenue, kind: mean, table: orders, value: revenue, quantiles: true}",
        ),
        ("guardrail: true}", "guardrail: true, margin: 0.5}"),
        ("monitoring: {sequential: true, alpha: 0.05}", "monitoring: {sequential: false}"),
    ):
        assert old in text
        text = text.replace(old, new)
    if layout.zone != "UTC":
        text = text.replace(
            "\nschema_version: 1", f"\ntimezone: {layout.zone}\nschema_version: 1", 1
        )
    path = folder / "spring.yaml"
    path.write_text(text)
    return path


def _numbers(root: Path, layout: Layout) -> dict[str, Any]:
    data = write_layout(layout, base_tables(root / "base"), root / layout.id / "data")
    spec = load_experiment(_yaml(root / layout.id, layout))
    result = analyze(spec, PolarsEngine(FolderSource(data)))
    effects = {
        (e.channel, e.metric.name, layout.display(str(e.segment))): e.to_dict()
        for e in result.effects
    }
    return {"effects": effects, "quantiles": result.sections.quantiles}


def _same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert _close(a["quantiles"], b["quantiles"])
    assert a["effects"].keys() == b["effects"].keys()
    for key, ea in a["effects"].items():
        eb = b["effects"][key]
        assert ea["method"] == eb["method"], key
        for field in ("lift_abs", "se", "variance_reduction", "p_value"):
            assert ea[field] == pytest.approx(eb[field], rel=1e-7, abs=1e-12, nan_ok=True), (
                key,
                field,
            )
        assert _close(ea.get("non_inferiority"), eb.get("non_inferiority")), key


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a == pytest.approx(b, rel=1e-7, abs=1e-12, nan_ok=True)
    return a == b


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("covlayouts")


@pytest.fixture(scope="module")
def canonical(root: Path) -> dict[str, Any]:
    numbers = _numbers(root, CANONICAL)
    methods = {e["method"] for e in numbers["effects"].values()}
    assert {"lin_regression", "delta_ratio_regression"} <= methods
    assert {q["quantile"] for q in numbers["quantiles"]} == {0.5, 0.9}
    return numbers


@pytest.mark.parametrize("layout", CI_LAYOUTS[1:2], ids=lambda lay: lay.id)
def test_layout_gives_the_canonical_numbers(
    root: Path, canonical: dict[str, Any], layout: Layout
) -> None:
    reference = canonical if layout.reference() == CANONICAL else _numbers(root, layout.reference())
    _same(_numbers(root, layout), reference)


@pytest.mark.slow
@pytest.mark.parametrize(
    "layout", [CI_LAYOUTS[0], *CI_LAYOUTS[2:], *all_layouts(sample=10)], ids=lambda lay: lay.id
)
def test_every_layout_gives_the_canonical_numbers(
    root: Path, canonical: dict[str, Any], layout: Layout
) -> None:
    reference = canonical if layout.reference() == CANONICAL else _numbers(root, layout.reference())
    _same(_numbers(root, layout), reference)
