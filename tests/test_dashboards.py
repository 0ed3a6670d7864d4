"""What the dashboards show at a glance: the scorecard's alarm, sentences with p-values,
intervals that cannot be, the over-time chart per channel, the index's counts and rows."""

from __future__ import annotations

import re
from pathlib import Path

from liftlab.report import format as fmt
from liftlab.report.pages import render_experiment
from test_report import load


def _card(html: str, section: str, following: str) -> str:
    return html[html.index(f'id="{section}"'):html.index(f'id="{following}"')]


def test_scorecard_is_green_when_the_design_holds(tmp_path: Path):
    html = render_experiment(load("spring-factorial"), tmp_path)
    score = _card(html, "scorecard", "guardrails")
    assert "alarm-banner" not in score and "suspect" not in score
    assert 'class="badge desired"' in score


def test_scorecard_turns_red_when_the_sample_ratio_check_fails(tmp_path: Path):
    r = load("spring-factorial")
    r["health"].update(srm_ok=False, srm_p_value=1e-7)
    html = render_experiment(r, tmp_path)
    for card, nxt in (("scorecard", "guardrails"), ("guardrails", "over-time")):
        block = _card(html, card, nxt)
        assert 'class="alarm"' in block and "alarm-banner" in block
        assert "sample-ratio check failed (p &lt; 0.001)" in block
        assert 'class="badge desired"' not in block
        assert _number_cells(block) and all('class="suspect"' in c for c in _number_cells(block))


def _number_cells(block: str) -> list[str]:
    body = block[block.index("<tbody>"):block.index("</tbody>")]
    return re.findall(r'<td class="num[^"]*"[^>]*>(.*?)</td>', body, re.S)


def test_scorecard_turns_red_on_a_design_check_at_error(tmp_path: Path):
    r = load("spring-factorial")
    check = {"channel": "email", "check": "contamination", "share": 0.12, "status": "error"}
    r["health"]["design_checks"] = [check]
    html = render_experiment(r, tmp_path)
    score = _card(html, "scorecard", "guardrails")
    assert f"Design check at error: {check['channel']} {check['check']}." in score
    assert all('class="suspect"' in c for c in _number_cells(score))


def test_p_values_read_as_sentences():
    assert fmt.p_is(0.0004, "always-valid p") == "always-valid p < 0.001"
    assert fmt.p_is(0.0142) == "p = 0.014"


def test_no_p_equals_less_than_on_any_page(tmp_path: Path):
    for name in ("spring-factorial", "email-flash", "web-onboarding"):
        r = load(name)
        r["health"]["srm_p_value"] = 1e-9
        if r.get("sequential"):
            r["sequential"]["always_valid_p_value"] = 1e-9
        assert "= &lt;" not in render_experiment(r, tmp_path), name
