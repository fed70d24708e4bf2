"""Manifests (one per update) and client states: their JSON form and strict validation.

Manifests are authenticated, but a client holding the key may still be hostile, so every field
is checked before anything is written locally: types, sizes, object references and paths
(:func:`safe_path`).
"""

from __future__ import annotations

import io
import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NoReturn

import zstandard

from .errors import IntegrityError, UnsupportedFormatError
from .ignore import IGNORE_FILE
from .vectors import Vector

MANIFEST_VERSION = 2
CLIENT_VERSION = 2
#: Modification times are refused beyond about 146 years from 1970 either way.
MAX_MTIME_NS = 1 << 62
#: Bounds of what a manifest or client state may hold (``docs/protocol.md``, Limits); beyond
#: them the object is refused before it costs memory. Decompressed manifest bytes:
MAX_MANIFEST = 256 << 20
#: Client-state bytes (not compressed).
MAX_CLIENT_STATE = 16 << 20
#: Files plus tombstones in one update.
MAX_ENTRIES = 10_000_000
#: Data objects in one update, and pieces of one file.
MAX_OBJECTS = 10_000_000
#: Client ids in one manifest (so in one version vector) or one client state.
MAX_CLIENTS = 65_536
#: UTF-8 bytes of a client name, of a path component and of a whole path.
MAX_NAME, MAX_COMPONENT, MAX_PATH = 255, 255, 4096
_DRIVE = re.compile(r"^[A-Za-z]:")


