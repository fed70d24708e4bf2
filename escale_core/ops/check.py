"""``escale check``: verify a repository on its relay, read-only (restic's ``check``).

Every object name must be one the format defines (``docs/protocol.md``, "Repository layout");
the header must parse, the passphrase unwrap its key, and it must be the header this client
joined; every client state and manifest must authenticate and validate; every data object a
manifest names must be there with a size its envelope can have, and with ``read_data`` every
byte of it must authenticate. Findings come in four kinds: **damage** (exit status 1),
**orphan** data objects, **leftover** temporary objects and **unknown** objects (warnings).
The relay is only read: the checks see it through a :class:`~escale_core.relay.ReadOnlyRelay`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional

from ..aead import AeadCipher
from ..collect import Listing
from ..crypto import HEADER_SIZE, KIND_CHUNK, KIND_PACK, SEGMENT, TAG_SIZE
from ..errors import IntegrityError, RelayNotFoundError
from ..manifest import ClientState, Manifest, ObjectRef
from ..relay import ReadOnlyRelay, Relay
from ..repository import (
    ESCALE_FOLDERS,
    HEADER,
    Repository,
    bounded,
    client_name,
    data_name,
    update_name,
)
from ..session import open_section_repository
from .maintenance import Maintenance

DAMAGE, ORPHAN, LEFTOVER, UNKNOWN = "damage", "orphan", "leftover", "unknown"
#: Names of the format (``docs/protocol.md``); ``locks/`` holds relay locks (DESIGN §2.3).
_NAMES = (
    re.compile(r"^updates/[0-9a-f]{32}/[0-9]{10}$"),
    re.compile(r"^data/[0-9a-f]{32}/[0-9]{10}/[0-9]{6}$"),
    re.compile(r"^clients/[0-9a-f]{32}$"),
    re.compile(r"^retired/[0-9a-f]{32}$"),  # escale clients forget
    re.compile(r"^moved$"),  # escale migrate, in the repository it moved away from
    re.compile(r"^locks/[A-Za-z0-9_.-]+(/[0-9a-f]+)?$"),
)
_DATA_INDEX = re.compile(r"/([0-9]{6})$")
#: the problem of a data object whose bytes were read (``--read-data``) and refused
AUTHENTICATION = "does not authenticate"


@dataclass
class Finding:
    """One thing ``check`` found, about one relay object."""

    kind: str
    name: str
    message: str

    def line(self) -> str:
        """One line for the terminal: a relay's names are the relay's to choose, so control
        characters in them (a newline, a terminal escape) are shown escaped, never sent."""
        line = f"{self.kind}: relay object {self.name}: {self.message}"
        return "".join(c if c.isprintable() else repr(c)[1:-1] for c in line)


@dataclass
class CheckReport:
    """What ``check`` found; :attr:`damaged` decides the exit status."""

    section: str
    read_data: bool = False
    findings: list[Finding] = field(default_factory=list)
    objects: int = 0
    size: int = 0
    clients: int = 0
    updates: int = 0
    data_objects: int = 0
    #: sealed bytes of data objects authenticated (``read_data``)
    data_read: int = 0
    #: the header is missing (``escale fix`` republishes the copy this client kept)
    header_missing: bool = False
    #: temporary objects (``.tmp-*``) of interrupted writes
    leftovers: list[str] = field(default_factory=list)
    #: orphan data objects no client can read any more (``escale fix`` removes them)
    removable: list[str] = field(default_factory=list)
    #: updates ``(cid, seq)`` that cannot be read whole: a damaged manifest or data object
    damaged_updates: list[tuple[str, int]] = field(default_factory=list)

    def add(self, kind: str, name: str, message: str) -> None:
        """Record a finding."""
        self.findings.append(Finding(kind, name, message))

    def of(self, kind: str) -> list[Finding]:
        """The findings of one kind."""
        return [f for f in self.findings if f.kind == kind]

    @property
    def damaged(self) -> bool:
        """Whether anything is damaged (orphans, leftovers and unknown objects are not)."""
        return bool(self.of(DAMAGE))

    def fix_command(self) -> Optional[str]:
        """The ``escale fix`` that repairs what was found (``--read-data`` finds again the
        data objects that do not authenticate); ``None`` when the header is there but cannot
        be used (a wrong passphrase, another repository's header): no fix repairs that."""
        damage = self.of(DAMAGE)
        if any(f.name == HEADER for f in damage) and not self.header_missing:
            return None
        unread = any(AUTHENTICATION in f.message for f in damage)
        return f"escale fix {self.section}" + (" --read-data" if unread else "")

    def summary(self) -> str:
        """The last line: what was checked and what was found."""
        counts = ", ".join(
            f"{len(self.of(kind))} {kind}" for kind in (DAMAGE, ORPHAN, LEFTOVER, UNKNOWN)
        )
        read = f", {self.data_read} bytes of data authenticated" if self.read_data else ""
        fix = self.fix_command()
        verdict = "ok"
        if self.damaged:
            verdict = f"damaged: run '{fix}'" if fix else f"{HEADER} cannot be used (above)"
        checked = ", ".join(
            _count(number, noun)
            for number, noun in (
                (self.clients, "client"),
                (self.updates, "update"),
                (self.data_objects, "data object"),
            )
        )
        return (
            f"[{self.section}] {_count(self.objects, 'object')} ({self.size} bytes): "
            f"{checked}{read}; {counts}: {verdict}"
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        out = asdict(self)
        out["damaged"] = self.damaged
        out["damaged_updates"] = [f"{cid}/{seq}" for cid, seq in self.damaged_updates]
        return out


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def check_repository(
    m: Maintenance, read_data: bool = False, progress: Optional[Callable[[int], None]] = None
) -> CheckReport:
    """Check the section's repository (``m`` holds the maintenance lock); nothing is written.

    :param read_data: authenticate every byte of every data object (streamed: one 64 KiB
        segment at a time in memory).
    :param progress: called with a number of bytes as data objects are read.
    """
    relay = ReadOnlyRelay(m.relay)
    report = CheckReport(m.section.name, read_data=read_data)
    sizes = relay.list_sizes("")
    report.objects, report.size = len(sizes), sum(sizes.values())
    _check_names(relay, sizes, report)
    repo = _open(m, relay, sizes, report)
    if repo is None:
        return report
    listing = Listing.read(sizes)
    states = _check_clients(m, repo, listing, report)
    manifests = _check_manifests(m, repo, listing, report)
    _check_agreement(listing, states, manifests, report)
    _check_data(m, repo, listing, manifests, report, progress)
    _check_orphans(listing, states, manifests, report)
    return report


def _check_names(relay: Relay, sizes: dict[str, int], report: CheckReport) -> None:
    for name in relay.temp_objects(""):
        report.leftovers.append(name)
        report.add(
            LEFTOVER,
            name,
            "temporary object of an interrupted write (or of one going on now); "
            f"'escale fix {report.section}' removes it",
        )
    for name in sizes:
        if name != HEADER and not any(p.match(name) for p in _NAMES):
            report.add(
                UNKNOWN,
                name,
                "not an object of the escale format (another program's file?): escale "
                "ignores it; remove it if nothing else needs it",
            )


def kept_identity(m: Maintenance) -> tuple[Optional[dict[str, Any]], Optional[str]]:
    """The header this client syncs with and the fingerprint of its key (``None``: it never
    synced; a header re-wrapped by ``escale key passwd`` is accepted for the same key)."""
    return m.kept_identity()


def _open(
    m: Maintenance, relay: Relay, sizes: dict[str, int], report: CheckReport
) -> Optional[Repository]:
    """The repository, or ``None`` after recording why its header cannot be used."""
    kept, kept_check = kept_identity(m)
    if (
        HEADER not in sizes
        and kept is None
        and not any(n.startswith(ESCALE_FOLDERS) for n in sizes)
    ):
        # no repository (an empty folder, another program's files): opening says which
        open_section_repository(m.section, relay, m.plugins, create=False)
    if HEADER not in sizes:
        report.header_missing = True
        how = (
            f"run 'escale fix {report.section}' (this client kept a copy of it)"
            if kept is not None
            else "put back its escale.json, or run 'escale fix' on a client that synced"
        )
        report.add(DAMAGE, HEADER, f"missing: no client can sync; {how}")
        return None
    try:
        return open_section_repository(
            m.section, relay, m.plugins, kept=kept, create=False, kept_key_check=kept_check
        )
    except (IntegrityError, RelayNotFoundError) as exc:
        # the cause: the error without the section's prefix, which the report's lines carry
        why = str(exc.__cause__ or exc).removeprefix(f"relay object {HEADER}: ")
        report.add(DAMAGE, HEADER, why)
        return None


def _check_clients(
    m: Maintenance, repo: Repository, listing: Listing, report: CheckReport
) -> dict[str, ClientState]:
    states = {}
    report.clients = len(listing.clients)
    for cid in sorted(listing.clients):
        m.keep_alive()
        try:
            states[cid] = repo.read_client(cid)
        except (IntegrityError, RelayNotFoundError) as exc:
            report.add(
                DAMAGE,
                client_name(cid),
                f"unreadable client state ({exc}); its client writes it again at its next "
                f"round ('escale fix {report.section}' there)",
            )
    return states


def _check_manifests(
    m: Maintenance, repo: Repository, listing: Listing, report: CheckReport
) -> dict[tuple[str, int], Manifest]:
    manifests = {}
    for cid, seqs in sorted(listing.updates.items()):
        for seq in seqs:
            m.keep_alive()
            report.updates += 1
            try:
                manifests[(cid, seq)] = repo.read_manifest(cid, seq)
            except (IntegrityError, RelayNotFoundError) as exc:
                report.damaged_updates.append((cid, seq))
                report.add(
                    DAMAGE,
                    update_name(cid, seq),
                    f"unreadable manifest ({exc}); its update cannot be applied: 'escale fix "
                    f"{report.section}' deletes it (its readers then ask for full updates) and "
                    "re-sends this client's whole folder",
                )
    return manifests


def _check_agreement(
    listing: Listing,
    states: dict[str, ClientState],
    manifests: dict[tuple[str, int], Manifest],
    report: CheckReport,
) -> None:
    """Manifests agree with their place: an update names a predecessor below its own number
    (readers decide gaps by it). Client states are not compared with the updates: a client
    publishes its state after its update, and a round of another client may run meanwhile
    (rounds hold no relay lock), so a state behind its updates is no damage."""
    for (cid, seq), manifest in manifests.items():
        if manifest.prev >= seq:
            report.damaged_updates.append((cid, seq))
            report.add(
                DAMAGE,
                update_name(cid, seq),
                f"names update {manifest.prev} as its predecessor, not below its own number "
                f"{seq}: 'escale fix {report.section}' deletes it",
            )


def _check_data(
    m: Maintenance,
    repo: Repository,
    listing: Listing,
    manifests: dict[tuple[str, int], Manifest],
    report: CheckReport,
    progress: Optional[Callable[[int], None]],
) -> None:
    for (cid, seq), manifest in sorted(manifests.items()):
        broken = False
        for index, ref in enumerate(manifest.objects):
            m.keep_alive()
            report.data_objects += 1
            problem = _data_problem(repo, listing, cid, seq, index, ref, report, progress)
            if problem:
                broken = True
                fix = f"escale fix {report.section}" + (
                    " --read-data" if problem.startswith(AUTHENTICATION) else ""
                )
                report.add(
                    DAMAGE,
                    data_name(cid, seq, index),
                    f"{problem}; update {seq} of this client cannot be applied: '{fix}' "
                    "deletes it (its readers then ask for full updates)",
                )
        if broken and (cid, seq) not in report.damaged_updates:
            report.damaged_updates.append((cid, seq))


def _data_problem(
    repo: Repository,
    listing: Listing,
    cid: str,
    seq: int,
    index: int,
    ref: ObjectRef,
    report: CheckReport,
    progress: Optional[Callable[[int], None]],
) -> str:
    """What is wrong with one data object (``""``: nothing)."""
    name = data_name(cid, seq, index)
    stored = listing.sizes.get(name)
    if stored is None:  # listed again: a listing walks folders one by one while others push
        stored = repo.relay.list_sizes(name.rpartition("/")[0]).get(name)
    if stored is None:
        return "missing (lost, or deleted by another program)"
    low, high = sealed_size_range(repo, ref)
    if not low <= stored <= high:
        allowed = f"{low}" if low == high else f"{low} to {high}"
        return f"{stored} bytes where its manifest makes it {allowed} (truncated or extended)"
    if report.read_data:
        kind = KIND_PACK if ref.kind == "pack" else KIND_CHUNK
        # read no more than the envelope can hold, whatever the relay serves
        sealed = _counted(bounded(repo.relay.read_stream(name), high, "data object"), report)
        context = repo.context("data", cid, seq, index)
        try:
            _drain(repo.sealer.open(kind, context, sealed), progress)
        except (IntegrityError, RelayNotFoundError) as exc:
            return f"{AUTHENTICATION} ({exc})"
    return ""


def _counted(chunks: Iterable[bytes], report: CheckReport) -> Iterator[bytes]:
    for chunk in chunks:
        report.data_read += len(chunk)
        yield chunk


def update_problems(repo: Repository, cid: str, seq: int, read_data: bool) -> list[str]:
    """What is wrong with update ``seq`` of ``cid``, read afresh (``escale fix`` deletes an
    update only if it is still damaged: a listing taken while a client pushed could show a
    manifest without its data objects)."""
    try:
        manifest = repo.read_manifest(cid, seq)
    except RelayNotFoundError:
        return []  # collected meanwhile
    except IntegrityError as exc:
        return [f"{update_name(cid, seq)}: {exc}"]
    if manifest.prev >= seq:
        return [f"{update_name(cid, seq)}: its predecessor {manifest.prev} is not below it"]
    listing = Listing.read(repo.relay.list_sizes(f"data/{cid}/{seq:010d}"))
    report = CheckReport("", read_data=read_data)
    found = []
    for index, ref in enumerate(manifest.objects):
        problem = _data_problem(repo, listing, cid, seq, index, ref, report, None)
        if problem:
            found.append(f"{data_name(cid, seq, index)}: {problem}")
    return found


def _drain(segments: Iterable[bytes], progress: Optional[Callable[[int], None]]) -> None:
    """Read an object to its end, one verified segment at a time (bounded memory)."""
    for segment in segments:
        if progress is not None:
            progress(len(segment))


def sealed_size_range(repo: Repository, ref: ObjectRef) -> tuple[int, int]:
    """The sizes a sealed data object of ``ref`` can have on the relay.

    AEAD ciphers seal in segments of 64 KiB, each with a 16-byte tag: an uncompressed object
    has one exact size; a compressed one stores at most ``ref.size`` bytes (a writer
    compresses only what shrinks). Other ciphers (``fernet``, ``plain``) get loose bounds."""

    def sealed(body: int) -> int:
        return HEADER_SIZE + body + TAG_SIZE * max(1, -(-body // SEGMENT))

    if issubclass(repo.sealer.cipher_class, AeadCipher):
        if ref.compressed:
            return sealed(0), sealed(ref.size)
        return sealed(ref.size), sealed(ref.size)
    if repo.sealer.cipher_class.key_size == 0 and not ref.compressed:  # plain: as is
        return HEADER_SIZE + ref.size, HEADER_SIZE + ref.size
    return HEADER_SIZE + 1, HEADER_SIZE + 2 * ref.size + 4096


def _check_orphans(
    listing: Listing,
    states: dict[str, ClientState],
    manifests: dict[tuple[str, int], Manifest],
    report: CheckReport,
) -> None:
    """Data objects no manifest references: removable when their update was published and is
    gone (nothing can read them), kept when it may still be published (a push going on, an
    interrupted one that its next round resumes, or a manifest the relay withholds)."""
    for (cid, seq), names in sorted(listing.data.items()):
        state = states.get(cid)
        for name in sorted(names):
            if seq in listing.updates.get(cid, []):
                manifest = manifests.get((cid, seq))
                if manifest is None or _index(name) < len(manifest.objects):
                    continue  # named by its manifest (or part of a damaged update)
                why = f"not named by the manifest of update {seq}"
            elif state is not None and seq <= state.last_seq:
                why = (
                    f"data of update {seq}, whose manifest is gone (collected or lost): nothing "
                    "can read it; its client's next round removes it"
                )
            else:
                report.add(
                    ORPHAN,
                    name,
                    f"data of update {seq}, not published yet (a push going on or interrupted, "
                    "or a manifest the relay withholds): kept; its client's next round "
                    "resumes or removes it",
                )
                continue
            report.removable.append(name)
            report.add(ORPHAN, name, f"{why}; 'escale fix {report.section}' removes it")


def _index(name: str) -> int:
    found = _DATA_INDEX.search(name)
    return int(found.group(1)) if found else 0
