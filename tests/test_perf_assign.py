"""The hash assignment's fast route (ids' bytes prepared once for every salt, the salt's
prefix hashed once, arm names gathered by position) equals the plain definition: FNV-1a
over ``salt:id`` then splitmix64, one unit at a time, and the arm by the cumulative edges."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from liftlab.spec import assign
from liftlab.spec.assign import UnitBytes, assign_arms, unit_uniforms

MASK = (1 << 64) - 1


def _reference(text: str) -> float:
    h = 0xCBF29CE484222325
    for b in text.encode():
        h = ((h ^ b) * 0x100000001B3) & MASK
    z = (h + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    z ^= z >> 31
    return (z >> 11) / float(1 << 53)


IDS = ["", "7", "42", "héllo", "customer-000017", "x" * 40, "日本", "9" * 12, "a"]


@pytest.mark.parametrize("chunk", [2, 4, 1_000_000])
def test_prepared_bytes_equal_the_scalar_hash_across_chunks(monkeypatch, chunk):
    # chunks of 2 and 4 units put ids of every length on a chunk's edge and in its middle
    monkeypatch.setattr(assign, "_CHUNK", chunk)
    units = UnitBytes.of(pl.Series(IDS))
    assert units.n == len(IDS)
    for salt in ("exp:email", "a-much-longer-experiment-name:channel-with-a-name", ""):
        want = [_reference(f"{salt}:{i}") for i in IDS]
        np.testing.assert_array_equal(unit_uniforms(units, salt), want)
        np.testing.assert_array_equal(unit_uniforms(pl.Series(IDS), salt), want)


def test_same_length_ids_and_no_ids():
    ids = pl.Series(np.arange(1000, 1100))  # every id 4 bytes: no masked tail
    np.testing.assert_array_equal(
        unit_uniforms(ids, "s"), [_reference(f"s:{i}") for i in range(1000, 1100)]
    )
    assert len(unit_uniforms(pl.Series([], dtype=pl.Int64), "s")) == 0
    assert assign_arms(pl.Series([], dtype=pl.String), "e", "c", {"a": 1.0}).len() == 0


def test_arms_equal_the_plain_edges_rule():
    ids = pl.Series(np.arange(5_000))
    arms = {"holdout": 0.2, "mens": 0.3, "womens": 0.5}
    got = assign_arms(UnitBytes.of(ids), "exp", "email", arms)
    u = [_reference(f"exp:email:{i}") for i in range(5_000)]
    want = ["holdout" if x < 0.2 else "mens" if x < 0.2 + 0.3 else "womens" for x in u]
    assert got.dtype == pl.String and got.name == "group"
    assert got.to_list() == want
    assert got.equals(assign_arms(ids, "exp", "email", arms))


@pytest.mark.parametrize("design", ["factorial", "global_holdout"])
def test_hash_arms_equal_each_channel_hashed_from_the_ids(design):
    import yaml

    from liftlab.engines.units import hash_arms
    from liftlab.spec.models import HOLDOUT, Experiment

    from tinydata import SPEC_YAML

    text = SPEC_YAML.replace("id: tiny-factorial", "id: tiny-factorial\nassignment: hash")
    if design == "global_holdout":
        text = text.replace(
            "start: 2026-02-02", "start: 2026-02-02\ndesign: global_holdout"
        ).replace("email: {holdout: 0.3,", "email: {holdout: 0.4,")
    spec = Experiment.model_validate(yaml.safe_load(text))
    assert spec.design == design
    ids = pl.Series("customer_id", [f"c{i}" for i in range(3_000)])
    got = pl.DataFrame(hash_arms(spec, ids))
    for ch, cfg in spec.channels.items():
        if design == "factorial":
            want = assign_arms(ids, spec.id, ch, cfg.arms).to_list()
        else:
            blind = [_reference(f"{spec.id}:global:{i}") < cfg.holdout for i in ids]
            treat = {a: f for a, f in cfg.arms.items() if a != HOLDOUT}
            total = sum(treat.values())
            picks = assign_arms(ids, spec.id, ch, {a: f / total for a, f in treat.items()})
            want = [HOLDOUT if b else p for b, p in zip(blind, picks, strict=True)]
        assert got[f"arm:{ch}"].to_list() == want
