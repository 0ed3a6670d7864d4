"""Deterministic, salted hash assignment of units to arms, one channel at a time.

A unit's arm depends only on (experiment id, channel, unit id): reruns give the same arms,
and channels are independent of each other (the factorial design). The hash is FNV-1a over
the UTF-8 bytes followed by the splitmix64 finaliser, computed with numpy over all units at
once, so it is stable across library versions and platforms (unlike polars' own hash).
"""

from __future__ import annotations

import numpy as np
import polars as pl

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_CHUNK = 1_000_000


def unit_uniforms(unit_ids: pl.Series, salt: str) -> np.ndarray:
    """A uniform number in [0, 1) per unit, a pure function of ``salt`` and the unit id."""
    ids = unit_ids.cast(pl.String)
    out = np.empty(len(ids), dtype=np.float64)
    for start in range(0, len(ids), _CHUNK):
        out[start : start + _CHUNK] = _uniforms(ids.slice(start, _CHUNK), salt)
    return out


def _uniforms(ids: pl.Series, salt: str) -> np.ndarray:
    data, offsets = _utf8_buffers(ids)
    lengths = np.diff(offsets)
    h = np.full(len(ids), _FNV_OFFSET, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for byte in (salt + ":").encode():
            h = (h ^ np.uint64(byte)) * _FNV_PRIME
        last = max(len(data) - 1, 0)
        for j in range(int(lengths.max()) if len(ids) else 0):
            active = lengths > j
            byte_j = data[np.minimum(offsets[:-1] + j, last)].astype(np.uint64)
            h = np.where(active, (h ^ byte_j) * _FNV_PRIME, h)
        h = _splitmix64(h)
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _utf8_buffers(ids: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """The units' UTF-8 bytes, concatenated, and the offsets where each one starts."""
    import pyarrow as pa

    arr = ids.to_arrow().cast(pa.large_binary())
    arr = pa.concat_arrays([arr]) if arr.offset else arr
    _, off_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(off_buf, dtype=np.int64)[: len(arr) + 1]
    if data_buf is None:
        return np.zeros(1, np.uint8), offsets
    return np.frombuffer(data_buf, dtype=np.uint8), offsets


def _splitmix64(z: np.ndarray) -> np.ndarray:
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def assign_arms(
    unit_ids: pl.Series, experiment_id: str, channel: str, arms: dict[str, float]
) -> pl.Series:
    """Arm name per unit for one channel; ``arms`` maps arm -> fraction (summing to 1)."""
    u = unit_uniforms(unit_ids, f"{experiment_id}:{channel}")
    names = list(arms)
    edges = np.cumsum([arms[a] for a in names])
    edges[-1] = 1.0 + 1e-12
    idx = np.searchsorted(edges, u, side="right")
    return pl.Series("group", np.asarray(names, dtype=object)[idx], dtype=pl.String)
