"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinydata import SPEC_YAML, make_tiny


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny_spec_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "tiny-factorial.yaml"
    path.write_text(SPEC_YAML)
    return path
