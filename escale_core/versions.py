"""Previous versions of local files (DESIGN §11): kept, listed, cleaned and restored.

A file that a pull replaces or deletes is kept in ``<folder>/.escale/versions/``, under its path
with the UTC time it was kept: ``docs/report.txt`` becomes
``.escale/versions/docs/report~20261204-100000.txt`` (``report~20261204-100000-1.txt`` when that
name is taken). The folder is hidden, so the scanner never syncs it. Folders on the way are never
symbolic links: a planted link could otherwise send versions, or deletions, elsewhere.

A :class:`VersionPolicy` says which versions :func:`clean_versions` keeps:

- ``trash``: the newest version of each file, for ``max_age`` (default 30 days);
- ``simple``: the ``keep`` newest versions of each file (and none older than ``max_age`` if set);
- ``staggered``: Syncthing's intervals: one version per 30 s for the first hour, one per hour for
  the first day, one per day for 30 days, one per week up to ``max_age`` (default 365 days);
  within an interval the oldest version is kept;
- ``none``: nothing is kept (and nothing already kept is deleted).
"""

from __future__ import annotations

import calendar
import contextlib
import errno
import itertools
import os
import re
import shutil
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .errors import EscaleError
from .local import READ_BLOCK, TEMP_PREFIX, fit_name, new_id

__all__ = [
    "KINDS",
    "VERSIONS_DIR",
    "StoredVersion",
    "VersionPolicy",
    "clean_versions",
    "keep_version",
    "list_versions",
    "restore_version",
]

VERSIONS_DIR = ".escale/versions"
"""Where versions are kept, relative to the synced local folder."""

KINDS = ("trash", "simple", "staggered", "none")
"""The policy kinds, as written in the configuration (``versions = "..."``)."""

DAY = 86400.0
_DEFAULT_MAX_AGE = {"trash": 30 * DAY, "staggered": 365 * DAY}
#: Syncthing's staggered intervals: (seconds between two kept versions, age up to which it applies)
_STAGGERED = ((30.0, 3600.0), (3600.0, DAY), (DAY, 30 * DAY))
_WEEK = 7 * DAY
_STAMP = "%Y%m%d-%H%M%S"
_TAGGED = re.compile(r"^(?P<stem>.+)~(?P<stamp>[0-9]{8}-[0-9]{6})(?:-(?P<n>[1-9][0-9]*))?$")
#: errno values of a file system that refuses hard links: copy instead
_NO_LINKS = frozenset(
    {errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS}
)


@dataclass(frozen=True)
class VersionPolicy:
    """Which previous versions are kept (the ``versions*`` keys of a section).

    :param kind: ``trash``, ``simple``, ``staggered`` or ``none``.
    :param keep: how many versions of each file ``simple`` keeps (at least 1).
    :param max_age: seconds after which a version is deleted; ``None``: the kind's default
        (30 days for ``trash``, 365 days for ``staggered``, no limit for ``simple``).
    """

    kind: str = "trash"
    keep: int = 5
    max_age: Optional[float] = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown versions policy {self.kind!r}: use one of {KINDS}")
        if self.keep < 1:
            raise ValueError(f"versions_keep must be >= 1, got {self.keep}")
        if self.max_age is not None and not self.max_age > 0:
            raise ValueError(f"versions_max_age must be > 0, got {self.max_age}")

    @property
    def effective_max_age(self) -> Optional[float]:
        """``max_age``, or the kind's default; ``None`` means no limit."""
        return self.max_age if self.max_age is not None else _DEFAULT_MAX_AGE.get(self.kind)

    def doomed(self, times: list[float], now: float) -> list[int]:
        """Indexes into ``times`` (one file's versions, oldest first) that this policy drops."""
        if self.kind == "none":
            return []
        limit = self.effective_max_age
        kept: set[int] = set()
        if self.kind == "trash":
            kept = {len(times) - 1}
        elif self.kind == "simple":
            kept = set(range(max(0, len(times) - self.keep), len(times)))
        else:  # staggered, as Syncthing's versioner: walk from the oldest, keep one per step
            previous: Optional[float] = None
            for index, when in enumerate(times):
                age = now - when
                if limit is not None and age > limit:
                    continue
                step = next((s for s, end in _STAGGERED if age < end), _WEEK)
                if previous is None or previous - age >= step:
                    kept.add(index)
                    previous = age
        return [
            i
            for i, when in enumerate(times)
            if i not in kept or (limit is not None and now - when > limit)
        ]


@dataclass(frozen=True)
class StoredVersion:
    """One kept version.

    :param relpath: the file's path in the synced folder (``/``-separated).
    :param time: when it was kept (Unix seconds, from the name's UTC stamp).
    :param path: the version file.
    :param size: its size in bytes.
    """

    relpath: str
    time: float
    path: Path
    size: int


