"""The contract inside the repository (docs/): the generated pages are what the code says,
the hand-written ones cover what the code reads and writes, and every link resolves."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from liftlab.data.schema import OPTIONAL, REQUIRED

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("page", ["yaml.md", "cli.md"])
def test_generated_pages_are_committed_as_generated(page: str):
    """Run `python scripts/gen_docs.py` after changing the models or the commands."""
    assert (DOCS / page).read_text(encoding="utf-8") == _generator().generate()[page]


def test_the_check_mode_fails_on_a_stale_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    gen = _generator()
    (tmp_path / "docs").mkdir()
    monkeypatch.setattr(gen, "ROOT", tmp_path)
    assert gen.main(["--check"]) == 1
    assert gen.main([]) == 0 and gen.main(["--check"]) == 0
    (tmp_path / "docs" / "cli.md").write_text("stale")
    assert gen.main(["--check"]) == 1


def test_the_yaml_reference_lists_every_key_of_every_model():
    from pydantic import BaseModel

    from liftlab import spec

    text = (DOCS / "yaml.md").read_text()
    models = [
        m
        for m in vars(spec).values()
        if isinstance(m, type)
        and issubclass(m, BaseModel)
        and m.__module__ == spec.__name__
        and m.model_fields
    ]
    for model in models:
        for key, field in model.model_fields.items():  # the YAML key: the alias if any
            assert f"| `{field.alias or key}` |" in text, f"{model.__name__}.{key}"


def test_the_cli_reference_lists_every_command_and_option():
    import typer

    from liftlab.app.cli import app

    text = (DOCS / "cli.md").read_text()
    group = typer.main.get_command(app)
    for name, command in group.commands.items():
        assert f"## `liftlab {name}`" in text
        for param in command.params:
            for flag in getattr(param, "opts", []):
                if flag.startswith("--"):
                    assert f"`{flag}" in text, f"{name} {flag}"


def test_the_data_page_lists_every_column_liftlab_reads():
    text = (DOCS / "data.md").read_text()
    rows = re.findall(r"^\| *(\w*) *\| *(\w+) *\|", text, flags=re.M)
    table, listed = "", set()
    for name, column in rows:
        table = name or table
        listed.add((table, column))
    for kinds in (REQUIRED, OPTIONAL):
        for t, columns in kinds.items():
            for column in columns:
                assert (t, column) in listed, f"{t}.{column}"


def test_the_results_page_explains_every_top_level_key():
    schema = json.loads((DOCS / "results.schema.json").read_text())
    text = (DOCS / "results.md").read_text()
    for key in schema["properties"]:
        assert f"`{key}`" in text, key


def _links(path: Path) -> list[str]:
    return re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text())


@pytest.mark.parametrize("page", ["README.md", *(f"docs/{p.name}" for p in DOCS.glob("*.md"))])
def test_relative_links_resolve(page: str):
    path = ROOT / page
    for link in _links(path):
        if "://" not in link:
            assert (path.parent / link).exists(), f"{page}: {link}"


def test_readme_links_every_docs_page():
    readme = (ROOT / "README.md").read_text()
    for page in DOCS.iterdir():
        if page.is_dir():  # docs/screenshots: the README shows some of its pictures
            continue
        assert f"(docs/{page.name})" in readme, page.name


def test_nothing_refers_to_the_contract_outside_the_repository():
    found = subprocess.run(
        [
            "git",
            "grep",
            "-n",
            "-I",
            "-E",
            r"\.\./shared|CONTRACT\.md",
            "--",
            ".",
            ":!tests/test_docs.py",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert found.returncode == 1, found.stdout  # 1: no match


def test_data_hints_point_at_the_data_page():
    """A missing column's hint names the page (and its section) that lists the columns."""
    import polars as pl
    import yaml

    from liftlab.core.errors import DataError
    from liftlab.engines.polars_monitor import _check_tables, _Plan
    from liftlab.spec.models import Experiment

    from tinydata import SPEC_YAML

    spec = Experiment.model_validate(yaml.safe_load(SPEC_YAML))
    with pytest.raises(DataError) as caught:
        _check_tables(spec, {"assignments": pl.LazyFrame({"customer_id": [1]})},
                      _Plan.of(spec, [], []))
    assert "see docs/data.md, section Tables" in str(caught.value)
    assert "\n## Tables\n" in (DOCS / "data.md").read_text()
