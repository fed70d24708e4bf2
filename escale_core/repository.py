"""A repository on a relay: its header, its key, and the names of its objects.

Layout (every name but the header is opaque)::

    escale.json                          header: format version, id, cipher, KDF, wrapped key
    clients/<cid>                        client state, written by that client only
    updates/<cid>/<seq>                  manifest of update <seq> of client <cid>, published last
    data/<cid>/<seq>/<index>             packs and chunks of that update, published first
    retired/<cid>                        client <cid> was retired (``escale clients forget``)
    moved                                where ``escale migrate`` moved the repository (sealed)

``<cid>`` is an HMAC of the client name under the repository key, so names stay secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Optional

from .cipher import Cipher
from .crypto import (
    KIND_CLIENT,
    KIND_MANIFEST,
    KIND_MOVED,
    Sealer,
    derive_key,
    kdf_not_weaker,
    new_kdf,
    renewed_kdf,
    unwrap_key,
    wrap_key,
)
from .errors import (
    EscaleError,
    IntegrityError,
    NotARepositoryError,
    PassphraseChangedError,
    RelayNotFoundError,
    UnsupportedFormatError,
)
from .keycache import KeyCache
from .locks import RelayLock
from .manifest import MAX_CLIENT_STATE, MAX_RETIRED, ClientState, Manifest, Retirement
from .registry import Registry
from .relay import Relay

HEADER = "escale.json"
#: The most bytes read of a header (a real one is a few hundred bytes).
MAX_HEADER = 64 << 10
#: The most bytes read of a sealed manifest, and of a sealed client state.
MAX_SEALED_MANIFEST = 256 << 20
MAX_SEALED_CLIENT = MAX_CLIENT_STATE + (1 << 20)
#: The note left by ``escale migrate`` in the repository it copied elsewhere.
MOVED = "moved"
#: The most bytes read of a sealed ``moved`` note (a real one is a few hundred bytes).
MAX_MOVED = 64 << 10
#: 2: version vectors, tombstones and full updates (``docs/protocol.md``); 1: escale 0.1.
FORMAT_VERSION = 2


def update_name(cid: str, seq: int) -> str:
    """The manifest object of update ``seq`` of client ``cid``."""
    return f"updates/{cid}/{seq:010d}"


def data_name(cid: str, seq: int, index: int) -> str:
    """Data object ``index`` of update ``seq`` of client ``cid``."""
    return f"data/{cid}/{seq:010d}/{index:06d}"


def client_name(cid: str) -> str:
    """The client-state object of client ``cid``."""
    return f"clients/{cid}"


def retired_name(cid: str) -> str:
    """The retirement record of client ``cid``."""
    return f"retired/{cid}"


@dataclass
class Repository:
    """An opened (unlocked) repository."""

    relay: Relay
    id: str
    cipher: str
    checksum: str
    sealer: Sealer
    mac_key: bytes
    #: the header as read (or written) when the repository was opened
    header: dict[str, Any] = field(default_factory=dict)
    #: bytes of data objects read from the relay so far (as stored: sealed)
    bytes_read: int = 0
    #: the fingerprint of the master key (:func:`key_check`; ``""`` for ``plain``)
    key_check: str = ""

    def client_id(self, name: str) -> str:
        """The opaque id of client ``name``."""
        return hmac.new(self.mac_key, name.encode(), hashlib.sha256).hexdigest()[:32]

    def context(self, *parts: object) -> bytes:
        """The authenticated context binding an object to its place."""
        return "|".join(["escale", self.id, *map(str, parts)]).encode()

    def write_manifest(self, manifest: Manifest) -> None:
        """Seal and publish a manifest."""
        ctx = self.context("manifest", manifest.client, manifest.seq)
        self.relay.write_stream(
            update_name(manifest.client, manifest.seq),
            self.sealer.seal(KIND_MANIFEST, ctx, [manifest.encode()]),
        )

    def read_manifest(self, cid: str, seq: int) -> Manifest:
        """Fetch, verify and validate a manifest.

        :raises IntegrityError: tampered, swapped, replayed or malformed.
        """
        ctx = self.context("manifest", cid, seq)
        sealed = bounded(
            self.relay.read_stream(update_name(cid, seq)), MAX_SEALED_MANIFEST, "manifest"
        )
        blob = b"".join(self.sealer.open(KIND_MANIFEST, ctx, sealed))
        return Manifest.decode(blob, self.id, cid, seq)

    def write_client(self, cid: str, state: ClientState) -> None:
        """Seal and publish this client's state."""
        ctx = self.context("client", cid)
        self.relay.write_stream(
            client_name(cid), self.sealer.seal(KIND_CLIENT, ctx, [state.encode()])
        )

    def read_client(self, cid: str) -> ClientState:
        """Fetch and verify a client's state.

        :raises IntegrityError: tampered, malformed or too large.
        """
        ctx = self.context("client", cid)
        sealed = bounded(
            self.relay.read_stream(client_name(cid)), MAX_SEALED_CLIENT, "client state"
        )
        return ClientState.decode(b"".join(self.sealer.open(KIND_CLIENT, ctx, sealed)))

    def write_moved(self, to: str, when: float) -> None:
        """Leave the note that the repository moved to ``to`` (an address without password)
        at ``when`` (Unix time)."""
        note = {"format": "escale-moved", "version": 1, "to": to, "time": when}
        self.relay.write_stream(
            MOVED,
            self.sealer.seal(KIND_MOVED, self.context("moved"), [json.dumps(note).encode()]),
        )

    def read_moved(self) -> Optional[tuple[str, float]]:
        """Where and when the repository moved (``escale migrate``), or ``None``.

        :raises IntegrityError: a tampered, malformed or too large note.
        """
        try:
            sealed = b"".join(bounded(self.relay.read_stream(MOVED), MAX_MOVED, "moved note"))
        except RelayNotFoundError:
            return None
        except IntegrityError as exc:
            raise IntegrityError(f"relay object {MOVED}: {exc}") from None
        try:
            blob = b"".join(self.sealer.open(KIND_MOVED, self.context("moved"), [sealed]))
            note = json.loads(blob)
            to, when = note["to"], note["time"]
            if note.get("format") != "escale-moved" or not isinstance(to, str):
                raise ValueError("not a moved note")
            if not to or len(to) > 4096 or not to.isprintable():  # printed on one line
                raise ValueError("not an address")
            if not isinstance(when, (int, float)) or isinstance(when, bool):
                raise ValueError("no time")
            if not 0 <= when < 1e11:  # (a time a date can be printed for)
                raise ValueError("time out of range")
        except IntegrityError as exc:
            raise IntegrityError(f"relay object {MOVED}: {exc}") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"relay object {MOVED}: malformed ({exc})") from None
        return to, float(when)

    def write_retired(self, cid: str, record: Retirement) -> None:
        """Seal and publish the retirement of client ``cid`` (sealed like a client state, under
        its own context: neither can stand for the other)."""
        ctx = self.context("retired", cid)
        self.relay.write_stream(
            retired_name(cid), self.sealer.seal(KIND_CLIENT, ctx, [record.encode()])
        )

    def read_retired(self, cid: str) -> Retirement:
        """Fetch and verify the retirement record of client ``cid``.

        :raises IntegrityError: tampered, malformed or too large.
        """
        ctx = self.context("retired", cid)
        sealed = bounded(
            self.relay.read_stream(retired_name(cid)), MAX_RETIRED + 1024, "retirement record"
        )
        return Retirement.decode(b"".join(self.sealer.open(KIND_CLIENT, ctx, sealed)))

    def seal_data(
        self, kind: int, cid: str, seq: int, index: int, chunks: Iterable[bytes]
    ) -> Iterator[bytes]:
        """Seal a data object."""
        return self.sealer.seal(kind, self.context("data", cid, seq, index), chunks)

    def open_data(self, kind: int, cid: str, seq: int, index: int) -> Iterator[bytes]:
        """Read and verify a data object, streaming."""
        ctx = self.context("data", cid, seq, index)
        return self.sealer.open(kind, ctx, self._counted(data_name(cid, seq, index)))

    def _counted(self, name: str) -> Iterator[bytes]:
        for chunk in self.relay.read_stream(name):
            self.bytes_read += len(chunk)
            yield chunk


