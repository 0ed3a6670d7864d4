"""A page's sort keys are the numbers of results.json: the page written from a live result
(numpy floats, e.g. an adjusted p-value) is the page written from its results.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from liftlab.report.pages import render_experiment
from test_report import load


def test_the_live_result_and_its_json_give_the_same_page(tmp_path: Path) -> None:
    stored = load("spring-factorial")
    live = json.loads(json.dumps(stored))
    overall = [e for e in live["effects"] if e["segment"] is None]
    for e in overall:
        for key in ("p_value", "lift_rel", "lift_abs"):
            if isinstance(e.get(key), float):
                e[key] = np.float64(e[key])
        e["p_adjusted"] = np.float64(0.012345678901234567)
    as_json = json.loads(json.dumps(live))
    page = render_experiment(live, tmp_path / "live")
    assert "np.float64" not in page
    assert 'data-sort="0.012345678901234567"' in page
    assert page == render_experiment(as_json, tmp_path / "json")
