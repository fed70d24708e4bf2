"""One sync round of one section: scan → push → pull → acknowledge → collect garbage.

Every relay object has one writer: a client writes its own updates and its own state; the
only shared act is deleting an update that enough pullers acknowledged, which is idempotent.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from . import collect
from .checksum import Hasher, checksum_factory
from .collect import Listing, update_number
from .errors import (
    ClientRetiredError,
    EscaleError,
    IntegrityError,
    LocalFolderError,
    RelayNotFoundError,
    RepositoryMovedError,
)
from .history import FileRecord, LocalState
from .local import (
    NAME_MAX,
    FileStat,
    Filters,
    remove_temp,
    remove_temp_files,
    shown_name,
    with_ignore,
)
from .manifest import MAX_PATH, ClientState, Manifest, Retirement
from .pull import Puller, PullOptions
from .push import Pusher, PushPlan, PushResult
from .registry import Registry
from .repository import MOVED, Repository, client_name, retired_name, update_name
from .scanner import BackgroundScan, ScanResult
from .versions import VersionPolicy, clean_versions

#: The marker of a synced folder, written at its first round (hidden: never synced).
FOLDER_MARKER = ".escale/folder"

#: How many names of symlinks and unreadable files the state keeps for ``escale status``.
NAMED_MAX = 1000

#: A round that would delete more than half of the synced files (and at least this many)
#: stops and asks for --force.
MASS_DELETION_MIN = 10
#: an unchanged client state is written again after this many seconds, so that its time
#: tells others when the client was last seen
STATE_REFRESH = 3600.0


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
    #: called with a number of bytes as data moves (progress bars); it may raise
    #: :class:`RoundAbandoned` to stop the round between two pieces
    progress: Optional[Callable[[int], None]] = None
    #: called as the round moves on: ``"scanning"``, ``"pushing"``, ``"pulling"``
    phase: Optional[Callable[[str], None]] = None
    #: what is kept of files that pulls replace or delete (``.escale/versions``)
    versions: VersionPolicy = field(default_factory=VersionPolicy)
    #: a tombstone every known client has seen is forgotten once it is this old (seconds):
    #: until then an update older than the deletion that is still on the relay (waiting for
    #: more pullers) cannot bring the file back to a client that joins later
    tombstone_age: float = 30 * 86400
    #: decide everything, change nothing (``escale sync --dry-run``)
    dry_run: bool = False
    #: publish a full update of the whole folder even if no client asked for one
    #: (``escale fix`` re-sends everything after updates were lost)
    full_update: bool = False


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
    #: files changed locally while a pull wanted to replace them: pushed, then pulled again
    deferred: list[str] = field(default_factory=list)
    #: previous versions kept under .escale/versions this round
    versioned: int = 0
    #: symlinks the scan found: never followed nor synced (not an error)
    skipped_symlinks: list[str] = field(default_factory=list)
    #: files and folders (with a trailing ``/``) that cannot be read: errors, not synced
    unreadable: list[str] = field(default_factory=list)
    #: files changed while the push read them: not sent, sent next round (not an error)
    changed_while_read: list[str] = field(default_factory=list)
    #: file bytes sent and received (the files' sizes, as a user counts them)
    bytes_up: int = 0
    bytes_resumed: int = 0
    bytes_down: int = 0
    #: data-object bytes written to and read from the relay (compressed, encrypted)
    wire_up: int = 0
    wire_down: int = 0
    #: the relay's size after the round
    relay_usage: int = 0
    collected: int = 0
    seq: Optional[int] = None
    #: what the user should know but is no error (``pullers`` above the clients that joined)
    notices: list[str] = field(default_factory=list)
    #: how many more clients must join before this client's updates can leave the relay
    clients_missing: int = 0
    #: nothing was changed: the lists say what a round would do
    dry_run: bool = False

    @property
    def in_sync(self) -> bool:
        """No error, nothing waiting for quota, a full update, a retry or --force."""
        return not (
            self.errors or self.over_quota or self.mass_deletion or self.waiting or self.deferred
        )

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


def _report_push(result: PushResult, local: dict[str, FileStat], report: RoundReport) -> None:
    """What a push did, into the round's report (file bytes from the scan)."""
    report.pushed, report.deleted_remote = result.pushed, result.deleted
    report.changed_while_read = result.changed
    report.errors += [unreadable_message(path) for path in result.unreadable]
    report.unreadable += result.unreadable
    report.over_quota, report.wire_up = result.over_quota, result.bytes
    report.bytes_up = sum(local[p].size for p in result.pushed if p in local)
    report.bytes_resumed = result.resumed
    report.seq = result.seq


