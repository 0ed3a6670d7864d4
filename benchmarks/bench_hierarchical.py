"""Benchmark of the hierarchical fit (issue 3): 3 channels x 5 segments on the demo data,
wall time including compilation, PyMC's default NUTS vs nutpie (when installed).

    python benchmarks/bench_hierarchical.py
"""

from __future__ import annotations

import importlib.util
import tempfile
import time
from pathlib import Path

from liftlab.analysis import analyze
from liftlab.data.open import open_engine
from liftlab.spec_loader import load_experiment
from liftlab.synth import generate

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp), 60_000, 7)
        base = load_experiment(ROOT / "experiments" / "spring-factorial.yaml")
        samplers = ["pymc"] + (["nutpie"] if importlib.util.find_spec("nutpie") else [])
        for sampler in samplers:
            analysis = base.analysis.model_copy(update={"bayes": "hierarchical",
                                                        "sampler": sampler})
            spec = base.model_copy(update={"segments": ["region"], "analysis": analysis,
                                           "monitoring": base.monitoring.model_copy(
                                               update={"sequential": False})})
            t0 = time.perf_counter()
            result = analyze(spec, open_engine(tmp))
            total = time.perf_counter() - t0
            bayes = result.sections["bayes"]
            d = bayes["diagnostics"]
            print(f"{sampler:>7}: analysis {total:5.1f} s (model {bayes['seconds']:5.1f} s incl. "
                  f"compilation), r_hat max {d['r_hat_max']:.3f}, ESS bulk min "
                  f"{d['ess_bulk_min']:.0f}, divergences {d['divergences']}")


if __name__ == "__main__":
    main()
