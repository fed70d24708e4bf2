"""Per-file access control of a local folder (the original's ``escale.manager.access``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional, Union

from .errors import UsageError
from .history import LocalState
from .local import Filters, scan
from .state import state_dir, state_file

#: ``mode`` names the original accepted, and what they are now (its code took ``protective``
#: for conservative; the ``preservative`` of its documentation was refused).
ORIGINAL_MODES = {
    "shared": "shared",
    "share": "shared",
    "sharing": "shared",
    "upload": "upload",
    "download": "download",
    "conservative": "conservative",
    "protective": "conservative",
}


def original_mode(mode: Optional[str]) -> str:
    """The mode named ``mode`` (``None``: shared), read as the original did.

    :raises UsageError: an unknown mode; the message names it and the accepted ones.
    """
    if mode is None:
        return "shared"
    found = ORIGINAL_MODES.get(str(mode).strip().lower())
    if found is None:
        raise UsageError(f"unknown mode {mode!r}: expected one of {', '.join(ORIGINAL_MODES)}")
    return found


def get_cache_file_for(section: str) -> Path:
    """The state database of ``section`` in the default state folder."""
    return state_file(section, state_dir())


class Accessor:
    """A single local file, exposing only ``exists()`` and ``delete()``."""

    def __init__(
        self,
        exists: Optional[Callable[[], bool]] = None,
        delete: Optional[Callable[[], None]] = None,
    ) -> None:
        self.exists = exists or (lambda: False)
        self.delete = delete or (lambda: None)


class AccessAttributes:
    """Per-file readability (may upload) and writability (may be overwritten by a download).

    :param location: the section's state database file (:func:`get_cache_file`).
    """

    def __init__(self, location: Union[str, Path, None] = None, dbm_mode: str = "c") -> None:
        path = Path(location) if location else get_cache_file_for("default")
        self.location = path
        self._state = LocalState(path.stem.rsplit("-", 1)[0], path.parent)

    def getReadability(self, resource: str) -> Optional[bool]:
        """``True``, ``False`` or ``None`` (unset)."""
        return self._state.get_access(resource)[0]

    def getWritability(self, resource: str) -> Optional[bool]:
        """``True``, ``False`` or ``None`` (unset)."""
        return self._state.get_access(resource)[1]

    def setReadability(self, resource: str, r: Optional[bool]) -> None:
        """Set (``None`` unsets) the readability."""
        self._state.set_access(resource, r, self.getWritability(resource))

    def setWritability(self, resource: str, w: Optional[bool]) -> None:
        """Set (``None`` unsets) the writability."""
        self._state.set_access(resource, self.getReadability(resource), w)

    def isReadable(self, resource: str, make_explicit: Optional[bool] = None) -> bool:
        """Whether ``resource`` may be uploaded (unset counts as yes)."""
        return self.getReadability(resource) is not False

    def isWritable(self, resource: str, make_explicit: Optional[bool] = None) -> bool:
        """Whether ``resource`` may be written by a download (unset counts as yes)."""
        return self.getWritability(resource) is not False

    def setReadable(self, resource: str) -> None:
        """Allow uploading ``resource``."""
        self.setReadability(resource, True)

    def setNotReadable(self, resource: str) -> None:
        """Forbid uploading ``resource``."""
        self.setReadability(resource, False)

    def setWritable(self, resource: str) -> None:
        """Allow downloads to write ``resource``."""
        self.setWritability(resource, True)

    def setNotWritable(self, resource: str) -> None:
        """Forbid downloads to write ``resource``."""
        self.setWritability(resource, False)

    def unsetReadability(self, resource: str) -> None:
        """Back to the default."""
        self.setReadability(resource, None)

    def unsetWritability(self, resource: str) -> None:
        """Back to the default."""
        self.setWritability(resource, None)

    def table(
        self, resource: Optional[str] = None
    ) -> dict[str, tuple[Optional[bool], Optional[bool]]]:
        """Every explicit attribute (or those of ``resource``)."""
        table = self._state.access_table()
        return {resource: table.get(resource, (None, None))} if resource else table


class AccessController:
    """Access to the files of a local repository (folder), by mode and per-file attributes.

    :param repository: section (repository) name.
    :param path: the local folder.
    :param persistent: the state database file.
    :param mode: ``shared`` (default; also ``share``, ``sharing``), ``upload``, ``download`` or
        ``conservative`` (also ``protective``); another name raises :class:`UsageError`.
    """

    def __init__(
        self,
        repository: str,
        path: Union[str, Path, None] = None,
        persistent: Union[str, Path, None] = None,
        ui_controller: Any = None,
        push_only: bool = False,
        pull_only: bool = False,
        mode: Optional[str] = None,
        create: bool = False,
        unsafe: bool = False,
        verbosity: int = 1,
        **ignored: Any,
    ) -> None:
        if push_only and pull_only:
            raise UsageError("push_only and pull_only are exclusive")
        self.repository = repository
        self.path = Path(path or ".").expanduser()
        self.persistent = Path(persistent) if persistent else get_cache_file_for(repository)
        self.mode = "upload" if push_only else "download" if pull_only else original_mode(mode)
        self.attributes = AccessAttributes(self.persistent)

    def absolute(self, filename: str) -> Path:
        """The absolute path of a relative ``filename``."""
        return self.path / filename

    def listFiles(
        self,
        path: Optional[str] = None,
        basename: Optional[Callable[[str], bool]] = None,
        dirname: Optional[Callable[[str], bool]] = None,
        absolute: bool = False,
    ) -> list[str]:
        """Visible files (names starting with "." are ignored)."""
        files = scan(self.path / (path or ""), Filters([], [], [], [], []))
        chosen = [
            f
            for f in files
            if (basename is None or basename(f.rsplit("/", 1)[-1]))
            and (dirname is None or dirname(f.rpartition("/")[0]))
        ]
        prefix = f"{path.strip('/')}/" if path else ""
        return sorted(str(self.path / (prefix + f)) if absolute else prefix + f for f in chosen)

    def readable(self, files: list[str], unsafe: bool = False) -> list[str]:
        """The files that may be uploaded."""
        if self.mode == "download":
            return []
        return [f for f in files if self.attributes.isReadable(f)]

    def writable(self, filename: str, absolute: bool = True) -> Optional[str]:
        """The local path of ``filename`` if a download may write it, else ``None``."""
        if self.mode == "upload" or not self.attributes.isWritable(filename):
            return None
        exists = (self.path / filename).exists()
        if (
            self.mode == "conservative"
            and exists
            and self.attributes.getWritability(filename) is not True
        ):
            return None
        return str(self.absolute(filename)) if absolute else filename

    @contextlib.contextmanager
    def confirmPull(self, filename: str) -> Iterator[None]:
        """Around a pull: in conservative mode the file becomes writable by later pulls."""
        if self.mode == "conservative":
            self.attributes.setWritable(filename)
        yield

    @contextlib.contextmanager
    def confirmPush(self, filename: str) -> Iterator[None]:
        """Around a push: in conservative mode a pushed local file is protected from pulls."""
        yield
        if self.mode == "conservative":
            self.attributes.setNotWritable(filename)

    def accessor(self, filename: str) -> Accessor:
        """An :class:`Accessor` of ``filename`` (delete refused in upload mode or for ``w-``)."""
        target = self.absolute(filename)

        def delete() -> None:
            if self.mode == "upload" or not self.attributes.isWritable(filename):
                raise PermissionError(f"{filename} may not be deleted")
            target.unlink(missing_ok=True)

        return Accessor(exists=target.exists, delete=delete)

    def getReadability(self, filename: str) -> Optional[bool]:
        """The explicit readability of ``filename``."""
        return self.attributes.getReadability(filename)

    def getWritability(self, filename: str) -> Optional[bool]:
        """The explicit writability of ``filename``."""
        return self.attributes.getWritability(filename)

    def setReadability(self, filename: str, r: Optional[bool]) -> None:
        """Set the readability of ``filename``."""
        self.attributes.setReadability(filename, r)

    def setWritability(self, filename: str, w: Optional[bool]) -> None:
        """Set the writability of ``filename``."""
        self.attributes.setWritability(filename, w)
