"""The ``escale`` entry points of the installed distributions, remembered between starts.

``importlib.metadata.entry_points()`` reads the metadata of every installed distribution:
importing it and scanning a virtualenv of about a hundred packages costs 25 ms at every
start, more than the rest of an idle ``escale sync``. The answer is kept in a small JSON file
in the user cache folder, valid while the installed distributions did not change: the key is
the interpreter, each ``sys.path`` entry and the names and modification times of the
distributions' metadata folders there (``*.dist-info``, ``*.egg-info``). Installing,
upgrading, reinstalling or removing a distribution creates or deletes such a folder, so the
next start scans again.

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
CACHE_FORMAT = 2


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


#: Metadata changed less than this long ago may change again within the same timestamp tick
#: (file times advance by the kernel's coarse clock), so its answer is not cached ("racy
#: git" in git's words).
RACY_SECONDS = 2.0

METADATA_SUFFIXES = (".dist-info", ".egg-info")


def _metadata_stamps(entry: str) -> list[str]:
    """What ``importlib.metadata`` reads in one ``sys.path`` entry, as ``name:mtime`` lines:
    each distribution's metadata folder (a zip file: the file itself). Other files in the
    folder (the current folder that ``python -m`` puts first, say) do not matter."""
    try:
        if not os.path.isdir(entry or "."):
            return [f"{entry}:{os.stat(entry).st_mtime_ns}"] if os.path.exists(entry) else []
        with os.scandir(entry or ".") as items:
            return [
                f"{item.name}:{item.stat(follow_symlinks=False).st_mtime_ns}"
                for item in items
                if item.name.endswith(METADATA_SUFFIXES)
            ]
    except OSError:
        return []


def path_key(group: str) -> tuple[str, int]:
    """What the scan's answer depends on (the interpreter, each ``sys.path`` entry and the
    distributions' metadata folders there, with their times) as a digest, and the newest of
    those times in nanoseconds."""
    parts, newest = [str(CACHE_FORMAT), group, sys.executable], 0
    for entry in sys.path:
        stamps = sorted(_metadata_stamps(entry))
        for stamp in stamps:
            newest = max(newest, int(stamp.rpartition(":")[2]))
        parts.append(f"{entry}\0" + "\0".join(stamps))
    digest = hashlib.sha256("\n".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
    return digest, newest


def _cache_file(group: str) -> Path:
    prefix = hashlib.sha256(sys.prefix.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return cache_folder() / f"entry-points-{group}-{prefix}.json"


#: Answers kept per interpreter: ``python -m escale_core`` puts the current folder first on
#: ``sys.path`` and the ``escale`` script its own folder, so one machine asks a few keys.
KEPT_ANSWERS = 8


def _answers(path: Path) -> dict[str, list[dict[str, object]]]:
    try:
        document = json.loads(path.read_bytes())
        answers = document["answers"]
        return answers if isinstance(answers, dict) else {}
    except (OSError, ValueError, TypeError, KeyError):
        return {}  # missing, corrupt or of another layout: scan again


def _read(path: Path, key: str) -> Optional[list[PluginEntry]]:
    try:
        items = _answers(path).get(key)
        return None if items is None else [PluginEntry(**item) for item in items]  # type: ignore[arg-type]
    except (TypeError, AttributeError):
        return None


def _write(path: Path, key: str, entries: list[PluginEntry]) -> None:
    answers = _answers(path)
    answers.pop(key, None)
    answers[key] = [asdict(entry) for entry in entries]  # the newest last
    document = {"answers": dict(list(answers.items())[-KEPT_ANSWERS:])}
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
