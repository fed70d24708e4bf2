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


Outcome = tuple[Optional[bool], str]


class _Probes:
    """The probes, each a method that returns ``(ok, detail)``; ``ok`` is ``None`` when the
    relay cannot say (no modification times). They run in order in one scratch folder."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.scratch = f"probe-{uuid.uuid4().hex[:12]}"
        self.payload = os.urandom(65536)

    def write_read(self) -> Outcome:
        start = time.perf_counter()
        self.relay.write_bytes(f"{self.scratch}/a", self.payload)
        same = self.relay.read_bytes(f"{self.scratch}/a") == self.payload
        elapsed = 1000 * (time.perf_counter() - start)
        return same, f"64 KiB written and read back in {elapsed:.0f} ms"

    def listing(self) -> Outcome:
        seen = self.relay.list_sizes(self.scratch)
        expected = {f"{self.scratch}/a": len(self.payload)}
        return seen == expected, f"listing shows {sorted(seen) or 'nothing'}"

    def stream(self) -> Outcome:
        pieces = [os.urandom(1 << 20) for _ in range(3)]
        self.relay.write_stream(f"{self.scratch}/big", iter(pieces))
        back = b"".join(self.relay.read_stream(f"{self.scratch}/big"))
        return back == b"".join(pieces), "3 MiB streamed both ways"

    def overwrite(self) -> Outcome:
        self.relay.write_bytes(f"{self.scratch}/a", b"second")
        return self.relay.read_bytes(
            f"{self.scratch}/a"
        ) == b"second", "an object is replaced whole"

    def failed_write(self) -> Outcome:
        with contextlib.suppress(RuntimeError):
            self.relay.write_stream(f"{self.scratch}/partial", _failing())
        left = f"{self.scratch}/partial" in self.relay.list(self.scratch)
        declared = "atomic rename" if self.relay.capabilities.atomic_rename else "no atomic rename"
        return not left, f"an interrupted write leaves nothing visible ({declared})"

    def exclusive(self) -> Outcome:
        name = f"{self.scratch}/x"
        first = self.relay.create_exclusive(name, b"1")
        second = self.relay.create_exclusive(name, b"2")
        atomic = self.relay.capabilities.exclusive_create
        kind = "atomic" if atomic else "best effort (check-then-write)"
        return first and not second and self.relay.read_bytes(name) == b"1", kind

    def clock(self) -> Outcome:
        stamp = self.relay.modified(f"{self.scratch}/a")
        if stamp is None:
            return None, "the relay does not report modification times"
        skew = stamp - time.time()
        return abs(skew) < 300, f"relay clock {skew:+.1f} s from this machine"

    def delete(self) -> Outcome:
        for name in self.relay.list(self.scratch):
            self.relay.delete(name)
        self.relay.delete(f"{self.scratch}/never-existed")
        try:
            self.relay.read_bytes(f"{self.scratch}/a")
        except RelayNotFoundError:
            return self.relay.list(
                self.scratch
            ) == [], "deleted; deleting a missing object is no error"
        return False, "a deleted object can still be read"

    def in_order(self) -> list[tuple[str, Callable[[], Outcome]]]:
        """The probes with their names, in the order they run (``delete`` last: it cleans)."""
        return [
            ("write and read", self.write_read),
            ("listing after write", self.listing),
            ("streaming", self.stream),
            ("overwrite", self.overwrite),
            ("interrupted write", self.failed_write),
            ("exclusive create", self.exclusive),
            ("clock skew", self.clock),
            ("delete", self.delete),
        ]


def _outcome(probe: Callable[[], Outcome]) -> Outcome:
    """Run one probe; a failure is reported as its outcome, never raised."""
    try:
        return probe()
    except EscaleError as exc:
        return False, str(exc)
    except Exception as exc:  # a probe must report, not crash
        return False, f"{type(exc).__name__}: {exc}"


def probe_relay(relay: Relay) -> list[Check]:
    """Run every probe in a scratch folder of the repository, then delete it; then add what
    the relay finds out about its server (:meth:`Relay.server_report`)."""
    checks = [Check(name, *_outcome(probe)) for name, probe in _Probes(relay).in_order()]
    return checks + _server_checks(relay)


def _server_checks(relay: Relay) -> list[Check]:
    """The relay's :meth:`~escale_core.relay.Relay.server_report` as lines (e.g. the WebDAV
    server's name and what it allows); a failure is one failed line."""
    try:
        return [Check(name, ok, detail) for name, ok, detail in relay.server_report()]
    except EscaleError as exc:
        return [Check("server", False, str(exc))]
    except Exception as exc:  # a probe must report, not crash
        return [Check("server", False, f"{type(exc).__name__}: {exc}")]


def format_checks(checks: list[Check]) -> str:
    """A plain table."""
    width = max(len(c.name) for c in checks)
    marks = {True: "ok", False: "FAILED", None: "-"}
    return "\n".join(f"{c.name.ljust(width)}  {marks[c.ok]:6}  {c.detail}" for c in checks)
