"""The distributed route is real: one experiment runs on a standalone Spark cluster (a master
and two workers on 127.0.0.1, started by the test) and gives the polars engine's effects."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from liftlab.analyses.experiment import analyze
from liftlab.engines.open import open_engine
from liftlab.spec.loader import load_experiment
from metamorphic import close

pytestmark = [
    pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]
SRC = Path(__file__).parent.parent / "src"


def test_experiment_on_a_standalone_cluster(tiny_data: Path, tiny_spec_path: Path,
                                            tmp_path: Path):
    pytest.importorskip("pyspark", reason="install the spark extra")
    from sparkcluster import standalone_cluster

    out = tmp_path / "out"
    with standalone_cluster(workers=2) as cluster:
        env = {**os.environ, "LIFTLAB_SPARK_MASTER": cluster.master_url,
               "SPARK_LOCAL_IP": "127.0.0.1",
               "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
        run = subprocess.run([sys.executable, "-m", "liftlab.app.cli", "analyze", tiny_spec_path,
                              "--data", tiny_data, "--engine", "spark", "--out", out],
                             env=env, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr[-3000:]
        apps = cluster.state()["completedapps"]
    assert [a["name"] for a in apps] == ["liftlab"]
    assert apps[0]["cores"] >= 2, apps  # both workers' cores ran it
    spark = json.loads((out / "results.json").read_text())
    local = analyze(load_experiment(tiny_spec_path), open_engine(tiny_data)).to_dict()
    assert spark["effects"]
    for section in ("effects", "contribution", "interactions", "total_effect"):
        assert (section in spark) == (section in local), section
        if section in local:
            close(spark[section], json.loads(json.dumps(local[section])), section)
    assert spark["n_units"] == local["n_units"] and spark["assigned_by"] == "table"