def safe_path(path: Any) -> str:
    """Return ``path`` if it is a safe relative path inside the local folder.

    The one hidden name allowed is the root's ``.escaleignore``: it is synced, so that every
    client ignores the same paths.

    :raises IntegrityError: absolute, ``..``, ``.``, empty or hidden component, NUL, backslash,
        drive letter, too long (:data:`MAX_PATH`, :data:`MAX_COMPONENT`), or not a string.
    """
    # one regex per path; a character is at most 4 bytes, so short paths skip the encoding
    if (
        type(path) is str
        and path
        and _UNSAFE.search(path) is None
        and (len(path) <= MAX_COMPONENT // 4 or _short_enough(path))
    ):
        return path
    if path == IGNORE_FILE:
        return IGNORE_FILE
    _refuse_path(path)


def _short_enough(path: str) -> bool:
    """Whether ``path`` is within :data:`MAX_PATH` bytes and its components within
    :data:`MAX_COMPONENT` bytes (in UTF-8, what file systems count)."""
    return len(path.encode()) <= MAX_PATH and all(
        len(part.encode()) <= MAX_COMPONENT for part in path.split("/")
    )


#: A leading slash, NUL, backslash, a lone surrogate (not UTF-8), a drive letter, or a component
#: that is empty or starts with a dot (".", "..", hidden names): any match makes a manifest path
#: unsafe.
_UNSAFE = re.compile(r"[\x00\\\ud800-\udfff]|^[A-Za-z]:|(?:^|/)(?:\.|/|$)")


def _refuse_path(path: Any) -> NoReturn:
    """Raise the error that says what is wrong with the unsafe ``path``."""
    if not isinstance(path, str) or not path:
        raise IntegrityError(f"manifest path {path!r} is not a non-empty string")
    if "\x00" in path or "\\" in path or path.startswith("/") or _DRIVE.match(path):
        raise IntegrityError(f"manifest path {path!r} is absolute or has forbidden characters")
    if any("\ud800" <= c <= "\udfff" for c in path):
        raise IntegrityError(f"manifest path {path!r} is not valid UTF-8")
    for part in path.split("/"):
        if part in ("", ".", "..") or part.startswith("."):
            raise IntegrityError(f"manifest path {path!r} has a forbidden component {part!r}")
    if not _short_enough(path):
        raise IntegrityError(
            f"manifest path {path[:64]!r}... is too long (more than {MAX_PATH} bytes, or a "
            f"component of more than {MAX_COMPONENT})"
        )
    raise IntegrityError(f"manifest path {path!r} is unsafe")  # pragma: no cover


def _json_list(
    compressor: Any, key: str, rows: Iterator[list[Any]], batch: int = 1000
) -> Iterator[bytes]:
    """``, "key": [row, row, ...]`` as compressed pieces, ``batch`` rows at a time."""
    yield compressor.compress(f", {json.dumps(key)}: [".encode())
    first = True
    for group in iter(lambda: list(itertools.islice(rows, batch)), []):
        text = ", ".join(map(json.dumps, group))
        yield compressor.compress(((", " if not first else "") + text).encode())
        first = False
    yield compressor.compress(b"]")


@dataclass(slots=True)  # 100,000s of them: no __dict__ each
class FileEntry:
    """A file version in an update.

    :param path: relative path, ``/``-separated.
    :param size: bytes.
    :param mtime_ns: modification time in nanoseconds.
    :param checksum: hex digest of the content (algorithm in the manifest).
    :param version: what the version has seen: its version vector (client id → sequence
        number), the history of the path it descends from.
    :param author: client id of the client that made this content.
    :param dot: the sequence number of the author's update that made it: ``(author, dot)`` is
        the event that made this content (``version[author] >= dot``).
    :param gen: its generation: one more than the version it replaced (1 for a new file).
    :param pieces: ``(object index, offset, length)`` triples whose bytes, in order, are the file.
    """

    path: str
    size: int
    mtime_ns: int
    checksum: str
    version: Vector
    author: str
    dot: int
    gen: int
    pieces: list[tuple[int, int, int]] = field(default_factory=list)


@dataclass(slots=True)  # 100,000s of them: no __dict__ each
class Deletion:
    """A tombstone: ``path`` was deleted by ``author`` in its update ``dot``, at ``mtime_ns``,
    having seen ``version``, replacing a version of generation ``gen - 1``; ``prune``: its
    folder is gone too at the sender, so folders the deletion leaves empty are removed."""

    path: str
    version: Vector
    author: str
    dot: int
    gen: int
    mtime_ns: int
    prune: bool = False


@dataclass(slots=True)  # 100,000s of them: no __dict__ each
class ObjectRef:
    """A data object of the update: ``kind`` pack or chunk, ``size`` plaintext bytes stored,
    ``compressed`` whether zstd was applied."""

    kind: str
    size: int
    compressed: bool


@dataclass
class Manifest:
    """One update of one client.

    :param prev: the sequence number this client used before this one (0 for its first): a
        reader whose acknowledgement is below ``prev`` missed updates.
    :param full: the update lists the sender's whole index (every file and every tombstone it
        keeps), so a reader that missed updates catches up from it alone.
    :param names: client names by client id, for every author in the update (conflict copies
        are named after the author of the losing version).
    """

    repo: str
    client: str
    seq: int
    algorithm: str
    pullers: int
    time: float
    prev: int = 0
    full: bool = False
    files: list[FileEntry] = field(default_factory=list)
    deletions: list[Deletion] = field(default_factory=list)
    objects: list[ObjectRef] = field(default_factory=list)
    snapshot_for: list[str] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        """Compressed JSON. Client ids are listed once (``ids``); vectors are flat lists of
        ``[id index, seq, id index, seq, ...]`` and authors id indexes."""
        ids: dict[str, int] = {}

        def index(cid: str) -> int:
            return ids.setdefault(cid, len(ids))

        def flat(vector: Vector) -> list[int]:
            return [x for cid, seq in sorted(vector.items()) for x in (index(cid), seq)]

        head = {
            "format": "escale-manifest",
            "version": MANIFEST_VERSION,
            "repo": self.repo,
            "client": self.client,
            "seq": self.seq,
            "prev": self.prev,
            "full": self.full,
            "algorithm": self.algorithm,
            "pullers": self.pullers,
            "time": self.time,
            "snapshot_for": self.snapshot_for,
            "objects": [[o.kind, o.size, o.compressed] for o in self.objects],
        }
        # rows are encoded and compressed a batch at a time: a full update of a million files
        # never holds all its rows, nor the whole JSON text, in memory at once
        compressor = zstandard.ZstdCompressor(level=3).compressobj()
        out = [compressor.compress(json.dumps(head)[:-1].encode())]
        rows = (
            [f.path, f.size, f.mtime_ns, f.checksum, flat(f.version), index(f.author), f.dot,
             f.gen, f.pieces]
            for f in self.files
        )  # fmt: skip
        out += _json_list(compressor, "files", rows)
        gone = (
            [d.path, flat(d.version), index(d.author), d.dot, d.gen, d.mtime_ns, d.prune]
            for d in self.deletions
        )
        out += _json_list(compressor, "deletions", gone)
        names = [self.names.get(cid, "") for cid in ids]  # the ids, known once rows are done
        tail = json.dumps({"ids": list(ids), "names": names})[1:]
        out += [compressor.compress(b", " + tail.encode()), compressor.flush()]
        return b"".join(out)

    @classmethod
    def decode(cls, blob: bytes, repo: str, client: str, seq: int) -> Manifest:
        """Parse and validate; ``repo``, ``client``, ``seq`` are where it was found.

        :raises IntegrityError: anything malformed or unsafe.
        """
        data = _load(blob, "escale-manifest", MANIFEST_VERSION)
        try:
            if (data["repo"], data["client"], data["seq"]) != (repo, client, seq):
                raise IntegrityError("manifest names another repository, client or sequence")
            _check_counts(data)
            ids = [_cid(c) for c in data["ids"]]
            if len(set(ids)) != len(ids):
                raise ValueError("a client id is listed twice")
            names = [_name(n) for n in data["names"]]
            if len(names) != len(ids):
                raise ValueError("'names' and 'ids' differ in length")
            objects = [
                ObjectRef(_choice(k, ("pack", "chunk")), _nat(s), bool(z))
                for k, s, z in data["objects"]
            ]
            prev = _nat(data["prev"])
            if prev >= seq:
                raise ValueError(f"'prev' {prev} is not below the update's number {seq}")
            manifest = cls(
                repo,
                client,
                seq,
                _str(data["algorithm"]),
                _nat(data["pullers"]),
                _time(data["time"]),
                prev=prev,
                full=_bool(data["full"]),
                objects=objects,
                snapshot_for=[_cid(c) for c in data["snapshot_for"]],
                names=dict(zip(ids, names)),
            )
            append = manifest.files.append
            versions = _Versions(ids)
            for path, size, mtime, checksum, version, author, dot, gen, pieces in data["files"]:
                path = safe_path(path)
                size = _nat(size)
                append(
                    FileEntry(
                        path,
                        size,
                        _mtime(mtime),
                        _str(checksum),
                        *versions.get(version, author, dot),
                        _gen(gen),
                        _pieces(pieces, size, path, objects),
                    )
                )
            for path, version, author, dot, gen, mtime, prune in data["deletions"]:
                vector, who, dot = versions.get(version, author, dot)
                manifest.deletions.append(
                    Deletion(
                        safe_path(path), vector, who, dot, _gen(gen), _mtime(mtime), _bool(prune)
                    )
                )
            authors = {f.author for f in manifest.files} | {d.author for d in manifest.deletions}
            if not all(manifest.names[cid] for cid in authors):
                raise ValueError("an author has no name")
        except IntegrityError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"malformed manifest ({type(exc).__name__}: {exc})") from None
        paths = [f.path for f in manifest.files] + [d.path for d in manifest.deletions]
        if len(set(paths)) != len(paths):
            raise IntegrityError("manifest lists a path twice")
        _refuse_file_in_file(manifest.files)
        return manifest


