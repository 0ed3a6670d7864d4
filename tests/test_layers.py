"""The layers contract (pyproject.toml, tool.importlinter): each layer imports only the layers
below it, no import cycles, the statistics read no rows. A broken contract fails here and in
`make test` (lint-imports)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import liftlab

ROOT = Path(__file__).resolve().parents[1]


def test_the_import_contracts_are_kept():
    src = Path(liftlab.__file__).resolve().parents[1]
    run = subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports; "
         "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True))"],
        cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(src), *sys.path])})
    assert run.returncode == 0, run.stdout + run.stderr
    assert " kept, 0 broken." in run.stdout
