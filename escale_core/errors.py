"""The one exception tree of escale.

Every error escale reports on purpose derives from :class:`EscaleError`. The command line
turns it into one line on standard error and the exit status in ``exit_code``; any other
exception is a bug and is shown as a traceback only with ``ESCALE_DEBUG=1``.
Backend exceptions (``OSError``, ``botocore`` errors, HTTP errors...) are mapped to
:class:`RelayError` subclasses at the relay edge, never let through.

::

    EscaleError                      exit 1 unless stated
    ├── UsageError                   exit 2: bad command-line use
    │   └── NotImplementedYet        exit 2: a command a later release provides
    ├── ConfigError                  exit 2: the configuration is wrong (names file, section, key)
    ├── PluginError                  exit 2: a plugin is broken or misdeclared
    │   ├── PluginConflictError      exit 2: two plugins claim one name (names both)
    │   └── MissingDependencyError   exit 2: an optional backend is not installed (install hint)
    ├── StateError                   the local state database is unusable
    ├── LocalFolderError             the synced folder is missing, unmounted or replaced
    ├── FileWriteError               a local file cannot be written (exit 2: a configuration)
    ├── RoundAbandoned               a round stopped between two objects on request (stop)
    ├── ClientRetiredError           this client was retired (escale clients forget)
    ├── RelayError                   the relay failed or refused an operation
    │   ├── RelayNotFoundError       an object or the repository is missing
    │   ├── NotARepositoryError      the relay folder holds other files: never written into
    │   ├── RepositoryMovedError     the repository went elsewhere (escale migrate left a note)
    │   ├── RelayAuthError           wrong credentials
    │   └── RelayUnavailableError    connection refused, timeout, 5xx: retried, then reported
    └── IntegrityError               relay data is corrupt, tampered or malicious: nothing written
        ├── UnsupportedFormatError   an object declares a format version this escale cannot read
        └── PassphraseChangedError   the header was re-wrapped (escale key passwd) or tampered
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

__all__ = [
    "ClientRetiredError",
    "ConfigError",
    "EscaleError",
    "FileWriteError",
    "IntegrityError",
    "LocalFolderError",
    "MissingDependencyError",
    "NotARepositoryError",
    "NotImplementedYet",
    "PassphraseChangedError",
    "PluginConflictError",
    "PluginError",
    "RelayAuthError",
    "RelayError",
    "RelayNotFoundError",
    "RelayUnavailableError",
    "RepositoryMovedError",
    "RoundAbandoned",
    "StateError",
    "UnsupportedFormatError",
    "UsageError",
]


class EscaleError(Exception):
    """Base of every error escale reports on purpose."""

    exit_code: int = 1


class UsageError(EscaleError):
    """The command line was used wrongly."""

    exit_code = 2


class NotImplementedYet(UsageError):
    """A command of the command-line contract that this release does not provide yet."""


class ConfigError(EscaleError):
    """The configuration is invalid.

    The message names the file, the section and the key (or the line), says what is
    expected and, where it helps, how to fix it.

    :param problem: what is wrong and what is expected.
    :param file: the configuration file.
    :param section: the section (table) name; ``None`` for global keys.
    :param key: the key as written in the file.
    :param line: the line number, for syntax errors.
    :param hint: how to fix it.
    """

    exit_code = 2

    def __init__(
        self,
        problem: str,
        *,
        file: Optional[Union[str, Path]] = None,
        section: Optional[str] = None,
        key: Optional[str] = None,
        line: Optional[int] = None,
        hint: Optional[str] = None,
    ) -> None:
        self.problem = problem
        self.file = str(file) if file is not None else None
        self.section = section
        self.key = key
        self.line = line
        self.hint = hint
        super().__init__(self.format())

    def format(self) -> str:
        """Render the error as one line."""
        where = []
        if self.file:
            where.append(self.file + (f", line {self.line}" if self.line else ""))
        if self.section is not None and self.key is not None:
            where.append(f"[{self.section}] {self.key}")
        elif self.section is not None:
            where.append(f"[{self.section}]")
        elif self.key is not None:
            where.append(self.key)
        text = ": ".join([*where, self.problem])
        if self.hint:
            text += f"; {self.hint}"
        return text

    def located(
        self,
        *,
        file: Optional[Union[str, Path]] = None,
        section: Optional[str] = None,
        key: Optional[str] = None,
    ) -> ConfigError:
        """Return a copy that also names where the error is, keeping what it already names."""
        return ConfigError(
            self.problem,
            file=self.file or file,
            section=self.section if self.section is not None else section,
            key=self.key if self.key is not None else key,
            line=self.line,
            hint=self.hint,
        )


class RoundAbandoned(EscaleError):
    """A round was asked to stop (``escale stop``) and abandoned the object it was moving.

    Raised from a round's progress callback: what was being written goes (a local temporary
    file, an unpublished relay object), nothing placed or published is half-applied, and the
    next round starts over from there.
    """


class PluginError(EscaleError):
    """A plugin is broken, misdeclared, or registers something invalid."""

    exit_code = 2


class PluginConflictError(PluginError):
    """Two plugins claim the same relay scheme, cipher or checksum name."""


class MissingDependencyError(PluginError):
    """An optional backend is used but its package is not installed."""


class LocalFolderError(EscaleError):
    """The synced local folder is missing, unmounted or replaced: nothing is synced (its files
    must never be taken for deleted)."""


class FileWriteError(EscaleError):
    """A local file cannot be written (read-only or full disk, a path through a file...).

    :param path: the file.
    :param error: the operating system's error (its reason is shown, not a traceback).
    :param config: the file is a configuration file (exit status 2, else 1)."""

    def __init__(self, path: Union[str, Path], error: OSError, *, config: bool = False) -> None:
        reason = error.strerror or str(error)
        failed = Path(str(error.filename or path))
        if failed in Path(path).parents:  # a folder on the way (a temp file beside is not named)
            reason = f"{failed}: {reason}"
        super().__init__(f"cannot write {path}: {reason}")
        self.path, self.reason = str(path), reason
        self.exit_code = 2 if config else 1


class ClientRetiredError(EscaleError):
    """This client was retired from the repository (``escale clients forget``): its rounds
    refuse to run until its local state is removed (it then rejoins as a new client).

    :param record: the retirement record (:class:`escale_core.manifest.Retirement`)."""

    def __init__(self, message: str, record: object = None) -> None:
        super().__init__(message)
        self.record = record


class StateError(EscaleError):
    """The local state database is unusable (newer schema, corrupt file)."""


class RelayError(EscaleError):
    """The relay failed or refused an operation."""


class RelayNotFoundError(RelayError):
    """An object, folder, bucket or repository is missing on the relay."""


class NotARepositoryError(RelayError):
    """The relay folder holds files but no repository header (another program's files, an
    original Escale relay): no repository is created there."""


class RepositoryMovedError(RelayError):
    """The repository was moved to another relay (``escale migrate``): the relay holds a
    ``moved`` note, and nothing is synced with it any more.

    :param destination: where it went (an address without password).
    :param moved_at: when, in Unix seconds."""

    def __init__(self, message: str, destination: str = "", moved_at: float = 0.0) -> None:
        super().__init__(message)
        self.destination, self.moved_at = destination, moved_at


class RelayAuthError(RelayError):
    """The relay refused the credentials."""


class RelayUnavailableError(RelayError):
    """The relay cannot be reached now (refused connection, timeout, server error)."""


class IntegrityError(EscaleError):
    """Relay data is corrupt, tampered with or malicious; it was refused before any local write."""


class UnsupportedFormatError(IntegrityError):
    """A relay object declares a format version this release cannot read."""


class PassphraseChangedError(IntegrityError):
    """The repository's key was re-wrapped with another passphrase (``escale key passwd``)
    and this client's passphrase no longer unwraps it."""
