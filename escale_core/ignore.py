"""``.escaleignore``: gitignore patterns in the local root, synced like any file, so every
client leaves the same paths alone (like Syncthing's ``.stignore``).

An ignored path is neither pushed, nor deleted on the relay, nor written or deleted locally by
a pull: ignored files are simply left as they are on every client. The file is read again
each round (a stat-keyed cache makes that one ``stat`` when it did not change).
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from .errors import LocalFolderError

if TYPE_CHECKING:  # pathspec only when a folder has an ignore file: most start without it
    import pathspec

#: The name of the ignore file, in the root of a synced folder (never ignored itself).
IGNORE_FILE = ".escaleignore"


class IgnoreFileError(LocalFolderError):
    """The ``.escaleignore`` file cannot be read or holds an invalid pattern: the section is
    not synced (what it should leave alone is unknown)."""


class IgnoreRules:
    """The compiled patterns of one ``.escaleignore``.

    Paths are relative to the synced folder, with ``/`` separators; a folder is matched with
    a trailing slash, as git does, so ``build/`` ignores the folder ``build`` and everything
    in it (and, as in git, nothing inside an ignored folder can be re-included by ``!``).
    """

    def __init__(self, spec: pathspec.GitIgnoreSpec) -> None:
        self._match = spec.match_file

    def ignores_dir(self, relpath: str) -> bool:
        """Whether folder ``relpath`` (no trailing slash) is ignored."""
        return bool(self._match(relpath + "/"))

    def ignores_file(self, relpath: str) -> bool:
        """Whether file ``relpath`` is ignored (its folders being checked by the caller)."""
        return bool(self._match(relpath))

    def ignores_path(self, relpath: str) -> bool:
        """Whether file ``relpath`` is ignored, itself or through one of its folders."""
        parts = relpath.split("/")
        return any(
            self.ignores_dir("/".join(parts[: i + 1])) for i in range(len(parts) - 1)
        ) or self.ignores_file(relpath)


def parse_ignore(text: str, origin: str) -> Optional[IgnoreRules]:
    """The rules of an ignore file's ``text``; ``None`` if it has no pattern.

    :raises IgnoreFileError: an invalid pattern, named with ``origin`` and its line number.
    """
    import pathspec

    lines = text.splitlines()
    try:
        spec = pathspec.GitIgnoreSpec.from_lines(lines)
    except ValueError:  # find the line: pathspec does not say which one it was
        for number, line in enumerate(lines, 1):
            try:
                pathspec.GitIgnoreSpec.from_lines([line])
            except ValueError:
                raise IgnoreFileError(
                    f"{origin} line {number}: invalid pattern {line!r}; nothing was synced: "
                    "fix or remove that line"
                ) from None
        raise  # pragma: no cover - every pattern alone is valid, together they are not
    if not any(p.include is not None for p in spec.patterns):  # comments and blank lines
        return None
    return IgnoreRules(spec)


_cache: dict[str, tuple[tuple[int, int, int], Optional[IgnoreRules]]] = {}
_cache_lock = threading.Lock()


def load_ignore(root: Path) -> Optional[IgnoreRules]:
    """The rules of ``root/.escaleignore``; ``None`` when there is none (no file, a symlink,
    an empty file or only comments).

    :raises IgnoreFileError: the file cannot be read, is not UTF-8 text, or holds an invalid
        pattern.
    """
    path = os.path.join(root, IGNORE_FILE)
    try:
        info = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _unreadable(path, exc) from None
    if not stat.S_ISREG(info.st_mode) or info.st_size == 0:
        return None  # a symlink is never followed (nor synced)
    key = (info.st_size, info.st_mtime_ns, info.st_ino)
    with _cache_lock:
        cached = _cache.get(path)
    if cached is not None and cached[0] == key:
        return cached[1]
    try:
        with open(path, encoding="utf-8") as source:
            text = source.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise _unreadable(path, exc) from None
    rules = parse_ignore(text, path)
    with _cache_lock:
        _cache[path] = (key, rules)
    return rules


def _unreadable(path: str, exc: Exception) -> IgnoreFileError:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
    return IgnoreFileError(
        f"{path}: cannot be read ({reason.lower()}); nothing was synced: fix the file or its "
        "permissions"
    )
