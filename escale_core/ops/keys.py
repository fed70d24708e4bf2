"""``escale key passwd``: wrap the repository's key with a new passphrase.

The master key stays the same (nothing on the relay is sealed again): only the header's KDF
salt and wrapped key change. The other clients accept the new header once they have the new
passphrase (``docs/protocol.md``, Keys).

Steps, in an order that an interruption at any point and a second run repair:

1. the new passphrase is written beside the current one (``F.new`` next to the passphrase
   file ``F``; for a passphrase set in the configuration, ``.SECTION.passphrase.new`` next to
   the configuration file), mode 0600, atomically;
2. the relay's header is replaced by the re-wrapped one (readers see the old or the new one);
3. the new passphrase takes the place of the old one: ``F.new`` renamed over ``F`` (or the
   configuration's ``passphrase`` key rewritten, then the pending file removed);
4. the local state keeps the new header.

Stopped after 1: the relay still has the old header, which ``F`` opens: the next run writes
``F.new`` again. Stopped after 2: ``F`` no longer opens the header but ``F.new`` does: the next
run finishes step 3 first. Stopped after 3: ``F`` opens the new header. At every point one of
the files holds a passphrase that opens the relay's header.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..config import Config, SectionConfig
from ..config.editing import update_section, write_atomically
from ..errors import EscaleError, FileWriteError, IntegrityError, UsageError
from ..history import LocalState
from ..plugins import Plugins
from ..repository import Repository, rewrapped_header, write_header
from ..session import remember_header
from .maintenance import Maintenance, maintenance


@dataclass
class PasswdResult:
    """What ``escale key passwd`` did."""

    #: where the passphrase now is (a file, or the section's ``passphrase`` key)
    place: str
    #: an interrupted run was finished first
    finished_interrupted: bool = False
    #: the passphrase in force already was the new one: nothing changed
    unchanged: bool = False


def pending_file(config: Config, section: SectionConfig) -> Path:
    """Where the new passphrase waits while the header is replaced (step 1)."""
    if section.passphrase_file is not None:
        return section.passphrase_file.with_name(section.passphrase_file.name + ".new")
    base = config.file.parent if config.file is not None else Path.cwd()
    return base / f".{safe_name(section.name)}.passphrase.new"


def safe_name(name: str) -> str:
    """``name`` with anything but letters, digits, ``.``, ``_`` and ``-`` replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".") or "section"