def pullers_shortfall(pullers: int, others: int, retired: int = 0) -> dict[str, Any]:
    """``clients_missing`` and ``notices`` when ``pullers`` is above the number of other
    clients that ever joined: each update then stays on the relay until more join (a retired
    client no longer counts: see :func:`collect.required_pullers`)."""
    pullers = collect.required_pullers(pullers, others, retired)
    if pullers <= others:
        return {"clients_missing": 0, "notices": []}
    fix = f"; set pullers = {others} to free it" if others else ""
    notice = (
        f"pullers = {pullers}, but {others} other client(s) joined this relay: each update "
        f"stays on it until {pullers - others} more join{fix}"
    )
    return {"clients_missing": pullers - others, "notices": [notice]}


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
        #: this round's scan of the folder (none before the push, nor without one)
        self.scanned: Optional[ScanResult] = None
        #: the section's filters with this round's .escaleignore (set by each round)
        self.filters = options.filters
        #: the clients retired from the repository (read by each round)
        self.retired: dict[str, Retirement] = {}

    def _phase(self, name: str) -> None:
        if self.options.phase is not None:
            self.options.phase(name)

    def hasher(self, algorithm: str) -> Callable[[], Hasher]:
        """The checksum factory of ``algorithm``.

        :raises IntegrityError: relay data names an algorithm that is not installed.
        """
        try:
            return checksum_factory(algorithm, self.checksums)
        except EscaleError as exc:
            raise IntegrityError(f"relay data uses checksum '{algorithm}': {exc}") from None

    def run_round(self) -> RoundReport:
        """One round; relay errors propagate after local state is saved.

        A dry run (``options.dry_run``) decides everything and changes nothing: the report
        says what a round would push, pull, delete and keep as conflicts."""
        report = RoundReport(dry_run=self.options.dry_run)
        self.scanned = None
        dry = self.options.dry_run
        root = self.options.root
        self._check_folder()
        # the prescan read .escaleignore when it started: the round applies the same rules
        prescan = self.prescan
        self.filters = prescan.filters if prescan else with_ignore(self.options.filters, root)
        self._check_repository()
        if self.options.mode == "download" and not dry:  # else the push's scan removes them
            remove_temp_files(root)
        # Client states first, then the listing: an update published in between is then in
        # the listing, so its data is never taken for an orphan.
        states = self._client_states(report)
        listing = Listing.read(self.repo.relay.list_sizes(""))
        report.relay_usage = listing.usage
        self._check_moved(listing)
        mine = self._check_retired(listing, states, report)
        # Acks come from the local state only: a client whose state was lost starts afresh
        # (gaps then make it ask for full updates) instead of trusting what it once applied.
        acks: dict[str, int] = self.state.get_meta("acks", {})
        # a copy: the relay's state of this client must stay as read (an unchanged state is
        # not written again, which is decided by comparing with it)
        want_full: dict[str, int] = self.state.get_meta("want_full", dict(mine.want_full))
        for cid in self.retired:  # it will never serve one
            want_full.pop(cid, None)
        last_seq = self._last_seq(listing, states, mine, want_full)
        if not dry:
            collect.remove_orphans(self.repo, self.state, listing, self.me, acks, last_seq + 1)
        try:
            last_seq = self._exchange(listing, states, acks, want_full, last_seq, report)
        finally:
            for cid in self.retired:  # asked after a gap in its updates: it cannot serve it
                want_full.pop(cid, None)
            if not dry:
                states[self.me] = self._publish_state(
                    acks, want_full, last_seq, states.get(self.me)
                )
        if not dry:
            self._tidy(listing, states, report)
        others = len(set(states) - {self.me})
        shortfall = pullers_shortfall(self.options.pullers, others, len(self.retired))
        report.notices += shortfall["notices"]
        report.clients_missing = shortfall["clients_missing"]
        return report

    def _exchange(
        self,
        listing: Listing,
        states: dict[str, ClientState],
        acks: dict[str, int],
        want_full: dict[str, int],
        last_seq: int,
        report: RoundReport,
    ) -> int:
        """Push, then pull (a client whose local state was lost pulls first: its files then
        meet the versions they are, merged, nothing sent again, before anything of them is
        pushed as new); return the last sequence number."""
        rejoin = bool(self.state.get_meta("rejoin")) and self.options.mode != "upload"
        scanned: Optional[ScanResult] = None
        if rejoin:
            # Ask again every client there is now: the request made when the state was found
            # lost named only the clients the relay knew then, and after rounds in upload mode
            # (which never pull) a client that joined since may be the only one still holding
            # what this client published before (its updates collected meanwhile).
            for cid, state in states.items():
                if cid != self.me:
                    want_full.setdefault(cid, state.last_seq)
            self._pull(listing, states, acks, want_full, report, None, rejoin=True)
            self.state.set_meta("rejoin", None)
            self.prescan = None  # taken before that pull: its files would look deleted
        if self.options.mode != "download":
            last_seq, scanned = self._push(listing, states, last_seq, report)
        if self.options.mode != "upload" and not rejoin:
            self._pull(listing, states, acks, want_full, report, scanned)
        return last_seq

    def _tidy(self, listing: Listing, states: dict[str, ClientState], report: RoundReport) -> None:
        """After the exchange: mark the folder, forget settled tombstones, collect what every
        puller has, apply the versions policy, measure the relay and remember the round."""
        self._mark_folder()
        retired = frozenset(self.retired)
        collect.forget_stable_tombstones(
            self.state, listing, states, self.me, self.options.tombstone_age, retired
        )
        report.collected = collect.collect_updates(
            self.repo, self.state, listing, states, self.me, self.options.pullers, retired
        )
        self._clean_versions(report)
        report.relay_usage = Listing.read(self.repo.relay.list_sizes("")).usage  # after it all
        self._save_last_round(report)

    def _save_last_round(self, report: RoundReport) -> None:
        """What ``escale status`` shows of this round: its counts and errors, and the first
        names of what was not synced (a folder full of symlinks must not bloat the state)."""
        named = {
            "symlinks": report.skipped_symlinks[:NAMED_MAX],
            "unreadable": report.unreadable[:NAMED_MAX],
        }
        self.state.set_meta(
            "last_round", {"time": time.time(), **report.counts(), "not_synced": named}
        )

    def _check_folder(self) -> None:
        """A folder synced before must still be there, with its marker: a folder that is
        missing (moved, a disk not mounted) or replaced (an empty mount point) is never
        re-created, and its files are never taken for deleted."""
        root = self.options.root
        if not self.state.get_meta("folder_marked"):
            if self.options.dry_run and not root.is_dir():
                raise LocalFolderError(
                    f"local folder {root} does not exist yet: a dry run creates nothing (the "
                    "first real sync creates it and pulls everything)"
                )
            root.mkdir(parents=True, exist_ok=True)  # a new client: the folder may be new too
            return
        if not root.is_dir():
            raise LocalFolderError(
                f"local folder {root} is missing (moved, or a disk not mounted): nothing was "
                "synced and nothing deleted; mount or restore it, or point 'path' at its new "
                "place"
            )
        if not (root / FOLDER_MARKER).is_file():
            raise LocalFolderError(
                f"local folder {root} has no {FOLDER_MARKER} (a disk not mounted, or another "
                "folder in its place): nothing was synced and nothing deleted; if it is the "
                f"synced folder, create the marker: touch {root / FOLDER_MARKER}"
            )

    def _mark_folder(self) -> None:
        """Write the folder's marker after its first round (``.escale/folder``, like
        Syncthing's ``.stfolder``)."""
        if self.state.get_meta("folder_marked"):
            return
        marker = self.options.root / FOLDER_MARKER
        marker.parent.mkdir(exist_ok=True)
        marker.write_text(
            "This folder is synced by escale. Do not delete this file: without it, escale "
            "stops syncing the folder (it takes the folder for missing or replaced).\n",
            encoding="utf-8",
        )
        self.state.set_meta("folder_marked", True)

    def _check_repository(self) -> None:
        """A section whose relay now holds another repository starts its history afresh."""
        known = self.state.get_meta("repository")
        if known != self.repo.id:
            if known is not None:
                self.state.reset_history()
            self.state.set_meta("repository", self.repo.id)

    def _last_seq(
        self,
        listing: Listing,
        states: dict[str, ClientState],
        mine: ClientState,
        want_full: dict[str, int],
    ) -> int:
        """The highest sequence number this client may have used.

        A fresh local state (lost, or a new client) must never reuse a number that another
        client acknowledged, even if the relay replays an old client state of ours: it takes
        the highest number any object mentions, and at least the current Unix time (numbers
        are otherwise consecutive, so they stay far below it) when the relay knows this
        client at all. Such a client also asks every other client for a full update: what it
        published before lives on only in the others' indexes."""
        seen = [mine.last_seq, *listing.updates.get(self.me, [])]
        for cid, state in states.items():
            if cid != self.me:
                seen += [state.acks.get(self.me, 0), state.want_full.get(self.me, 0)]
        floor = max(seen)
        stored = self.state.get_meta("last_seq")
        if stored is None:
            self.state.set_meta("prev_seq", floor)  # readers behind it ask for a full update
            self.state.set_meta("published_seq", floor)
            # a client the relay has never heard of starts at 1; one it knows (its local
            # state was lost) cannot tell what it published that the relay no longer shows
            known = bool(floor) or self.me in states
            stored = max(floor, int(time.time())) if known else 0
            self.state.set_meta("last_seq", stored)
            self.state.set_meta("rejoin", known)
            self.state.set_meta("fresh_gen", stored if known else None)
            for cid, state in states.items():
                if known and cid != self.me:  # (served once it pushes: not in download mode)
                    want_full.setdefault(cid, state.last_seq)
        return max(int(stored), floor)

    def _publish_state(
        self,
        acks: dict[str, int],
        want_full: dict[str, int],
        last_seq: int,
        published_before: Optional[ClientState],
    ) -> ClientState:
        """Save acknowledgements locally, then publish this client's state, unless the relay
        holds it already (an idle round then writes nothing, and wakes no other daemon)."""
        self.state.save_snapshot(self.scanned)
        self.state.set_meta("acks", acks)
        self.state.set_meta("want_full", want_full)
        self.state.set_meta("last_seq", last_seq)
        # others read the last number actually published (a reserved one may never be)
        published = int(self.state.get_meta("published_seq", last_seq))
        pushes = self.options.mode != "download"
        mine = ClientState(self.options.client, published, acks, want_full, time.time(), pushes)
        if published_before is not None and _same_state(published_before, mine):
            return published_before
        self.repo.write_client(self.me, mine)
        return mine

    def _check_retired(
        self, listing: Listing, states: dict[str, ClientState], report: RoundReport
    ) -> ClientState:
        """Read the retirements (``escale clients forget``), drop the retired clients' states
        (a stale or replayed one), and return this client's state as the relay knows it.

        A retired client whose local state goes on refuses to run: what only it was waiting
        for may be gone (tombstones, updates), so its knowledge is no longer true. With a fresh
        local state it rejoins as a new client: its retirement is removed (its last number
        stays the floor of its next ones).

        :raises ClientRetiredError: this client was retired and its local state is older."""
        self.retired = {}
        for cid in sorted(listing.retired):
            try:
                self.retired[cid] = self.repo.read_retired(cid)
            except (IntegrityError, RelayNotFoundError) as exc:  # then it is not retired
                report.errors.append(f"relay object {retired_name(cid)}: {exc}")
        for cid in self.retired:
            states.pop(cid, None)
        mine = states.get(self.me) or ClientState(self.options.client)
        record = self.retired.pop(self.me, None)
        if record is None:
            return mine
        if self.state.get_meta("last_seq") is not None:
            raise ClientRetiredError(retired_message(record), record)
        if not self.options.dry_run:
            self.repo.relay.delete(retired_name(self.me))
        return ClientState(self.options.client, max(mine.last_seq, record.last_seq))

    def _check_moved(self, listing: Listing) -> None:
        """Stop before anything is written when ``escale migrate`` moved the repository away
        (the note is read only when the listing shows one: no extra request per round).

        :raises RepositoryMovedError: the relay holds a ``moved`` note."""
        if MOVED not in listing.sizes:
            return
        moved = self.repo.read_moved()
        if moved is not None:
            to, when = moved
            raise RepositoryMovedError(f"this repository moved to {to}", to, when)

    def _client_states(self, report: RoundReport) -> dict[str, ClientState]:
        states = {}
        clients = Listing.read(self.repo.relay.list_sizes("clients")).clients
        for cid in sorted(clients):
            try:
                states[cid] = self.repo.read_client(cid)
            except (IntegrityError, RelayNotFoundError) as exc:
                report.errors.append(f"relay object {client_name(cid)}: {exc}")
        return states

    # -- push --------------------------------------------------------------------------

    def _push(
        self, listing: Listing, states: dict[str, ClientState], last_seq: int, report: RoundReport
    ) -> tuple[int, ScanResult]:
        """Push local changes (the whole index for a full update); return the last sequence
        number and what the scan saw."""
        self._phase("scanning")
        scanned = self.scanned = self._scan(report)
        for path in scanned.temp_files if not self.options.dry_run else ():  # of a killed run
            remove_temp(path)
        report.errors += [
            f"local file {shown_name(path)}: its name is not valid UTF-8, so it is not "
            "synced; rename it"
            for path in scanned.unnamed
        ]
        report.errors += [unreadable_message(path) for path in report.unreadable]
        requesters = self._snapshot_requests(states)
        full = bool(requesters) or self.options.full_update
        announce = set(self.state.get_meta("announce", []))
        if (
            not full
            and not announce
            and self.options.checksum_cache
            and self.state.unchanged(scanned)
        ):
            return last_seq, scanned  # every file is as the last round left it: nothing to push
        local = scanned.files
        changed, deleted = self._local_changes(local, full, report)
        if announce:
            readable = self._readable()
            extra = announce.difference(changed)
            changed += sorted(p for p in extra if p in local and readable(p))
        if self.options.dry_run:  # what would be sent: nothing is read, nothing written
            report.pushed, report.deleted_remote = changed, deleted
            report.bytes_up = sum(local[p].size for p in changed if p in local)
            return last_seq, scanned
        plan = PushPlan(changed, deleted, requesters, local, full=full)
        self._phase("pushing")
        result = self._build_update(listing, last_seq, plan, announce)
        _report_push(result, local, report)
        if result.seq is None:
            return last_seq, scanned
        self._published(result, requesters)
        return result.seq, scanned

    def _published(self, result: PushResult, requesters: list[str]) -> None:
        """Remember a published update: the number, its pullers, the full updates served."""
        self.state.set_meta("announce", [])
        self.state.set_meta("prev_seq", None)  # from now on: the previous number
        known = self.state.get_meta("known", {})
        known[f"{self.me}/{result.seq}"] = [self.options.pullers, requesters]
        self.state.set_meta("known", known)
        if not result.over_quota:  # a full update cut short by the quota is sent again
            self.state.set_meta("fresh_gen", None)  # every file it had is published
            served = self.state.get_meta("served", {})
            served.update({cid: result.seq for cid in requesters})
            self.state.set_meta("served", served)

    def _local_changes(
        self, local: dict[str, FileStat], full: bool, report: RoundReport
    ) -> tuple[list[str], list[str]]:
        """(files to read and send, synced files deleted locally), after the mass-deletion
        guard; a full update sends every readable file."""
        options = self.options
        files = self.state.files
        readable = self._readable()
        accepts = self.filters.accepts_path
        unseen = _unseen(report.unreadable)
        if full:
            changed = sorted(p for p in local if readable(p))
        else:
            changed = [
                path
                for path, info in sorted(local.items())
                if readable(path) and not self._settled(files.get(path), info)
            ]
        missing = [
            p
            for p, r in files.items()
            # an ignored file or one the scan could not see is not deleted: it is left alone
            if r.synced and p not in local and accepts(p) and readable(p) and not unseen(p)
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
        return changed, deleted

    def _settled(self, record: Optional[FileRecord], info: FileStat) -> bool:
        """Whether a scanned file is known unchanged since it was synced (without reading it;
        without the checksum cache every file is re-read)."""
        return (
            self.options.checksum_cache
            and record is not None
            and record.matches(info)
            and record.checksum == record.synced
        )

    def _build_update(
        self, listing: Listing, last_seq: int, plan: PushPlan, announce: set[str]
    ) -> PushResult:
        options = self.options
        seq = last_seq + 1
        budget = None if options.quota is None else max(0, options.quota - listing.usage)
        pusher = Pusher(
            self.repo,
            self.state,
            options.root,
            self.me,
            seq,
            page_size=options.page_size,
            pullers=options.pullers,
            hasher=self.hasher(self.repo.checksum),
            budget=budget,
            snapshot=plan.full,
            name=options.client,
            prev=self._prev_seq(last_seq),
        )
        pusher.progress = options.progress
        pusher.announce = announce
        # A client whose local state was lost pushes its files as new, each with its own
        # entry at this update's number in its context: so each has seen every version this
        # client made of its path before, whose generations it no longer knows. A generation
        # of 1 would then rank below a version it has seen, and the total order of conflicts
        # would loop (a deletion concurrent with the new file beats it, the older version
        # beats the deletion, the new file replaces the older version): clients answered each
        # other with full updates for ever. Its clock-seeded number is above any generation a
        # path reaches (one per version), so these files rank like the descendants they are.
        pusher.new_gen = int(self.state.get_meta("fresh_gen") or 1)
        prefix = f"data/{self.me}/{seq:010d}/"
        stored = {
            int(n[len(prefix) :]): size for n, size in listing.sizes.items() if n.startswith(prefix)
        }
        pusher.resume_from(self.state.get_meta("pending_push"), stored)
        return pusher.run(plan)

    def _prev_seq(self, last_seq: int) -> int:
        """What the next update names as its predecessor: the last number this client may
        have published (an upper bound: a reader acknowledged below it asks for a full
        update). A fresh local state names the highest number others know of instead of the
        clock-seeded one, so readers who saw everything do not ask."""
        fresh = self.state.get_meta("prev_seq")
        return last_seq if fresh is None else int(fresh)

    def _scan(self, report: RoundReport) -> ScanResult:
        """The local files, escale's temporary files and the names that cannot be synced,
        from the prescan if there is one (the symlinks and unreadable files also go to
        ``report``)."""
        if self.prescan is not None:
            prescan, self.prescan = self.prescan, None  # used once: later rounds scan anew
            found = prescan.result()
        else:
            found = ScanResult.walked(self.options.root, self.filters)
        report.skipped_symlinks, report.unreadable = found.symlinks, found.unreadable
        return found

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
        scanned: Optional[Mapping[str, FileStat]],
        rejoin: bool = False,
    ) -> None:
        """Apply the others' updates, in publication order across clients (and, for a client
        whose local state was lost, first its own updates still on the relay: what it
        published before)."""
        names = {cid: s.name for cid, s in states.items()}
        puller = self._puller(scanned)
        if rejoin:
            self._replay_own(puller, listing, names, report)
            puller.rejoining = True
        pending = self._pending_updates(listing, states, acks, want_full)
        if pending:
            self._phase("pulling")
        self._apply_in_order(puller, pending, names, acks, want_full, report)
        report.waiting = sorted(  # a client in download mode serves nothing: not waited for
            names.get(cid, cid[:8])
            for cid in want_full
            if cid not in self.retired and (cid not in states or states[cid].pushes)
        )
        result = puller.result
        report.pulled, report.deleted_local = result.written, result.deleted
        report.conflicts, report.kept = result.conflicts, result.kept
        report.bytes_down, report.deferred = result.bytes, result.deferred
        report.wire_down = self.repo.bytes_read
        report.versioned = result.versioned
        if result.copies:  # pushed next round, as they are
            announce = set(self.state.get_meta("announce", [])) | set(result.copies)
            self.state.set_meta("announce", sorted(announce))

    def _replay_own(
        self, puller: Puller, listing: Listing, names: dict[str, str], report: RoundReport
    ) -> None:
        """Apply this client's own updates still on the relay (its local state was lost):
        what it published before, never over a file it has now."""
        puller.own = True
        for seq in listing.updates.get(self.me, []):
            try:
                own = self.repo.read_manifest(self.me, seq)
            except RelayNotFoundError:
                continue
            except IntegrityError as exc:
                report.errors.append(f"relay object {update_name(self.me, seq)}: {exc}")
                continue
            self._apply(puller, own, names, report)
        puller.own = False

    def _apply_in_order(
        self,
        puller: Puller,
        pending: dict[str, list[int]],
        names: dict[str, str],
        acks: dict[str, int],
        want_full: dict[str, int],
        report: RoundReport,
    ) -> None:
        """Apply the pending updates in publication order across clients, each client's in
        sequence. Knowledge (acks) only grows through an unbroken run of a client's updates,
        or a full update; updates after a gap are applied (vectors make that safe) but not
        acknowledged, and the client is asked for a full update."""
        contiguous = {cid: cid not in want_full for cid in pending}
        known = self.state.get_meta("known", {})
        heads: dict[str, Manifest] = {}
        while True:
            self._read_heads(pending, heads, names, want_full, contiguous, report)
            if not heads:
                break
            cid = min(heads, key=lambda c: (heads[c].time, c))
            manifest = heads.pop(cid)
            # (a retired client cannot serve a full update: its updates are read as they are)
            gap = not manifest.full and manifest.prev > acks.get(cid, 0)
            gap = gap and cid not in self.retired
            applied = self._apply(puller, manifest, names, report)
            if gap or applied is None:  # missed updates, or its data is gone meanwhile
                contiguous[cid] = False
                want_full[cid] = max(want_full.get(cid, 0), manifest.seq)
            if not applied:
                if applied is False:
                    pending[cid].clear()  # a later update must not overtake this one
                continue
            known[f"{cid}/{manifest.seq}"] = [manifest.pullers, manifest.snapshot_for]
            if manifest.full:
                contiguous[cid] = True
                want_full.pop(cid, None)
            if contiguous[cid]:
                acks[cid] = manifest.seq
            self.state.set_meta("acks", acks)
        self.state.set_meta("known", known)

    def _puller(self, scanned: Optional[Mapping[str, FileStat]]) -> Puller:
        options = PullOptions(
            self.options.mode,
            self.filters,
            self.options.propagate_deletions,
            self.options.restore_mtime,
            self._writable(),
            self.options.checksum_cache,
            self.options.versions,
        )
        puller = Puller(
            self.repo,
            self.state,
            self.options.root,
            self.me,
            self.options.client,
            options,
            self.hasher,
            scanned,
        )
        puller.progress = self.options.progress
        puller.dry_run = self.options.dry_run
        return puller

    def _pending_updates(
        self,
        listing: Listing,
        states: dict[str, ClientState],
        acks: dict[str, int],
        want_full: dict[str, int],
    ) -> dict[str, list[int]]:
        """Each other client's updates not yet acknowledged; a client whose newest update is
        gone before this one read it is asked for a full update."""
        pending: dict[str, list[int]] = {}
        for cid in sorted((set(listing.updates) | set(states)) - {self.me}):
            ack = acks.get(cid, 0)
            listed = listing.updates.get(cid, [])
            published = states[cid].last_seq if cid in states else 0
            if published > max([ack, *listed]):
                # Its newest update is not listed: published after our listing (look again),
                # or gone (collected once others acknowledged it, lost, withheld). Checking the
                # newest and not only "none listed" matters when older updates are still
                # listed: a full update served to this client and then lost would otherwise
                # never be missed (the server saw it as served) and this client would wait
                # for ever. Raising want_full to that number is a new request, answered once.
                listed = self._updates_of(cid)
                if published > max([ack, *listed]):
                    want_full[cid] = max(want_full.get(cid, 0), published)
            pending[cid] = [s for s in listed if s > ack]
        return pending

    def _read_heads(
        self,
        pending: dict[str, list[int]],
        heads: dict[str, Manifest],
        names: dict[str, str],
        want_full: dict[str, int],
        contiguous: dict[str, bool],
        report: RoundReport,
    ) -> None:
        """Read the next manifest of every client that has none waiting (one per client is
        held at a time)."""
        for cid, seqs in pending.items():
            while seqs and cid not in heads:
                seq = seqs.pop(0)
                try:
                    heads[cid] = self.repo.read_manifest(cid, seq)
                except RelayNotFoundError:  # collected meanwhile: a gap
                    want_full[cid] = max(want_full.get(cid, 0), seq)
                    contiguous[cid] = False
                except IntegrityError as exc:
                    report.errors.append(
                        f"relay object {update_name(cid, seq)} from {names.get(cid, cid[:8])}: "
                        f"{exc}"
                    )
                    seqs.clear()

    def _apply(
        self, puller: Puller, manifest: Manifest, names: dict[str, str], report: RoundReport
    ) -> Optional[bool]:
        """Apply one update; False if it must be tried again (a local change, an error),
        None if its data is gone (collected meanwhile)."""
        cid, seq = manifest.client, manifest.seq
        try:
            done = puller.apply(manifest)
        except RelayNotFoundError:
            return None
        except IntegrityError as exc:
            report.errors.append(
                f"relay object {update_name(cid, seq)} from {names.get(cid, cid[:8])}: {exc}"
            )
            return False
        self.state.commit()
        return done

    def _updates_of(self, cid: str) -> list[int]:
        """The update numbers of client ``cid``, listed now."""
        names = self.repo.relay.list(f"updates/{cid}")
        return sorted(number[1] for n in names if (number := update_number(n)))

    def _clean_versions(self, report: RoundReport) -> None:
        """Apply the versions policy after a round that kept versions, and hourly."""
        last = float(self.state.get_meta("versions_cleaned", 0))
        now = time.time()
        if report.versioned or now - last > 3600:
            clean_versions(self.options.root, self.options.versions, now)
            self.state.set_meta("versions_cleaned", now)


