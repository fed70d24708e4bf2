"""rclone relay: any remote of the user's rclone configuration, through ``rclone rcd``.

* **One daemon per relay**: ``rclone rcd`` is started on the first operation, on
  ``127.0.0.1`` with a port the kernel chooses (rclone 1.60 cannot listen on a Unix socket),
  with a random user and password passed in its environment (``RCLONE_RC_USER``,
  ``RCLONE_RC_PASS``: never on a command line other users can read, never logged; never
  ``--rc-no-auth``). It dies with the process that started it (``PR_SET_PDEATHSIG``) and is
  stopped by :meth:`RcloneRelay.close`; a daemon that died is started again by the next
  operation.
* **Objects**: listings are ``operations/list`` (recursive, without modification times nor
  MIME types), reads ``GET /[remote:path]/name`` (``--rc-serve``, streamed), deletions
  ``operations/deletefile``. A write is spooled (1 MiB in memory, the rest in a temporary
  file: a failing source sends nothing and an upload can be retried), uploaded under a
  temporary name with ``operations/uploadfile`` (a multipart body sent in chunks; rclone
  spools it, its memory stays bounded: about 60 MiB for a 200 MiB object) and published with
  ``operations/movefile``. The publish is atomic only where the backend renames atomically
  (local, SFTP, WebDAV); on Google Drive, OneDrive or Dropbox a reader may briefly miss an
  object being replaced, and nothing is exclusive: :attr:`capabilities` declares neither.
* **Errors**: a missing object is :class:`RelayNotFoundError`; a remote missing from the
  configuration names the remote and ``rclone config``; a dead daemon, refused or dropped
  connections, timeouts and 5xx-like backend failures are transient and retried.
"""

from __future__ import annotations

import atexit
import base64
import builtins
import contextlib
import ctypes
import http.client
import json
import os
import posixpath
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Iterable, Iterator
from typing import IO, Any, Callable, Optional, TypeVar
from urllib.parse import quote, urlencode

from escale_relay_fsspec.relay import READ_BLOCK, RETRY_DELAYS, TEMP_PREFIX

from escale_core.address import RelayAddress
from escale_core.errors import (
    ConfigError,
    EscaleError,
    MissingDependencyError,
    RelayAuthError,
    RelayError,
    RelayNotFoundError,
    RelayUnavailableError,
)
from escale_core.relay import Capabilities, Relay

T = TypeVar("T")
INSTALL_HINT = "apt install rclone, or see https://rclone.org/install/"
#: How long ``rclone rcd`` may take to start listening.
START_SECONDS = 30.0
#: Seconds an rc request may wait for an answer (an upload's answer comes after the transfer).
TIMEOUT = 3600.0
DEFAULT_FLAGS = ("--low-level-retries=1", "--contimeout=15s", "--timeout=60s")
_SERVING = re.compile(rb"Serving remote control on https?://127\.0\.0\.1:(\d+)/")
_NOT_FOUND = ("object not found", "directory not found", "no such file", "no such directory")
_TRANSIENT = (
    "connection refused",
    "connection reset",
    "broken pipe",
    "eof",
    "timeout",
    "timed out",
    "couldn't connect",
    "failed to dial",
    "dial tcp",
    "no route to host",
    "too many requests",
    "rate limit",
    "internal server error",
    "bad gateway",
    "service unavailable",
    "gateway timeout",
)
_AUTH = ("permission denied", "unauthorized", "forbidden", "401", "403", "unable to authenticate")


