"""A warning attached to a result (results.json ``health.warnings``): a code, a message and
its severity. Every analysis module raises its warnings as these."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["info", "warning", "error"]


@dataclass(frozen=True)
class AnalysisWarning:
    code: str
    message: str
    severity: Severity = "warning"
