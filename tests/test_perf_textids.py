"""Text customer ids on the fast routes (issue 23): the compact index of last-touch credit and
the monitor's shared unit lookup give what the plain routes give, for ids that differ only in
case or whitespace, null ids, ids of one table only and ids sharing a hash."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from liftlab.engines import hashed_ids
from liftlab.engines.polars_attribution import last_touch_credit

T0 = dt.datetime(2026, 2, 2, tzinfo=dt.UTC)
UTC = pl.Datetime("us", "UTC")
# distinct ids: case and whitespace make different customers
NAMES = ["ann", "Ann", "ANN", " ann", "ann ", "bob", "b ob", "Bob", "cy", "dee"]


def _tables(seed: int, n_orders: int, n_contacts: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Orders of NAMES (some null) and contacts of NAMES plus customers without an order."""
    rng = np.random.default_rng(seed)

    def ids(names: list[str], n: int) -> pl.Series:
        values = rng.choice(np.array(names, dtype=object), n)
        values[rng.random(n) < 0.05] = None
        return pl.Series(values.tolist(), dtype=pl.String)

    def times(n: int, lo: int, hi: int) -> pl.Series:
        hours = rng.integers(lo * 24, hi * 24, n)  # whole hours: ties
        return pl.Series([T0 + dt.timedelta(hours=int(h)) for h in hours], dtype=UTC)

    orders = pl.DataFrame(
        {
            "customer_id": ids(NAMES, n_orders),
            "ts": times(n_orders, -2, 21),
            "channel": rng.choice(["web", "store"], n_orders),
            "revenue": rng.gamma(2.0, 30.0, n_orders).round(2),
        }
    )
    contacts = pl.DataFrame(
        {
            "customer_id": ids([*NAMES, "zed", "ANN ", "eve"], n_contacts),
            "channel": rng.choice(["email", "sms", "mail"], n_contacts),
            "sent_at": times(n_contacts, -10, 21),
        }
    )
    return orders, contacts


@pytest.mark.parametrize("seed", [1, 2])
def test_text_ids_credit_as_the_as_of_join(seed: int) -> None:
    orders, contacts = _tables(seed, 600, 900)
    end = T0 + dt.timedelta(days=21)
    fast = last_touch_credit(orders.lazy(), contacts.lazy(), T0, end)
    plain = last_touch_credit(orders.lazy(), contacts.lazy(), T0, end, dense=False)
    assert_frame_equal(fast, plain, check_exact=True)
    assert fast.filter(pl.col("credited_channel") != "(none)")["orders"].sum() > 0


@pytest.mark.parametrize("collide", ["some", "all"])
def test_ids_sharing_a_hash_credit_through_the_join_alike(
    monkeypatch: pytest.MonkeyPatch, collide: str
) -> None:
    """Two ids with one hash (forced: "ann" and "Ann"; or every id) are caught by the check
    of each found id and take the joins, with the same result."""
    orders, contacts = _tables(3, 600, 900)
    end = T0 + dt.timedelta(days=21)
    plain = last_touch_credit(orders.lazy(), contacts.lazy(), T0, end, dense=False)
    real = hashed_ids._hash
    if collide == "some":
        monkeypatch.setattr(hashed_ids, "_hash", lambda s: real(s.str.to_lowercase()))
    else:
        monkeypatch.setattr(hashed_ids, "_hash", lambda s: np.zeros(s.len(), dtype=np.uint64))
    fast = last_touch_credit(orders.lazy(), contacts.lazy(), T0, end)
    assert_frame_equal(fast, plain, check_exact=True)


def test_the_same_ids_share_one_table_and_other_ids_get_their_own() -> None:
    """The memo of ``HashedIds.of``: the same ids in another series get the table built for
    them; ids differing in case, whitespace or a null get theirs."""
    ids = pl.Series(["a", "B", "a", " b"])
    table = hashed_ids.HashedIds.of(ids)
    assert table is not None and hashed_ids.HashedIds.of(pl.Series(ids.to_list())) is table
    assert not table.pos.flags.writeable  # shared: nobody writes into it
    for other in (["a", "b", "a", " b"], ["a", "B", "a", "b"], ["a", "B", None, " b"]):
        found = hashed_ids.HashedIds.of(pl.Series(other))
        assert found is not None and found is not table
        assert found.keys.to_list() == list(dict.fromkeys(other))
        assert found.pos.tolist() == [found.keys.to_list().index(v) for v in other]


def test_ids_changed_in_place_after_the_build_get_their_own_table() -> None:
    ids = pl.Series(["a", "b", "c"])
    table = hashed_ids.HashedIds.of(ids)
    ids.scatter(1, "z")  # in place: the table built before is not theirs
    found = hashed_ids.HashedIds.of(ids)
    assert table is not None and found is not None and found is not table
    assert found.keys.to_list() == ["a", "z", "c"]