class RcloneRelay(Relay):
    """Objects under a folder of an rclone remote.

    Relay options: ``remote`` (the remote's name when the URL cannot say it: capitals, or an
    on-the-fly remote such as ``:sftp,host=example.org,user=me``), ``config`` (another rclone
    configuration file), ``rclone_binary`` (default: ``rclone`` on the PATH), ``flags`` (a list
    of extra rclone flags, e.g. ``["--drive-chunk-size", "64M"]``).
    """

    capabilities = Capabilities(atomic_rename=False, exclusive_create=False)

    def __init__(self, address: RelayAddress, **options: Any) -> None:
        super().__init__(address, **options)
        opts = dict(options)
        remote = str(opts.pop("remote", "") or address.host or "").rstrip(":")
        if not remote:
            raise ConfigError(
                f"{address.display()}: no rclone remote",
                key="relay",
                hint="write rclone://REMOTE/path, or set relay_options.remote",
            )
        binary = str(opts.pop("rclone_binary", "") or "rclone")
        config = opts.pop("config", None)
        flags = opts.pop("flags", [])
        if opts:
            raise ConfigError(
                f"unknown {', '.join(sorted(opts))}",
                key=f"relay_options.{sorted(opts)[0]}",
                hint="the rclone relay takes remote, config, rclone_binary, flags",
            )
        if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
            raise ConfigError(
                "must be a list of strings",
                key="relay_options.flags",
                hint='e.g. flags = ["--fast-list"]',
            )
        self.remote = remote
        self.fs = f"{remote}:{_remote_path(address.path)}"
        # an on-the-fly remote's parameters may hold a password: messages name its type only
        self.where = f"{remote.split(',')[0]}:{_remote_path(address.path)}"
        # rclone's own low-level retries (10, with a growing pause) would multiply escale's
        # (RETRY_DELAYS): a dead server took 25 s per operation (65 s with 3) instead of 8; the
        # timeouts bound a server that stops answering. ``flags`` come after: they win.
        command = [_find_binary(binary), "rcd", *DEFAULT_FLAGS]
        if config is not None:
            config = os.path.expanduser(str(config))
            if not os.path.isfile(config):
                raise ConfigError(
                    f"no rclone configuration file {config}",
                    key="relay_options.config",
                    hint="give the path of an rclone.conf (rclone config file shows yours)",
                )
            command += ["--config", config]
        self.daemon = RcloneDaemon(command + flags)

    # -- rc requests -----------------------------------------------------------------------

    def call(self, method: str, params: dict[str, Any], what: str = "") -> dict[str, Any]:
        """One rc call (``operations/list``...): its JSON answer, or a relay error."""
        body = json.dumps(params).encode()
        headers = {"Content-Type": "application/json"}
        connection, response = self.daemon.request("POST", f"/{method}", body, headers)
        with contextlib.closing(connection):
            data = response.read()
        return self.answer(response.status, data, what or method)

    def answer(self, status: int, data: bytes, what: str) -> dict[str, Any]:
        """The JSON of an rc answer; an error answer raised as a relay error."""
        try:
            found = json.loads(data or b"{}")
        except ValueError:
            found = {"error": data[:200].decode(errors="replace")}
        if status == 200 and isinstance(found, dict):
            return found
        message = str(found.get("error", "")) if isinstance(found, dict) else str(found)
        raise self.rc_error(status, message or f"HTTP {status}", what)

    def rc_error(self, status: int, message: str, what: str) -> RelayError:
        """An rc error answer as a relay error (rclone says little more than its message)."""
        text, lower = message.replace("\n", " ").replace(self.fs, self.where)[:300], message.lower()
        if "didn't find section in config file" in lower or "config file not found" in lower:
            return RelayError(
                f"{what}: rclone has no remote '{self.remote}' in its configuration; add it "
                "with `rclone config` (or set relay_options config to the right file)"
            )
        if status == 401:
            return RelayUnavailableError(f"{what}: rclone rcd refused escale's credentials")
        if status == 404 or any(word in lower for word in _NOT_FOUND):
            return RelayNotFoundError(f"{what}: not found on {self.where} ({text})")
        if any(word in lower for word in _TRANSIENT) or status in (429, 502, 503, 504):
            return RelayUnavailableError(f"{what}: {self.where} failed: {text}")
        if any(word in lower for word in _AUTH):
            return RelayAuthError(
                f"{what}: {self.where} refused access ({text}); check the remote with "
                f"`rclone config reconnect {self.remote}:` or `rclone lsd {self.remote}:`"
            )
        return RelayError(f"{what}: {self.where}: {text}")

    def retry(self, what: str, operation: Callable[[], T]) -> T:
        """Run ``operation``, retrying with backoff while rclone or the remote is unavailable
        (a daemon that died is started again)."""
        for delay in (*RETRY_DELAYS, None):
            try:
                try:
                    return operation()
                except EscaleError:
                    raise
                except (OSError, http.client.HTTPException) as exc:
                    raise RelayUnavailableError(
                        f"{what}: the connection to rclone rcd failed ({type(exc).__name__}: {exc})"
                    ) from exc
            except RelayUnavailableError:
                if delay is None:
                    raise
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- the relay contract ----------------------------------------------------------------

    def list(self, prefix: str = "") -> builtins.list[str]:
        return sorted(self.list_sizes(prefix))

    def _entries(self, prefix: str) -> builtins.list[dict[str, Any]]:
        opt = {"recurse": True, "noModTime": True, "noMimeType": True, "filesOnly": True}
        params = {"fs": self.fs, "remote": prefix.strip("/"), "opt": opt}
        what = f"listing {prefix or '/'}"
        try:
            found = self.retry(what, lambda: self.call("operations/list", params, what))
        except RelayNotFoundError:
            return []  # rclone says "directory not found": an empty folder
        entries = found.get("list") or []
        return [e for e in entries if isinstance(e, dict) and not e.get("IsDir")]

    def list_sizes(self, prefix: str = "") -> dict[str, int]:
        return {
            str(e["Path"]): int(e.get("Size") or 0)
            for e in self._entries(prefix)
            if not posixpath.basename(str(e["Path"])).startswith(TEMP_PREFIX)
        }

    def temp_objects(self, prefix: str = "") -> builtins.list[str]:
        names = (str(e["Path"]) for e in self._entries(prefix))
        return sorted(n for n in names if posixpath.basename(n).startswith(TEMP_PREFIX))

    def read_bytes(self, name: str) -> bytes:
        return b"".join(self.read_stream(name))

    def read_stream(self, name: str) -> Iterator[bytes]:
        url = f"/[{quote(self.fs, safe=':/,=')}]/{quote(name)}"

        def get() -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
            connection, response = self.daemon.request("GET", url, None, {})
            if response.status != 200:
                with contextlib.closing(connection):
                    self.answer(response.status, response.read(), f"reading {name}")
            return connection, response

        connection, response = self.retry(f"reading {name}", get)
        with contextlib.closing(connection):
            while True:
                try:
                    block = response.read(READ_BLOCK)
                except (OSError, http.client.HTTPException) as exc:
                    raise RelayUnavailableError(
                        f"reading {name}: rclone rcd failed: {exc}"
                    ) from exc
                if not block:
                    return
                yield block

    def write_bytes(self, name: str, data: bytes) -> None:
        self.write_stream(name, [data])

    def write_stream(self, name: str, chunks: Iterable[bytes]) -> None:
        folder = posixpath.dirname(name.strip("/"))
        temp = posixpath.join(folder, f"{TEMP_PREFIX}{uuid.uuid4().hex}")
        with tempfile.SpooledTemporaryFile(max_size=READ_BLOCK) as spool:
            for chunk in chunks:  # a failing source raises here, before any request
                spool.write(chunk)
            try:
                self.retry(f"writing {name}", lambda: self._upload_into(spool, folder, temp))
                move = {"srcFs": self.fs, "srcRemote": temp, "dstFs": self.fs, "dstRemote": name}
                self.retry(
                    f"writing {name}",
                    lambda: self.call("operations/movefile", move, f"publishing {name}"),
                )
            except BaseException:
                self._discard(temp)
                raise

    def _upload_into(self, source: IO[bytes], folder: str, temp: str) -> None:
        """Upload; where the backend does not create the parent folders itself (rclone's FTP
        backend with some servers), create them one by one and upload again."""
        try:
            self._upload(source, folder, temp)
        except RelayNotFoundError:
            parts = [p for p in folder.split("/") if p]
            for depth in range(len(parts) + 1):
                params = {"fs": self.fs, "remote": "/".join(parts[:depth])}
                self.call("operations/mkdir", params, f"creating folder {params['remote']}")
            self._upload(source, folder, temp)

    def _upload(self, source: IO[bytes], folder: str, temp: str) -> None:
        boundary = secrets.token_hex(16)
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file0"; '
            f'filename="{posixpath.basename(temp)}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()

        def body() -> Iterator[bytes]:
            yield head
            source.seek(0)
            while block := source.read(READ_BLOCK):
                yield block
            yield f"\r\n--{boundary}--\r\n".encode()

        query = urlencode({"fs": self.fs, "remote": folder})
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        connection, response = self.daemon.request(
            "POST", f"/operations/uploadfile?{query}", body(), headers
        )
        with contextlib.closing(connection):
            self.answer(response.status, response.read(), f"uploading {temp}")

    def delete(self, name: str) -> None:
        params = {"fs": self.fs, "remote": name}
        with contextlib.suppress(RelayNotFoundError):
            self.retry(
                f"deleting {name}",
                lambda: self.call("operations/deletefile", params, f"deleting {name}"),
            )

    def _discard(self, temp: str) -> None:
        with contextlib.suppress(Exception):
            self.call("operations/deletefile", {"fs": self.fs, "remote": temp})

    def _stat(self, name: str) -> Optional[dict[str, Any]]:
        params = {"fs": self.fs, "remote": name, "opt": {"noMimeType": True}}
        try:
            found = self.retry(
                f"reading {name}", lambda: self.call("operations/stat", params, f"reading {name}")
            )
        except RelayNotFoundError:
            return None
        item = found.get("item")
        return item if isinstance(item, dict) and not item.get("IsDir") else None

    def exists(self, name: str) -> bool:
        return self._stat(name) is not None

    def modified(self, name: str) -> Optional[float]:
        item = self._stat(name)
        stamp = str((item or {}).get("ModTime") or "")
        match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", stamp)
        if match is None:
            return None
        import datetime

        zone = "+00:00" if match.group(3) == "Z" else match.group(3)
        moment = datetime.datetime.fromisoformat(match.group(1) + zone)
        return moment.timestamp() + float(match.group(2) or 0)

    def close(self) -> None:
        self.daemon.stop()


