"""The relay objects of a repository, by name, as the format defines them (docs/protocol.md).

``escale migrate``, ``backup`` and ``restore`` move objects as they are (still sealed), so
they only need each object's kind, its size bound, and the order in which to write them: data
first, then manifests, then client states and retirement records, then the ``moved`` note,
and the header last, so that a client pointed at a half-written relay folder sees no
repository rather than a partial one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Optional

from ..crypto import HEADER_SIZE, SEGMENT, TAG_SIZE
from ..manifest import MAX_RETIRED
from ..repository import HEADER, MAX_HEADER, MAX_MOVED, MAX_SEALED_CLIENT, MAX_SEALED_MANIFEST
from ..repository import MOVED as MOVED_NOTE

#: The most bytes a data object declares (``max_page_size`` at most, docs/protocol.md#limits).
MAX_DATA_PLAIN = 256 << 20
#: ... and sealed: one tag per 64 KiB segment, the envelope header, a little slack.
MAX_SEALED_DATA = MAX_DATA_PLAIN + (MAX_DATA_PLAIN // SEGMENT + 1) * TAG_SIZE + HEADER_SIZE + 4096

_PATTERNS = (
    ("data", re.compile(r"data/[0-9a-f]{32}/[0-9]{10}/[0-9]{6}"), MAX_SEALED_DATA),
    ("manifest", re.compile(r"updates/[0-9a-f]{32}/[0-9]{10}"), MAX_SEALED_MANIFEST),
    ("client", re.compile(r"clients/[0-9a-f]{32}"), MAX_SEALED_CLIENT),
    ("retired", re.compile(r"retired/[0-9a-f]{32}"), MAX_RETIRED + 1024 + HEADER_SIZE + TAG_SIZE),
    ("moved", re.compile(re.escape(MOVED_NOTE)), MAX_MOVED),
    ("header", re.compile(re.escape(HEADER)), MAX_HEADER),
)
#: Write order of the kinds (the header last).
ORDER = [kind for kind, _, _ in _PATTERNS]


def kind_of(name: str) -> Optional[str]:
    """The kind of object ``name`` (``data``, ``manifest``, ``client``, ``retired``,
    ``moved``, ``header``), or ``None`` for a name the format does not define."""
    for kind, pattern, _ in _PATTERNS:
        if pattern.fullmatch(name):
            return kind
    return None


def max_size(name: str) -> int:
    """The most bytes object ``name`` may have (``0`` for an unknown name)."""
    for _, pattern, limit in _PATTERNS:
        if pattern.fullmatch(name):
            return limit
    return 0


def in_write_order(names: Iterable[str]) -> list[str]:
    """The format's objects among ``names``, data first and the header last (others left out)."""
    known = [(ORDER.index(kind), name) for name in names if (kind := kind_of(name))]
    return [name for _, name in sorted(known)]


def sha256_of(chunks: Iterable[bytes]) -> str:
    """The SHA-256 of a stream of bytes, as hex."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()