def bounded(chunks: Iterable[bytes], limit: int, what: str) -> Iterator[bytes]:
    """``chunks``, stopped with an error as soon as they add up to more than ``limit`` bytes:
    an object the relay makes huge costs at most ``limit`` bytes (plus one read block).

    :raises IntegrityError: the object is larger than ``limit``.
    """
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise IntegrityError(
                f"{what} larger than {_size(limit)}, the most escale reads (written by a "
                "hostile or broken program): refused before reading the rest"
            )
        yield chunk


def _size(count: int) -> str:
    return f"{count >> 20} MiB" if count >= 1 << 20 else f"{count >> 10} KiB"


def _header_aad(header: dict[str, Any]) -> bytes:
    return f"escale header|{header['id']}|{header['cipher']}|{header['checksum']}".encode()


def key_check(master: bytes) -> str:
    """A fingerprint of the master key, kept in the local state: a header re-wrapped by
    ``escale key passwd`` must hold the same key (it reveals nothing of the key)."""
    return hmac.new(master, b"escale key check", hashlib.sha256).hexdigest()


def opens_with(header: dict[str, Any], passphrase: Optional[bytes]) -> Optional[bytes]:
    """The master key if ``passphrase`` unwraps ``header``'s key, else ``None`` (a header of
    ``plain`` repositories holds no key: ``b""``)."""
    if header.get("key") is None:
        return b""
    try:
        return _unwrap(header, passphrase)
    except IntegrityError:
        return None


