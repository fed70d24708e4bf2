"""The state of a section, without changing anything: last round, pending work, relay usage."""

from __future__ import annotations

from typing import Any, Optional

from .collect import Listing
from .config import Config, SectionConfig
from .engine import pullers_shortfall
from .errors import EscaleError
from .history import LocalState
from .local import scan, with_ignore
from .plugins import Plugins
from .session import filters_for, open_section_relay, open_section_repository, section_state_dir


def local_pending(section: SectionConfig, state: LocalState) -> tuple[int, int]:
    """(changed or new files, deleted files) not pushed yet, from a stat-only scan (what the
    ``.escaleignore`` ignores or the scan cannot read is not counted as deleted).

    :raises IgnoreFileError: the ``.escaleignore`` cannot be read or is invalid.
    """
    filters = with_ignore(filters_for(section), section.path)
    unreadable: list[str] = []
    local = scan(section.path, filters, unreadable=unreadable)
    changed = 0
    for path, info in local.items():
        record = state.files.get(path)
        if record is None or not record.matches(info) or record.checksum != record.synced:
            changed += 1
    folders = tuple(p for p in unreadable if p.endswith("/"))
    deleted = sum(
        1
        for p, r in state.files.items()
        if r.synced
        and p not in local
        and p not in unreadable
        and not (folders and p.startswith(folders))
        and filters.accepts_path(p)
    )
    return changed, deleted


def section_status(config: Config, section: SectionConfig, plugins: Plugins) -> dict[str, Any]:
    """A JSON-ready description of ``section``; relay problems are reported in ``error``."""
    state = LocalState(section.name, section_state_dir(config))
    try:
        last = state.get_meta("last_round")
        up, deleted = local_pending(section, state) if section.path.is_dir() else (0, 0)
        acks: dict[str, int] = state.get_meta("acks", {})
        conflicts = sorted(p for p in state.files if ".sync-conflict-" in p)
    finally:
        state.close()
    status: dict[str, Any] = {
        "section": section.name,
        "path": str(section.path),
        "relay": section.address.display(),
        "mode": section.mode,
        "last_sync": last.get("time") if last else None,
        "last_in_sync": last.get("in_sync") if last else None,
        "last_errors": last.get("errors", []) if last else [],
        "pending_up": up if section.mode != "download" else 0,
        "pending_deletions": deleted if section.mode != "download" else 0,
        "pending_down": None,
        "relay_usage": None,
        "conflicts": conflicts,
        "clients_missing": None,
        "notices": [],
        **_not_synced(last),
        "error": None,
    }
    try:
        status.update(_relay_status(section, plugins, acks))
    except EscaleError as exc:
        if exc.exit_code == 2:
            raise
        status["error"] = str(exc)
    return status


def _relay_status(section: SectionConfig, plugins: Plugins, acks: dict[str, int]) -> dict[str, Any]:
    """What the relay says: its size, updates this client has not pulled yet, and whether
    ``pullers`` asks for more clients than ever joined."""
    relay = open_section_relay(section, plugins)
    try:
        repo = open_section_repository(section, relay, plugins)
        listing = Listing.read(relay.list_sizes(""))
    finally:
        relay.close()
    me = repo.client_id(section.client)
    # (retirements by name only: status reads no object; a round checks them)
    others = len(listing.clients - listing.retired - {me})
    pending = sum(
        1
        for cid, seqs in listing.updates.items()
        if cid != me
        for seq in seqs
        if seq > acks.get(cid, 0)
    )
    return {
        "relay_usage": listing.usage,
        **pullers_shortfall(section.pullers, others, len(listing.retired - {me})),
        "pending_down": 0 if section.mode == "upload" else pending,
    }


def _not_synced(last: Optional[dict[str, Any]]) -> dict[str, Any]:
    """What the last round did not sync: symlinks (never synced) and unreadable files and
    folders (``path/``): counts, and the first names."""
    last = last or {}
    named = last.get("not_synced", {})
    return {
        "skipped_symlinks": last.get("skipped_symlinks", 0),
        "unreadable": last.get("unreadable", 0),
        "not_synced": {
            "symlinks": named.get("symlinks", []),
            "unreadable": named.get("unreadable", []),
        },
    }
