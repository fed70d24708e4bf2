"""Manifests (one per update) and client states: their JSON form and strict validation.

Manifests are authenticated, but a client holding the key may still be hostile, so every field
is checked before anything is written locally: types, sizes, object references and paths
(:func:`safe_path`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, NoReturn, Optional

import zstandard

from .errors import IntegrityError, UnsupportedFormatError

MANIFEST_VERSION = 1
CLIENT_VERSION = 1
MAX_MANIFEST = 1 << 30
_DRIVE = re.compile(r"^[A-Za-z]:")


def safe_path(path: Any) -> str:
    """Return ``path`` if it is a safe relative path inside the local folder.

    :raises IntegrityError: absolute, ``..``, ``.``, empty or hidden component, NUL, backslash,
        drive letter, or not a string.
    """
    if type(path) is str and path and _UNSAFE.search(path) is None:  # one regex per path
        return path
    _refuse_path(path)


#: A leading slash, NUL, backslash, a drive letter, or a component that is empty or starts with
#: a dot (".", "..", hidden names): any match makes a manifest path unsafe.
_UNSAFE = re.compile(r"[\x00\\]|^[A-Za-z]:|(?:^|/)(?:\.|/|$)")


def _refuse_path(path: Any) -> NoReturn:
    """Raise the error that says what is wrong with the unsafe ``path``."""
    if not isinstance(path, str) or not path:
        raise IntegrityError(f"manifest path {path!r} is not a non-empty string")
    if "\x00" in path or "\\" in path or path.startswith("/") or _DRIVE.match(path):
        raise IntegrityError(f"manifest path {path!r} is absolute or has forbidden characters")
    for part in path.split("/"):
        if part in ("", ".", "..") or part.startswith("."):
            raise IntegrityError(f"manifest path {path!r} has a forbidden component {part!r}")
    raise IntegrityError(f"manifest path {path!r} is unsafe")  # pragma: no cover


@dataclass
class FileEntry:
    """A file version in an update.

    :param path: relative path, ``/``-separated.
    :param size: bytes.
    :param mtime_ns: modification time in nanoseconds.
    :param checksum: hex digest of the content (algorithm in the manifest).
    :param base: the checksum of the version this one replaces, as the pusher last synced it
        (``None``: a new file); a puller whose file differs from ``base`` has a conflict.
    :param pieces: ``(object index, offset, length)`` triples whose bytes, in order, are the file.
    """

    path: str
    size: int
    mtime_ns: int
    checksum: str
    base: Optional[str]
    pieces: list[tuple[int, int, int]] = field(default_factory=list)


@dataclass
class Deletion:
    """A tombstone: ``path`` was deleted where its content was ``base``; ``prune``: its folder
    is gone too at the sender, so folders the deletion leaves empty are removed."""

    path: str
    base: str
    prune: bool = False


@dataclass
class ObjectRef:
    """A data object of the update: ``kind`` pack or chunk, ``size`` plaintext bytes stored,
    ``compressed`` whether zstd was applied."""

    kind: str
    size: int
    compressed: bool


@dataclass
class Manifest:
    """One update of one client."""

    repo: str
    client: str
    seq: int
    algorithm: str
    pullers: int
    time: float
    files: list[FileEntry] = field(default_factory=list)
    deletions: list[Deletion] = field(default_factory=list)
    objects: list[ObjectRef] = field(default_factory=list)
    snapshot_for: list[str] = field(default_factory=list)

    def encode(self) -> bytes:
        """Compressed JSON."""
        data = {
            "format": "escale-manifest",
            "version": MANIFEST_VERSION,
            "repo": self.repo,
            "client": self.client,
            "seq": self.seq,
            "algorithm": self.algorithm,
            "pullers": self.pullers,
            "time": self.time,
            "snapshot_for": self.snapshot_for,
            "objects": [[o.kind, o.size, o.compressed] for o in self.objects],
            "files": [
                [f.path, f.size, f.mtime_ns, f.checksum, f.base, f.pieces] for f in self.files
            ],
            "deletions": [[d.path, d.base, d.prune] for d in self.deletions],
        }
        return zstandard.ZstdCompressor(level=3).compress(json.dumps(data).encode())

    @classmethod
    def decode(cls, blob: bytes, repo: str, client: str, seq: int) -> Manifest:
        """Parse and validate; ``repo``, ``client``, ``seq`` are where it was found.

        :raises IntegrityError: anything malformed or unsafe.
        """
        data = _load(blob, "escale-manifest", MANIFEST_VERSION)
        try:
            if (data["repo"], data["client"], data["seq"]) != (repo, client, seq):
                raise IntegrityError("manifest names another repository, client or sequence")
            objects = [
                ObjectRef(_choice(k, ("pack", "chunk")), _nat(s), bool(z))
                for k, s, z in data["objects"]
            ]
            manifest = cls(
                repo,
                client,
                seq,
                _str(data["algorithm"]),
                _nat(data["pullers"]),
                float(data["time"]),
                objects=objects,
                snapshot_for=[_str(c) for c in data["snapshot_for"]],
            )
            append = manifest.files.append
            for path, size, mtime, checksum, base, pieces in data["files"]:
                path = safe_path(path)
                size = _nat(size)
                append(
                    FileEntry(
                        path,
                        size,
                        int(mtime),
                        _str(checksum),
                        None if base is None else _str(base),
                        _pieces(pieces, size, path, objects),
                    )
                )
            manifest.deletions = [
                Deletion(safe_path(d[0]), _str(d[1]), bool(d[2]) if len(d) > 2 else False)
                for d in data["deletions"]
            ]
        except IntegrityError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"malformed manifest ({type(exc).__name__}: {exc})") from None
        paths = [f.path for f in manifest.files] + [d.path for d in manifest.deletions]
        if len(set(paths)) != len(paths):
            raise IntegrityError("manifest lists a path twice")
        return manifest


@dataclass
class ClientState:
    """What a client publishes about itself in ``clients/<id>`` (only it writes there).

    :param name: the client's name (encrypted with everything else).
    :param last_seq: its highest update sequence number.
    :param acks: for each other client id, the highest sequence applied.
    :param want_full: client ids from which a full snapshot is requested (after a gap).
    :param time: when it was written.
    """

    name: str
    last_seq: int = 0
    acks: dict[str, int] = field(default_factory=dict)
    want_full: dict[str, int] = field(default_factory=dict)
    time: float = 0.0

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
            }
        ).encode()

    @classmethod
    def decode(cls, blob: bytes) -> ClientState:
        """Parse and validate.

        :raises IntegrityError: malformed.
        """
        data = _load(blob, "escale-client", CLIENT_VERSION, compressed=False)
        try:
            return cls(
                _str(data["name"]),
                _nat(data["last_seq"]),
                {_str(k): _nat(v) for k, v in data["acks"].items()},
                {_str(k): _nat(v) for k, v in data["want_full"].items()},
                float(data["time"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise IntegrityError(f"malformed client state ({exc})") from None


def _load(blob: bytes, fmt: str, version: int, compressed: bool = True) -> dict[str, Any]:
    try:
        if compressed:
            blob = zstandard.ZstdDecompressor().decompress(blob, max_output_size=MAX_MANIFEST)
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


def _nat(value: Any) -> int:
    if type(value) is not int or value < 0:  # not a bool either
        raise ValueError(f"{value!r} is not a natural number")
    return value


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
    for index, offset, length in raw:
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
