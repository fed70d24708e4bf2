"""Human-readable summaries of rounds."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the engine only when a round ran: ``human_size`` serves every command
    from ..engine import RoundReport


def human_size(size: float) -> str:
    """``1536`` → ``"1.5 KiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover


def summary(section: str, report: RoundReport) -> str:
    """One line per section and round."""
    push, pull, delete = (
        ("would push", "would pull", "would delete")
        if report.dry_run
        else (
            "pushed",
            "pulled",
            "deleted",
        )
    )
    parts = [
        f"{push} {len(report.pushed)} ({human_size(report.bytes_up)})",
        f"{pull} {len(report.pulled)} ({human_size(report.bytes_down)})",
    ]
    if report.deleted_remote or report.deleted_local:
        parts.append(
            f"{delete} {len(report.deleted_remote)} remote / {len(report.deleted_local)} local"
        )
    if report.conflicts:
        parts.append(f"{len(report.conflicts)} conflict(s) kept as .sync-conflict copies")
    if report.kept:
        parts.append(f"{len(report.kept)} local file(s) kept")
    if report.deferred:
        parts.append(f"{len(report.deferred)} file(s) changed during the pull: next round")
    if report.versioned:
        parts.append(f"{report.versioned} previous version(s) kept in .escale/versions")
    if report.over_quota:
        parts.append(f"{len(report.over_quota)} file(s) wait for quota")
    if report.clients_missing:
        parts.append(
            f"updates stay on the relay until {report.clients_missing} more client(s) join"
        )
    if report.waiting:
        parts.append(f"waiting for a full re-send from {', '.join(report.waiting)}")
    if report.changed_while_read:
        changed = _count(len(report.changed_while_read), "file")
        parts.append(f"{changed} changed while read: sent next round")
    not_synced = not_synced_phrase(len(report.skipped_symlinks), report.unreadable)
    if not_synced:
        parts.append(not_synced)
    state = "in sync" if report.in_sync else "NOT in sync"
    if report.dry_run:
        state = "dry run: nothing was changed"
    return f"{section}: {', '.join(parts)}; relay {human_size(report.relay_usage)}; {state}"


def details(report: RoundReport) -> list[str]:
    """One line per file touched (for -v)."""
    lines = [f"  notice: {n}" for n in report.notices]
    would = "would be " if report.dry_run else ""
    lines += [f"  {would}pushed  {p}" for p in report.pushed]
    lines += [f"  {would}deleted on relay  {p}" for p in report.deleted_remote]
    lines += [f"  {would}pulled  {p}" for p in report.pulled]
    lines += [f"  {would}deleted locally  {p}" for p in report.deleted_local]
    lines += [f"  conflict  {p}" for p in report.conflicts]
    lines += [f"  kept (local changes or access)  {p}" for p in report.kept]
    lines += [f"  changed during the pull, retried next round  {p}" for p in report.deferred]
    lines += [f"  waits for quota  {p}" for p in report.over_quota]
    lines += [f"  changed while read, sent next round  {p}" for p in report.changed_while_read]
    lines += [f"  symlink, not synced  {p}" for p in report.skipped_symlinks]
    lines += [f"  unreadable, not synced  {p}" for p in report.unreadable]
    return lines


def changed_while_read_message(path: str) -> str:
    """The notice of a file that changed while the push read it (not an error)."""
    from ..local import shown_name

    return f"local file {shown_name(path)} changed while it was read; it will be sent next round"


def _count(number: int, noun: str) -> str:
    """``1 file``, ``2 files``."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def not_synced_phrase(symlinks: int, unreadable: list[str]) -> str:
    """``2 symlinks and 1 unreadable file not synced`` (empty when there is none);
    ``unreadable`` lists files, and folders with a trailing ``/``."""
    folders = sum(1 for p in unreadable if p.endswith("/"))
    counts = [
        _count(symlinks, "symlink"),
        _count(len(unreadable) - folders, "unreadable file"),
        _count(folders, "unreadable folder"),
    ]
    shown = [text for text in counts if not text.startswith("0 ")]
    if not shown:
        return ""
    listed = shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} and {shown[-1]}"
    return f"{listed} not synced"