def keep_version(
    root: Path,
    relpath: str,
    policy: VersionPolicy,
    *,
    move: bool,
    now: Optional[float] = None,
) -> Optional[str]:
    """Keep the current file ``root/relpath`` as a version; return the version's absolute path.

    :param move: ``True``: the file is renamed into the versions folder (the caller deletes it);
        ``False``: it stays, and the version is a hard link to it, or a copy where the file
        system refuses links. The caller then replaces the file (``os.replace``), never writes
        into it: that would change the linked version too.
    :param now: the time written in the name (default: now).
    :returns: ``None`` when ``policy.kind`` is ``"none"``: nothing is done.
    :raises FileNotFoundError: there is no such file.
    :raises EscaleError: the path is invalid, is not a regular file, or a folder on the way is
        a symbolic link or a file.
    """
    if policy.kind == "none":
        return None
    base = Path(os.path.abspath(root))
    parts = _split(relpath)
    source = _folder(base, parts[:-1], create=False) / parts[-1]
    if not stat.S_ISREG(os.lstat(source).st_mode):
        raise EscaleError(f"{source} is not a regular file; only files are kept as versions")
    folder = _folder(base, [*VERSIONS_DIR.split("/"), *parts[:-1]], create=True)
    stem, ext = os.path.splitext(parts[-1])
    stamp = time.strftime(_STAMP, time.gmtime(time.time() if now is None else now))
    names = (fit_name(stem, f"~{stamp}{f'-{n}' if n else ''}", ext) for n in itertools.count())
    for name in names:
        target = folder / name
        try:
            if not move:
                os.link(source, target)  # exclusive: an existing name raises
            elif os.path.lexists(target):
                continue
            else:
                os.rename(source, target)
            return str(target)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in (_NO_LINKS if not move else {errno.EXDEV}):
                raise
        target = _copy_to_free_name(source, folder, itertools.chain([name], names))
        if move:
            os.unlink(source)
        return str(target)
    raise AssertionError("unreachable")  # pragma: no cover


def list_versions(root: Path, relpath: Optional[str] = None) -> list[StoredVersion]:
    """Every kept version, sorted by path then time.

    :param relpath: only the versions of this file, or of the files below this folder.
    """
    base = Path(os.path.abspath(root))
    key = None if relpath is None else relpath.strip("/")
    if not key or key == ".":
        return _sorted(_scan(base, [], recursive=True))
    parts = _split(key)
    key = "/".join(parts)
    found = [f for f in _scan(base, parts[:-1], recursive=False) if f[1].relpath == key]
    return _sorted(itertools.chain(found, _scan(base, parts, recursive=True)))


def clean_versions(root: Path, policy: VersionPolicy, now: Optional[float] = None) -> int:
    """Delete the versions ``policy`` no longer keeps; return how many were deleted.

    Folders left empty below the versions folder are removed. Policy ``none`` deletes nothing:
    the versions kept before it was chosen stay until the user deletes them.
    """
    base = Path(os.path.abspath(root))
    top = _versions_top(base)
    if top is None or policy.kind == "none":
        return 0
    when = time.time() if now is None else now
    deleted = 0
    versions = list_versions(base)
    for _, group in itertools.groupby(versions, key=lambda v: v.relpath):
        mine = list(group)
        for index in policy.doomed([v.time for v in mine], when):
            try:
                os.unlink(mine[index].path)
                deleted += 1
            except FileNotFoundError:
                pass
    for folder, _, _ in os.walk(top, topdown=False):  # symlinked folders are not entered
        if folder != str(top):
            with contextlib.suppress(OSError):  # not empty
                os.rmdir(folder)
    return deleted


def restore_version(
    root: Path,
    relpath: str,
    at: Optional[float] = None,
    policy: VersionPolicy = VersionPolicy(),
    now: Optional[float] = None,
) -> StoredVersion:
    """Copy a kept version back to ``root/relpath``; return the version restored.

    The newest version is restored, or the newest one kept at or before ``at``. A current file
    is first kept itself as a version (also when ``policy`` is ``none``: nothing is lost); the
    copy goes through a temporary file in the same folder (fsync, rename) and gets the version's
    modification time.

    :raises EscaleError: no such version, or the path is invalid or not a file.
    """
    base = Path(os.path.abspath(root))
    parts = _split(relpath)
    key = "/".join(parts)
    found = [
        v
        for _, v in sorted(_scan(base, parts[:-1], recursive=False), key=lambda f: f[0])
        if v.relpath == key and (at is None or v.time <= at)
    ]
    if not found:
        when = "" if at is None else f" kept at or before {_local(at)}"
        raise EscaleError(
            f"no previous version of {key}{when} in {base / VERSIONS_DIR}; "
            "see escale versions list SECTION"
        )
    version = found[-1]
    target = _folder(base, parts[:-1], create=True) / parts[-1]
    try:
        mode = os.lstat(target).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None:
        if not stat.S_ISREG(mode):
            raise EscaleError(f"{target} exists and is not a file; move it away to restore")
        keep = policy if policy.kind != "none" else VersionPolicy("trash")
        keep_version(base, key, keep, move=False, now=now)
    _copy_atomic(version.path, target)
    return version


