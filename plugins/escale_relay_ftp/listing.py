"""Parse ``LIST`` answers (Unix ``ls -l`` and DOS/IIS forms) for servers without ``MLSD``.

Only regular files and folders are returned; symbolic links, devices and ``.``/``..`` are
skipped (a link could point out of the repository, or loop). A line that parses as neither
form is skipped: the server's banner lines ("total 12") are such lines.
"""

from __future__ import annotations

import calendar
import re
import time
from typing import NamedTuple, Optional

_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
MONTHS = {name: number for number, name in enumerate(_MONTH_NAMES, 1)}

# perm links owner [group] size month day (HH:MM | year) name; the name keeps its spaces
_UNIX = re.compile(
    r"^(?P<kind>[-dlbcps])[-rwxsStTl]{9}\S*\s+\d+\s+\S+(?:\s+\S+)?\s+(?P<size>\d+)\s+"
    r"(?P<month>[A-Za-z]{3})\s+(?P<day>\d{1,2})\s+(?:(?P<hour>\d{1,2}):(?P<minute>\d{2})"
    r"|(?P<year>\d{4}))\s(?P<name>.+)$"
)
_DOS = re.compile(
    r"^(?P<month>\d{2})-(?P<day>\d{2})-(?P<year>\d{2}|\d{4})\s+(?P<hour>\d{1,2}):(?P<minute>\d{2})"
    r"\s*(?P<ampm>[AaPp][Mm])?\s+(?P<size><DIR>|\d+)\s+(?P<name>.+)$"
)


class Entry(NamedTuple):
    """One listed file or folder."""

    name: str
    is_dir: bool
    size: int
    modified: Optional[float]  # POSIX seconds (UTC as the server shows it), None if unknown


def parse_list_line(line: str, now: Optional[float] = None) -> Optional[Entry]:
    """The entry of one ``LIST`` line, or ``None`` for a link, a device, ``.``/``..`` or noise."""
    line = line.rstrip("\r\n")
    entry = _unix(line, time.time() if now is None else now) or _dos(line)
    if entry is None or entry.name in (".", "..") or "/" in entry.name:
        return None
    return entry


def _unix(line: str, now: float) -> Optional[Entry]:
    match = _UNIX.match(line)
    if match is None or match["kind"] not in "-d" or match["month"].lower() not in MONTHS:
        return None
    month, day = MONTHS[match["month"].lower()], int(match["day"])
    if match["year"]:
        stamp = _stamp(int(match["year"]), month, day, 0, 0)
    else:  # "Mon DD HH:MM": within the last six months; a date ahead is last year's
        year = time.gmtime(now).tm_year
        stamp = _stamp(year, month, day, int(match["hour"]), int(match["minute"]))
        if stamp is not None and stamp > now + 86400:
            stamp = _stamp(year - 1, month, day, int(match["hour"]), int(match["minute"]))
    return Entry(match["name"], match["kind"] == "d", int(match["size"]), stamp)


def _dos(line: str) -> Optional[Entry]:
    match = _DOS.match(line)
    if match is None:
        return None
    year = int(match["year"])
    year += (2000 if year < 70 else 1900) if year < 100 else 0
    hour = int(match["hour"]) % 12 if match["ampm"] else int(match["hour"])
    if (match["ampm"] or "").lower() == "pm":
        hour += 12
    stamp = _stamp(year, int(match["month"]), int(match["day"]), hour, int(match["minute"]))
    is_dir = match["size"] == "<DIR>"
    return Entry(match["name"], is_dir, 0 if is_dir else int(match["size"]), stamp)


def _stamp(year: int, month: int, day: int, hour: int, minute: int) -> Optional[float]:
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60):
        return None
    try:
        return float(calendar.timegm((year, month, day, hour, minute, 0, 0, 0, 0)))
    except (ValueError, OverflowError):
        return None
