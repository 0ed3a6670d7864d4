"""Benchmark of the hierarchical fit (issue 3): 3 channels x 5 regions of the demo data
(spring-factorial, 60,000 customers), default settings (2 chains x 1,000 draws after 1,000
tuning steps, one core), PyMC's NUTS vs nutpie (when installed).

Prints, per sampler, the compile time (model build + gradient compilation) and the sampling
time, the diagnostics, and how far the channel posteriors of the two samplers are apart.

    .venv/bin/python benchmarks/bench_hierarchical.py
"""

from __future__ import annotations

import importlib.util
import tempfile
import time
from pathlib import Path
from typing import Any

from liftlab.analyses.experiment import analyze
from liftlab.app.synth import generate
from liftlab.engines.open import open_engine
from liftlab.spec.loader import load_experiment

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    samplers = ["pymc"] + (["nutpie"] if importlib.util.find_spec("nutpie") else [])
    channel_means: dict[str, dict[str, tuple[float, float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp), 60_000, 7)
        base = load_experiment(ROOT / "experiments" / "spring-factorial.yaml")
        for sampler in samplers:
            analysis = base.analysis.model_copy(update={"bayes": "hierarchical",
                                                        "sampler": sampler})
            spec = base.model_copy(update={"segments": ["region"], "analysis": analysis,
                                           "monitoring": base.monitoring.model_copy(
                                               update={"sequential": False})})
            t0 = time.perf_counter()
            section: dict[str, Any] = analyze(spec, open_engine(tmp)).sections["bayes"]
            total = time.perf_counter() - t0
            d = section["diagnostics"]
            print(f"{sampler:>7}: compile {d['compile_seconds']:5.1f} s, sample "
                  f"{d['sample_seconds']:5.1f} s, model total {section['seconds']:5.1f} s "
                  f"(whole analysis {total:5.1f} s); r_hat max {d['r_hat_max']:.3f}, ESS bulk "
                  f"min {d['ess_bulk_min']:.0f}, tail min {d['ess_tail_min']:.0f}, "
                  f"divergences {d['divergences']}, warnings {d['warnings'] or 'none'}")
            channel_means[sampler] = {
                e["channel"]: (e["bayes"]["mean"], *e["bayes"]["hdi"])
                for e in section["effects"] if e["segment"] is None}
    for ch, (mean, lo, hi) in channel_means["pymc"].items():
        line = f"  {ch:>6}: pymc {mean:+.3f} [{lo:+.3f}, {hi:+.3f}]"
        if "nutpie" in channel_means:
            other = channel_means["nutpie"][ch]
            line += (f"  nutpie {other[0]:+.3f} [{other[1]:+.3f}, {other[2]:+.3f}]  "
                     f"difference {abs(other[0] - mean) / (hi - lo):.1%} of the HDI width")
        print(line)


if __name__ == "__main__":
    main()
