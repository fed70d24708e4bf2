"""FTP relay: fsspec's FTP filesystem (ftplib), with FTP's quirks handled.

* One control connection per relay, reopened after a failure (fsspec never reopens it).
* Objects are streamed through one data connection each (``STOR``/``RETR``), in the pieces the
  engine gives: nothing is buffered whole, and fsspec's 64 KiB ``block_size`` is not involved.
* Publish is ``RNFR``/``RNTO`` from a temporary name: atomic on the server's filesystem.
* There is no create-if-absent in FTP: escale's locks fall back to write, wait, re-list.
* Listings are ``MLSD`` walks on the wire (``LIST -a`` parsed for servers without it, such as
  vsftpd: ``-a`` shows the hidden temporary names), never fsspec's ``dircache`` (it goes
  stale), and a failed listing is an error, never an empty listing (fsspec's ``exists()`` says
  ``False`` on any error).
* A refused ``MKD`` of a missing folder is an error naming it (vsftpd would only say "553
  Could not create file" at the ``STOR``); ``/~/path`` is a folder in the login folder.
* ``550`` means "no such file", ``530`` a refused login, ``4xx`` and a lost connection a
  transient failure: the connection is reopened and the operation retried.
* ``ftps://`` is explicit TLS (``AUTH TLS``, then ``PROT P``), with the server certificate
  verified against the system's CAs, or against relay option ``ca_file``.
"""

from __future__ import annotations

import builtins
import calendar
import contextlib
import ftplib
import os
import posixpath
import socket
import ssl
import time
from collections.abc import Iterable, Iterator
from typing import Any, Callable, Optional, TypeVar

from escale_relay_fsspec.relay import READ_BLOCK, TEMP_PREFIX, FsspecRelay
from fsspec.implementations.ftp import FTPFileSystem

from escale_core.address import RelayAddress
from escale_core.errors import (
    ConfigError,
    EscaleError,
    RelayAuthError,
    RelayError,
    RelayNotFoundError,
    RelayUnavailableError,
)
from escale_core.manifest import MAX_OBJECTS
from escale_core.relay import Capabilities

from .listing import parse_list_line

T = TypeVar("T")
#: Age after which a temporary object is a crash leftover. A day, not an hour: FTP servers
#: report times in UTC or (wrongly) in their local time, and the server's clock may be off.
STALE = 86400.0
#: Most files and folders one listing walks: a repository holds at most ``MAX_OBJECTS``
#: objects; a server listing more (or folders nested without end) is refused, not followed.
MAX_LISTED = MAX_OBJECTS + 100_000


class _Filesystem(FTPFileSystem):  # type: ignore[misc]
    """fsspec's FTP filesystem whose explicit TLS verifies the server certificate."""

    def __init__(self, *args: Any, ssl_context: Optional[ssl.SSLContext] = None, **kw: Any):
        self.ssl_context = ssl_context
        super().__init__(*args, **kw)

    def _connect(self) -> None:
        if self.tls is not True:
            super()._connect()
            return
        self.ftp = ftplib.FTP_TLS(
            context=self.ssl_context, timeout=self.timeout, encoding=self.encoding
        )
        self.ftp.connect(self.host, self.port)
        self.ftp.login(*self.cred)  # AUTH TLS first, then USER/PASS
        self.ftp.prot_p()  # data connections encrypted too


