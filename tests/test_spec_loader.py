"""Experiment definitions: the contract's examples load; every bad file in tests/bad_specs is
refused with exactly the expected file:line:col message (exit 1, no traceback)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from liftlab.cli import app
from liftlab.errors import SpecError
from liftlab.spec_loader import load_experiments, parse_experiment

HERE = Path(__file__).parent
BAD = sorted((HERE / "bad_specs").glob("*.yaml"))

CONTRACT_FACTORIAL = """\
schema_version: 1
id: spring-factorial            # [a-z0-9-]+, unique
name: Spring collection, email x SMS x catalog
start: 2026-02-02
end: 2026-02-23                 # exclusive
unit: customer_id
population:
  where: "optin_email"          # boolean filter on customers columns, no Python eval
channels:
  email: {holdout: 0.20, cost_per_contact: 0.002}
  sms:   {holdout: 0.20, cost_per_contact: 0.045}
  mail:  {holdout: 0.30, cost_per_contact: 0.85}
design: factorial               # channels assigned independently (2^k cells)
metrics:
  - {name: revenue, kind: mean, table: orders, value: revenue}
  - {name: conversion, kind: binary, table: orders}
  - {name: aov, kind: ratio, numerator: revenue, denominator: orders}
  - {name: unsubscribe, kind: binary, table: events, event: unsubscribe, guardrail: true}
primary_metric: revenue
covariates: {pre_period_days: 28}   # CUPED on the same metric's pre-period value
segments: [segment, region]
monitoring: {sequential: true, alpha: 0.05}
"""

CONTRACT_VARIANTS = CONTRACT_FACTORIAL.replace("""\
  email: {holdout: 0.20, cost_per_contact: 0.002}
  sms:   {holdout: 0.20, cost_per_contact: 0.045}
  mail:  {holdout: 0.30, cost_per_contact: 0.85}
""", """\
  email:
    holdout: 0.3334
    variants: {mens: 0.3333, womens: 0.3333}
""")

CONTRACT_ONBOARDING = """\
schema_version: 1
id: web-onboarding
start: 2026-01-05
end: 2026-02-02
channels:
  web_onboarding: {holdout: 0.5, cost_per_contact: 0.30}
metrics:
  - {name: revenue, kind: mean, table: orders, value: revenue}
  - {name: adopted_web, kind: binary, table: events, event: account_created}
primary_metric: revenue
encouragement: {adoption_metric: adopted_web}
"""


@pytest.mark.parametrize("text", [CONTRACT_FACTORIAL, CONTRACT_VARIANTS, CONTRACT_ONBOARDING])
def test_contract_examples_validate(text: str):
    spec = parse_experiment(text)
    assert spec.schema_version == 1 and spec.channels


def test_variants_arms():
    spec = parse_experiment(CONTRACT_VARIANTS)
    assert spec.channels["email"].arms == {"holdout": 0.3334, "mens": 0.3333, "womens": 0.3333}
    assert spec.channels["email"].treatment_arms == ["mens", "womens"]


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_spec_corpus(path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(HERE.parent)
    rel = path.relative_to(HERE.parent)
    result = CliRunner().invoke(app, ["validate", str(rel)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    expected = path.with_suffix(".expected").read_text().strip().splitlines()
    assert result.output.strip().splitlines() == expected


def test_every_problem_in_a_file_is_listed():
    with pytest.raises(SpecError) as err:
        load_experiments([HERE / "bad_specs" / "several_problems.yaml"])
    assert len(err.value.problems) == 4
    assert all(p.line and p.col for p in err.value.problems)


def test_duplicate_ids_across_files_name_both(tmp_path: Path):
    (tmp_path / "a.yaml").write_text(CONTRACT_FACTORIAL)
    (tmp_path / "b.yaml").write_text(CONTRACT_FACTORIAL)
    with pytest.raises(SpecError) as err:
        load_experiments([tmp_path])
    text = str(err.value)
    assert "a.yaml" in text and "b.yaml" in text and "already used" in text


def test_yaml_is_loaded_safely():
    """Python tags are refused, never constructed."""
    evil = CONTRACT_FACTORIAL.replace("name: Spring", "name: !!python/object/apply:os.system "
                                      "['echo hacked'] #")
    with pytest.raises(SpecError):
        parse_experiment(evil)
