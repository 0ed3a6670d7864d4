"""Hash assignment: stable, exact split within sampling noise, independent across channels."""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy import stats as sps

from liftlab.spec.assign import assign_arms, unit_uniforms


def test_pinned_values_never_change():
    # Pinned once: a change here would silently reshuffle every running experiment.
    u = unit_uniforms(pl.Series([1, 2, 3]), "exp:email")
    np.testing.assert_array_equal(u, [0.5947449942856452, 0.9753864241966128,
                                      0.875483704484144])
    # integer and text ids of the same value hash alike (ids are hashed as text)
    np.testing.assert_array_equal(u, unit_uniforms(pl.Series(["1", "2", "3"]), "exp:email"))


def test_matches_a_scalar_reference_implementation():
    """The vectorised hash equals a plain-Python FNV-1a + splitmix64 written independently."""
    mask = (1 << 64) - 1

    def ref(text: str) -> float:
        h = 0xCBF29CE484222325
        for b in text.encode():
            h = ((h ^ b) * 0x100000001B3) & mask
        z = (h + 0x9E3779B97F4A7C15) & mask
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        z ^= z >> 31
        return (z >> 11) / float(1 << 53)

    ids = ["42", "héllo", "", "customer-000017", "x" * 40]
    got = unit_uniforms(pl.Series(ids), "salt")
    np.testing.assert_array_equal(got, [ref(f"salt:{i}") for i in ids])


def test_split_fractions_and_independence():
    ids = pl.Series(np.arange(200_000))
    a = assign_arms(ids, "exp", "email", {"holdout": 0.1, "treatment": 0.9})
    b = assign_arms(ids, "exp", "sms", {"holdout": 0.3, "mens": 0.35, "womens": 0.35})
    counts = a.value_counts().sort("group")
    assert sps.chisquare(counts["count"].to_numpy(), [20_000, 180_000]).pvalue > 1e-4
    table = pl.DataFrame({"a": a, "b": b}).group_by("a", "b").len().pivot(
        on="b", index="a", values="len").drop("a").to_numpy()
    assert sps.chi2_contingency(table).pvalue > 1e-4


def test_uniforms_are_uniform():
    u = unit_uniforms(pl.Series([f"c{i}" for i in range(100_000)]), "s")
    assert sps.kstest(u, "uniform").pvalue > 1e-4
