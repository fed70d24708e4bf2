"""Version vectors: what a version of a file has seen of the file's history.

A vector maps client ids to sequence numbers. Client X's entry is the number of the latest
update of X whose change of the file this version has seen (numbers of one client only grow,
so they serve as that client's counter; Parker et al., 1983). Two vectors are ordered (one has
seen every change the other has) or concurrent (each has a change the other lacks). The sync
decisions themselves compare a version's vector with the *dot* of the other (the one change
that made it): :mod:`escale_core.causality`, and ``docs/protocol.md``, "Causality".
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from typing import Optional

Vector = dict[str, int]


class Order(enum.Enum):
    """How two versions are related."""

    EQUAL = "equal"
    GREATER = "greater"
    LESSER = "lesser"
    CONCURRENT = "concurrent"


def compare(a: Mapping[str, int], b: Mapping[str, int]) -> Order:
    """How version ``a`` relates to version ``b``."""
    a_ahead = b_ahead = False
    for cid, seq in a.items():
        other = b.get(cid, 0)
        if seq > other:
            a_ahead = True
        elif seq < other:
            b_ahead = True
    for cid, seq in b.items():
        if cid not in a and seq > 0:
            b_ahead = True
    if a_ahead and b_ahead:
        return Order.CONCURRENT
    if a_ahead:
        return Order.GREATER
    if b_ahead:
        return Order.LESSER
    return Order.EQUAL


def dominates(a: Mapping[str, int], b: Mapping[str, int]) -> bool:
    """Whether ``a`` has seen every change of ``b`` (greater or equal)."""
    return all(a.get(cid, 0) >= seq for cid, seq in b.items())


def merge(a: Mapping[str, int], b: Mapping[str, int]) -> Vector:
    """The element-wise maximum: a version that has seen both."""
    merged = dict(a)
    for cid, seq in b.items():
        if seq > merged.get(cid, 0):
            merged[cid] = seq
    return merged


def bump(base: Optional[Mapping[str, int]], cid: str, seq: int) -> Vector:
    """The vector of a change made by client ``cid`` in its update ``seq`` on top of ``base``."""
    vector = dict(base or {})
    vector[cid] = max(seq, vector.get(cid, 0) + 1)
    return vector


#: Texts of the vectors dumped lately: a round stores one row per file, and most files of an
#: update share their vector (JSON encoding was a tenth of a big pull's own work).
_DUMPED: dict[tuple[tuple[str, int], ...], str] = {}
_DUMPED_MAX = 4096


def dumps(vector: Mapping[str, int]) -> str:
    """Compact JSON for the local state (keys sorted, so equal vectors are equal text)."""
    key = tuple(vector.items())
    text = _DUMPED.get(key)
    if text is None:
        text = json.dumps(vector, sort_keys=True, separators=(",", ":"))
        if len(_DUMPED) >= _DUMPED_MAX:
            _DUMPED.clear()
        _DUMPED[key] = text
    return text


def loads(text: Optional[str]) -> Vector:
    """The vector stored by :func:`dumps` (empty for ``None``)."""
    if not text:
        return {}
    value = json.loads(text)
    return {str(k): int(v) for k, v in value.items()}
