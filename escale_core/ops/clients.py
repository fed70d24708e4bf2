"""``escale clients list`` and ``escale clients forget``: who shares a repository, what each
client still has to acknowledge, and retiring for good a client that will never come back.

Listing only reads the relay (client states, retirement records, one listing) and this
client's local state: it takes no lock, so it works while a daemon syncs and while another
client runs an operation. What it shows is one moment of a repository that changes under it,
as ``escale status`` does.

Forgetting writes ``retired/<cid>`` (sealed like a client state, under its own context), then
deletes the client's state ``clients/<cid>``, under the maintenance lock. Every client's round
then stops waiting for it (``docs/protocol.md``, "Retired clients"); its own updates stay until
the others acknowledged them. Both steps are idempotent: an interrupted ``forget`` is run again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

from ..collect import Listing, collectable
from ..config import Config, SectionConfig
from ..errors import EscaleError, IntegrityError, RelayNotFoundError, UsageError
from ..history import LocalState
from ..manifest import ClientState, Retirement
from ..plugins import Plugins
from ..repository import Repository, client_name, retired_name, update_name
from ..session import open_section_relay, open_section_repository, section_state_dir
from ..state import state_file
from .maintenance import maintenance


@dataclass
class ClientInfo:
    """One client of a repository, as ``escale clients list`` shows it."""

    cid: str
    name: str
    #: the client running the command
    me: bool = False
    #: its retirement record, if it was retired
    retired: Optional[Retirement] = None
    #: when it last wrote its state (an idle client rewrites it hourly)
    last_seen: Optional[float] = None
    #: whether it publishes updates (``None``: its state is not readable)
    pushes: Optional[bool] = None
    last_seq: int = 0
    #: its updates still on the relay, and their bytes (manifests and data objects)
    updates: int = 0
    bytes: int = 0
    #: for each other client (by name), its updates on the relay this one has not acknowledged
    pending: dict[str, list[int]] = field(default_factory=dict)
    #: updates (and bytes) that wait for this client's acknowledgement only
    holds: int = 0
    holds_bytes: int = 0
    #: the clients it asked for a full update (by name)
    want_full: list[str] = field(default_factory=list)
    #: why its state could not be read
    error: Optional[str] = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        retired = None
        if self.retired is not None:
            retired = {"time": self.retired.time, "by": self.retired.by}
        return {
            "name": self.name,
            "id": self.cid,
            "me": self.me,
            "retired": retired,
            "last_seen": self.last_seen,
            "mode": None if self.pushes is None else ("pushes" if self.pushes else "download-only"),
            "last_seq": self.last_seq,
            "updates": self.updates,
            "bytes": self.bytes,
            "pending": self.pending,
            "holds": {"updates": self.holds, "bytes": self.holds_bytes},
            "want_full": self.want_full,
            "error": self.error,
        }


@dataclass
class RepositoryView:
    """One reading of a repository: its listing, readable client states and retirements."""

    repo: Repository
    listing: Listing
    states: dict[str, ClientState]
    retired: dict[str, Retirement]
    #: relay objects that could not be read, with why
    errors: dict[str, str]

    @classmethod
    def read(cls, repo: Repository) -> RepositoryView:
        """List the relay, then read every retirement and every state of a client not retired."""
        listing = Listing.read(repo.relay.list_sizes(""))
        view = cls(repo, listing, {}, {}, {})
        for cid in sorted(listing.retired):
            try:
                view.retired[cid] = repo.read_retired(cid)
            except (IntegrityError, RelayNotFoundError) as exc:
                view.errors[cid] = f"relay object {retired_name(cid)}: {exc}"
        for cid in sorted(listing.clients - set(view.retired)):
            try:
                view.states[cid] = repo.read_client(cid)
            except (IntegrityError, RelayNotFoundError) as exc:
                view.errors[cid] = f"relay object {client_name(cid)}: {exc}"
        return view

    def clients(self) -> list[str]:
        """Every client id the relay mentions."""
        listing = self.listing
        return sorted(listing.clients | listing.retired | set(listing.updates))

    def name(self, cid: str) -> str:
        """The name of client ``cid`` (its id's start when no readable object names it)."""
        if cid in self.states:
            return self.states[cid].name
        if cid in self.retired:
            return self.retired[cid].name
        return f"?{cid[:8]}"

    def update_bytes(self, cid: str, seq: int) -> int:
        """The stored bytes of one update: its manifest and data objects."""
        sizes = self.listing.sizes
        data = self.listing.data.get((cid, seq), [])
        return sizes.get(update_name(cid, seq), 0) + sum(sizes.get(n, 0) for n in data)


def describe(view: RepositoryView, me: str, known: dict[str, list[Any]]) -> list[ClientInfo]:
    """Every client of ``view``; ``known`` is this client's ``[pullers, snapshot_for]`` of
    the updates it read (what the others wait for is only known of those)."""
    infos = []
    for cid in view.clients():
        info = ClientInfo(cid, view.name(cid), me=cid == me, retired=view.retired.get(cid))
        info.error = view.errors.get(cid)
        seqs = view.listing.updates.get(cid, [])
        info.updates = len(seqs)
        info.bytes = sum(view.update_bytes(cid, s) for s in seqs)
        state = view.states.get(cid)
        if state is not None:
            info.last_seen, info.pushes, info.last_seq = state.time, state.pushes, state.last_seq
            info.want_full = sorted(view.name(c) for c in state.want_full)
            info.pending = _pending(view, cid, state)
            info.holds, info.holds_bytes = _holds(view, cid, known)
        elif info.retired is not None:
            info.last_seq = info.retired.last_seq
        infos.append(info)
    return sorted(infos, key=lambda i: (i.name, i.cid))


def _pending(view: RepositoryView, cid: str, state: ClientState) -> dict[str, list[int]]:
    """The updates of the others on the relay that ``cid`` has not acknowledged."""
    pending = {}
    for other, seqs in sorted(view.listing.updates.items()):
        missing = [s for s in seqs if other != cid and s > state.acks.get(other, 0)]
        if missing:
            pending[view.name(other)] = missing
    return pending


def _holds(view: RepositoryView, cid: str, known: dict[str, list[Any]]) -> tuple[int, int]:
    """How many updates (and bytes) would be collected if ``cid`` acknowledged them."""
    retired = frozenset(view.retired)
    count = size = 0
    for other, seqs in view.listing.updates.items():
        for seq in seqs:
            info = known.get(f"{other}/{seq}")
            if other == cid or info is None or seq <= view.states[cid].acks.get(other, 0):
                continue
            if collectable(other, seq, info, view.states, retired):
                continue  # goes at the next round anyway
            acked = ClientState(view.states[cid].name, acks={other: seq})
            if collectable(other, seq, info, {**view.states, cid: acked}, retired):
                count, size = count + 1, size + view.update_bytes(other, seq)
    return count, size


def _local_meta(config: Config, section: SectionConfig) -> dict[str, Any]:
    """The header this client joined with and what it knows of the updates it read (nothing
    for a client that never synced: no local state is created)."""
    folder = section_state_dir(config)
    if not state_file(section.name, folder).exists():
        return {}
    state = LocalState(section.name, folder)
    try:
        return {
            "header": state.get_meta("header"),
            "key check": state.get_meta("key check"),
            "known": state.get_meta("known", {}),
        }
    finally:
        state.close()


def list_clients(config: Config, section: SectionConfig, plugins: Plugins) -> list[ClientInfo]:
    """Every client of the section's repository (``escale clients list``); read-only, no lock.

    :raises EscaleError: the relay or the repository cannot be opened.
    """
    meta = _local_meta(config, section)
    relay = open_section_relay(section, plugins)
    try:
        repo = open_section_repository(
            section,
            relay,
            plugins,
            kept=meta.get("header"),
            create=False,
            kept_key_check=meta.get("key check"),
        )
        try:
            view = RepositoryView.read(repo)
        except EscaleError as exc:
            raise type(exc)(f"[{section.name}] relay {section.address.display()}: {exc}") from exc
        return describe(view, repo.client_id(section.client), meta.get("known", {}))
    finally:
        relay.close()


@dataclass
class ForgetPlan:
    """What ``escale clients forget`` is about to do (shown before asking)."""

    info: ClientInfo
    record: Retirement
    #: it was retired before: only its leftover state (if any) is deleted
    already: bool = False


def plan_forget(
    view: RepositoryView, section: SectionConfig, name: str, known: dict[str, list[Any]]
) -> ForgetPlan:
    """Check that ``name`` may be forgotten by this client and say what that does (``known``:
    what this client read of the updates, see :func:`describe`).

    :raises UsageError: ``name`` is this client, or no client of the repository.
    """
    repo, me = view.repo, view.repo.client_id(section.client)
    cid = repo.client_id(name)
    if cid == me:
        raise UsageError(
            f"[{section.name}] '{name}' is this client: a client cannot forget itself (run "
            "'escale clients forget' from another client of the repository)"
        )
    infos = {i.cid: i for i in describe(view, me, known)}
    if cid not in infos:
        names = ", ".join(sorted(i.name for i in infos.values() if i.retired is None))
        raise UsageError(
            f"[{section.name}] no client named '{name}' in the repository (its clients: "
            f"{names or 'none'}); 'escale clients list {section.name}' shows them"
        )
    if cid in view.retired:
        return ForgetPlan(infos[cid], view.retired[cid], already=True)
    state = view.states.get(cid)
    seqs = view.listing.updates.get(cid, [])
    last_seq = max([state.last_seq if state else 0, *seqs])
    record = Retirement(name, last_seq, time.time(), section.client)
    return ForgetPlan(infos[cid], record)


def forget_client(
    config: Config,
    section: SectionConfig,
    plugins: Plugins,
    name: str,
    confirm: Callable[[ForgetPlan], bool] = lambda plan: True,
) -> Optional[ForgetPlan]:
    """Retire client ``name`` for good (``escale clients forget``), under the maintenance
    lock: write ``retired/<cid>``, then delete its state. Returns the plan carried out, or
    ``None`` when ``confirm`` declined it (nothing was changed).

    :raises UsageError: ``name`` is this client or unknown; a daemon syncs the section.
    """
    with maintenance(config, section, plugins, f"clients forget {section.name} {name}") as m:
        repo = m.open_kept_repository()
        view = RepositoryView.read(repo)
        state = m.local_state()
        try:
            known = state.get_meta("known", {})
        finally:
            state.close()
        plan = plan_forget(view, section, name, known)
        if not plan.already and not confirm(plan):
            return None
        cid = plan.info.cid
        if not plan.already:  # the record first: a crash then leaves a retired client's state
            repo.write_retired(cid, plan.record)
        if cid in view.listing.clients:
            repo.relay.delete(client_name(cid))
        return plan
