"""``escale fix``: repair the relay's repository from this client's up-to-date local folder.

In order, each step idempotent (an interrupted fix run again finishes the job):

1. A lost header is published again from the copy this client kept when it joined (created
   only if the relay still has none). A client that never synced has nothing to repair from.
2. ``check`` runs (read-only); updates it found damaged (a manifest or data object that is
   missing, truncated or does not authenticate) are checked again, then deleted: nobody can
   apply them, and a reader that misses them asks their client for a full update.
3. Temporary objects of interrupted writes (``.tmp-*``) are deleted, and orphan data objects
   of updates whose manifests are gone (published, then collected or lost: nothing can read
   them). Data of an update not published yet is never touched.
4. One round, upload only, publishes a **full update** of this client's whole folder: every
   client, and every client that joins later, gets everything from it. It never changes a
   local file: nothing is pulled.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ..engine import RoundReport
from ..errors import UsageError
from ..repository import HEADER, Repository, update_name
from ..session import options_for, run_round
from .check import CheckReport, check_repository, kept_identity, update_problems
from .maintenance import Maintenance


@dataclass
class FixReport:
    """What ``fix`` did: one line each, and the round that re-sent the folder."""

    section: str
    done: list[str] = field(default_factory=list)
    check: Optional[CheckReport] = None
    round: Optional[RoundReport] = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "section": self.section,
            "done": self.done,
            "round": self.round.counts() if self.round else None,
        }


def fix_repository(
    m: Maintenance, read_data: bool = False, progress: Optional[Callable[[int], None]] = None
) -> FixReport:
    """Repair the section's repository (``m`` holds the maintenance lock).

    :param read_data: let the check authenticate every data object (finds flipped bytes).
    :param progress: called with a number of bytes as data moves.
    :raises UsageError: this client never synced (it kept no header, has no folder to send).
    """
    report = FixReport(m.section.name)
    kept, kept_check = kept_identity(m)
    if kept is None:
        raise UsageError(
            f"{m.where()}: this client never synced with the repository there, so it has "
            f"nothing to repair it from: run 'escale fix {m.section.name}' on a client that "
            "synced"
        )
    _republish_header(m, kept, report)
    repo = m.open_repository(kept, kept_check)  # this client's: the passphrase opens it
    checked = check_repository(m, read_data, progress)
    report.check = checked
    _delete_damaged(m, repo, checked, read_data, report)
    _delete_leftovers(m, checked, report)
    _resend(m, progress, report)
    return report


def _republish_header(m: Maintenance, kept: dict[str, Any], report: FixReport) -> None:
    if m.relay.exists(HEADER):
        return
    blob = json.dumps(kept, indent=1).encode()
    if m.relay.create_exclusive(HEADER, blob):
        report.done.append(
            f"republished relay object {HEADER} (repository {kept.get('id')}) from the copy "
            "this client kept"
        )


def _delete_damaged(
    m: Maintenance,
    repo: Repository,
    checked: CheckReport,
    read_data: bool,
    report: FixReport,
) -> None:
    """Delete the updates still damaged when read again: manifest first (no reader then
    looks for its data), then its data objects."""
    for cid, seq in checked.damaged_updates:
        m.keep_alive()
        problems = update_problems(repo, cid, seq, read_data)
        if not problems:
            continue
        m.relay.delete(update_name(cid, seq))
        for name in m.relay.list(f"data/{cid}/{seq:010d}"):
            m.relay.delete(name)
        report.done.append(
            f"deleted damaged update {seq} of client {cid} ({problems[0]}); its readers ask "
            "its client for a full update"
        )


#: A temporary object younger than this may belong to a write going on now (a client's round
#: takes no relay lock, and one object is at most a few MiB): it is left alone.
LEFTOVER_AGE = 600.0


def _delete_leftovers(m: Maintenance, checked: CheckReport, report: FixReport) -> None:
    for name in checked.leftovers:
        m.keep_alive()
        stamp = m.relay.modified(name)
        if stamp is not None and time.time() - stamp < LEFTOVER_AGE:
            report.done.append(
                f"kept relay object {name} (a write may be going on: under an hour old)"
            )
            continue
        m.relay.delete(name)
        report.done.append(
            f"deleted relay object {name} (temporary object of an interrupted write)"
        )
    for name in checked.removable:
        m.keep_alive()
        number = data_number(name)
        # another client's round may have published this update since the check listed the
        # relay (rounds take no relay lock): its manifest there makes the data no orphan
        if number is not None and m.relay.exists(update_name(*number)):
            continue
        m.relay.delete(name)
        report.done.append(f"deleted relay object {name} (orphan data: no manifest names it)")


def data_number(name: str) -> Optional[tuple[str, int]]:
    """``(cid, seq)`` of a data object's name, else ``None``."""
    parts = name.split("/")
    if len(parts) == 4 and parts[0] == "data" and parts[2].isdigit():
        return parts[1], int(parts[2])
    return None


def _resend(m: Maintenance, progress: Optional[Callable[[int], None]], report: FixReport) -> None:
    """One upload-only round that publishes a full update of the whole folder."""
    section = m.section
    if section.mode == "download":
        report.done.append(
            f"not re-sent: [{section.name}] is in download mode (it never publishes); run "
            "'escale fix' on a client that pushes"
        )
        return

    def moved(count: int) -> None:
        m.keep_alive()  # a long push must not let the maintenance lock expire
        if progress is not None:
            progress(count)

    options = options_for(section, progress=moved)
    options.mode, options.full_update = "upload", True  # upload: no local file changes
    result = run_round(section, m.plugins, options, m.state_folder)
    report.round = result
    if result.seq is not None:
        report.done.append(
            f"published full update {result.seq} of this client: {len(result.pushed)} "
            f"file{'' if len(result.pushed) == 1 else 's'} of its folder (every client, and "
            "any that joins, gets them from it)"
        )
    report.done += [f"error: {error}" for error in result.errors]