@dataclass
class ClientState:
    """What a client publishes about itself in ``clients/<id>`` (only it writes there).

    :param name: the client's name (encrypted with everything else).
    :param last_seq: its highest update sequence number.
    :param acks: for each other client id, the highest sequence ``n`` such that this client
        has seen every update of that client up to ``n`` (applied, or caught up through a
        full update): its knowledge, which decides garbage collection and when tombstones
        may be forgotten.
    :param want_full: client ids from which a full snapshot is requested (after a gap).
    :param time: when it was written.
    :param pushes: whether it publishes updates (not in ``download`` mode): only such a client
        can serve a full update.
    """

    name: str
    last_seq: int = 0
    acks: dict[str, int] = field(default_factory=dict)
    want_full: dict[str, int] = field(default_factory=dict)
    time: float = 0.0
    pushes: bool = True

    def encode(self) -> bytes:
        """JSON."""
        return json.dumps(
            {
                "format": "escale-client",
                "version": CLIENT_VERSION,
                "name": self.name,
                "last_seq": self.last_seq,
                "acks": self.acks,
                "want_full": self.want_full,
                "time": self.time,
                "pushes": self.pushes,
            }
        ).encode()

    @classmethod
    def decode(cls, blob: bytes) -> ClientState:
        """Parse and validate.

        :raises IntegrityError: malformed.
        """
        if len(blob) > MAX_CLIENT_STATE:
            raise IntegrityError(f"client state larger than {MAX_CLIENT_STATE >> 20} MiB")
        data = _load(blob, "escale-client", CLIENT_VERSION, compressed=False)
        try:
            acks = _count(data["acks"], MAX_CLIENTS, "acknowledged clients")
            want_full = _count(data["want_full"], MAX_CLIENTS, "full update requests")
            return cls(
                _name(data["name"]) or _str(data["name"]),
                _nat(data["last_seq"]),
                {_str(k): _nat(v) for k, v in acks.items()},
                {_str(k): _nat(v) for k, v in want_full.items()},
                _time(data["time"]),
                _bool(data["pushes"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise IntegrityError(f"malformed client state ({exc})") from None


RETIRED_VERSION = 1
#: Unix times beyond this (the year 5138) are refused in a retirement record.
MAX_TIME = 1e11
#: The most bytes of a retirement record (a real one is about 200 bytes).
MAX_RETIRED = 64 << 10


@dataclass
class Retirement:
    """What ``retired/<cid>`` says: client ``name`` was retired for good by ``escale clients
    forget``, run by client ``by`` at ``time``, when its last published update was
    ``last_seq`` (a client rejoining under that name never reuses a number up to it)."""

    name: str
    last_seq: int
    time: float
    by: str

    def encode(self) -> bytes:
        """JSON."""
        return json.dumps(
            {
                "format": "escale-retired",
                "version": RETIRED_VERSION,
                "name": self.name,
                "last_seq": self.last_seq,
                "time": self.time,
                "by": self.by,
            }
        ).encode()

    @classmethod
    def decode(cls, blob: bytes) -> Retirement:
        """Parse and validate.

        :raises IntegrityError: malformed or too large.
        """
        if len(blob) > MAX_RETIRED:
            raise IntegrityError(f"retirement record larger than {MAX_RETIRED >> 10} KiB")
        data = _load(blob, "escale-retired", RETIRED_VERSION, compressed=False)
        try:
            return cls(
                _name(data["name"]) or _str(data["name"]),
                _nat(data["last_seq"]),
                _time(data["time"]),
                _name(data["by"]) or _str(data["by"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise IntegrityError(f"malformed retirement record ({exc})") from None


def _refuse_file_in_file(files: list[FileEntry]) -> None:
    """No client can hold ``d`` and ``d/e`` as files at once: such an update is refused whole
    before any of it is placed (a deletion of ``d`` beside a file ``d/e`` is a type change)."""
    paths = {f.path for f in files}
    folders: set[str] = set()
    for entry in files:
        folder = entry.path.rpartition("/")[0]
        while folder and folder not in folders:
            if folder in paths:
                raise IntegrityError(
                    f"manifest lists {folder} both as a file and as the folder of {entry.path}"
                )
            folders.add(folder)
            folder = folder.rpartition("/")[0]


def _load(blob: bytes, fmt: str, version: int, compressed: bool = True) -> dict[str, Any]:
    try:
        blob = _decompress(blob, fmt) if compressed else blob
        data = json.loads(blob)
    except (zstandard.ZstdError, ValueError) as exc:
        raise IntegrityError(f"unreadable {fmt} ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise IntegrityError(f"not an {fmt} object")
    if data.get("version") != version:
        raise UnsupportedFormatError(
            f"{fmt} format version {data.get('version')!r} is not supported (this escale reads "
            f"version {version}; upgrade escale)"
        )
    return data


def _decompress(blob: bytes, fmt: str) -> bytes:
    """Decompress one zstd frame of at most :data:`MAX_MANIFEST` bytes: a frame that declares
    more is refused before decompressing; one that declares nothing is streamed and stopped
    at the bound (a few KiB can expand to gigabytes)."""
    declared = zstandard.frame_content_size(blob)
    if declared != zstandard.CONTENTSIZE_UNKNOWN and declared > MAX_MANIFEST:
        _too_big(fmt)
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(blob))
    out = bytearray()
    while True:
        block = reader.read(1 << 20)
        if not block:
            return bytes(out)
        out += block
        if len(out) > MAX_MANIFEST:
            _too_big(fmt)


def _too_big(fmt: str) -> NoReturn:
    raise IntegrityError(
        f"{fmt} decompresses to more than {MAX_MANIFEST >> 20} MiB, the most escale reads "
        "(a decompression bomb, or a broken client): refused"
    )


def _check_counts(data: dict[str, Any]) -> None:
    """Refuse a manifest listing more than escale reads, before building anything of it."""
    _count(data["ids"], MAX_CLIENTS, "client ids")
    _count(data["snapshot_for"], MAX_CLIENTS, "clients asking for a full update")
    _count(data["objects"], MAX_OBJECTS, "data objects")
    entries = len(_count(data["files"], MAX_ENTRIES, "files"))
    entries += len(_count(data["deletions"], MAX_ENTRIES, "tombstones"))
    if entries > MAX_ENTRIES:
        raise IntegrityError(
            f"files and tombstones: {entries} of them, more than the {MAX_ENTRIES} escale reads"
        )


def _count(items: Any, limit: int, what: str) -> Any:
    """``items`` (a list, or a dict) if it holds at most ``limit`` elements."""
    if not isinstance(items, (list, dict)):
        raise ValueError(f"{what} is not a list")
    if len(items) > limit:
        raise IntegrityError(f"{what}: {len(items)} of them, more than the {limit} escale reads")
    return items


def _nat(value: Any) -> int:
    if type(value) is not int or value < 0:  # not a bool either
        raise ValueError(f"{value!r} is not a natural number")
    return value


def _time(value: Any) -> float:
    """A Unix time a date can be made of: JSON lets a writer say Infinity, NaN or 1e300, which
    would overflow (or compare as nothing) wherever the time is shown or compared."""
    if type(value) not in (int, float) or not 0 <= value < MAX_TIME:
        raise ValueError(f"{value!r} is not a time")
    return float(value)


def _bool(value: Any) -> bool:
    if type(value) is not bool:
        raise ValueError(f"{value!r} is not true or false")
    return value


_CID = re.compile(r"^[0-9a-f]{32}$")


def _cid(value: Any) -> str:
    if not isinstance(value, str) or _CID.match(value) is None:
        raise ValueError(f"{value!r} is not a client id")
    return value


def _gen(value: Any) -> int:
    if type(value) is not int or not 0 < value < 1 << 62:
        raise ValueError(f"generation {value!r} is out of range")
    return value


def _name(value: Any) -> str:
    """A client name: empty only for a client that authored nothing in the update."""
    if not isinstance(value, str) or len(value.encode(errors="replace")) > MAX_NAME:
        raise ValueError(f"{str(value)[:64]!r} is not a client name of at most {MAX_NAME} bytes")
    return value


def _mtime(value: Any) -> int:
    if type(value) is not int or not -MAX_MTIME_NS < value < MAX_MTIME_NS:
        raise ValueError(f"modification time {value!r} is out of range")
    return value


def _version(raw: Any, author: Any, dot: Any, ids: list[str]) -> tuple[Vector, str, int]:
    """A validated ``(vector, author, dot)`` from a flat ``[index, seq, ...]`` list, an id
    index and a sequence number. The vector must have seen the author's dot (the event that
    made the version)."""
    if not isinstance(raw, list) or len(raw) % 2:
        raise ValueError(f"version {raw!r} is not a list of pairs")
    vector: Vector = {}
    for i in range(0, len(raw), 2):
        index, seq = raw[i], raw[i + 1]
        if type(index) is not int or not 0 <= index < len(ids) or type(seq) is not int:
            raise ValueError(f"version {raw!r} names an unknown client")
        if seq <= 0 or ids[index] in vector:
            raise ValueError(f"version {raw!r} has a bad or repeated entry")
        vector[ids[index]] = seq
    if type(author) is not int or not 0 <= author < len(ids):
        raise ValueError(f"author {author!r} is not a listed client")
    if type(dot) is not int or not 0 < dot <= vector.get(ids[author], 0):
        raise ValueError(f"dot {dot!r} is not in the version {raw!r}")
    return vector, ids[author], dot


class _Versions:
    """:func:`_version` for every entry of one manifest, each distinct single-client version
    validated and built once: the entries of an update mostly share theirs, and then share one
    vector (which no code changes in place: :mod:`escale_core.vectors` builds new ones)."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self._seen: dict[tuple[Any, ...], tuple[Vector, str, int]] = {}

    def get(self, raw: Any, author: Any, dot: Any) -> tuple[Vector, str, int]:
        if type(raw) is not list or len(raw) != 2:
            return _version(raw, author, dot, self.ids)  # several clients' (or malformed)
        index, seq = raw
        if not type(index) is type(seq) is type(author) is type(dot) is int:
            return _version(raw, author, dot, self.ids)  # its error (1.0 or True equal 1)
        key = (index, seq, author, dot)
        found = self._seen.get(key)
        if found is None:
            found = self._seen[key] = _version(raw, author, dot, self.ids)
        return found


def _str(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > 4096:
        raise ValueError(f"{value!r} is not a valid string")
    return value


def _choice(value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{value!r} is not one of {choices}")
    return str(value)


def _pieces(raw: Any, size: int, path: str, objects: list[ObjectRef]) -> list[tuple[int, int, int]]:
    """A file's validated ``(object index, offset, length)`` triples: natural numbers, inside
    their objects, adding up to the file's size."""
    pieces, total, count = [], 0, len(objects)
    for index, offset, length in _count(raw, MAX_OBJECTS, f"pieces of {path!r}"):
        natural = type(index) is type(offset) is type(length) is int  # bools are not
        if not natural or min(index, offset, length) < 0:
            raise ValueError(f"piece {[index, offset, length]!r} is not three natural numbers")
        if index >= count or offset + length > objects[index].size:
            raise IntegrityError(f"manifest entry {path!r} points outside its data")
        total += length
        pieces.append((index, offset, length))
    if total != size:
        raise IntegrityError(f"manifest entry {path!r}: pieces do not add up to its size")
    return pieces