def _same_state(before: ClientState, now: ClientState) -> bool:
    """Whether the relay's copy of a client's state says what ``now`` says, and is recent
    enough to tell others when the client was last seen (within :data:`STATE_REFRESH`)."""
    age = now.time - before.time
    return 0 <= age < STATE_REFRESH and (
        before.name,
        before.last_seq,
        before.acks,
        before.want_full,
        before.pushes,
    ) == (now.name, now.last_seq, now.acks, now.want_full, now.pushes)


def retired_message(record: Retirement, local_state: str = "its local state") -> str:
    """The line a retired client's round stops with (``local_state`` names what to remove)."""
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(record.time))
    return (
        f"this client ({record.name}) was retired from the repository by 'escale clients "
        f"forget' (run by {record.by}) on {when}: nothing was synced; to sync again, remove "
        f"{local_state} and sync: it will rejoin as a new client (its files are then sent as "
        "new versions, and where they differ from the others' both are kept)"
    )


def unreadable_message(path: str) -> str:
    """The error line of a file or folder (``path/``) that cannot be read."""
    kind = "folder" if path.endswith("/") else "file"
    if len(path.encode()) > MAX_PATH - NAME_MAX:  # what the system cannot reach by its path
        return (
            f"local {kind} {shown_name(path.rstrip('/'))[:200]}...: its path is too long for "
            f"this system (more than {MAX_PATH} bytes with the folder's), not synced; shorten it"
        )
    return (
        f"local {kind} {shown_name(path.rstrip('/'))}: permission denied, not synced; "
        "fix its permissions"
    )


def _unseen(unreadable: list[str]) -> Callable[[str], bool]:
    """Whether a path is one the scan could not see (an unreadable file, or inside an
    unreadable folder): its absence from the scan is no deletion."""
    if not unreadable:
        return lambda path: False
    files = {p for p in unreadable if not p.endswith("/")}
    folders = tuple(p for p in unreadable if p.endswith("/"))
    return lambda path: path in files or path.startswith(folders)
