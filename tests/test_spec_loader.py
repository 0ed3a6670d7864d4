"""Experiment definitions: the contract's examples load; every bad file in tests/bad_specs is
refused with exactly the expected file:line:col message (exit 1, no traceback)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from liftlab.app.cli import app
from liftlab.core.errors import SpecError
from liftlab.spec.loader import load_experiment, load_experiments, parse_experiment

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


REQUIRED_CASES = {
    "malformed_yaml", "unknown_key_typo", "unknown_top_level", "wrong_type", "holdout_zero",
    "holdout_one", "variants_sum", "dates_reversed", "bad_date", "bad_id",
    "primary_not_metric", "ratio_unknown", "bad_filter", "duplicate_key", "unknown_timezone",
    "several_problems", "missing_keys", "python_tag",
}


def test_corpus_covers_every_required_case():
    assert not REQUIRED_CASES - {p.stem for p in BAD}
    assert all(p.with_suffix(".expected").exists() for p in BAD)


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_spec_corpus(path: Path, monkeypatch: pytest.MonkeyPatch):
    """Each bad file gives exactly its expected lines, from the loader and from the CLI."""
    monkeypatch.chdir(HERE.parent)
    rel = path.relative_to(HERE.parent)
    expected = path.with_suffix(".expected").read_text().strip().splitlines()
    with pytest.raises(SpecError) as err:
        load_experiment(rel)
    assert [f"error: {p}" for p in err.value.problems] == expected
    assert all(p.file == str(rel) and p.line and p.col for p in err.value.problems)
    result = CliRunner().invoke(app, ["validate", str(rel)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.output.strip().splitlines() == expected


def test_every_problem_in_a_file_is_listed():
    with pytest.raises(SpecError) as err:
        load_experiments([HERE / "bad_specs" / "several_problems.yaml"])
    assert [(p.line, p.col) for p in err.value.problems] == [(3, 8), (6, 20), (6, 25), (8, 27)]


def test_duplicate_ids_across_files_name_both(tmp_path: Path):
    (tmp_path / "a.yaml").write_text(CONTRACT_FACTORIAL)
    (tmp_path / "b.yml").write_text(CONTRACT_FACTORIAL)
    with pytest.raises(SpecError) as err:
        load_experiments([tmp_path])
    [problem] = err.value.problems
    assert problem.file == str(tmp_path / "b.yml")
    assert f"'spring-factorial' is already used by {tmp_path / 'a.yaml'}" in problem.message


def test_folders_expand_to_sorted_yaml_files(tmp_path: Path):
    (tmp_path / "b.yaml").write_text(CONTRACT_FACTORIAL)
    (tmp_path / "a.yml").write_text(CONTRACT_ONBOARDING)
    (tmp_path / "notes.txt").write_text("not an experiment")
    assert [s.id for s in load_experiments([tmp_path])] == ["web-onboarding",
                                                              "spring-factorial"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SpecError, match="no experiment files"):
        load_experiments([empty])


def test_missing_file_is_a_user_error(tmp_path: Path):
    with pytest.raises(SpecError, match="file not found"):
        load_experiment(tmp_path / "nope.yaml")


def _problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as err:
        parse_experiment(text, "x.yaml")
    return [str(p) for p in err.value.problems]


@pytest.mark.parametrize(("where", "position"), [
    ('  where: "optin_email and (segment =="', "8:38"),     # double-quoted: inside the quotes
    ("  where: optin_email && x", "8:22"),                   # plain scalar
    ("  where: 'a or b or'", "8:20"),                        # single-quoted, error at the end
    ("  where: |\n    optin_email and\n    (x = 1)", "10:8"),  # literal block, 2nd line
])
def test_filter_errors_point_inside_the_expression(where: str, position: str):
    text = CONTRACT_FACTORIAL.replace('  where: "optin_email"          # boolean filter on '
                                      "customers columns, no Python eval", where)
    [problem] = _problems(text)
    assert problem.startswith(f"x.yaml:{position}: population.where: ")
    assert "character" not in problem  # exact column: no need to count characters


def test_filter_error_without_an_exact_column_counts_characters():
    """A YAML escape (here a tab) shifts the source columns: fall back to the value's start."""
    text = CONTRACT_FACTORIAL.replace('"optin_email" ', r'"a\tand" ')
    [problem] = _problems(text)
    assert problem.startswith("x.yaml:8:10: population.where: expected a column name")
    assert "(character 6 of the filter)" in problem


def test_nested_duplicate_keys_and_merge_keys():
    dup = CONTRACT_FACTORIAL.replace("{holdout: 0.20, cost_per_contact: 0.002}",
                                     "{holdout: 0.20, cost_per_contact: 0.002, holdout: 0.5}")
    assert _problems(dup) == ["x.yaml:10:51: key 'holdout' appears twice (first on line 10); "
                              "YAML would silently keep the last one; keep one of them"]
    merged = CONTRACT_FACTORIAL.replace(
        "  email: {holdout: 0.20, cost_per_contact: 0.002}",
        "  email: &base {holdout: 0.20, cost_per_contact: 0.002}").replace(
        "  sms:   {holdout: 0.20, cost_per_contact: 0.045}",
        "  sms:   {<<: *base, cost_per_contact: 0.045}")
    spec = parse_experiment(merged)
    assert spec.channels["sms"].holdout == 0.2 and spec.channels["sms"].cost_per_contact == 0.045


def test_a_misspelt_key_is_not_also_reported_missing():
    text = CONTRACT_ONBOARDING.replace("primary_metric: revenue", "primary_metrc: revenue")
    assert _problems(text) == ["x.yaml:10:1: unknown key 'primary_metrc'; did you mean "
                               "'primary_metric'?"]


def test_unknown_key_far_from_any_field_lists_the_allowed_ones():
    text = CONTRACT_ONBOARDING.replace("{holdout: 0.5,", "{holdout: 0.5, zzz: 1,")
    [problem] = _problems(text)
    assert problem.endswith("allowed keys here: holdout, variants, cost_per_contact, arms, "
                            "frequency_unit")


def test_impossible_dates_are_reported_not_converted():
    text = CONTRACT_ONBOARDING.replace("start: 2026-01-05", "start: 2026-02-30")
    assert _problems(text) == ["x.yaml:3:8: start: expected a date like 2026-02-02, got "
                               "'2026-02-30'; write the date as YYYY-MM-DD"]


def test_yaml_is_loaded_safely():
    """Python tags are refused, never constructed."""
    evil = CONTRACT_FACTORIAL.replace("name: Spring", "name: !!python/object/apply:os.system "
                                      "['echo hacked'] #")
    with pytest.raises(SpecError):
        parse_experiment(evil)


def test_deep_or_huge_yaml_is_a_clear_error():
    """Found by the exit-code test: 5,000 nested brackets raised RecursionError (exit 2)."""
    from liftlab.core.errors import SpecError
    from liftlab.spec.loader import MAX_FILE_BYTES, parse_experiment

    with pytest.raises(SpecError, match=r"x\.yaml:1:35: nested more than 32 levels deep"):
        parse_experiment("a: " + "[" * 5000, "x.yaml")
    with pytest.raises(SpecError, match=r"x\.yaml: the file is 262,145 bytes"):
        parse_experiment("#" * (MAX_FILE_BYTES + 1), "x.yaml")
