"""WebDAV relay: webdav4's fsspec filesystem, with WebDAV's quirks handled.

* **Publish** is a server-side ``MOVE`` with ``Overwrite: T``: ``fs.mv`` would COPY then
  DELETE, and refuse an existing target. A ``PUT`` writes straight into its target, so every
  object is uploaded under a temporary name (``.tmp-<hex>``, never listed) first.
* **Uploads** are spooled (1 MiB in memory, the rest in a temporary file) and sent with a
  ``Content-Length`` once the whole object is there: nothing reaches the server when the
  source fails, memory stays bounded, and a dropped upload can be sent again.
* **Exclusive create** is a ``LOCK`` on the unmapped name (``201`` means "this LOCK created
  it"; Apache answers ``200`` with a lock-null resource, which ``HEAD`` shows as ``404``),
  then a ``PUT`` under the lock token, ``UNLOCK`` and a read-back: the only WebDAV
  primitive that lets exactly one of several writers win. Servers without locking (DAV class
  1) fall back to check-then-write, and say so in :attr:`capabilities`.
* **Folders** are created once per relay instance (``MKCOL``, ``405`` = exists): ``makedirs``
  before every upload costs a ``PROPFIND`` of the parent, which made uploads quadratic. A
  full listing removes emptied folders, each under a depth-infinity ``LOCK``.
* **Errors**: ``401``/``403`` are refused credentials, ``404``/``409`` a missing object or
  folder, ``423`` (locked), ``429``, ``5xx``, refused or dropped connections and timeouts are
  transient (retried by :meth:`FsspecRelay.retry`); an unknown host or an untrusted TLS
  certificate is reported at once.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import socket
import ssl
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from typing import IO, Any, Optional

from escale_relay_fsspec.relay import READ_BLOCK, STALE, TEMP_PREFIX, FsspecRelay

from escale_core.address import RelayAddress
from escale_core.errors import (
    RelayAuthError,
    RelayError,
    RelayNotFoundError,
    RelayUnavailableError,
)
from escale_core.relay import Capabilities

#: Spooled uploads keep this much in memory, the rest in a temporary file.
SPOOL_MEMORY = READ_BLOCK
#: An exclusive create holds its WebDAV lock this long at most (a killed writer's lock expires).
LOCK_SECONDS = 30
LOCK_BODY = (
    '<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:">'
    "<D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>"
    "<D:owner>escale</D:owner></D:lockinfo>"
)
_UNKNOWN_HOST = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


class WebdavRelay(FsspecRelay):
    """Objects under a WebDAV collection."""

    def connect(self, address: RelayAddress, options: dict[str, Any]) -> tuple[Any, str]:
        from webdav4.fsspec import WebdavFileSystem

        scheme = "https" if address.scheme == "webdavs" else "http"
        host = f"[{address.host}]" if ":" in (address.host or "") else address.host
        port = f":{address.port}" if address.port else ""
        user = options.pop("username", address.username)
        password = options.pop("password", address.password)
        options.setdefault("timeout", 60)
        _tls_context(address, options)
        kind = str(options.pop("auth", "basic")).lower()
        if kind not in ("basic", "digest"):
            raise RelayError(f"{address.display()}: relay_options auth must be basic or digest")
        auth: Any = None
        if user:
            auth = (user, password or "")
            if kind == "digest":
                import httpx

                auth = httpx.DigestAuth(user, password or "")
        self._folders: set[str] = set()
        self._capabilities: Optional[Capabilities] = None
        try:
            fs = WebdavFileSystem(
                f"{scheme}://{host}{port}",
                auth=auth,
                retry=False,  # escale retries (FsspecRelay.retry), with its own backoff
                skip_instance_cache=True,  # a cached instance would share its connections
                **options,
            )
        except (TypeError, ValueError, ImportError) as exc:  # an option httpx does not take
            raise RelayError(
                f"{address.display()}: unsupported relay_options ({exc}); WebDAV accepts "
                "httpx client options such as verify, cert, timeout, headers"
            ) from None
        return fs, (address.path or "").strip("/")

    # -- capabilities ----------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        """Atomic rename always (MOVE); exclusive create if the server has locking (DAV: 2)."""
        if self._capabilities is None:

            def classes() -> set[str]:
                response = self.fs.client.http.options(self.fs.client.join_url(self.root))
                if response.status_code == 404:  # no repository folder yet: ask the server
                    response = self.fs.client.http.options(self.fs.client.join_url(""))
                response.raise_for_status()
                return {c.strip() for c in response.headers.get("DAV", "").split(",")}

            locking = "2" in self.retry("asking for the server's WebDAV features", classes)
            self._capabilities = Capabilities(atomic_rename=True, exclusive_create=locking)
        return self._capabilities

    @capabilities.setter
    def capabilities(self, value: Capabilities) -> None:
        self._capabilities = value

    def server_report(self) -> list[tuple[str, Optional[bool], str]]:
        """What ``escale relay check`` shows of the server: its name and WebDAV classes, and
        whether it answers a ``PROPFIND`` of ``Depth: infinity`` (Apache refuses it by
        default; the relay lists folder by folder with ``Depth: 1`` either way)."""
        client = self.fs.client

        def ask() -> tuple[Any, int]:
            options = client.http.options(client.join_url(""))
            url = client.join_url(self.root, add_trailing_slash=True)
            # streamed and closed unread: a whole repository's listing could be large
            headers = {"Depth": "infinity"}
            with client.http.stream("PROPFIND", url, headers=headers) as response:
                return options.headers, response.status_code

        headers, depth = self.retry("asking about the WebDAV server", ask)
        classes = headers.get("DAV", "").replace(" ", "") or "none"
        name = headers.get("Server", "") or "a server that does not name itself"
        locking = "2" in classes.split(",")
        infinite = f"answered (HTTP {depth}); listings still use Depth: 1"
        if depth in (400, 403):
            infinite = f"refused (HTTP {depth}); listings go folder by folder (Depth: 1)"
        elif depth == 404:
            infinite = "not asked: the repository folder does not exist yet"
        return [
            ("server", None, f"{name}; WebDAV classes {classes}"),
            ("locking", locking or None, "LOCK (class 2)" if locking else "no class 2: no LOCK"),
            ("PROPFIND infinity", None, infinite),
        ]

    # -- paths, folders, publish -----------------------------------------------------------

    def _path(self, name: str) -> str:
        root = self.root.strip("/")
        return posixpath.join(root, name) if root else name

    def makedirs(self, folder: str) -> None:
        path = ""
        for part in [p for p in folder.split("/") if p]:
            path = posixpath.join(path, part)
            if path not in self._folders:
                self._mkcol(path)
                self._folders.add(path)

    def _mkcol(self, path: str) -> None:
        """``MKCOL`` one folder; ``405`` means it exists. Apache answers ``403`` when another
        client's ``MKCOL`` of the same folder won the race (EEXIST): then it exists too."""
        from webdav4.client import ForbiddenOperation, ResourceAlreadyExists

        try:
            self.fs.client.mkdir(path)
        except ResourceAlreadyExists:
            pass
        except ForbiddenOperation:  # webdav4's name for 403 (not an HTTPError subclass)
            if not self._is_folder(path):
                raise

    def _is_folder(self, path: str) -> bool:
        """A ``PROPFIND`` of ``Depth: 0``: webdav4's ``isdir`` sends no Depth, which means
        infinity, and Apache refuses that with 403 (``DavDepthInfinity`` is off by default)."""
        client = self.fs.client
        found = client.propfind(path, headers={"Depth": "0"})
        return bool(found.get_response_for_path(client.base_url.path, path).properties.collection)

    def publish(self, temp: str, final: str) -> None:
        self.fs.client.move(temp, final, overwrite=True)

    def reconnect(self) -> None:
        super().reconnect()
        self._folders.clear()  # the server may have lost them (or another client pruned them)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.fs.client.http.close()

    # -- listing ---------------------------------------------------------------------------

    def list_sizes(self, prefix: str = "") -> dict[str, int]:
        """One ``PROPFIND`` (depth 1) per folder; webdav4 keeps no listing cache. A listing of
        the whole repository also removes the empty folders that deletions left."""
        base = self._path(prefix)
        found: dict[str, Any] = self.retry(
            f"listing {base or '/'}", lambda: self.fs.find(base, detail=True, withdirs=True)
        )  # a missing folder lists as empty
        root, out = self.root.strip("/"), {}
        for path, info in found.items():
            name = path.strip("/")[len(root) :].lstrip("/")
            if info.get("type") == "directory" or not name:
                continue
            if not posixpath.basename(name).startswith(TEMP_PREFIX):
                out[name] = int(info.get("size") or 0)
            elif time.time() - _timestamp(info.get("modified")) > STALE:
                self._discard(path)  # an upload cut short long ago (killed writer or server)
        if not prefix:
            self._prune({p.strip("/"): i.get("type") == "directory" for p, i in found.items()})
        return out

    def _prune(self, entries: dict[str, bool]) -> None:
        """Remove empty folders, deepest first (``entries``: path -> is a folder).

        A ``DELETE`` of a folder is recursive, so a folder is removed only under a
        depth-infinity ``LOCK``, which keeps anyone from adding to it, once a ``PROPFIND``
        showed it empty. A writer meanwhile gets ``423`` and retries; its folder is created
        again.
        """
        if not self.capabilities.exclusive_create:
            return  # no locking: empty folders stay (one more PROPFIND each per listing)
        root = self.root.strip("/")
        children = Counter(posixpath.dirname(p) for p in entries if p != root)
        folders = [p for p, is_folder in entries.items() if is_folder and p != root]
        for folder in sorted(folders, key=lambda p: -p.count("/")):
            if children[folder] == 0 and self._remove_if_empty(folder):
                children[posixpath.dirname(folder)] -= 1
                self._folders.discard(folder)

    def _remove_if_empty(self, folder: str) -> bool:
        client = self.fs.client
        url = client.join_url(folder, add_trailing_slash=True)
        with contextlib.suppress(Exception):  # a folder left for the next listing
            headers = {"Depth": "infinity", "Timeout": f"Second-{LOCK_SECONDS}"}
            response = client.http.request("LOCK", url, content=LOCK_BODY, headers=headers)
            if response.status_code not in (200, 201):
                return False  # 423: another client is writing there, or pruning it
            token = response.headers["Lock-Token"].strip()
            try:  # 201: the folder had gone, and the LOCK created an empty object: drop it
                if response.status_code == 200 and client.ls(folder, detail=False):
                    return False
                # A tagged If: Apache checks an untagged one against the parent folder too,
                # which does not hold the token (412 there, 424 for the DELETE)
                tagged = {"If": f"<{url}> ({token})"}
                return bool(client.http.delete(url, headers=tagged).is_success)
            finally:
                client.http.request("UNLOCK", url, headers={"Lock-Token": token})
        return False

    # -- writing ---------------------------------------------------------------------------

    def write_stream(self, name: str, chunks: Iterable[bytes]) -> None:
        path = self._path(name)
        temp = self._temp(path)
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY) as spool:
            for chunk in chunks:  # a failing source raises here, before any request
                spool.write(chunk)
            size = spool.tell()
            try:
                self.retry(f"writing {name}", lambda: self._upload(spool, size, temp))
                self.retry(f"writing {name}", lambda: self.publish(temp, path))
            except BaseException:
                self._discard(temp)
                raise

    def _upload(self, source: IO[bytes], size: int, path: str) -> None:
        from webdav4.client import HTTPError

        for attempt in (1, 2):
            self.makedirs(posixpath.dirname(path))
            source.seek(0)
            try:
                self.fs.client.upload_fileobj(source, path, overwrite=True, size=size)
                return
            except HTTPError as exc:
                if exc.status_code != 409 or attempt == 2:
                    raise
                self._folders.clear()  # 409: a parent folder vanished; create it again

    # -- exclusive create: LOCK on an unmapped URL -----------------------------------------

    def create_exclusive(self, name: str, data: bytes) -> bool:
        if not self.capabilities.exclusive_create:
            return super().create_exclusive(name, data)
        deadline = time.monotonic() + LOCK_SECONDS + 10
        while True:
            created = self.retry(f"creating {name}", lambda: self._lock_and_write(name, data))
            if created is not None:
                # WsgiDAV creates the empty object of a LOCK before it takes the lock, and that
                # truncates: a LOCK that raced ours may have emptied what we wrote. Then that
                # writer wins (it writes under its lock, or takes the empty object over).
                return created and self.read_bytes(name) == data
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)  # another writer holds the lock while it writes the object

    def _lock_and_write(self, name: str, data: bytes) -> Optional[bool]:
        """True: created; False: it exists (complete); None: another writer holds it."""
        client, path = self.fs.client, self._path(name)
        self.makedirs(posixpath.dirname(path))
        url = client.join_url(path)
        response = client.http.request(
            "LOCK",
            url,
            content=LOCK_BODY,
            headers={
                "Depth": "0",
                "Timeout": f"Second-{LOCK_SECONDS}",
                "Content-Type": "application/xml; charset=utf-8",
            },
        )
        if response.status_code == 423:
            return None
        if response.status_code == 409:  # the folder went (pruned by another client)
            self._folders.clear()
            return None
        response.raise_for_status()
        token = response.headers["Lock-Token"].strip()
        try:
            # 201: this LOCK created the (empty) object (WsgiDAV). 200: it existed; an empty
            # one is the leftover of a writer killed between LOCK and PUT, whose lock has
            # expired. Apache answers 200 and keeps a lock-null resource (no object: GET 404)
            # that vanishes with the lock: that one is ours too.
            ours = response.status_code == 201 or _lock_null(client, url)
            if not ours and (client.content_length(path) or not data):
                return False
            put = client.http.put(url, content=data, headers={"If": f"({token})"})
            if put.status_code == 412:
                # Apache: another writer's PUT turned its lock-null resource into a file
                # between our LOCK and our PUT, and our lock went with the name: retry
                return None
            put.raise_for_status()
            return True
        finally:
            with contextlib.suppress(Exception):
                client.http.request("UNLOCK", url, headers={"Lock-Token": token})

    # -- errors ----------------------------------------------------------------------------

    def map_error(self, exc: BaseException, what: str) -> Optional[RelayError]:
        import httpx
        from webdav4.client import (
            BadGatewayError,
            ClientError,
            InsufficientStorage,
            ResourceLocked,
            ResourceNotFound,
        )

        port = f":{self.address.port}" if self.address.port else ""
        server = f"the WebDAV server {self.address.host}{port}"
        status: Optional[int] = None
        causes: list[BaseException] = []
        cause: Optional[BaseException] = exc
        while cause is not None and len(causes) < 10:
            causes.append(cause)
            response = getattr(cause, "response", None)
            if status is None and response is not None:
                status = getattr(response, "status_code", None)
            cause = cause.__cause__ or cause.__context__
        if any(isinstance(c, ResourceNotFound) for c in causes) or status == 404:
            return RelayNotFoundError(f"{what}: not found on {server}")
        if status == 401:
            return RelayAuthError(
                f"{what}: {server} refused the credentials (HTTP 401); check the user name "
                "and the password (password, password_file or the URL)"
            )
        if status == 403:
            return RelayAuthError(
                f"{what}: {server} forbids it (HTTP 403); check that this user may write "
                f"to {self.address.path or '/'}"
            )
        if status == 409:
            return RelayNotFoundError(f"{what}: a parent folder is missing on {server} (HTTP 409)")
        if isinstance(exc, ResourceLocked) or status == 423:
            return RelayUnavailableError(f"{what}: locked by another client (HTTP 423)")
        if isinstance(exc, InsufficientStorage) or status == 507:
            return RelayError(f"{what}: {server} is out of storage space (HTTP 507)")
        if isinstance(exc, BadGatewayError) or status == 429 or (status or 0) >= 500:
            return RelayUnavailableError(f"{what}: {server} failed (HTTP {status or 502})")
        if isinstance(exc, httpx.TransportError):
            gai = [c for c in causes if isinstance(c, socket.gaierror)]
            if gai and gai[0].errno in _UNKNOWN_HOST:
                return RelayError(
                    f"{what}: unknown host '{self.address.host}'; check the relay URL"
                )
            if any(isinstance(c, ssl.SSLError) for c in causes):
                return RelayError(
                    f"{what}: TLS with {server} failed ({exc}); for a self-signed certificate "
                    'set relay_options verify = "/path/to/ca.pem"'
                )
            if isinstance(exc, httpx.ConnectError):
                return RelayUnavailableError(
                    f"{what}: cannot connect to {server} ({exc}); is it running, and are the "
                    "host and port right?"
                )
            if isinstance(exc, httpx.TimeoutException):
                return RelayUnavailableError(f"{what}: {server} did not answer in time")
            return RelayUnavailableError(
                f"{what}: the connection to {server} was lost ({type(exc).__name__})"
            )
        if isinstance(exc, (ClientError, httpx.HTTPError)):
            return RelayError(f"{what}: {server}: {exc}")
        return None


