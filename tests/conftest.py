"""Shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

from tinydata import SPEC_YAML, make_tiny

# CI runs a fixed, reproducible search; HYPOTHESIS_PROFILE=thorough hunts wider locally.
settings.register_profile("ci", max_examples=200, derandomize=True, deadline=None)
settings.register_profile("thorough", max_examples=3000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``slow`` tests (every generated layout, every engine) run with LIFTLAB_SLOW=1."""
    if os.environ.get("LIFTLAB_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: set LIFTLAB_SLOW=1 to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny_spec_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "tiny-factorial.yaml"
    path.write_text(SPEC_YAML)
    return path