class RcloneDaemon:
    """One ``rclone rcd`` process, started on first use and again after it died."""

    def __init__(self, command: builtins.list[str]) -> None:
        self.command = command
        self.process: Optional[subprocess.Popen[bytes]] = None
        self.port = 0
        self.lock = threading.Lock()
        self.log: deque[str] = deque(maxlen=20)
        self._auth = ""

    def request(
        self, method: str, url: str, body: Any, headers: dict[str, str]
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Send one request (starting the daemon if needed): the connection and its answer.
        An iterable ``body`` is sent in chunks."""
        port, auth = self.ensure()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
        try:
            chunked = body is not None and not isinstance(body, bytes)
            connection.request(
                method,
                url,
                body=body,
                headers={**headers, "Authorization": auth},
                encode_chunked=chunked,
            )
            return connection, connection.getresponse()
        except BaseException:
            connection.close()
            raise

    def ensure(self) -> tuple[int, str]:
        """The port and the ``Authorization`` header of a running daemon."""
        with self.lock:
            if self.process is None or self.process.poll() is not None:
                self._start()
            return self.port, self._auth

    def _start(self) -> None:
        user, password = secrets.token_urlsafe(16), secrets.token_urlsafe(32)
        self._auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        env = {**os.environ, "RCLONE_RC_USER": user, "RCLONE_RC_PASS": password}
        command = [*self.command, "--rc-addr", "127.0.0.1:0", "--rc-serve"]
        self.log.clear()
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=env,
                # the death signal follows the starting *thread*: only the main thread's
                # lifetime is escale's (a worker's daemon is stopped by close or at exit)
                preexec_fn=_die_with_parent if _main_thread() else None,
            )
        except OSError as exc:
            raise RelayError(f"cannot start {command[0]} ({exc}); {INSTALL_HINT}") from None
        self.process = process
        _RUNNING.add(self)
        self.port = self._wait_serving(process)
        threading.Thread(target=self._drain, args=(process,), daemon=True).start()

    def _wait_serving(self, process: subprocess.Popen[bytes]) -> int:
        """The port rclone announces on its standard error (its other lines are kept)."""
        assert process.stderr is not None
        deadline = time.monotonic() + START_SECONDS
        timer = threading.Timer(START_SECONDS, process.kill)
        timer.start()
        try:
            for line in process.stderr:
                found = _SERVING.search(line)
                if found:
                    return int(found.group(1))
                self.log.append(line.decode(errors="replace").strip())
        finally:
            timer.cancel()
        process.wait()
        late = time.monotonic() > deadline
        last = self.log[-1] if self.log else f"exit status {process.returncode}"
        raise RelayUnavailableError(
            f"rclone rcd {'did not start in time' if late else 'failed to start'}: {last}"
        )

    def _drain(self, process: subprocess.Popen[bytes]) -> None:
        """Read rclone's log so that it never blocks on a full pipe; keep the last lines."""
        assert process.stderr is not None
        with contextlib.suppress(Exception):
            for line in process.stderr:
                self.log.append(line.decode(errors="replace").strip())

    def stop(self) -> None:
        """Stop the daemon (this one process, by its handle)."""
        with self.lock:
            process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


#: daemons to stop when escale exits normally (the others die with the main thread)
_RUNNING: weakref.WeakSet[RcloneDaemon] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for daemon in builtins.list(_RUNNING):
        daemon.stop()


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when escale dies (Linux ``PR_SET_PDEATHSIG``)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


def _find_binary(binary: str) -> str:
    """The rclone program's path; a one-line error with an install hint when missing."""
    found = shutil.which(os.path.expanduser(binary))
    if found is None:
        raise MissingDependencyError(
            f"the rclone relay needs the rclone program ('{binary}' is not found): "
            f"{INSTALL_HINT}; or set relay_options rclone_binary"
        )
    return found


def _remote_path(path: str) -> str:
    """The folder on the remote: ``rclone://r/a/b`` is ``r:a/b`` (from the remote's root or
    home), ``rclone://r//abs`` is ``r:/abs``."""
    if path.startswith("//"):
        return "/" + path.strip("/")
    return path.strip("/")
