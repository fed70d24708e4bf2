"""The ``escale`` entry points of the installed distributions, remembered between starts.

``importlib.metadata.entry_points()`` reads the metadata of every installed distribution:
importing it and scanning a virtualenv of about a hundred packages costs 25 ms at every
start, more than the rest of an idle ``escale sync``. The answer is kept in a small JSON file
in the user cache folder, valid while nothing on ``sys.path`` changed: the key is the
interpreter, each ``sys.path`` entry and its modification time. Installing, upgrading or
removing a distribution creates or deletes a ``*.dist-info`` folder in its ``site-packages``,
which changes that folder's time, so the next start scans again.

The cache is only ever a shortcut: a missing, unreadable, corrupt or foreign file means a scan,
and a cache folder that cannot be written means no cache. It holds plugin names and module
paths, no secret.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

#: Bumped when the file's layout changes.
CACHE_FORMAT = 1


@dataclass(frozen=True)
class PluginEntry:
    """One entry point: ``name = value`` (``module`` or ``module:attr``) of a distribution."""

    name: str
    value: str
    dist: Optional[str]
    version: str

    def load(self) -> object:
        """Import the module and fetch the attribute, as ``EntryPoint.load`` does."""
        target = self.value.split("[", 1)[0].strip()  # extras are not escale's business
        module_name, _, attribute = target.partition(":")
        loaded: object = importlib.import_module(module_name.strip())
        for part in attribute.strip().split(".") if attribute.strip() else []:
            loaded = getattr(loaded, part)
        return loaded


def scan(group: str) -> list[PluginEntry]:
    """Read every installed distribution's entry points of ``group`` (the slow path)."""
    from importlib.metadata import entry_points

    found = []
    for ep in entry_points(group=group):
        dist = ep.dist
        name = dist.metadata["Name"] if dist is not None else None
        version = dist.version if dist is not None else "unknown"
        found.append(PluginEntry(ep.name, ep.value, name, version))
    return found


def cache_folder() -> Path:
    """``$ESCALE_CACHE_DIR``, else ``$XDG_CACHE_HOME/escale``, else ``~/.cache/escale``."""
    explicit = os.environ.get("ESCALE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "escale"


#: A folder changed less than this long ago may change again within the same timestamp tick
#: (file times advance by the kernel's coarse clock), so its listing is not cached ("racy
#: git" in git's words).
RACY_SECONDS = 2.0


def path_key(group: str) -> tuple[str, int]:
    """What the scan's answer depends on (the interpreter, ``sys.path`` and its folders'
    times) as a digest, and the newest of those times in nanoseconds."""
    parts, newest = [str(CACHE_FORMAT), group, sys.executable], 0
    for entry in sys.path:
        try:
            stamp = os.stat(entry or ".").st_mtime_ns
        except OSError:
            stamp = -1
        newest = max(newest, stamp)
        parts.append(f"{entry}\0{stamp}")
    digest = hashlib.sha256("\n".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
    return digest, newest


def _cache_file(group: str) -> Path:
    prefix = hashlib.sha256(sys.prefix.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return cache_folder() / f"entry-points-{group}-{prefix}.json"


def _read(path: Path, key: str) -> Optional[list[PluginEntry]]:
    try:
        document = json.loads(path.read_bytes())
        if document.get("key") != key:
            return None
        return [PluginEntry(**item) for item in document["entries"]]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None  # missing, corrupt or of another layout: scan again


def _write(path: Path, key: str, entries: list[PluginEntry]) -> None:
    document = {"key": key, "entries": [asdict(entry) for entry in entries]}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=".entry-points-", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(document, out)
            os.replace(temp, path)  # readers see the old file or the new one, never half
        except BaseException:
            os.unlink(temp)
            raise
    except OSError:
        pass  # no cache folder to write: every start scans, as without a cache


def entry_points_of(group: str) -> list[PluginEntry]:
    """The entry points of ``group``, from the cache when ``sys.path`` did not change."""
    (key, newest), path = path_key(group), _cache_file(group)
    cached = _read(path, key)
    if cached is not None:
        return cached
    entries = scan(group)
    if time.time_ns() - newest > RACY_SECONDS * 1e9:
        _write(path, key, entries)
    return entries