def read_pending(path: Path) -> Optional[bytes]:
    """The passphrase waiting in ``path`` (first line), or ``None``."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    return lines[0].strip().encode() if lines and lines[0].strip() else None


def check_new_passphrase(passphrase: bytes) -> bytes:
    """A usable new passphrase: one line, not empty, no surrounding spaces (they are stripped
    when a passphrase file is read).

    :raises UsageError: otherwise."""
    text = passphrase.decode("utf-8", "replace")
    if not text.strip() or "\n" in text or "\r" in text or text != text.strip():
        raise UsageError(
            "the new passphrase must be one line, not empty, without leading or trailing spaces"
        )
    return passphrase


def stage(pending: Path, passphrase: bytes) -> None:
    """Step 1: write the new passphrase beside the current one (0600, atomically)."""
    write_atomically(pending, passphrase.decode() + "\n", mode=0o600, config=False)


def install(config: Config, section: SectionConfig, pending: Path, passphrase: bytes) -> None:
    """Step 3: the new passphrase replaces the old one where the section reads it."""
    if section.passphrase_file is not None:
        try:
            os.chmod(pending, 0o600)  # a pending file left by hand must not widen access
            os.replace(pending, section.passphrase_file)
            _fsync_folder(section.passphrase_file.parent)
        except OSError as exc:
            raise FileWriteError(section.passphrase_file, exc) from None
        return
    if config.file is None:
        raise UsageError(f"[{section.name}] has no configuration file to write")
    update_section(config.file, section.name, {"passphrase": passphrase.decode()})
    pending.unlink(missing_ok=True)


def _fsync_folder(folder: Path) -> None:
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def refuse_shared_file(config: Config, section: SectionConfig) -> None:
    """Refuse a passphrase file that other sections read too: changing it would lock them out
    of their own repositories.

    :raises UsageError: another section uses the same file."""
    if section.passphrase_file is None:
        return
    mine = section.passphrase_file.resolve()
    others = [
        name
        for name, other in config.sections.items()
        if name != section.name
        and other.passphrase_file is not None
        and other.passphrase_file.resolve() == mine
    ]
    if others:
        raise UsageError(
            f"[{section.name}] passphrase file {section.passphrase_file} is also the one of "
            f"[{'], ['.join(others)}]: give [{section.name}] a copy of its own "
            "(passphrase_file), then run 'escale key passwd' again"
        )


def change_passphrase(
    config: Config,
    section: SectionConfig,
    plugins: Plugins,
    new: bytes,
    *,
    directory: Optional[Path] = None,
) -> PasswdResult:
    """Wrap the repository's key of ``section`` with passphrase ``new`` (see the module).

    :raises UsageError: a ``plain`` section, a shared passphrase file, a bad passphrase.
    :raises EscaleError: the relay or the local state refused something; nothing is lost.
    """
    check_new_passphrase(new)
    if section.encryption == "plain":
        raise UsageError(f"[{section.name}] is not encrypted (plain): there is no passphrase")
    refuse_shared_file(config, section)
    pending = pending_file(config, section)
    command = f"key passwd {section.name}"
    with maintenance(config, section, plugins, command, directory=directory) as m:
        state = m.local_state()
        try:
            repo, finished = open_current(m, state, pending)
            section = m.section
            result = PasswdResult(_place(section), finished_interrupted=finished)
            if _current_passphrase(section) == new:
                # the section's passphrase opens the header: a pending one is stale
                pending.unlink(missing_ok=True)
                result.unchanged = True
                remember_header(state, repo)
                return result
            header = rewrapped_header(repo.header, repo.sealer.master, new)
            stage(pending, new)
            try:
                write_header(m.relay, header)
            except EscaleError as exc:
                raise type(exc)(f"{m.where()}: {exc}") from exc
            install(config, section, pending, new)
            remember_header(state, dataclasses.replace(repo, header=header))
            return result
        finally:
            state.close()


def open_current(m: Maintenance, state: LocalState, pending: Path) -> tuple[Repository, bool]:
    """The repository opened with the section's passphrase; or, when an interrupted run had
    replaced the header already (step 2 done, step 3 not), with the pending passphrase, whose
    step 3 is then finished here (``True``)."""
    kept, check = state.get_meta("header"), state.get_meta("key check")
    try:
        return m.open_repository(kept, check), False
    except IntegrityError as exc:
        waiting = read_pending(pending)
        if waiting is None:
            raise
        first = exc
    pending_section = dataclasses.replace(m.section, passphrase=waiting.decode())
    try:
        repo = dataclasses.replace(m, section=pending_section).open_repository(kept, check)
    except IntegrityError:
        raise type(first)(
            f"{first} (the passphrase waiting in {pending}, from an interrupted "
            "'escale key passwd', does not open it either): nothing was changed"
        ) from None
    install(m.config, m.section, pending, waiting)
    m.section = _with_passphrase(m.section, waiting)
    return repo, True


def _with_passphrase(section: SectionConfig, passphrase: bytes) -> SectionConfig:
    """The section as it reads now that its passphrase is ``passphrase``."""
    if section.passphrase_file is not None:
        return section
    return dataclasses.replace(section, passphrase=passphrase.decode())


def _current_passphrase(section: SectionConfig) -> bytes:
    return section.read_passphrase()


def _place(section: SectionConfig) -> str:
    if section.passphrase_file is not None:
        return str(section.passphrase_file)
    return f"the passphrase key of [{section.name}] in {section.file}"