class FtpRelay(FsspecRelay):
    """Objects under a folder of an FTP server."""

    capabilities = Capabilities(atomic_rename=True, exclusive_create=False)

    def connect(self, address: RelayAddress, options: dict[str, Any]) -> tuple[Any, str]:
        options.setdefault("username", address.username or "anonymous")
        if address.password and "password" not in options:
            options["password"] = address.password
        tls = options.pop("tls", address.scheme == "ftps")
        ca_file, verify = options.pop("ca_file", None), options.pop("verify_tls", True)
        context = self._tls_context(ca_file) if tls is True else None
        if context is not None and not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        self._folders: set[str] = set()
        #: whether the server answers MLSD (None until the first listing)
        self.has_mlsd: Optional[bool] = None
        #: False once RNTO refused to replace an existing object (then delete, rename)
        self.rename_replaces = True
        fs = _Filesystem(
            address.host, port=address.port or 21, tls=tls, ssl_context=context, **options
        )
        return fs, self._root(fs, address.path or "/")

    @staticmethod
    def _root(fs: _Filesystem, path: str) -> str:
        """The repository folder: ``/~/x`` is ``x`` inside the login folder (``PWD``), as on
        a non-chrooted vsftpd or ProFTPD account, whose ``/`` is the machine's root."""
        rest = path.lstrip("/")
        if rest != "~" and not rest.startswith("~/"):
            return path
        home = fs.ftp.pwd()  # connected by fsspec's __init__
        if not home.startswith("/"):
            raise RelayError(f"the FTP server gives no absolute login folder ({home!r})")
        return posixpath.join(home, rest[2:]) if rest != "~" else home

    def _tls_context(self, ca_file: Optional[str]) -> ssl.SSLContext:
        """The system's CAs, or only those of ``ca_file``, to verify the server's certificate."""
        if ca_file is None:
            return ssl.create_default_context()
        path = os.path.expanduser(str(ca_file))
        try:
            return ssl.create_default_context(cafile=path)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"cannot use {path} as CA certificate ({exc})",
                key="relay_options.ca_file",
                hint="give a PEM file holding the certificate that signed the server's",
            ) from exc

    # -- one control connection, reopened after a failure ----------------------------------

    def _ftp(self) -> ftplib.FTP:
        """The control connection, reopened if a failure closed it."""
        if self.fs.ftp.sock is None:
            try:
                self.fs._connect()
            except BaseException:
                self._drop()
                raise
        ftp: ftplib.FTP = self.fs.ftp
        return ftp

    def _drop(self) -> None:
        """Close the control connection (it may be out of step after a failed transfer)."""
        with contextlib.suppress(Exception):
            self.fs.ftp.close()

    def retry(self, what: str, operation: Callable[[], T]) -> T:
        def connected() -> T:
            self._ftp()
            return operation()

        return super().retry(what, connected)

    def reconnect(self) -> None:
        super().reconnect()
        self._drop()  # reopened by the next attempt, whose errors are mapped and retried

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.fs.ftp.sock is not None:
                self.fs.ftp.quit()
        self._drop()

    # -- errors --------------------------------------------------------------------------

    @contextlib.contextmanager
    def errors(self, what: str) -> Iterator[None]:
        # map_error first: socket errors are OSErrors, which the generic mapping words vaguely
        try:
            yield
        except EscaleError:  # already escale's word (a relay error, an abandoned round...)
            raise
        except Exception as exc:
            mapped = self.map_error(exc, what)
            if mapped is None:
                with super().errors(what):
                    raise
            raise mapped from exc

    def map_error(self, exc: BaseException, what: str) -> Optional[RelayError]:
        shown = self.address.display()
        where = what if shown in what else f"{what} on {shown}"
        server = f"{self.address.host}:{self.address.port or 21}"
        if isinstance(exc, ftplib.error_perm):
            code = str(exc)[:3]
            if code == "530":
                return RelayAuthError(
                    f"{where}: login refused ({exc}); check the username and the password "
                    "(password or password_file in the section)"
                )
            if code == "550":
                return RelayNotFoundError(f"{where}: not found ({exc})")
            return RelayError(f"{where}: refused by the server ({exc}){self._reuse_hint(exc)}")
        if isinstance(exc, ftplib.error_temp):
            return RelayUnavailableError(
                f"{where}: temporary server failure ({exc}){self._reuse_hint(exc)}"
            )
        if isinstance(exc, (ftplib.error_reply, ftplib.error_proto)):
            return RelayError(f"{where}: unexpected answer ({exc}); is {server} an FTP server?")
        if isinstance(exc, socket.gaierror):
            problem = f"{where}: cannot resolve host '{self.address.host}' ({exc.strerror})"
            if exc.errno == socket.EAI_AGAIN:
                return RelayUnavailableError(problem)
            return RelayError(f"{problem}; check the host name in the relay address")
        if isinstance(exc, ConnectionRefusedError):
            return RelayUnavailableError(
                f"{where}: connection refused by {server}; check the port and that the FTP "
                "server is running"
            )
        if isinstance(exc, TimeoutError):
            return RelayUnavailableError(f"{where}: no answer from {server} (timed out)")
        if isinstance(exc, (EOFError, ConnectionError)):
            return RelayUnavailableError(f"{where}: connection to {server} lost ({exc!r})")
        if isinstance(exc, ssl.SSLCertVerificationError):
            return RelayError(
                f"{where}: the server's TLS certificate is not trusted ({exc.verify_message}); "
                "give its CA certificate as relay option ca_file"
            )
        if isinstance(exc, ssl.SSLError):
            return RelayError(f"{where}: TLS failed ({exc})")
        return None

    def _reuse_hint(self, exc: ftplib.Error) -> str:
        """How to fix a data connection refused over TLS (vsftpd 522, ProFTPD 425)."""
        if str(exc)[:3] not in ("425", "522") or self.fs.tls is not True:
            return ""
        return (
            "; if every transfer fails so, the server requires TLS session reuse on data "
            "connections, which Python's ftplib lacks: turn it off (vsftpd: "
            "require_ssl_reuse=NO, ProFTPD: TLSOptions NoSessionReuseRequired)"
        )

    # -- listings: MLSD on the wire ------------------------------------------------------

    def list_sizes(self, prefix: str = "") -> dict[str, int]:
        base = self._path(prefix)
        found = self.retry(f"listing {base}", lambda: self._walk(base))
        root = self.root.rstrip("/") + "/"
        out: dict[str, int] = {}
        stale: list[str] = []
        for path, (size, modify) in found.items():
            if not posixpath.basename(path).startswith(TEMP_PREFIX):
                out[path[len(root) :]] = size
            elif modify and time.time() - modify > STALE:
                stale.append(path)  # left by a writer killed long ago
        for path in stale:
            self._discard(path)
        return out

    def temp_objects(self, prefix: str = "") -> builtins.list[str]:
        found = self.retry(f"listing {self._path(prefix)}", lambda: self._walk(self._path(prefix)))
        root = self.root.rstrip("/") + "/"
        return sorted(
            path[len(root) :] for path in found if posixpath.basename(path).startswith(TEMP_PREFIX)
        )

    def _walk(self, base: str) -> dict[str, tuple[int, Optional[float]]]:
        """Path → (size, modification time) of every file under ``base``; {} if it is missing."""
        ftp = self._ftp()
        found: dict[str, tuple[int, Optional[float]]] = {}
        todo, listed = [base], 0
        while todo:
            folder = todo.pop()
            try:
                entries = self._entries(ftp, folder)
            except (ftplib.error_perm, ftplib.error_temp):
                if self._missing(ftp, folder):  # 550, 501 (pyftpdlib), 450 (ProFTPD's LIST)
                    continue  # nothing was written there yet, or a pruned folder
                raise
            listed += len(entries)
            if listed > MAX_LISTED:
                raise RelayError(
                    f"listing {base} on {self.address.display()}: the server lists more than "
                    f"{MAX_LISTED} files and folders; is the relay path an escale repository?"
                )
            for name, is_dir, size, modify in entries:
                path = posixpath.join(folder, posixpath.basename(name.rstrip("/")))
                if is_dir:
                    todo.append(path)
                else:
                    found[path] = (size, modify)
        return found

    def _entries(
        self, ftp: ftplib.FTP, folder: str
    ) -> builtins.list[tuple[str, bool, int, Optional[float]]]:
        """(name, is folder, size, time) of the files and folders in ``folder``."""
        if self.has_mlsd is not False:
            try:
                listed = list(ftp.mlsd(folder))  # type, size and modify are default facts
            except ftplib.error_perm as exc:
                if str(exc)[:3] not in ("500", "502"):  # 550 or 501: a missing folder
                    raise
                self.has_mlsd = False  # vsftpd: parse LIST from now on
            else:
                self.has_mlsd = True
                return [
                    (
                        name,
                        facts.get("type", "").lower() == "dir",
                        int(facts.get("size") or 0),
                        _mlsd_time(facts),
                    )
                    for name, facts in listed
                    if facts.get("type", "").lower() in ("dir", "file")
                ]
        return self._list(ftp, folder)

    def _list(
        self, ftp: ftplib.FTP, folder: str
    ) -> builtins.list[tuple[str, bool, int, Optional[float]]]:
        """``LIST -a``, parsed line by line (bounded: one folder's lines at a time)."""
        out: builtins.list[tuple[str, bool, int, Optional[float]]] = []

        def line(text: str) -> None:
            entry = parse_list_line(text)
            if entry is not None:
                out.append((entry.name, entry.is_dir, entry.size, entry.modified))

        ftp.retrlines(f"LIST -a {folder}", line)
        return out

    @staticmethod
    def _missing(ftp: ftplib.FTP, folder: str) -> bool:
        """Whether ``folder`` is missing (a failed listing alone does not say)."""
        try:
            ftp.cwd(folder)
        except ftplib.error_perm:
            return True
        return False

    def modified(self, name: str) -> Optional[float]:
        path = self._path(name)
        answer = self.retry(
            f"reading the time of {name}", lambda: self._ftp().voidcmd(f"MDTM {path}")
        )
        return _mlsd_time({"modify": answer[4:].strip()})

    # -- streamed transfers --------------------------------------------------------------

    def _open_data(self, command: str) -> tuple[ftplib.FTP, socket.socket]:
        ftp = self._ftp()
        ftp.voidcmd("TYPE I")
        return ftp, ftp.transfercmd(command)

    def _finish(self, ftp: ftplib.FTP, conn: socket.socket) -> None:
        """End a data transfer the way ftplib does, and read the server's final answer."""
        if isinstance(conn, ssl.SSLSocket):
            conn.unwrap()
        conn.close()
        ftp.voidresp()

    def read_bytes(self, name: str) -> bytes:
        path = self._path(name)
        return self.retry(
            f"reading {name}", lambda: b"".join(self._receive(f"RETR {path}", f"reading {name}"))
        )

    def read_stream(self, name: str) -> Iterator[bytes]:
        path = self._path(name)
        what = f"reading {name}"
        yield from self.retry(what, lambda: self._receive(f"RETR {path}", what))

    def _receive(self, command: str, what: str) -> Iterator[bytes]:
        """Open the transfer now; the returned iterator yields its blocks."""
        ftp, conn = self._open_data(command)

        def blocks() -> Iterator[bytes]:
            done = False
            try:
                while True:
                    with self.errors(what):
                        block = conn.recv(READ_BLOCK)
                    if not block:
                        break
                    yield block
                with self.errors(what):
                    self._finish(ftp, conn)
                done = True
            finally:
                if not done:  # the server may still be sending: start afresh
                    conn.close()
                    self._drop()

        return blocks()

    def write_stream(self, name: str, chunks: Iterable[bytes]) -> None:
        path = self._path(name)
        temp = self._temp(path)

        def start() -> tuple[ftplib.FTP, socket.socket]:
            self.makedirs(posixpath.dirname(path))
            try:
                return self._open_data(f"STOR {temp}")
            except ftplib.error_perm:  # 550: another client pruned a folder we knew
                self._folders.clear()
                self.makedirs(posixpath.dirname(path))
                return self._open_data(f"STOR {temp}")

        ftp, conn = self.retry(f"writing {name}", start)  # nothing sent yet: safe to retry
        with self.errors(f"writing {name}"):
            try:
                for chunk in chunks:
                    conn.sendall(chunk)
                self._finish(ftp, conn)
            except BaseException as cut:
                conn.close()
                # the server's answer to the cut transfer, unless it was the error itself
                reason = None if isinstance(cut, ftplib.Error) else self._cut_reason(ftp)
                self._discard(temp)
                if reason is not None and isinstance(cut, OSError):
                    raise reason from cut  # "425 ..." says more than "broken pipe"
                raise
            try:
                self.publish(temp, path)
            except BaseException:
                self._discard(temp)
                raise

    def _cut_reason(self, ftp: ftplib.FTP) -> Optional[ftplib.Error]:
        """The server's answer to a transfer cut short, when it is an error (a refused TLS
        session on the data connection, a full disk); the connection is dropped when the
        answer cannot be read."""
        try:
            ftp.voidresp()
        except ftplib.Error as exc:
            return exc
        except Exception:
            self._drop()
        return None

    def publish(self, temp: str, final: str) -> None:
        ftp = self._ftp()
        ftp.sendcmd(f"RNFR {temp}")
        try:
            ftp.voidcmd(f"RNTO {final}")  # overwrites on Unix servers
        except ftplib.error_perm as exc:
            if "exist" not in str(exc).lower():
                raise RelayError(
                    f"renaming a temporary object to {final} on {self.address.display()} was "
                    f"refused ({exc}); the account must be allowed to replace files "
                    "(ProFTPD: AllowOverwrite on)"
                ) from exc
            # some servers (IIS) refuse to rename over a file: remove it, then rename
            self.rename_replaces = False
            ftp.delete(final)
            ftp.sendcmd(f"RNFR {temp}")
            ftp.voidcmd(f"RNTO {final}")

    def server_report(self) -> builtins.list[tuple[str, Optional[bool], str]]:
        """The server's greeting, how it lists, and whether RNTO replaces (information)."""
        banner = (self.fs.ftp.welcome or "").splitlines()[0] if self.fs.ftp.welcome else ""
        shown = "".join(c if c.isprintable() else "?" for c in banner[4:80])  # never raw
        listing = {True: "MLSD", False: "LIST -a, parsed (no MLSD)", None: "not listed yet"}
        rename = (
            "replaces an existing object (atomic overwrite)"
            if self.rename_replaces
            else "refuses to replace: delete, then rename (a reader may miss the object)"
        )
        return [
            ("ftp server", None, shown or "?"),
            ("ftp listings", None, listing[self.has_mlsd]),
            ("ftp RNFR/RNTO", None, rename),
        ]

    def _discard(self, temp: str) -> None:
        try:
            self._ftp().delete(temp)
        except ftplib.error_perm:
            pass  # 550: not there
        except Exception:
            self._drop()  # out of step or gone: the next operation reconnects

    def makedirs(self, folder: str) -> None:
        # every MKD is a round trip: remember what exists
        if folder in self._folders:
            return
        ftp = self._ftp()
        path = "/" if folder.startswith("/") else ""
        for part in (p for p in folder.split("/") if p):
            path = posixpath.join(path, part)
            if path not in self._folders:
                try:
                    ftp.mkd(path)
                except ftplib.error_perm as exc:  # 550: exists already, or not allowed
                    self._check_folder(ftp, path, exc)
                self._folders.add(path)

    def _check_folder(self, ftp: ftplib.FTP, path: str, refusal: ftplib.error_perm) -> None:
        """Raise a clear error if ``path`` is not a folder (an MKD was refused).

        Without this, the refusal shows only at the next ``STOR`` (vsftpd: "553 Could not
        create file"), naming neither the folder nor the reason."""
        if not self._missing(ftp, path):
            return
        raise RelayError(
            f"cannot create folder {path} on {self.address.display()} ({refusal}); "
            "the path is absolute as the server shows it: write ftp://host/~/path for a "
            "folder inside the login folder, and check that the account may write there"
        )

    def delete(self, name: str) -> None:
        path = self._path(name)
        with contextlib.suppress(RelayNotFoundError):  # 550: deleted already
            self.retry(f"deleting {name}", lambda: self._ftp().delete(path))
        # remove the folders it emptied: every folder costs an MLSD in each listing
        folder = posixpath.dirname(path)
        while len(folder) > len(self.root):
            try:
                self._ftp().rmd(folder)
            except ftplib.error_perm:
                break  # not empty
            except Exception:
                self._drop()
                break
            self._folders.discard(folder)
            folder = posixpath.dirname(folder)


def _mlsd_time(facts: dict[str, str]) -> Optional[float]:
    """POSIX seconds of an MLSD/MDTM time ``YYYYMMDDHHMMSS[.sss]`` (UTC), if it parses."""
    try:
        return float(calendar.timegm(time.strptime(facts.get("modify", "")[:14], "%Y%m%d%H%M%S")))
    except ValueError:
        return None