def same_repository_rewrapped(header: dict[str, Any], other: dict[str, Any]) -> bool:
    """Whether two headers are one repository's, differing at most in their key's wrapping."""
    return header == other or _only_rewrapped(header, other)


#: The header keys ``escale key passwd`` changes: the KDF (new salt) and the wrapped key.
REWRAP_KEYS = ("kdf", "key")


def rewrapped_header(header: dict[str, Any], master: bytes, passphrase: bytes) -> dict[str, Any]:
    """``header`` with ``master`` wrapped by ``passphrase`` instead: a fresh salt, the same KDF
    algorithm, costs never lowered (:func:`~escale_core.crypto.renewed_kdf`); everything else
    (id, cipher, checksum) unchanged, so the other clients accept it (see :func:`_header`)."""
    new = dict(header)
    new["kdf"] = renewed_kdf(header.get("kdf"))
    new["key"] = wrap_key(derive_key(passphrase, new["kdf"]), master, _header_aad(new))
    return new


def write_header(relay: Relay, header: dict[str, Any]) -> None:
    """Replace the relay's header (readers see the old one or the new one whole: every relay
    publishes an object atomically)."""
    relay.write_bytes(HEADER, json.dumps(header, indent=1).encode())


def open_repository(
    relay: Relay,
    ciphers: Registry,
    passphrase: Optional[bytes],
    *,
    create_cipher: str,
    create_checksum: str,
    kept: Optional[dict[str, Any]] = None,
    create: bool = True,
    kept_key_check: Optional[str] = None,
    key_cache: Optional[KeyCache] = None,
) -> Repository:
    """Open the repository on ``relay``, creating it if the relay folder holds none.

    :param passphrase: the passphrase (``None`` for ``plain``).
    :param create_cipher: the cipher of a new repository.
    :param create_checksum: the checksum algorithm of a new repository.
    :param kept: the header this client joined the repository with, if it did: then the
        relay's header must be that one, and a missing one is never replaced by a new
        repository (DESIGN §2.12).
    :param create: whether an empty relay folder gets a new repository (``False``: the
        operations, which work on an existing repository only, refuse it).
    :param kept_key_check: the :func:`key_check` of the key this client joined with: a header
        that differs from ``kept`` only in its KDF and wrapped key (``escale key passwd``) is
        accepted when it unwraps to that same key with KDF costs not lowered.
    :param key_cache: where the key unwrapped with this passphrase is kept for this header
        (Argon2 then runs once, not at every opening); written once every check passed.
    :raises PassphraseChangedError: the passphrase was changed and this one is the old one.
    :raises IntegrityError: wrong passphrase, tampered or replaced header.
    :raises UnsupportedFormatError: a repository of another format.
    :raises RelayNotFoundError: the header this client joined with is missing.
    """
    header, created = _header(
        relay, ciphers, passphrase, create_cipher, create_checksum, kept, create
    )
    rewrapped = kept is not None and header != kept
    cipher_class = _cipher_class(header, ciphers)
    if passphrase is None or not cipher_class.key_size:
        key_cache = None  # nothing to unwrap: nothing to keep
    cached = None
    if key_cache is not None and passphrase is not None and created is None:
        cached = key_cache.get(header, passphrase)
    known = created if created is not None else cached
    master, mac_key = _keys(header, cipher_class, passphrase, known, rewrapped)
    check = key_check(master) if master else ""
    if rewrapped and check != kept_key_check:
        raise IntegrityError(_other_key(kept_key_check))
    if key_cache is not None and passphrase is not None and cached is None:
        key_cache.put(header, passphrase, master)
    return Repository(
        relay,
        header["id"],
        header["cipher"],
        header["checksum"],
        Sealer(cipher_class, master),
        mac_key,
        header,
        key_check=check,
    )


