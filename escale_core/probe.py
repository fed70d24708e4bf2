"""``escale relay check``: probe what a relay really does, with a few scratch objects."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Callable, Optional

from .errors import EscaleError, RelayNotFoundError
from .relay import Relay


@dataclass
class Check:
    """One probe: ``ok`` is ``None`` for information that is neither good nor bad."""

    name: str
    ok: Optional[bool]
    detail: str


def _failing() -> Iterator[bytes]:
    yield b"x" * 100_000
    raise RuntimeError("simulated failure")


def probe_relay(relay: Relay) -> list[Check]:
    """Run every probe in a scratch folder of the repository, then delete it."""
    scratch = f"probe-{uuid.uuid4().hex[:12]}"
    checks: list[Check] = []

    def run(name: str, probe: Callable[[], tuple[Optional[bool], str]]) -> None:
        try:
            ok, detail = probe()
        except EscaleError as exc:
            ok, detail = False, str(exc)
        except Exception as exc:  # a probe must report, not crash
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        checks.append(Check(name, ok, detail))

    payload = os.urandom(65536)

    def write_read() -> tuple[Optional[bool], str]:
        start = time.perf_counter()
        relay.write_bytes(f"{scratch}/a", payload)
        same = relay.read_bytes(f"{scratch}/a") == payload
        return (
            same,
            f"64 KiB written and read back in {1000 * (time.perf_counter() - start):.0f} ms",
        )

    def listing() -> tuple[Optional[bool], str]:
        seen = relay.list_sizes(scratch)
        return seen == {f"{scratch}/a": len(payload)}, f"listing shows {sorted(seen) or 'nothing'}"

    def stream() -> tuple[Optional[bool], str]:
        pieces = [os.urandom(1 << 20) for _ in range(3)]
        relay.write_stream(f"{scratch}/big", iter(pieces))
        back = b"".join(relay.read_stream(f"{scratch}/big"))
        return back == b"".join(pieces), "3 MiB streamed both ways"

    def overwrite() -> tuple[Optional[bool], str]:
        relay.write_bytes(f"{scratch}/a", b"second")
        return relay.read_bytes(f"{scratch}/a") == b"second", "an object is replaced whole"

    def failed_write() -> tuple[Optional[bool], str]:
        with contextlib.suppress(RuntimeError):
            relay.write_stream(f"{scratch}/partial", _failing())
        left = f"{scratch}/partial" in relay.list(scratch)
        declared = "atomic rename" if relay.capabilities.atomic_rename else "no atomic rename"
        return not left, f"an interrupted write leaves nothing visible ({declared})"

    def exclusive() -> tuple[Optional[bool], str]:
        first = relay.create_exclusive(f"{scratch}/x", b"1")
        second = relay.create_exclusive(f"{scratch}/x", b"2")
        kind = "atomic" if relay.capabilities.exclusive_create else "best effort (check-then-write)"
        return first and not second and relay.read_bytes(f"{scratch}/x") == b"1", kind

    def clock() -> tuple[Optional[bool], str]:
        stamp = relay.modified(f"{scratch}/a")
        if stamp is None:
            return None, "the relay does not report modification times"
        skew = stamp - time.time()
        return abs(skew) < 300, f"relay clock {skew:+.1f} s from this machine"

    def delete() -> tuple[Optional[bool], str]:
        for name in relay.list(scratch):
            relay.delete(name)
        relay.delete(f"{scratch}/never-existed")
        try:
            relay.read_bytes(f"{scratch}/a")
        except RelayNotFoundError:
            return relay.list(scratch) == [], "deleted; deleting a missing object is no error"
        return False, "a deleted object can still be read"

    for name, probe in (
        ("write and read", write_read),
        ("listing after write", listing),
        ("streaming", stream),
        ("overwrite", overwrite),
        ("interrupted write", failed_write),
        ("exclusive create", exclusive),
        ("clock skew", clock),
        ("delete", delete),
    ):
        run(name, probe)
    return checks


def format_checks(checks: list[Check]) -> str:
    """A plain table."""
    width = max(len(c.name) for c in checks)
    marks = {True: "ok", False: "FAILED", None: "-"}
    return "\n".join(f"{c.name.ljust(width)}  {marks[c.ok]:6}  {c.detail}" for c in checks)
