"""The hourly monitor with a ratio primary and regression adjustment (pre-period values, a
boolean customers attribute and the signup date's missing indicator) on the data-variety
generator: every layout (ids int/text/UUID, CSV/Parquet/parts, naive/zoned timestamps)
gives the canonical layout's timeline."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from layouts import CANONICAL, CI_LAYOUTS, Layout, all_layouts, base_tables, write_layout
from liftlab.app.run import monitor_file

EXPERIMENT = Path(__file__).parent.parent / "experiments" / "spring-factorial.yaml"
AS_OF = dt.datetime(2026, 2, 20, 12, tzinfo=dt.UTC)


def _yaml(folder: Path, layout: Layout, adjusted: bool = True) -> Path:
    covariates = (
        "covariates: {pre_period_days: 60, attributes: [optin_sms], joined: signup_date}"
        if adjusted
        else "covariates: {}"
    )
    text = EXPERIMENT.read_text()
    for old, new in (
        ("primary_metric: revenue", "primary_metric: aov"),
        ("covariates: {pre_period_days: 28}", covariates),
    ):
        assert old in text
        text = text.replace(old, new)
    if layout.zone != "UTC":
        text = text.replace(
            "\nschema_version: 1", f"\ntimezone: {layout.zone}\nschema_version: 1", 1
        )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "spring.yaml"
    path.write_text(text)
    return path


def _timeline(root: Path, layout: Layout, adjusted: bool = True) -> list[dict[str, Any]]:
    data = write_layout(layout, base_tables(root / "base"), root / layout.id / "data")
    spec = _yaml(root / layout.id / str(adjusted), layout, adjusted)
    result, _ = monitor_file(spec, data, AS_OF, None, None)
    return [
        {k: r[k] for k in ("at", "channel", "n_treatment", "n_holdout", "estimate", "ci")}
        for r in result.timeline
        if r["estimate"] is not None
    ]


def _same(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
    assert len(a) == len(b) and a
    for x, y in zip(a, b, strict=True):
        assert (x["at"], x["channel"], x["n_treatment"], x["n_holdout"]) == (
            y["at"],
            y["channel"],
            y["n_treatment"],
            y["n_holdout"],
        )
        assert [x["estimate"], *x["ci"]] == pytest.approx([y["estimate"], *y["ci"]], rel=1e-7)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("monitorlayouts")


@pytest.fixture(scope="module")
def canonical(root: Path) -> list[dict[str, Any]]:
    return _timeline(root, CANONICAL)


def test_canonical_timeline_is_adjusted(root: Path, canonical: list[dict[str, Any]]) -> None:
    """The same data without covariates gives other (raw) estimates: the adjustment ran."""
    assert all(r["ci"][0] <= r["estimate"] <= r["ci"][1] for r in canonical)
    raw = _timeline(root, CANONICAL, adjusted=False)
    assert [r["at"] for r in raw] == [r["at"] for r in canonical]
    assert all(a["estimate"] != b["estimate"] for a, b in zip(raw, canonical, strict=True))


@pytest.mark.parametrize("layout", CI_LAYOUTS[1:2], ids=lambda lay: lay.id)
def test_layout_gives_the_canonical_timeline(
    root: Path, canonical: list[dict[str, Any]], layout: Layout
) -> None:
    reference = (
        canonical if layout.reference() == CANONICAL else _timeline(root, layout.reference())
    )
    _same(_timeline(root, layout), reference)


@pytest.mark.slow
@pytest.mark.parametrize(
    "layout", [CI_LAYOUTS[0], *CI_LAYOUTS[2:], *all_layouts(sample=6)], ids=lambda lay: lay.id
)
def test_every_layout_gives_the_canonical_timeline(
    root: Path, canonical: list[dict[str, Any]], layout: Layout
) -> None:
    reference = (
        canonical if layout.reference() == CANONICAL else _timeline(root, layout.reference())
    )
    _same(_timeline(root, layout), reference)