def _lock_null(client: Any, url: str) -> bool:
    """Whether ``url``, just locked, is a lock-null resource: locked, but no object yet."""
    return bool(client.http.head(url).status_code == 404)


def _timestamp(value: Any) -> float:
    """POSIX seconds of a listing's ``modified`` datetime (now if missing)."""
    return float(value.timestamp()) if hasattr(value, "timestamp") else time.time()


def _tls_context(address: RelayAddress, options: dict[str, Any]) -> None:
    """Turn the relay options ``verify`` (a CA file or folder, or a bool) and ``cert`` (client
    certificate file, or [certificate, key]) into the SSL context httpx expects."""
    verify, cert = options.get("verify", True), options.pop("cert", None)
    if isinstance(verify, bool) and cert is None:
        return
    where = f"{address.display()}: relay_options"
    context = ssl.create_default_context()
    if isinstance(verify, str):
        ca = os.path.expanduser(verify)
        if not os.path.exists(ca):
            raise RelayError(f"{where} verify: no CA file or folder {ca}")
        context = ssl.create_default_context(
            cafile=None if os.path.isdir(ca) else ca, capath=ca if os.path.isdir(ca) else None
        )
    elif verify is False:
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    if cert is not None:
        files = [cert] if isinstance(cert, str) else list(cert)
        try:
            context.load_cert_chain(*[os.path.expanduser(f) for f in files])
        except (OSError, ssl.SSLError) as exc:
            raise RelayError(f"{where} cert: cannot load {files} ({exc})") from None
    options["verify"] = context
