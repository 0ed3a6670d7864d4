"""A throwaway standalone Spark cluster for tests: a master and workers on 127.0.0.1, started
with the installed pyspark distribution's ``spark-class``, always torn down."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

START_TIMEOUT = 120.0


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Cluster:
    master_url: str
    web_url: str

    def state(self) -> dict[str, Any]:
        """The master's status page as JSON: workers, running and completed applications."""
        with urllib.request.urlopen(f"{self.web_url}/json", timeout=5) as response:
            return json.loads(response.read())


@contextlib.contextmanager
def standalone_cluster(workers: int = 2, cores: int = 1, memory: str = "1g") -> Iterator[Cluster]:
    """Start a master and ``workers`` workers; yield once every worker is ALIVE."""
    home = spark_home()
    root = Path(tempfile.mkdtemp(prefix="liftlab-spark-", dir="/tmp"))
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1",
           "SPARK_LOG_DIR": str(root), "SPARK_WORKER_DIR": str(root / "work"),
           "SPARK_NO_DAEMONIZE": "1"}
    spark_class = str(home / "bin" / "spark-class")
    port, web = _free_port(), _free_port()
    cluster = Cluster(f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{web}")
    procs: list[subprocess.Popen[bytes]] = []

    def launch(name: str, *args: str) -> None:
        log = (root / f"{name}.log").open("wb")
        procs.append(subprocess.Popen([spark_class, *args], env=env, stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True))

    try:
        launch("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
               "--port", str(port), "--webui-port", str(web))
        for i in range(workers):
            launch(f"worker{i}", "org.apache.spark.deploy.worker.Worker", cluster.master_url,
                   "--host", "127.0.0.1", "--cores", str(cores), "--memory", memory,
                   "--webui-port", str(_free_port()), "--work-dir", str(root / f"work{i}"))
        _wait_for_workers(cluster, workers, procs, root)
        yield cluster
    finally:
        for proc in procs:  # each was started in its own session: its group is its own
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        subprocess.run(["rm", "-rf", str(root)], check=False)


def _wait_for_workers(cluster: Cluster, workers: int, procs: list[subprocess.Popen[bytes]],
                      root: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            break
        with contextlib.suppress(OSError, ValueError):
            alive = [w for w in cluster.state()["workers"] if w["state"] == "ALIVE"]
            if len(alive) >= workers:
                return
        time.sleep(1)
    logs = "\n".join(p.read_text()[-2000:] for p in sorted(root.glob("*.log")))
    raise RuntimeError(f"the Spark cluster did not start within {START_TIMEOUT:.0f} s:\n{logs}")