def _cipher_class(header: dict[str, Any], ciphers: Registry) -> type[Cipher]:
    """The installed cipher the header names.

    :raises UnsupportedFormatError: none of that name is installed."""
    if header["cipher"] not in ciphers:
        raise UnsupportedFormatError(
            f"relay object {HEADER}: unknown cipher {header['cipher']!r} "
            f"(installed: {', '.join(ciphers.names())})"
        )
    cipher_class: type[Cipher] = ciphers.get(header["cipher"]).load()
    return cipher_class


def _keys(
    header: dict[str, Any],
    cipher_class: type[Cipher],
    passphrase: Optional[bytes],
    known: Optional[bytes],
    rewrapped: bool,
) -> tuple[bytes, bytes]:
    """The master key (empty for an unencrypted repository) and the key of client ids.

    :param known: the master key, when this call created the repository or the key cache
        held it for this very header and passphrase (no unwrapping then).

    :raises IntegrityError: an unencrypted header where this section encrypts, or a key
        this passphrase does not unwrap."""
    if cipher_class.key_size == 0:
        if passphrase is not None:  # a replaced header must not turn encryption off
            raise IntegrityError(
                f"relay object {HEADER}: the repository is not encrypted (cipher "
                f"{header['cipher']}) but this section encrypts: refusing to send anything "
                '(set encryption = "plain" if this is intended; otherwise the header was '
                "tampered with)"
            )
        return b"", header["id"].encode()
    master = known if known is not None else _unwrap(header, passphrase, rewrapped)
    return master, hmac.new(master, b"escale client ids", hashlib.sha256).digest()


def _other_key(kept_key_check: Optional[str]) -> str:
    """Why a re-wrapped header is refused although this passphrase unwraps it."""
    if kept_key_check is None:
        return (
            f"relay object {HEADER} was re-wrapped (new passphrase) since this client last "
            "synced, and this client holds no fingerprint of the key it joined with to check "
            "that the key is the same: refusing to sync; if 'escale key passwd' was run on "
            "purpose, remove this section's local state to join again"
        )
    return (
        f"relay object {HEADER} holds another key than the one this client joined with "
        "(a replaced header, or another repository with the same passphrase): refusing to "
        "sync; if the section points at another repository on purpose, remove its local state "
        "to start over"
    )


def _header(
    relay: Relay,
    ciphers: Registry,
    passphrase: Optional[bytes],
    cipher: str,
    checksum: str,
    kept: Optional[dict[str, Any]],
    create: bool = True,
) -> tuple[dict[str, Any], Optional[bytes]]:
    """The relay's header (and the master key if this call created the repository)."""
    try:
        header = _read_header(relay)
    except RelayNotFoundError:
        if kept is not None:
            raise RelayNotFoundError(
                f"relay object {HEADER} is missing, but this client synced with repository "
                f"{kept.get('id')} there (a relay folder not mounted, or a lost header): "
                "nothing was written; mount the relay, or run 'escale fix' here (it puts "
                "back the copy this client kept), or put back its escale.json (any client's "
                "copy of the relay folder has it; it holds no secret in clear)"
            ) from None
        if not _holds_header(relay):
            if not create:
                raise RelayNotFoundError(
                    f"no repository there yet (no {HEADER}): create it with 'escale init', "
                    "or a first 'escale sync'"
                ) from None
            return _create(relay, ciphers, passphrase, cipher, checksum)
        header = _read_header(relay)  # created by another client meanwhile
    if kept is not None and header != kept and not _only_rewrapped(header, kept):
        raise IntegrityError(
            f"relay object {HEADER} is not the header this client joined (repository "
            f"{kept.get('id')}, now {header.get('id')}): refusing to sync; if the section "
            "points at another repository on purpose, remove its local state to start over"
        )
    return header, None