def _split(relpath: str) -> list[str]:
    """The parts of a relative path, refusing anything that could leave the folder."""
    parts = relpath.split("/")
    if (
        not relpath
        or "\x00" in relpath
        or any(p in ("", ".", "..") for p in parts)
        or parts[0] == VERSIONS_DIR.split("/")[0]
    ):
        raise EscaleError(f"invalid path {relpath!r}: expected a relative path inside the folder")
    return parts


def _folder(base: Path, parts: list[str], *, create: bool) -> Path:
    """``base/parts...``, each an existing real folder (created when ``create``).

    :raises FileNotFoundError: a folder is missing and ``create`` is false.
    :raises EscaleError: a symbolic link or a file is on the way.
    """
    folder = base
    for part in parts:
        folder = folder / part
        try:
            mode = os.lstat(folder).st_mode
        except FileNotFoundError:
            if not create:
                raise
            try:
                os.mkdir(folder)
                continue
            except FileExistsError:
                mode = os.lstat(folder).st_mode
        if stat.S_ISLNK(mode):
            raise EscaleError(f"{folder} is a symbolic link; escale only uses real folders here")
        if not stat.S_ISDIR(mode):
            raise EscaleError(f"{folder} is not a folder; move it away")
    return folder


def _versions_top(base: Path) -> Optional[Path]:
    """The versions folder, or ``None`` when there is none."""
    try:
        return _folder(base, VERSIONS_DIR.split("/"), create=False)
    except FileNotFoundError:
        return None


def _parse(name: str) -> Optional[tuple[str, float, int]]:
    """A version's file name → (the file's name, time, uniqueness number); ``None`` if not one."""
    base, ext = os.path.splitext(name)
    match = _TAGGED.match(base)
    if match is None or os.path.splitext(match["stem"] + ext) != (match["stem"], ext):
        return None
    try:
        when = calendar.timegm(time.strptime(match["stamp"], _STAMP))
    except ValueError:
        return None
    return match["stem"] + ext, float(when), int(match["n"] or 0)


def _scan(
    base: Path, parts: list[str], *, recursive: bool
) -> Iterator[tuple[tuple[str, float, int], StoredVersion]]:
    """The versions in ``VERSIONS_DIR/parts`` (and below it when ``recursive``), with sort keys.

    :raises EscaleError: the versions folder is a symbolic link or a file (a link planted further
        down is skipped: nothing of ours is there).
    """
    top = _versions_top(base)
    if top is None:
        return
    try:
        start = _folder(top, parts, create=False)
    except (FileNotFoundError, EscaleError):
        return
    pending = [(str(start), "/".join(parts))]
    while pending:
        folder, prefix = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if recursive:
                    pending.append((entry.path, f"{prefix}/{entry.name}" if prefix else entry.name))
                continue
            parsed = _parse(entry.name) if entry.is_file(follow_symlinks=False) else None
            if parsed is None:
                continue
            name, when, number = parsed
            relpath = f"{prefix}/{name}" if prefix else name
            size = entry.stat(follow_symlinks=False).st_size
            yield (relpath, when, number), StoredVersion(relpath, when, Path(entry.path), size)


def _sorted(found: Iterator[tuple[tuple[str, float, int], StoredVersion]]) -> list[StoredVersion]:
    return [version for _, version in sorted(found, key=lambda item: item[0])]


def _copy_to_free_name(source: Path, folder: Path, names: Iterator[str]) -> Path:
    """Copy ``source`` (content, mode, times) durably into ``folder`` under the first free name."""
    temp = folder / f"{TEMP_PREFIX}{new_id()}"
    try:
        shutil.copy2(source, temp, follow_symlinks=False)
        with open(temp, "rb") as copy:
            os.fsync(copy.fileno())
        for name in names:
            if not os.path.lexists(folder / name):
                os.rename(temp, folder / name)
                return folder / name
    finally:
        if os.path.lexists(temp):
            os.unlink(temp)
    raise AssertionError("unreachable")  # pragma: no cover


def _copy_atomic(source: Path, target: Path) -> None:
    """Replace ``target`` by a copy of ``source``: temp file, fsync, rename; mtime kept."""
    info = os.stat(source, follow_symlinks=False)
    temp = target.parent / f"{TEMP_PREFIX}{new_id()}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        with open(source, "rb") as src, open(os.open(temp, flags, 0o600), "wb") as dst:
            shutil.copyfileobj(src, dst, READ_BLOCK)
            dst.flush()
            os.chmod(dst.fileno(), stat.S_IMODE(info.st_mode))
            os.fsync(dst.fileno())
        os.utime(temp, ns=(info.st_atime_ns, info.st_mtime_ns))
        os.replace(temp, target)
    except BaseException:
        if os.path.lexists(temp):
            os.unlink(temp)
        raise
    _fsync_folder(target.parent)


def _fsync_folder(path: Path) -> None:
    """Flush a folder's entries to disk (best effort: not every system can)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _local(when: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))
