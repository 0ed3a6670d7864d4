"""Metamorphic tests: every command on every layout of the same retailer gives the same
numbers as the canonical layout (1e-9 relative), or the same clear error.

CI runs a fixed sample of layouts (``CI_LAYOUTS``); ``LIFTLAB_SLOW=1`` runs all of them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from layouts import CI_LAYOUTS, Layout, all_layouts, base_tables, experiments_for, write_layout
from metamorphic import COMMANDS, Outcome, assert_same, run_command

EXPERIMENTS = Path(__file__).parent.parent / "experiments"


def differs_by_contract(layout: Layout, command: str) -> str | None:
    """Why this command may legitimately give other numbers on this layout."""
    if command == "multichannel" and layout.zone != "UTC" and layout.ts == "naive":
        return "without an experiment there is no timezone: naive timestamps are UTC"
    if command == "assign" and layout.customer_id != "int":
        return "the hash assignment is a function of the id's value: other ids, other arms"
    return None


class Workspace:
    """Layouts written once per session; the reference outcomes computed once each."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.base = base_tables(root / "base")
        self.outcomes: dict[tuple[str, str], Outcome] = {}

    def run(self, layout: Layout, command: str) -> Outcome:
        key = (layout.id, command)
        if key not in self.outcomes:
            folder = self.root / layout.id
            data = folder / "data"
            if not (folder / "experiments").exists():
                write_layout(layout, self.base, data)
                experiments_for(layout, EXPERIMENTS, folder / "experiments")
            self.outcomes[key] = run_command(command, layout, data, folder / "experiments",
                                             folder / "out" / command)
        return self.outcomes[key]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("layouts"))


def _check(workspace: Workspace, layout: Layout, command: str) -> None:
    why = differs_by_contract(layout, command)
    if why:
        pytest.skip(why)
    want = workspace.run(layout.reference(), command)
    got = workspace.run(layout, command)
    assert want.exit_code != 2, f"reference {layout.reference().id}: {want.payload}"
    assert_same(got, want, f"{command} on {layout.id}")


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("layout", CI_LAYOUTS, ids=lambda layout: layout.id)
def test_same_answer_on_every_layout(workspace: Workspace, layout: Layout,
                                     command: str) -> None:
    _check(workspace, layout, command)


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("layout", [x for x in all_layouts() if x not in CI_LAYOUTS],
                         ids=lambda layout: layout.id)
def test_same_answer_on_all_layouts(workspace: Workspace, layout: Layout,
                                    command: str) -> None:
    _check(workspace, layout, command)
