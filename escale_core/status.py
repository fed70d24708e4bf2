"""The state of a section, without changing anything: last round, pending work, relay usage."""

from __future__ import annotations

from typing import Any

from .collect import Listing
from .config import Config, SectionConfig
from .engine import pullers_notice
from .errors import EscaleError
from .history import LocalState
from .local import scan
from .plugins import Plugins
from .session import filters_for, open_section_relay, open_section_repository, section_state_dir


def local_pending(section: SectionConfig, state: LocalState) -> tuple[int, int]:
    """(changed or new files, deleted files) not pushed yet, from a stat-only scan."""
    local = scan(section.path, filters_for(section))
    changed = 0
    for path, info in local.items():
        record = state.files.get(path)
        if record is None or not record.matches(info) or record.checksum != record.synced:
            changed += 1
    deleted = sum(1 for p, r in state.files.items() if r.synced and p not in local)
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
        "error": None,
    }
    try:
        relay = open_section_relay(section, plugins)
        try:
            repo = open_section_repository(section, relay, plugins)
            listing = Listing.read(relay.list_sizes(""))
            me = repo.client_id(section.client)
            status["relay_usage"] = listing.usage
            others = len(listing.clients - {me})
            status["clients_missing"] = max(0, section.pullers - others)
            status["notices"] = pullers_notice(section.pullers, others)
            status["pending_down"] = (
                0
                if section.mode == "upload"
                else sum(
                    1
                    for cid, seqs in listing.updates.items()
                    if cid != me
                    for seq in seqs
                    if seq > acks.get(cid, 0)
                )
            )
        finally:
            relay.close()
    except EscaleError as exc:
        if exc.exit_code == 2:
            raise
        status["error"] = str(exc)
    return status