def _only_rewrapped(header: dict[str, Any], kept: dict[str, Any]) -> bool:
    """Whether ``header`` differs from ``kept`` only by ``escale key passwd``: its KDF and
    wrapped key, with KDF costs not lowered (a weakened KDF is refused, DESIGN §2.12).

    :raises IntegrityError: only the KDF and key changed, but the KDF is weaker."""
    rest = {k: v for k, v in header.items() if k not in REWRAP_KEYS}
    if rest != {k: v for k, v in kept.items() if k not in REWRAP_KEYS}:
        return False
    if not kdf_not_weaker(header.get("kdf"), kept.get("kdf")):
        raise IntegrityError(
            f"relay object {HEADER}: its KDF ({_kdf_text(header.get('kdf'))}) is weaker than "
            f"the one this client joined with ({_kdf_text(kept.get('kdf'))}): a weakened or "
            "tampered header, refused; put back the repository's escale.json"
        )
    return True


def _kdf_text(kdf: Any) -> str:
    if not isinstance(kdf, dict):
        return "none"
    return " ".join(f"{k}={v}" for k, v in sorted(kdf.items()) if k != "salt")[:200]


#: Object names of an original Escale relay (its pages, placeholders and locks).
ORIGINAL_SUFFIXES = (".manifest", ".placeholder", ".lock")
#: Folders of escale's own objects (``locks/`` is left out: a client creating the repository
#: holds a lock there before the header exists).
ESCALE_FOLDERS = ("clients/", "updates/", "data/", "retired/")


def _holds_header(relay: Relay) -> bool:
    """Whether the header appeared since it was found missing; ``False`` when the relay
    folder is empty (or missing), so a repository may be created there.

    :raises EscaleError: the relay folder holds other objects (DESIGN §2.12).
    """
    names = [name for name in relay.list("") if not name.startswith("locks/")]
    if HEADER in names:
        return True
    if names:
        raise _not_a_repository(names)
    return False


def holds_repository(relay: Relay) -> bool:
    """Whether the relay folder holds a repository (its header); ``False`` when it is empty
    or missing, so a repository may be created there.

    :raises EscaleError: the folder holds other objects (DESIGN §2.12)."""
    return relay.exists(HEADER) or _holds_header(relay)


def _not_a_repository(names: list[str]) -> EscaleError:
    """The error for a relay folder without header that holds ``names``."""
    refusing = "refusing to create a repository there"
    ours = [name for name in names if name.startswith(ESCALE_FOLDERS)]
    if ours:
        return RelayNotFoundError(
            f"relay object {HEADER} is missing but the relay folder holds {len(ours)} escale "
            f"objects (e.g. {ours[0]!r}): a lost or withheld header; {refusing}: put back its "
            f"{HEADER} (any client's copy of the relay folder has it), or run 'escale fix'"
        )
    original = [name for name in names if name.endswith(ORIGINAL_SUFFIXES)]
    if original:
        return NotARepositoryError(
            f"relay folder holds an original Escale relay (e.g. {original[0]!r}) but no "
            f"{HEADER}: {refusing}; let the original clients finish, then point the section at "
            "a new, empty folder (docs/migrating.md)"
        )
    return NotARepositoryError(
        f"relay folder holds files but no {HEADER} (another program's files, or an original "
        f"Escale relay; e.g. {names[0]!r}): {refusing}; point the section at an empty folder"
    )


