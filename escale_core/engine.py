"""One sync round of one section: scan → push → pull → acknowledge → collect garbage.

Every relay object has one writer: a client writes its own updates and its own state; the
only shared act is deleting an update that enough pullers acknowledged, which is idempotent.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from .checksum import Hasher, checksum_factory
from .errors import EscaleError, IntegrityError, RelayNotFoundError
from .history import LocalState
from .local import BackgroundScan, FileStat, Filters, remove_temp, remove_temp_files, scan
from .manifest import ClientState, Manifest
from .pull import Puller, PullOptions
from .push import Pusher, PushPlan
from .registry import Registry
from .repository import Repository, client_name, update_name

_UPDATE = re.compile(r"^updates/([0-9a-f]{32})/([0-9]{10})$")
_DATA = re.compile(r"^data/([0-9a-f]{32})/([0-9]{10})/[0-9]{6}$")
_CLIENT = re.compile(r"^clients/([0-9a-f]{32})$")

#: A round that would delete more than half of the synced files (and at least this many)
#: stops and asks for --force.
MASS_DELETION_MIN = 10


@dataclass
class SyncOptions:
    """What a round needs to know of its section."""

    root: Path
    client: str
    mode: str
    filters: Filters
    pullers: int = 1
    quota: Optional[int] = None
    page_size: int = 8 << 20
    propagate_deletions: bool = True
    restore_mtime: bool = True
    force: bool = False
    checksum_cache: bool = True
    #: called with a number of bytes as data moves (progress bars)
    progress: Optional[Callable[[int], None]] = None


@dataclass
class RoundReport:
    """What one round did; ``in_sync`` decides the exit status."""

    pushed: list[str] = field(default_factory=list)
    deleted_remote: list[str] = field(default_factory=list)
    pulled: list[str] = field(default_factory=list)
    deleted_local: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    over_quota: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    mass_deletion: int = 0
    waiting: list[str] = field(default_factory=list)
    bytes_up: int = 0
    bytes_resumed: int = 0
    bytes_down: int = 0
    relay_usage: int = 0
    collected: int = 0
    seq: Optional[int] = None

    @property
    def in_sync(self) -> bool:
        """No error, nothing waiting for quota, no deletion waiting for --force."""
        return not (self.errors or self.over_quota or self.mass_deletion or self.waiting)

    @property
    def transferred(self) -> bool:
        """Whether anything moved (resets the adaptive pause)."""
        return bool(self.pushed or self.pulled or self.deleted_remote or self.deleted_local)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        data = {k: list(v) if isinstance(v, list) else v for k, v in vars(self).items()}
        return {**data, "in_sync": self.in_sync}

    def counts(self) -> dict[str, Any]:
        """JSON-ready, with the number of paths instead of the paths (errors in full)."""
        data = {k: len(v) if isinstance(v, list) else v for k, v in vars(self).items()}
        return {**data, "errors": list(self.errors), "in_sync": self.in_sync}


@dataclass
class Listing:
    """The relay repository, from one listing."""

    updates: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    data: dict[tuple[str, int], list[str]] = field(default_factory=lambda: defaultdict(list))
    clients: set[str] = field(default_factory=set)
    usage: int = 0
    sizes: dict[str, int] = field(default_factory=dict)

    @classmethod
    def read(cls, sizes: dict[str, int]) -> Listing:
        """Parse names; anything else on the relay is ignored."""
        listing = cls(sizes=sizes)
        for name, size in sizes.items():
            listing.usage += size
            if m := _UPDATE.match(name):
                listing.updates[m.group(1)].append(int(m.group(2)))
            elif m := _DATA.match(name):
                listing.data[(m.group(1), int(m.group(2)))].append(name)
            elif m := _CLIENT.match(name):
                listing.clients.add(m.group(1))
        for seqs in listing.updates.values():
            seqs.sort()
        return listing


class Engine:
    """Runs rounds for one section."""

    def __init__(
        self,
        repo: Repository,
        state: LocalState,
        options: SyncOptions,
        checksums: Registry,
        prescan: Optional[BackgroundScan] = None,
    ) -> None:
        """:param prescan: the local folder's scan, started early (the push scans otherwise)."""
        self.repo, self.state, self.options, self.checksums = repo, state, options, checksums
        self.me = repo.client_id(options.client)
        self.prescan = prescan

    def hasher(self, algorithm: str) -> Callable[[], Hasher]:
        """The checksum factory of ``algorithm``.

        :raises IntegrityError: relay data names an algorithm that is not installed.
        """
        try:
            return checksum_factory(algorithm, self.checksums)
        except EscaleError as exc:
            raise IntegrityError(f"relay data uses checksum '{algorithm}': {exc}") from None

    def run_round(self) -> RoundReport:
        """One round; relay errors propagate after local state is saved."""
        report = RoundReport()
        root = self.options.root
        root.mkdir(parents=True, exist_ok=True)
        if self.options.mode == "download":  # otherwise the push's scan removes them
            remove_temp_files(root)
        # Client states first, then the listing: an update published in between is then in
        # the listing, so its data is never taken for an orphan.
        states = self._client_states(report)
        listing = Listing.read(self.repo.relay.list_sizes(""))
        report.relay_usage = listing.usage
        mine = states.get(self.me) or ClientState(self.options.client)
        # Acks come from the local state only: a client whose state was lost starts afresh
        # (gaps then make it ask for full snapshots) instead of trusting what it once applied.
        acks: dict[str, int] = self.state.get_meta("acks", {})
        want_full: dict[str, int] = self.state.get_meta("want_full", mine.want_full)
        last_seq = max(
            [self.state.get_meta("last_seq", 0), mine.last_seq, *listing.updates.get(self.me, [])]
        )
        self._remove_orphans(listing, states, last_seq + 1)
        try:
            if self.options.mode != "download":
                last_seq = self._push(listing, states, last_seq, report)
            if self.options.mode != "upload":
                self._pull(listing, states, acks, want_full, report)
        finally:
            self.state.save_snapshot()
            self.state.set_meta("acks", acks)
            self.state.set_meta("want_full", want_full)
            self.state.set_meta("last_seq", last_seq)
            mine = ClientState(self.options.client, last_seq, acks, want_full, time.time())
            self.repo.write_client(self.me, mine)
        states[self.me] = mine
        report.collected = self._collect(listing, states)
        self.state.set_meta("last_round", {"time": time.time(), **report.counts()})
        return report

    def _client_states(self, report: RoundReport) -> dict[str, ClientState]:
        states = {}
        clients = Listing.read(self.repo.relay.list_sizes("clients")).clients
        for cid in sorted(clients):
            try:
                states[cid] = self.repo.read_client(cid)
            except (IntegrityError, RelayNotFoundError) as exc:
                report.errors.append(f"relay object {client_name(cid)}: {exc}")
        return states

    def _remove_orphans(
        self, listing: Listing, states: dict[str, ClientState], next_seq: int
    ) -> None:
        """Data without a manifest: our own crash leftovers, or others' past their last update.
        The data of our next update is kept: an interrupted push resumes from it."""
        for (cid, seq), names in listing.data.items():
            if seq in listing.updates.get(cid, []) or (cid == self.me and seq == next_seq):
                continue
            published = states[cid].last_seq if cid in states else 0
            if cid == self.me or seq <= published:
                for name in names:
                    self.repo.relay.delete(name)

    # -- push --------------------------------------------------------------------------

    def _push(
        self, listing: Listing, states: dict[str, ClientState], last_seq: int, report: RoundReport
    ) -> int:
        options = self.options
        local, leftovers = self._scan()
        for path in leftovers:  # temporary files and folders of a killed run
            remove_temp(path)
        requesters = self._snapshot_requests(states)
        if not requesters and options.checksum_cache and self.state.unchanged(local):
            return last_seq  # every file is as the last round left it: nothing to push
        files = self.state.files
        readable = self._readable()
        changed = []
        for path, info in sorted(local.items()):
            record = files.get(path)
            unchanged = (  # without the checksum cache every file is re-read
                options.checksum_cache
                and record is not None
                and record.matches(info)
                and record.checksum == record.synced
            )
            if not unchanged and readable(path):
                changed.append(path)
        missing = [
            p
            for p, r in files.items()
            if r.synced and p not in local and options.filters.accepts_path(p) and readable(p)
        ]
        deleted = missing if options.propagate_deletions else []
        if not options.propagate_deletions:
            for path in missing:
                self.state.forget(path)
        synced = sum(1 for r in files.values() if r.synced)
        if len(deleted) >= MASS_DELETION_MIN and 2 * len(deleted) > synced and not options.force:
            report.mass_deletion = len(deleted)
            report.errors.append(
                f"{len(deleted)} of {synced} synced files were deleted locally: "
                "not propagated; run 'escale sync --force' if this is intended"
            )
            deleted = []
        if requesters:
            changed = sorted(p for p in local if readable(p))
        budget = None if options.quota is None else max(0, options.quota - listing.usage)
        pusher = Pusher(
            self.repo,
            self.state,
            options.root,
            self.me,
            last_seq + 1,
            page_size=options.page_size,
            pullers=options.pullers,
            hasher=self.hasher(self.repo.checksum),
            budget=budget,
            snapshot=bool(requesters),
        )
        pusher.progress = options.progress
        prefix = f"data/{self.me}/{last_seq + 1:010d}/"
        stored = {
            int(n[len(prefix) :]): size for n, size in listing.sizes.items() if n.startswith(prefix)
        }
        pusher.resume_from(self.state.get_meta("pending_push"), stored)
        result = pusher.run(PushPlan(changed, deleted, requesters, local))
        report.pushed, report.deleted_remote = result.pushed, result.deleted
        report.over_quota, report.bytes_up = result.over_quota, result.bytes
        report.bytes_resumed = result.resumed
        if result.seq is None:
            return last_seq
        report.seq = result.seq
        known = self.state.get_meta("known", {})
        known[f"{self.me}/{result.seq}"] = [options.pullers, requesters]
        self.state.set_meta("known", known)
        if not result.over_quota:  # a snapshot cut short by the quota is sent again
            served = self.state.get_meta("served", {})
            served.update({cid: result.seq for cid in requesters})
            self.state.set_meta("served", served)
        return result.seq

    def _scan(self) -> tuple[dict[str, FileStat], list[str]]:
        """The local files and escale's temporary files, from the prescan if there is one."""
        if self.prescan is not None:
            prescan, self.prescan = self.prescan, None  # used once: later rounds scan anew
            return prescan.result(), prescan.temp_files
        leftovers: list[str] = []
        return scan(self.options.root, self.options.filters, leftovers), leftovers

    def _snapshot_requests(self, states: dict[str, ClientState]) -> list[str]:
        served = self.state.get_meta("served", {})
        return sorted(
            cid
            for cid, s in states.items()
            if cid != self.me
            and self.me in s.want_full
            and served.get(cid, 0) <= s.want_full[self.me]
        )

    def _readable(self) -> Callable[[str], bool]:
        table = self.state.access_table()
        return lambda path: table.get(path, (None, None))[0] is not False

    def _writable(self) -> Callable[[str], bool]:
        table = self.state.access_table()
        return lambda path: table.get(path, (None, None))[1] is not False

    # -- pull --------------------------------------------------------------------------

    def _pull(
        self,
        listing: Listing,
        states: dict[str, ClientState],
        acks: dict[str, int],
        want_full: dict[str, int],
        report: RoundReport,
    ) -> None:
        options = PullOptions(
            self.options.mode,
            self.options.filters,
            self.options.propagate_deletions,
            self.options.restore_mtime,
            self._writable(),
            self.options.checksum_cache,
        )
        names = {cid: s.name for cid, s in states.items()}
        puller = Puller(
            self.repo,
            self.state,
            self.options.root,
            self.me,
            self.options.client,
            options,
            self.hasher,
            names,
        )
        puller.progress = self.options.progress
        known = self.state.get_meta("known", {})
        pending: dict[str, list[int]] = {}
        for cid in sorted((set(listing.updates) | set(states)) - {self.me}):
            ack = acks.get(cid, 0)
            available = [s for s in listing.updates.get(cid, []) if s > ack]
            published = states[cid].last_seq if cid in states else 0
            if not available and published > ack:
                # published after our listing, or collected before we got it: look again
                available = [s for s in self._updates_of(cid) if s > ack]
            if (available and available[0] > ack + 1) or (not available and published > ack):
                want_full[cid] = max([published, *available])  # missed updates: ask for all
            pending[cid] = available
        # Apply in publication order across clients, each client's own updates in sequence: a
        # change built on another client's change must never be applied before it (it would
        # look like a conflict). One manifest per client is held at a time.
        heads: dict[str, Manifest] = {}
        while True:
            for cid, seqs in pending.items():
                while seqs and cid not in heads:
                    seq = seqs.pop(0)
                    try:
                        heads[cid] = self.repo.read_manifest(cid, seq)
                    except RelayNotFoundError:
                        want_full[cid] = max(want_full.get(cid, 0), seq)  # collected meanwhile
                        acks[cid] = seq
                        self.state.set_meta("acks", acks)
                    except IntegrityError as exc:
                        report.errors.append(
                            f"relay object {update_name(cid, seq)} from {names.get(cid, cid[:8])}: "
                            f"{exc}"
                        )
                        seqs.clear()
            if not heads:
                break
            cid = min(heads, key=lambda c: (heads[c].time, c))
            manifest = heads.pop(cid)
            seq = manifest.seq
            try:
                puller.apply(manifest)
            except RelayNotFoundError:
                want_full[cid] = max(want_full.get(cid, 0), seq)  # collected meanwhile
            except IntegrityError as exc:
                report.errors.append(
                    f"relay object {update_name(cid, seq)} from {names.get(cid, cid[:8])}: {exc}"
                )
                pending[cid].clear()
                continue
            else:
                known[f"{cid}/{seq}"] = [manifest.pullers, manifest.snapshot_for]
                if self.me in manifest.snapshot_for:
                    want_full.pop(cid, None)
            acks[cid] = seq
            self.state.commit()
            self.state.set_meta("acks", acks)
        self.state.set_meta("known", known)
        report.waiting = sorted(names.get(cid, cid[:8]) for cid in want_full)
        result = puller.result
        report.pulled, report.deleted_local = result.written, result.deleted
        report.conflicts, report.kept, report.bytes_down = (
            result.conflicts,
            result.kept,
            result.bytes,
        )

    def _updates_of(self, cid: str) -> list[int]:
        """The update numbers of client ``cid``, listed now."""
        names = self.repo.relay.list(f"updates/{cid}")
        return sorted(int(m.group(2)) for n in names if (m := _UPDATE.match(n)))

    # -- garbage collection ------------------------------------------------------------

    def _collect(self, listing: Listing, states: dict[str, ClientState]) -> int:
        """Delete updates that enough pullers acknowledged; return how many objects went."""
        known = self.state.get_meta("known", {})
        deleted = 0
        for cid, seqs in listing.updates.items():
            for seq in seqs:
                info = known.get(f"{cid}/{seq}")
                if info is None:
                    continue
                pullers, snapshot_for = info
                acked = {c for c, s in states.items() if c != cid and s.acks.get(cid, 0) >= seq}
                if len(acked) >= pullers and set(snapshot_for) <= acked:
                    self.repo.relay.delete(update_name(cid, seq))
                    for name in listing.data.get((cid, seq), []):
                        self.repo.relay.delete(name)
                    deleted += 1 + len(listing.data.get((cid, seq), []))
                    known.pop(f"{cid}/{seq}")
        newest = {c: max(seqs) for c, seqs in listing.updates.items() if seqs}

        def still_there(key: str) -> bool:
            cid, _, seq = key.partition("/")
            return key in present or int(seq) > newest.get(cid, 0)  # pushed after the listing

        present = {f"{c}/{s}" for c, seqs in listing.updates.items() for s in seqs}
        self.state.set_meta("known", {k: v for k, v in known.items() if still_there(k)})
        return deleted