def _unwrap(header: dict[str, Any], passphrase: Optional[bytes], rewrapped: bool = False) -> bytes:
    """The master key, unwrapped with the passphrase.

    :param rewrapped: the header was re-wrapped since this client joined: a passphrase that
        does not unwrap it is the old one (:class:`PassphraseChangedError`)."""
    if passphrase is None:
        raise IntegrityError(
            f"the repository is encrypted with {header['cipher']}: "
            "set passphrase_file in the section"
        )
    try:
        if not isinstance(header.get("kdf"), dict) or not isinstance(header.get("key"), str):
            raise IntegrityError("repository header: missing KDF parameters or wrapped key")
        kek = derive_key(passphrase, header["kdf"])
    except IntegrityError as exc:
        raise type(exc)(f"relay object {HEADER}: {exc}") from None
    try:
        return unwrap_key(kek, header["key"], _header_aad(header))
    except IntegrityError as exc:
        if rewrapped:
            raise PassphraseChangedError(
                "the repository's passphrase was changed (escale key passwd)"
            ) from None
        raise IntegrityError(f"relay object {HEADER}: {exc}") from None
    except ValueError as exc:  # undecodable base64
        raise IntegrityError(f"relay object {HEADER}: invalid wrapped key ({exc})") from None


def _read_header(relay: Relay) -> dict[str, Any]:
    """The relay's header, read up to :data:`MAX_HEADER` bytes.

    :raises RelayNotFoundError: there is none.
    :raises IntegrityError: not a valid header.
    """
    try:
        blob = b"".join(bounded(relay.read_stream(HEADER), MAX_HEADER, "header"))
    except IntegrityError as exc:
        raise IntegrityError(f"relay object {HEADER}: {exc}") from None
    return _parse_header(blob)


def _parse_header(blob: bytes) -> dict[str, Any]:
    try:
        header = json.loads(blob)
        if header.get("format") != "escale-repository":
            raise ValueError("not an escale repository header")
    except (ValueError, AttributeError) as exc:
        raise IntegrityError(f"relay object {HEADER}: {exc}") from None
    if header.get("version") == 1:
        raise UnsupportedFormatError(
            f"relay object {HEADER}: this relay folder holds a repository of format 1, written "
            "by escale 0.1, which decided conflicts by modification times; this escale syncs "
            "format 2 only: point the section at a new, empty relay folder (every client "
            "then sends its files again; equal files are not transferred twice)"
        )
    if header.get("version") != FORMAT_VERSION:
        raise UnsupportedFormatError(
            f"relay object {HEADER}: repository format version {header.get('version')!r} is not "
            f"supported (this escale reads version {FORMAT_VERSION}; upgrade escale)"
        )
    for key in ("id", "cipher", "checksum"):
        if not isinstance(header.get(key), str):
            raise IntegrityError(f"relay object {HEADER}: missing '{key}'")
    return dict(header)


def _create(
    relay: Relay, ciphers: Registry, passphrase: Optional[bytes], cipher: str, checksum: str
) -> tuple[dict[str, Any], Optional[bytes]]:
    """Write a new repository header; return the header in force and, if it is the one
    written here, its master key (another client may have created the repository first)."""
    header: dict[str, Any] = {
        "format": "escale-repository",
        "version": FORMAT_VERSION,
        "id": os.urandom(16).hex(),
        "cipher": cipher,
        "checksum": checksum,
        "created": time.time(),
        "kdf": None,
        "key": None,
    }
    master = None
    if ciphers.get(cipher).load().key_size:
        if passphrase is None:
            raise IntegrityError(f"cipher {cipher} needs a passphrase")
        header["kdf"] = new_kdf()
        kek = derive_key(passphrase, header["kdf"])
        master = os.urandom(32)
        header["key"] = wrap_key(kek, master, _header_aad(header))
    blob = json.dumps(header, indent=1).encode()
    if relay.capabilities.exclusive_create:
        if relay.create_exclusive(HEADER, blob):
            return header, master
        # another client created the repository at the same moment: use theirs
        return _read_header(relay), None
    # No atomic create-if-absent: two first clients would both write a header with different
    # keys. Under the lock, only the first one writes it.
    with RelayLock(relay, "init", timeout=120, wait=120):
        try:
            return _read_header(relay), None
        except RelayNotFoundError:
            relay.write_bytes(HEADER, blob)
            return header, master
